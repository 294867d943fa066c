// Software in words: detection rules as readable lines, installer exit codes explained, and
// the version form pre-filled from an upload's analysis. Pure, so each rule is tested once.
import type { Schemas } from "../api/client";

export type Detection = Schemas["Detection"];
export type VersionCheck = Schemas["VersionCheck"];
export type CreateVersionRequest = Schemas["CreateVersionRequest"];
export type UploadAnalysis = Schemas["UploadAnalysis"];

const OPS: Record<string, string> = { eq: "=", ne: "≠", lt: "<", lte: "≤", gt: ">", gte: "≥" };

function check(c: VersionCheck | null | undefined): string {
  return c ? ` with version ${OPS[c.op] ?? c.op} ${c.version}` : "";
}

/** One line per rule, indented by nesting: what an operator reads in the package detail. */
export interface DetectionLine {
  depth: number;
  text: string;
}

export function describeDetection(d: Detection, depth = 0): DetectionLine[] {
  switch (d.type) {
    case "all":
    case "any": {
      if (d.rules.length === 0) {
        return [{ depth, text: d.type === "all" ? "Always installed (no condition)" : "Never installed (no condition)" }];
      }
      const head = { depth, text: d.type === "all" ? "All of these hold:" : "Any of these holds:" };
      return [head, ...d.rules.flatMap((r) => describeDetection(r, depth + 1))];
    }
    case "package":
      return [{ depth, text: `${d.manager} package “${d.name}” is installed${check(d.version)}` }];
    case "msi_product":
      return [{ depth, text: `MSI product ${d.product_code} is installed${check(d.version)}` }];
    case "file_exists":
      return [{ depth, text: `File ${d.path} exists` }];
    case "file_version":
      return [{ depth, text: `File ${d.path} has version ${OPS[d.check.op] ?? d.check.op} ${d.check.version}` }];
    case "file_sha256":
      return [{ depth, text: `File ${d.path} has SHA-256 ${d.sha256}` }];
    case "service_exists":
      return [{ depth, text: `Service “${d.name}” exists` }];
    case "service_running":
      return [{ depth, text: `Service “${d.name}” is running` }];
    case "registry": {
      const where = `${d.hive.toUpperCase()}\\${d.key}${d.value ? ` → ${d.value}` : ""}${d.wow64_32 ? " (32-bit view)" : ""}`;
      const c = d.check;
      const what =
        c.check === "exists"
          ? "exists"
          : c.check === "equals"
            ? `equals “${c.data}”`
            : `has version ${OPS[c.op] ?? c.op} ${c.version}`;
      return [{ depth, text: `Registry ${where} ${what}` }];
    }
    case "script":
      return [{ depth, text: `A ${d.interpreter} script exits 0 (timeout ${d.timeout_secs ?? 60} s)` }];
  }
}

export interface ExitCodeMeaning {
  meaning: string;
  /** What to do about it, when there is something obvious. */
  hint?: string;
}

// Codes whose meaning does not depend on the installer (shells, timeouts, signals).
const GENERIC: Record<number, ExitCodeMeaning> = {
  0: { meaning: "Success." },
  124: { meaning: "Timed out: the command ran longer than its time limit and was stopped.", hint: "Raise the version's timeout or look for a prompt waiting for input." },
  126: { meaning: "Found but not executable (permission denied or not a program).", hint: "Check the file's execute bit and the interpreter line." },
  127: { meaning: "Command not found.", hint: "A program the install command calls is missing from the device or from PATH." },
  137: { meaning: "Killed (signal 9), usually by the out-of-memory killer or a forced stop." },
  143: { meaning: "Terminated (signal 15)." },
};

const WINDOWS: Record<number, ExitCodeMeaning> = {
  1603: { meaning: "Fatal error during installation (MSI).", hint: "Read the installer log; often a custom action, missing prerequisite or permissions." },
  1618: { meaning: "Another installation is in progress (MSI).", hint: "Retry later; the Windows Installer service allows one install at a time." },
  1619: { meaning: "The installation package could not be opened (MSI)." },
  1638: { meaning: "Another version of this product is already installed (MSI)." },
  1641: { meaning: "Success; the installer started a reboot." },
  3010: { meaning: "Success; a reboot is required to complete the installation." },
  1602: { meaning: "The user cancelled the installation." },
};

const DPKG: Record<number, ExitCodeMeaning> = {
  1: { meaning: "dpkg/apt reported an error (a dependency problem, a failing maintainer script, or a conflicting file).", hint: "The log shows dpkg's message; missing dependencies are the most common cause." },
  2: { meaning: "dpkg could not run: a fatal or unrecoverable error (bad arguments, a locked or broken database).", hint: "Another package manager may hold the lock; `dpkg --configure -a` repairs an interrupted run." },
  100: { meaning: "apt failed (package not found or a download error)." },
};

