// Detection rules as an operator reads them, exit codes explained, and the upload form:
// pre-filled from the parser's analysis, and the reviewed form back to a version request.
import { describe, expect, it } from "vitest";
import {
  type Detection,
  describeDetection,
  explainExitCode,
  joinCommand,
  prefillFromUpload,
  splitCommand,
  type UploadAnalysis,
  versionRequest,
} from "./software";

describe("describeDetection", () => {
  it.each<[string, Detection, string[]]>([
    [
      "a dpkg package with a version",
      { type: "package", manager: "dpkg", name: "nginx", version: { op: "gte", version: "1.22" } },
      ["dpkg package “nginx” is installed with version ≥ 1.22"],
    ],
    ["a file", { type: "file_exists", path: "/opt/app/bin/app" }, ["File /opt/app/bin/app exists"]],
    [
      "an MSI product",
      { type: "msi_product", product_code: "{1234}", version: null },
      ["MSI product {1234} is installed"],
    ],
    [
      "a registry version",
      {
        type: "registry",
        hive: "hklm",
        key: "SOFTWARE\\App",
        value: "Version",
        check: { check: "version", op: "lt", version: "2.0" },
      },
      ["Registry HKLM\\SOFTWARE\\App → Version has version < 2.0"],
    ],
    ["an empty all", { type: "all", rules: [] }, ["Always installed (no condition)"]],
  ])("%s", (_, d, want) => {
    expect(describeDetection(d).map((l) => l.text)).toEqual(want);
  });

  it("indents nested rules under their all/any", () => {
    const d: Detection = {
      type: "any",
      rules: [
        { type: "service_running", name: "app" },
        { type: "all", rules: [{ type: "file_exists", path: "/a" }, { type: "file_version", path: "/a", check: { op: "eq", version: "3" } }] },
      ],
    };
    expect(describeDetection(d)).toEqual([
      { depth: 0, text: "Any of these holds:" },
      { depth: 1, text: "Service “app” is running" },
      { depth: 1, text: "All of these hold:" },
      { depth: 2, text: "File /a exists" },
      { depth: 2, text: "File /a has version = 3" },
    ]);
  });
});

describe("explainExitCode", () => {
  it.each<[number | null, string | undefined, RegExp]>([
    [1603, "msi", /Fatal error during installation/],
    [1618, "msi", /Another installation is in progress/],
    [3010, "msi", /reboot is required/],
    [1641, "exe", /started a reboot/],
    [1, "deb", /dpkg\/apt reported an error/],
    [2, "deb", /dpkg could not run/],
    [1, "rpm", /rpm reported an error/],
    [127, "deb", /Command not found/],
    [126, undefined, /not executable/],
    [124, "msi", /Timed out/],
    [137, "deb", /Killed/],
    [130, "deb", /signal 2/],
    [null, "deb", /did not run to completion/],
    [4242, "deb", /no common meaning/],
  ])("%s (%s)", (code, installer, want) => {
    expect(explainExitCode(code, installer).meaning).toMatch(want);
  });
});

const debAnalysis: UploadAnalysis = {
  sha256: "ab".repeat(32),
  size: 1234,
  file_name: "hello-tool_1.2.0_all.deb",
  package: "hello-tool",
  metadata: { format: "deb", name: "hello-tool", version: "1.2.0", architecture: "all", maintainer: "Ops <ops@example.com>" },
  suggested: {
    version: "1.2.0",
    artifacts: [{ platform: "linux", arch: "any", sha256: "ab".repeat(32), file_name: "hello-tool_1.2.0_all.deb" }],
    spec: {
      installer_type: "deb",
      package_id: "hello-tool",
      timeout_secs: 3600,
      detection: { type: "package", manager: "dpkg", name: "hello-tool", version: { op: "gte", version: "1.2.0" } },
    },
  },
};

describe("the upload form", () => {
  it("is pre-filled from the parsed package", () => {
    expect(prefillFromUpload(debAnalysis)).toEqual({
      package: "hello-tool",
      displayName: "hello-tool",
      publisher: "Ops <ops@example.com>",
      version: "1.2.0",
      installerType: "deb",
      installCommand: "",
      uninstallCommand: "",
      successExitCodes: "",
      timeoutSecs: 3600,
    });
  });

  it("sends the suggestion unchanged when nothing was edited", () => {
    expect(versionRequest(debAnalysis, prefillFromUpload(debAnalysis))).toEqual(debAnalysis.suggested);
  });

  it("sends the operator's edits: version, commands, exit codes, timeout", () => {
    const form = {
      ...prefillFromUpload(debAnalysis),
      version: " 1.2.0-1 ",
      installCommand: `dpkg -i "{file}" --force-confold`,
      successExitCodes: "0, 3010 x",
      timeoutSecs: 600,
    };
    const req = versionRequest(debAnalysis, form);
    expect(req.version).toBe("1.2.0-1");
    expect(req.spec.install_command).toEqual(["dpkg", "-i", "{file}", "--force-confold"]);
    expect(req.spec.success_exit_codes).toEqual([0, 3010]);
    expect(req.spec.timeout_secs).toBe(600);
    expect(req.spec.uninstall_command).toBeUndefined();
    expect(req.artifacts).toEqual(debAnalysis.suggested!.artifacts);
  });

  it("keeps a script archive's commands whole through the text field", () => {
    const argv = ["sh", "{dir}/install me.sh", "it's", ""];
    expect(splitCommand(joinCommand(argv))).toEqual(argv);
    const a = { ...debAnalysis, suggested: { ...debAnalysis.suggested!, spec: { ...debAnalysis.suggested!.spec, installer_type: "script_archive" as const, install_command: argv } } };
    expect(versionRequest(a, prefillFromUpload(a)).spec.install_command).toEqual(argv);
  });
});
