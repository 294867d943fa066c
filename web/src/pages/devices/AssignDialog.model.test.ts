// Bulk assignment: the request sent per target, every target asked exactly once with a bounded
// number in flight, and a summary that keeps the server's refusals apart from failures.
import { describe, expect, it } from "vitest";
import { ApiError } from "../../api/client";
import type { AssignmentInfo, CreateAssignmentRequest } from "../../services/deployments";
import {
  assignAll,
  assignProblems,
  type AssignTarget,
  buildAssignmentRequest,
  EMPTY_ASSIGN_FORM,
  retryTargets,
  summarizeAssignments,
  summaryLine,
} from "./AssignDialog.model";

const dev = (id: string): AssignTarget => ({ kind: "device", id, label: `host-${id}` });
const form = { ...EMPTY_ASSIGN_FORM, package: "nginx" };

describe("buildAssignmentRequest", () => {
  it.each<[string, Partial<typeof form>, AssignTarget, CreateAssignmentRequest]>([
    ["latest, required, to a device", {}, dev("d1"), { package: "nginx", target: { kind: "device", id: "d1" }, intent: "required" }],
    [
      "a pinned version to a group, leaving it installed",
      { version: "1.24.0", leaveInstalled: true },
      { kind: "group", id: "g1", label: "web" },
      { package: "nginx", version: "1.24.0", target: { kind: "group", id: "g1" }, intent: "required", leave_installed: true },
    ],
    [
      "an uninstall never asks to leave things installed",
      { intent: "uninstall", leaveInstalled: true },
      dev("d2"),
      { package: "nginx", target: { kind: "device", id: "d2" }, intent: "uninstall" },
    ],
    ["available", { intent: "available" }, dev("d3"), { package: "nginx", target: { kind: "device", id: "d3" }, intent: "available" }],
  ])("%s", (_, patch, target, want) => {
    expect(buildAssignmentRequest({ ...form, ...patch }, target)).toEqual(want);
  });

  it("names what is missing", () => {
    expect(assignProblems(EMPTY_ASSIGN_FORM, [])).toEqual(["Choose a package.", "Nothing is selected."]);
    expect(assignProblems(form, [dev("d1")])).toEqual([]);
  });
});

describe("assignAll", () => {
  const info = (req: CreateAssignmentRequest) => ({ id: `a-${req.target.id}` }) as AssignmentInfo;

  it("asks once per target, a few at a time, and keeps the order of the targets", async () => {
    const targets = Array.from({ length: 10 }, (_, i) => dev(`d${i}`));
    const asked: string[] = [];
    let inFlight = 0;
    let most = 0;
    const progress: number[] = [];
    const outcomes = await assignAll(
      form,
      targets,
      async (req) => {
        asked.push(req.target.id);
        inFlight += 1;
        most = Math.max(most, inFlight);
        // Later targets answer sooner, so completion order differs from target order.
        await new Promise((r) => setTimeout(r, 10 - Number(req.target.id.slice(1))));
        inFlight -= 1;
        return info(req);
      },
      (done, total) => progress.push(done * 100 + total),
      3,
    );
    expect([...asked].sort()).toEqual(targets.map((t) => t.id).sort());
    expect(most).toBe(3);
    expect(progress).toEqual(Array.from({ length: 10 }, (_, i) => (i + 1) * 100 + 10));
    expect(outcomes.map((o) => o.target.id)).toEqual(targets.map((t) => t.id));
    expect(outcomes.every((o) => o.ok)).toBe(true);
  });

  it("separates the server's refusals from failures and goes on after either", async () => {
    const outcomes = await assignAll(form, [dev("ok"), dev("dup"), dev("down"), dev("ok2")], async (req) => {
      if (req.target.id === "dup") throw new ApiError(409, "conflict", "nginx is already assigned to host-dup");
      if (req.target.id === "down") throw new ApiError(0, "network", "the server cannot be reached");
      return info(req);
    });
    const s = summarizeAssignments(outcomes);
    expect(s).toEqual({
      created: 2,
      refused: [{ label: "host-dup", reason: "nginx is already assigned to host-dup" }],
      failed: [{ label: "host-down", reason: "the server cannot be reached" }],
    });
    expect(summaryLine(s)).toBe("2 assignments created, 1 refused, 1 failed");
    expect(retryTargets(outcomes).map((t) => t.id)).toEqual(["down"]);
  });

  it("says when everything was created", () => {
    expect(summaryLine({ created: 1, refused: [], failed: [] })).toBe("1 assignment created");
  });
});
