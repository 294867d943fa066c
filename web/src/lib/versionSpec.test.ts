// The version form's request building: defaults left to the server, package-manager commands
// re-derived when the package changes, exit-code lists read strictly, template checks.
import { describe, expect, it } from "vitest";
import { argProblem, formToSpec, parseCodeList, specProblems, specToForm, type VersionSpec } from "./versionSpec";

const apt: VersionSpec = {
  installer_type: "package_manager",
  manager_package: { manager: "apt", name: "nginx", version: "1.22*" },
  install_command: ["apt-get", "install", "--yes", "--allow-downgrades", "nginx=1.22*"],
  uninstall_command: ["apt-get", "remove", "--yes", "nginx"],
  success_exit_codes: [0],
  soft_reboot_exit_codes: [],
  hard_reboot_exit_codes: [],
  timeout_secs: 3600,
  requirements: {},
  detection: { type: "package", manager: "dpkg", name: "nginx" },
};

describe("formToSpec", () => {
  it("sends an unchanged stored spec back unchanged", () => {
    expect(formToSpec(specToForm(apt), apt)).toEqual(apt);
  });

  it("drops the old package's default commands when the manager package changes", () => {
    const f = { ...specToForm(apt), managerVersion: "1.24*" };
    const spec = formToSpec(f, apt);
    expect(spec.manager_package).toEqual({ manager: "apt", name: "nginx", version: "1.24*" });
    expect(spec.install_command).toBeUndefined();
    expect(spec.uninstall_command).toBeUndefined();
  });

  it("keeps commands the operator wrote even when the package changes", () => {
    const f = { ...specToForm(apt), managerName: "nginx-full", installCommand: ["apt-get", "install", "-y", "nginx-full"] };
    const spec = formToSpec(f, apt);
    expect(spec.install_command).toEqual(["apt-get", "install", "-y", "nginx-full"]);
    expect(spec.uninstall_command).toBeUndefined();
  });

  it("leaves empty commands and success codes to the server, and sends empty reboot lists", () => {
    const f = { ...specToForm(apt), installCommand: ["", ""], uninstallCommand: ["dpkg", "--purge", "nginx", ""], successCodes: " ", softRebootCodes: "" };
    const spec = formToSpec(f, apt);
    expect(spec.install_command).toBeUndefined();
    expect(spec.uninstall_command).toEqual(["dpkg", "--purge", "nginx"]);
    expect(spec.success_exit_codes).toBeUndefined();
    expect(spec.soft_reboot_exit_codes).toEqual([]);
  });
});

it.each([
  ["0, 3010", [0, 3010], undefined],
  ["0 1 -1", [0, 1, -1], undefined],
  ["", [], undefined],
  ["0, 1.5", [0], "1.5"],
  ["0, x", [0], "x"],
  ["4294967296", [], "4294967296"],
])("parseCodeList(%j)", (text, codes, bad) => {
  expect(parseCodeList(text)).toEqual(bad === undefined ? { codes } : { codes, bad });
});

it.each([
  ["{file}", null],
  ["--log={log}", null],
  ["{{literal}}", null],
  ["{nope}", /unknown placeholder \{nope\}/],
  ["{file", /unclosed placeholder/],
  ["a}b", /a lone \}/],
])("argProblem(%j)", (arg, want) => {
  const got = argProblem(arg);
  if (want === null) expect(got).toBeNull();
  else expect(got).toMatch(want);
});

it("names each problem at the server's pointer", () => {
  const f = {
    ...specToForm({ ...apt, installer_type: "exe", manager_package: undefined, install_command: [], package_id: undefined }),
    hardRebootCodes: "0",
    minOsVersion: "ten point one",
    minFreeDiskMb: "0",
    managerName: "",
  };
  expect(specProblems(f).map((p) => p.path)).toEqual([
    "/install_command",
    "/hard_reboot_exit_codes",
    "/requirements/min_os_version",
    "/requirements/min_free_disk_mb",
  ]);
});
