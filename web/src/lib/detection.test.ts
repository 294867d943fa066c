// Detection rules through the builder's tree: every rule type survives the round trip, the
// checks say what the server says at the same JSON pointer, and problems land on their node.
import { describe, expect, it } from "vitest";
import {
  type Detection,
  detectionProblems,
  emptyCondition,
  emptyGroup,
  isAbsolutePath,
  parseDetection,
  placeProblems,
  toDetection,
} from "./detection";

const GUID = "{12345678-ABCD-ABCD-ABCD-1234567890AB}";

describe("round trip", () => {
  const rules: [string, Detection][] = [
    ["package with version", { type: "package", manager: "dpkg", name: "nginx", version: { op: "gte", version: "1.22" } }],
    ["package without version", { type: "package", manager: "winget", name: "Mozilla.Firefox" }],
    ["msi", { type: "msi_product", product_code: GUID, version: { op: "eq", version: "1.2.3" } }],
    ["file exists", { type: "file_exists", path: "/opt/app/bin/app" }],
    ["file version", { type: "file_version", path: String.raw`C:\App\app.exe`, check: { op: "lt", version: "2.0" } }],
    ["file sha", { type: "file_sha256", path: "/usr/bin/x", sha256: "ab".repeat(32) }],
    ["service", { type: "service_running", name: "sshd" }],
    [
      "registry value version",
      { type: "registry", hive: "hklm", key: String.raw`SOFTWARE\App`, value: "Version", check: { check: "version", op: "gte", version: "3" }, wow64_32: true },
    ],
    ["registry key exists", { type: "registry", hive: "hkcu", key: String.raw`SOFTWARE\App`, check: { check: "exists" }, wow64_32: false }],
    ["registry default value equals", { type: "registry", hive: "hklm", key: "K", value: "", check: { check: "equals", data: " x " }, wow64_32: false }],
    ["script", { type: "script", interpreter: "powershell", body: "Write-Output ok", timeout_secs: 30 }],
    [
      "nested",
      {
        type: "any",
        rules: [
          { type: "all", rules: [{ type: "file_exists", path: "/a" }, { type: "service_exists", name: "a" }] },
          { type: "package", manager: "rpm", name: "b" },
        ],
      },
    ],
  ];
  it.each(rules)("%s", (_, rule) => {
    expect(toDetection(parseDetection(rule))).toEqual(rule);
  });

  it("an ALL of one condition saves as the condition itself", () => {
    const g = emptyGroup("all", [{ ...emptyCondition("file_exists"), path: "/x" }]);
    expect(toDetection(g)).toEqual({ type: "file_exists", path: "/x" });
    expect(toDetection({ ...g, kind: "any" })).toEqual({ type: "any", rules: [{ type: "file_exists", path: "/x" }] });
  });
});

describe("checks mirror the server", () => {
  const cases: [string, Detection, [string, RegExp][]][] = [
    ["valid", { type: "package", manager: "dpkg", name: "x" }, []],
    ["empty group", { type: "any", rules: [] }, [["/rules", /at least one rule/]]],
    ["relative path", { type: "file_exists", path: "opt/x" }, [["/path", /must be absolute/]]],
    ["bad guid", { type: "msi_product", product_code: "1234" }, [["/product_code", /GUID in braces/]]],
    ["empty version", { type: "package", manager: "rpm", name: "x", version: { op: "gte", version: " " } }, [["/version/version", /cannot be empty/]]],
    ["package with space", { type: "package", manager: "rpm", name: "a b" }, [["/name", /whitespace/]]],
    ["service with slash", { type: "service_exists", name: "../x" }, [["/name", /cannot contain/]]],
    ["uppercase sha", { type: "file_sha256", path: "/x", sha256: "AB".repeat(32) }, [["/sha256", /lowercase/]]],
    [
      "registry equals without a value name",
      { type: "registry", hive: "hklm", key: "\\SOFTWARE", check: { check: "equals", data: "1" } },
      [
        ["/key", /without a leading/],
        ["/value", /needs a value name/],
      ],
    ],
    [
      "script",
      { type: "script", interpreter: "sh", body: "  ", timeout_secs: 601 },
      [
        ["/body", /empty/],
        ["/timeout_secs", /between 1 and 600/],
      ],
    ],
    [
      "nested positions",
      { type: "all", rules: [{ type: "file_exists", path: "/ok" }, { type: "any", rules: [{ type: "file_exists", path: "x" }] }] },
      [["/rules/1/rules/0/path", /absolute/]],
    ],
  ];
  it.each(cases)("%s", (_, rule, want) => {
    const got = detectionProblems(rule);
    expect(got.map((p) => p.path)).toEqual(want.map(([p]) => p));
    got.forEach((p, i) => expect(p.message).toMatch(want[i]![1]));
  });

  it("limits depth and size", () => {
    let deep: Detection = { type: "file_exists", path: "/x" };
    for (let i = 0; i < 8; i++) deep = { type: "all", rules: [deep] };
    expect(detectionProblems(deep).map((p) => p.message).join()).toMatch(/nested too deeply/);
    const wide: Detection = { type: "any", rules: Array.from({ length: 64 }, () => ({ type: "file_exists", path: "/x" }) as Detection) };
    expect(detectionProblems(wide)[0]).toEqual({ path: "", message: expect.stringMatching(/65 nodes/) });
  });

  it.each([
    ["/opt", true],
    [String.raw`C:\x`, true],
    ["C:x", false],
    [String.raw`%ProgramFiles%\App`, true],
    ["%ProgramFiles%App", false],
    [String.raw`\\srv\share\x`, true],
    [String.raw`\\srv`, false],
    ["relative", false],
  ])("absolute path %s: %s", (p, want) => expect(isAbsolutePath(p)).toBe(want));
});

it("places problems on the node and field they name, through the unwrapped root", () => {
  const single = parseDetection({ type: "file_exists", path: "x" });
  const c = single.children[0]!;
  expect(placeProblems(single, detectionProblems(toDetection(single))).byNode.get(c.id)).toEqual({ path: expect.stringMatching(/absolute/) });

  const tree = parseDetection({
    type: "any",
    rules: [{ type: "package", manager: "dpkg", name: "" }, { type: "all", rules: [] }],
  });
  const placed = placeProblems(tree, [...detectionProblems(toDetection(tree)), { path: "/rules/9/x", message: "elsewhere" }]);
  const [pkg, group] = tree.children;
  expect(placed.byNode.get(pkg!.id)).toEqual({ name: "a package name cannot be empty" });
  expect(placed.byNode.get(group!.id)).toEqual({ group: "a group needs at least one rule" });
  expect(placed.general).toEqual(["/rules/9/x: elsewhere"]);
});