/** What an installer's exit code means; `installer` is the version's installer type, if known. */
export function explainExitCode(code: number | null | undefined, installer?: string | null): ExitCodeMeaning {
  if (code === null || code === undefined) {
    return { meaning: "No exit code: the install did not run to completion (download, detection or requirement failure)." };
  }
  const windows = installer === "msi" || installer === "exe";
  const dpkg = installer === "deb" || installer === "package_manager" || installer === "rpm" || installer === "pacman";
  if (GENERIC[code]) return GENERIC[code];
  if (WINDOWS[code] && (windows || !dpkg)) return WINDOWS[code];
  if (DPKG[code] && (dpkg || !windows)) {
    if (installer === "rpm" && code === 1) return { meaning: "rpm reported an error (dependency, conflict or scriptlet failure)." };
    return DPKG[code];
  }
  if (code > 128 && code < 160) return { meaning: `Stopped by signal ${code - 128}.` };
  return { meaning: `Exit code ${code}: no common meaning; read the log.` };
}

/** The version form's fields, as text an operator edits. */
export interface VersionForm {
  package: string;
  displayName: string;
  publisher: string;
  version: string;
  installerType: string;
  installCommand: string;
  uninstallCommand: string;
  successExitCodes: string;
  timeoutSecs: number;
}

function str(meta: unknown, key: string): string {
  if (meta && typeof meta === "object" && key in meta) {
    const v = (meta as Record<string, unknown>)[key];
    return typeof v === "string" ? v : "";
  }
  return "";
}

/** The form as the server's parser suggested it; empty where it had nothing to say. */
export function prefillFromUpload(a: UploadAnalysis): VersionForm {
  const s = a.suggested;
  const meta = a.metadata;
  return {
    package: a.package ?? "",
    displayName: str(meta, "product_name") || str(meta, "name") || a.package || "",
    publisher: str(meta, "vendor") || str(meta, "manufacturer") || str(meta, "company") || str(meta, "maintainer"),
    version: s?.version ?? str(meta, "version"),
    installerType: s?.spec.installer_type ?? "",
    installCommand: joinCommand(s?.spec.install_command ?? []),
    uninstallCommand: joinCommand(s?.spec.uninstall_command ?? []),
    successExitCodes: (s?.spec.success_exit_codes ?? []).join(", "),
    timeoutSecs: s?.spec.timeout_secs ?? 3600,
  };
}

/** argv as one editable line; arguments with spaces or quotes are quoted so they split back whole. */
export function joinCommand(argv: readonly string[]): string {
  return argv
    .map((a) => (a === "" || /[\s"'\\]/.test(a) ? `'${a.replace(/'/g, `'"'"'`)}'` : a))
    .join(" ");
}

/** Splits a command line into argv: whitespace separates, quotes group, backslash escapes. */
export function splitCommand(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote: '"' | "'" | null = null;
  let any = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      any = true;
    } else if (c === "\\" && i + 1 < line.length) {
      cur += line[++i];
      any = true;
    } else if (/\s/.test(c)) {
      if (cur !== "" || any) out.push(cur);
      cur = "";
      any = false;
    } else {
      cur += c;
    }
  }
  if (cur !== "" || any) out.push(cur);
  return out;
}

/** "0, 3010" → [0, 3010]; nonsense entries are dropped. */
export function parseCodes(text: string): number[] {
  return text
    .split(/[\s,]+/)
    .filter((p) => p !== "")
    .map(Number)
    .filter((n) => Number.isInteger(n));
}

/** The version request from the reviewed form: the suggestion with the operator's edits. */
export function versionRequest(a: UploadAnalysis, f: VersionForm): CreateVersionRequest {
  const base = a.suggested;
  if (!base) throw new Error("the upload has no suggested version");
  const spec = { ...base.spec, timeout_secs: f.timeoutSecs };
  const install = splitCommand(f.installCommand);
  const uninstall = splitCommand(f.uninstallCommand);
  // Empty means "the installer type's default"; the server fills it in.
  if (install.length > 0) spec.install_command = install;
  else delete spec.install_command;
  if (uninstall.length > 0) spec.uninstall_command = uninstall;
  else delete spec.uninstall_command;
  const codes = parseCodes(f.successExitCodes);
  if (codes.length > 0) spec.success_exit_codes = codes;
  else delete spec.success_exit_codes;
  return { ...base, version: f.version.trim(), spec };
}
