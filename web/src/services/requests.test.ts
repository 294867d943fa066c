// What the wizards send: the deployment request from its form, the job (or library-script
// run) from the job wizard; which cached views a live event refreshes; the group tree.
import { describe, expect, it } from "vitest";
import { buildDeploymentRequest, deploymentProblems, EMPTY_DEPLOYMENT, successRate } from "./deployments";
import { keysFor } from "./events";
import { buildGroupTree, flattenTree, type GroupInfo } from "./groups";
import { buildJobSubmission, EMPTY_JOB_FORM, jobFormProblems, type ScriptInfo } from "./jobs";

describe("buildDeploymentRequest", () => {
  const base = { ...EMPTY_DEPLOYMENT, name: " Rollout ", package: "hello-tool", targetId: "g1" };
  it("sends only what was chosen: latest version, respect windows, no network policy", () => {
    expect(buildDeploymentRequest(base)).toEqual({
      name: "Rollout",
      package: "hello-tool",
      intent: "required",
      target: { kind: "group", id: "g1" },
      window_policy: "respect",
    });
  });
  it("sends a version, a schedule in the browser's zone, network limits and leave-installed", () => {
    const req = buildDeploymentRequest({
      ...base,
      version: "1.2.0",
      description: " pilot ",
      availableFrom: "2026-03-01T08:00",
      deadline: "2026-03-08T18:30",
      windowPolicy: "ignore",
      maxKbPerSec: 512,
      skipMetered: true,
      leaveInstalled: true,
      targetKind: "device",
      targetId: "d1",
    });
    expect(req).toEqual({
      name: "Rollout",
      description: "pilot",
      package: "hello-tool",
      version: "1.2.0",
      intent: "required",
      target: { kind: "device", id: "d1" },
      window_policy: "ignore",
      available_from_ms: new Date("2026-03-01T08:00").getTime(),
      deadline_ms: new Date("2026-03-08T18:30").getTime(),
      network: { max_bytes_per_sec: 524288, skip_metered: true },
      leave_installed: true,
    });
  });
  it("never asks an uninstall to leave things installed", () => {
    expect(buildDeploymentRequest({ ...base, intent: "uninstall", leaveInstalled: true }).leave_installed).toBeUndefined();
  });
  it("names what is missing or wrong", () => {
    expect(deploymentProblems(EMPTY_DEPLOYMENT)).toEqual(["Give the deployment a name.", "Choose a package.", "Choose a group."]);
    expect(deploymentProblems({ ...base, availableFrom: "2026-03-02T00:00", deadline: "2026-03-01T00:00" })).toEqual([
      "The deadline is before the start.",
    ]);
  });
  it("computes the success rate over finished devices", () => {
    const zero = { available: 0, downloading: 0, failed: 0, installed: 0, installing: 0, not_applicable: 0, planned: 0, reboot_pending: 0, removed: 0, total: 0, uninstalling: 0, waiting: 0 };
    expect(successRate(zero)).toBeNull();
    expect(successRate({ ...zero, installed: 3, failed: 1, waiting: 6, total: 10 })).toBe(0.75);
  });
});

describe("buildJobSubmission", () => {
  const targets = { devices: ["d1"], groups: ["g1"] };
  it("a command splits into argv and keeps quoted arguments whole", () => {
    expect(buildJobSubmission({ ...EMPTY_JOB_FORM, ...targets, command: `echo "hello world" x`, timeoutSecs: 30 })).toEqual({
      kind: "job",
      body: { spec: { action: { type: "command", argv: ["echo", "hello world", "x"] }, timeout_secs: 30 }, targets },
    });
  });
  it("an ad-hoc script and a reboot", () => {
    expect(buildJobSubmission({ ...EMPTY_JOB_FORM, devices: ["d1"], action: "script", interpreter: "bash", body: "uptime", name: " up " })).toEqual({
      kind: "job",
      body: { name: "up", spec: { action: { type: "script", interpreter: "bash", body: "uptime" } }, targets: { devices: ["d1"] } },
    });
    expect(buildJobSubmission({ ...EMPTY_JOB_FORM, groups: ["g1"], action: "reboot" }).body).toEqual({
      spec: { action: { type: "reboot" } },
      targets: { groups: ["g1"] },
    });
  });
  const script: ScriptInfo = {
    id: "s1",
    name: "greet",
    body: "echo hi",
    interpreter: "sh",
    description: "",
    latest_version: 2,
    created_at_ms: 0,
    updated_at_ms: 0,
    updated_by: "admin",
    parameters: [
      { name: "who", type: "string", required: true },
      { name: "times", type: "number" },
      { name: "loud", type: "boolean" },
      { name: "note", type: "string" },
    ],
  };
  it("a library script sends typed arguments and leaves blank ones out", () => {
    const form = { ...EMPTY_JOB_FORM, ...targets, action: "library" as const, scriptId: "s1", args: { who: " ops ", times: "3", loud: "true", note: "  " } };
    expect(buildJobSubmission(form, script)).toEqual({
      kind: "library",
      scriptId: "s1",
      body: { targets, arguments: { who: "ops", times: 3, loud: true } },
    });
  });
  it("names what is missing", () => {
    expect(jobFormProblems({ ...EMPTY_JOB_FORM, action: "library", scriptId: "s1" }, script)).toEqual([
      "Choose at least one device or group.",
      "Parameter who is required.",
    ]);
    expect(jobFormProblems({ ...EMPTY_JOB_FORM, devices: ["d"], command: "   " })).toEqual(["Enter a command."]);
  });
});

describe("keysFor", () => {
  it.each<[string, string | null, unknown[][]]>([
    ["group.member_added", "g1", [["devices", "list"], ["devices", "detail", "d1"], ["groups"]]],
    ["group.member_removed", "g1", [["devices", "list"], ["devices", "detail", "d1"], ["groups"]]],
    ["software.status", "p1", [["deployments"], ["devices", "software", "d1"], ["devices", "timeline", "d1"]]],
    ["something.new", null, []],
  ])("%s", (kind, object, want) => {
    expect(keysFor({ kind, subject: "d1", object })).toEqual(want);
  });
});

describe("buildGroupTree", () => {
  const g = (id: string, name: string, parent_id: string | null = null): GroupInfo => ({
    id,
    name,
    parent_id,
    description: "",
    kind: "static",
    direct_members: 0,
    members: 0,
    created_at_ms: 0,
    updated_at_ms: 0,
  });
  const groups = [g("de", "Germany", "eu"), g("eu", "Europe"), g("ber", "Berlin", "de"), g("fr", "France", "eu"), g("lab", "Lab"), g("orph", "Orphan", "gone")];
  it("nests children under parents by name, orphans at the top", () => {
    expect(flattenTree(buildGroupTree(groups)).map((n) => `${"  ".repeat(n.depth)}${n.group.name}`)).toEqual([
      "Europe",
      "  France",
      "  Germany",
      "    Berlin",
      "Lab",
      "Orphan",
    ]);
  });
  it("hides the children of collapsed groups", () => {
    expect(flattenTree(buildGroupTree(groups), new Set(["eu"])).map((n) => n.group.name)).toEqual(["Europe", "Lab", "Orphan"]);
  });
});
