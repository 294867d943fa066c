// A version's spec as the version editor edits it, and back to the body of
// `PUT /api/v1/packages/{package}/versions/{version}` (or a new version's POST). Checks mirror
// the server's `validate_version_spec` for every field the editor shows, with the server's
// JSON pointers, so a problem is marked on its field whether found here or by the server.
import type { Schemas } from "../api/client";
import { type Detection, detectionProblems, type GroupNode, parseDetection, type Problem, toDetection } from "./detection";

export type VersionSpec = Schemas["VersionSpec"];
export type InstallerType = Schemas["InstallerType"];
export type OsFamily = Schemas["OsFamily"];
export type PackageManagerKind = Schemas["PackageManagerKind"];

export const OS_FAMILIES: OsFamily[] = ["linux", "windows", "macos"];
export const PACKAGE_MANAGERS: PackageManagerKind[] = ["apt", "dnf", "zypper", "pacman", "winget", "choco"];
/** The placeholders a command template may use (`capstan_core::software::PLACEHOLDERS`). */
export const PLACEHOLDERS = ["file", "dir", "log", "package", "version", "product_code"] as const;

const LIMITS = { args: 64, argBytes: 4096, exitCodes: 32, versionBytes: 128, nameBytes: 128, timeoutMax: 24 * 3600 };

/** The editor's state: text where an operator types, lists where the API has lists. */
export interface SpecForm {
  installerType: InstallerType;
  /** Package-manager versions only. */
  managerKind: PackageManagerKind;
  managerName: string;
  managerVersion: string;
  packageId: string;
  productCode: string;
  /** argv, one entry per argument; empty means the installer type's default. */
  installCommand: string[];
  uninstallCommand: string[];
  successCodes: string;
  softRebootCodes: string;
  hardRebootCodes: string;
  timeout: string;
  osFamilies: OsFamily[];
  minOsVersion: string;
  minFreeDiskMb: string;
  detection: GroupNode;
}

export function specToForm(spec: VersionSpec): SpecForm {
  const r = spec.requirements ?? {};
  return {
    installerType: spec.installer_type,
    managerKind: spec.manager_package?.manager ?? "apt",
    managerName: spec.manager_package?.name ?? "",
    managerVersion: spec.manager_package?.version ?? "",
    packageId: spec.package_id ?? "",
    productCode: spec.product_code ?? "",
    installCommand: [...(spec.install_command ?? [])],
    uninstallCommand: [...(spec.uninstall_command ?? [])],
    successCodes: (spec.success_exit_codes ?? []).join(", "),
    softRebootCodes: (spec.soft_reboot_exit_codes ?? []).join(", "),
    hardRebootCodes: (spec.hard_reboot_exit_codes ?? []).join(", "),
    timeout: String(spec.timeout_secs ?? 3600),
    osFamilies: [...(r.os_families ?? [])],
    minOsVersion: r.min_os_version ?? "",
    minFreeDiskMb: r.min_free_disk_mb === null || r.min_free_disk_mb === undefined ? "" : String(r.min_free_disk_mb),
    detection: parseDetection(spec.detection),
  };
}

/** A new package-manager version's starting point. */
export function emptyManagerForm(): SpecForm {
  return specToForm({
    installer_type: "package_manager",
    manager_package: { manager: "apt", name: "" },
    detection: { type: "package", manager: "dpkg", name: "" },
  });
}

/** The detection the server gives a manager package by default (`manager_detection`). */
export function managerDetection(kind: PackageManagerKind, name: string, version: string): Detection {
  const manager = ({ apt: "dpkg", dnf: "rpm", zypper: "rpm", pacman: "pacman", winget: "winget", choco: "choco" } as const)[kind];
  const exact = (kind === "winget" || kind === "choco") && version.trim() !== "";
  return { type: "package", manager, name: name.trim(), ...(exact ? { version: { op: "eq", version: version.trim() } } : {}) };
}

/** "0, 3010" → codes, or the first entry that is not a 32-bit whole number. */
export function parseCodeList(text: string): { codes: number[]; bad?: string } {
  const codes: number[] = [];
  for (const part of text.split(/[\s,]+/).filter((p) => p !== "")) {
    const n = /^-?\d+$/.test(part) ? Number(part) : NaN;
    if (!Number.isInteger(n) || n < -2147483648 || n > 2147483647) return { codes, bad: part };
    codes.push(n);
  }
  return { codes };
}

function sameArgv(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * The spec to send: `base` (the stored spec, for what the editor does not show — hooks,
 * dependencies, supersedence) with the form's fields. Empty commands and success codes are
 * left out so the server applies the installer type's defaults; reboot codes are always sent
 * (an empty list means none). When a package-manager version names another package, commands
 * still equal to the old ones are dropped: they were the old package's defaults.
 */
export function formToSpec(form: SpecForm, base?: VersionSpec): VersionSpec {
  const spec: VersionSpec = { ...(base ?? {}), installer_type: form.installerType, detection: toDetection(form.detection) };
  // Arguments left empty at the end are boxes added and never filled, not "" arguments.
  const clean = (argv: string[]) => {
    const out = [...argv];
    while (out.length > 0 && out[out.length - 1] === "") out.pop();
    return out.every((a) => a.trim() === "") ? [] : out;
  };
  let install = clean(form.installCommand);
  let uninstall = clean(form.uninstallCommand);
  if (form.installerType === "package_manager") {
    const m: Schemas["ManagerPackage"] = { manager: form.managerKind, name: form.managerName.trim() };
    if (form.managerVersion.trim()) m.version = form.managerVersion.trim();
    const old = base?.manager_package;
    if (old && (old.manager !== m.manager || old.name !== m.name || (old.version ?? "") !== (m.version ?? ""))) {
      if (sameArgv(install, base?.install_command ?? [])) install = [];
      if (sameArgv(uninstall, base?.uninstall_command ?? [])) uninstall = [];
    }
    spec.manager_package = m;
  } else {
    delete spec.manager_package;
  }
  const optional = (key: "package_id" | "product_code", v: string) => {
    if (v.trim()) spec[key] = v.trim();
    else delete spec[key];
  };
  optional("package_id", form.packageId);
  optional("product_code", form.productCode);
  if (install.length) spec.install_command = install;
  else delete spec.install_command;
  if (uninstall.length) spec.uninstall_command = uninstall;
  else delete spec.uninstall_command;
  const success = parseCodeList(form.successCodes).codes;
  if (success.length) spec.success_exit_codes = success;
  else delete spec.success_exit_codes;
  spec.soft_reboot_exit_codes = parseCodeList(form.softRebootCodes).codes;
  spec.hard_reboot_exit_codes = parseCodeList(form.hardRebootCodes).codes;
  const t = Number(form.timeout.trim());
  spec.timeout_secs = Number.isInteger(t) ? t : 0;
  const req: Schemas["Requirements"] = {};
  if (form.osFamilies.length) req.os_families = OS_FAMILIES.filter((o) => form.osFamilies.includes(o));
  if (form.minOsVersion.trim()) req.min_os_version = form.minOsVersion.trim();
  if (form.minFreeDiskMb.trim()) {
    const mb = Number(form.minFreeDiskMb.trim());
    req.min_free_disk_mb = Number.isInteger(mb) && mb >= 0 ? mb : -1;
  }
  spec.requirements = req;
  return spec;
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

const bytes = (s: string) => new TextEncoder().encode(s).length;
const CONTROL_OR_SPACE = /[\s\u0000-\u001f\u007f-\u009f]/;

function isVersionText(s: string): boolean {
  return s !== "" && bytes(s) <= LIMITS.versionBytes && !s.startsWith("-") && !CONTROL_OR_SPACE.test(s);
}

function isManagerName(s: string): boolean {
  return s !== "" && bytes(s) <= LIMITS.nameBytes && !s.startsWith("-") && !CONTROL_OR_SPACE.test(s);
}

/** Why a template argument is refused (`parse_arg`), or null. */
export function argProblem(arg: string): string | null {
  for (let i = 0; i < arg.length; i++) {
    const c = arg[i];
    if ((c === "{" || c === "}") && arg[i + 1] === c) {
      i++;
    } else if (c === "{") {
      const end = arg.indexOf("}", i + 1);
      const name = end < 0 ? null : arg.slice(i + 1, end);
      if (name === null || name.length > 32) return `unclosed placeholder in ${JSON.stringify(arg)}`;
      if (!(PLACEHOLDERS as readonly string[]).includes(name)) {
        return `unknown placeholder {${name}} (known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(" ")})`;
      }
      i = end;
    } else if (c === "}") {
      return `a lone } in ${JSON.stringify(arg)} (write }} for a brace)`;
    }
  }
  return null;
}

function checkTemplate(path: string, t: readonly string[], out: Problem[]) {
  if (t.length > LIMITS.args) out.push({ path, message: `at most ${LIMITS.args} arguments` });
  t.forEach((a, i) => {
    if (bytes(a) > LIMITS.argBytes || a.includes("\0")) {
      out.push({ path: `${path}/${i}`, message: `an argument is at most ${LIMITS.argBytes} bytes without NUL` });
    } else {
      const p = argProblem(a);
      if (p) out.push({ path: `${path}/${i}`, message: p });
    }
  });
  if (t.length > 0 && t[0]!.trim() === "") out.push({ path: `${path}/0`, message: "the program name is empty" });
}

/**
 * Problems of the spec the form would send, with the server's pointers relative to the spec
 * (`/install_command/2`, `/detection/rules/0/path`), plus `/…_codes` entries that are not
 * numbers at all (which the server never sees, because they cannot be sent).
 */
export function specProblems(form: SpecForm, spec: VersionSpec = formToSpec(form)): Problem[] {
  const out: Problem[] = [];
  const t = spec.installer_type;
  if (t === "package_manager") {
    const m = spec.manager_package;
    if (!m || !isManagerName(m.name)) {
      out.push({ path: "/manager_package/name", message: "a package name without spaces or control characters, not starting with -" });
    }
    if (m?.version !== undefined && m.version !== null && !isVersionText(m.version)) {
      out.push({ path: "/manager_package/version", message: "a version without spaces or control characters, not starting with -" });
    }
    if (m?.manager === "pacman" && m.version) {
      out.push({
        path: "/manager_package/version",
        message: "pacman installs the repository's version; a pin is not possible (upload the package file instead)",
      });
    }
  }
  if (spec.package_id && !isManagerName(spec.package_id)) {
    out.push({ path: "/package_id", message: "a package name without spaces or control characters, not starting with -" });
  }
  if (spec.product_code && !/^\{[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\}$/.test(spec.product_code)) {
    out.push({ path: "/product_code", message: "an MSI product code looks like {12345678-ABCD-ABCD-ABCD-1234567890AB}" });
  }
  if ((t === "deb" || t === "rpm" || t === "pacman") && !spec.package_id) {
    out.push({ path: "/package_id", message: "the name the package database knows is needed to uninstall" });
  }
  checkTemplate("/install_command", spec.install_command ?? [], out);
  checkTemplate("/uninstall_command", spec.uninstall_command ?? [], out);
  if ((t === "exe" || t === "script_archive") && (spec.install_command ?? []).length === 0) {
    out.push({ path: "/install_command", message: `${t} installers have no default command; give one (e.g. ["{file}", "/S"])` });
  }
  const codeFields = [
    ["/success_exit_codes", form.successCodes],
    ["/soft_reboot_exit_codes", form.softRebootCodes],
    ["/hard_reboot_exit_codes", form.hardRebootCodes],
  ] as const;
  for (const [path, text] of codeFields) {
    const { codes, bad } = parseCodeList(text);
    if (bad !== undefined) out.push({ path, message: `“${bad}” is not a whole number` });
    else if (codes.length > LIMITS.exitCodes) out.push({ path, message: `at most ${LIMITS.exitCodes} exit codes` });
  }
  const success = spec.success_exit_codes?.length ? spec.success_exit_codes : t === "msi" ? [0, 1707] : [0];
  for (const [path, codes] of [
    ["/soft_reboot_exit_codes", spec.soft_reboot_exit_codes ?? []],
    ["/hard_reboot_exit_codes", spec.hard_reboot_exit_codes ?? []],
  ] as const) {
    if (codes.some((c) => success.includes(c)) && !out.some((p) => p.path === path)) {
      out.push({ path, message: "a code cannot mean both plain success and reboot" });
    }
  }
  const timeout = spec.timeout_secs ?? 3600;
  if (!(timeout >= 1 && timeout <= LIMITS.timeoutMax)) out.push({ path: "/timeout_secs", message: "between 1 second and 24 hours" });
  const req = spec.requirements ?? {};
  if (req.min_os_version && !isVersionText(req.min_os_version)) {
    out.push({ path: "/requirements/min_os_version", message: "a dotted version like 12 or 10.0.19045" });
  }
  if (req.min_free_disk_mb === 0) out.push({ path: "/requirements/min_free_disk_mb", message: "leave it out instead of 0" });
  else if (req.min_free_disk_mb === -1) out.push({ path: "/requirements/min_free_disk_mb", message: "a whole number of MiB" });
  out.push(...detectionProblems(spec.detection).map((p) => ({ ...p, path: `/detection${p.path}` })));
  return out;
}

/** Problems of a new version's label (`checked_version`). */
export function versionLabelProblem(v: string): string | null {
  return v === "" || bytes(v) > LIMITS.versionBytes || v.startsWith("-") || /[\s\u0000-\u001f\u007f-\u009f/]/.test(v)
    ? "1 to 128 bytes without spaces, slashes or control characters, not starting with -"
    : null;
}
