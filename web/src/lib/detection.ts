// Detection rules (crates/core/src/detection) as an editable tree for the visual builder, and
// back to the JSON the server stores. The checks mirror the server's `detection::validate`,
// with the same JSON pointers and messages, so the builder can mark a field before saving and
// the server's own problems (`/spec/detection/rules/1/path`) land on the same field after.
import type { Schemas } from "../api/client";

export type Detection = Schemas["Detection"];
export type VersionOp = Schemas["VersionOp"];
export type DetectionManager = Schemas["DetectionManager"];
export type RegistryHive = Schemas["RegistryHive"];
export type Interpreter = Schemas["Interpreter"];

/** Limits of `capstan_proto::software::limits` and the detection module. */
export const DETECTION_LIMITS = {
  nodes: 64,
  depth: 8,
  scriptBytes: 64 * 1024,
  pathBytes: 4096,
  textBytes: 4096,
  nameBytes: 128,
  versionBytes: 128,
  scriptTimeoutMax: 600,
} as const;

export type ConditionType = Exclude<Detection["type"], "all" | "any">;

export const CONDITION_TYPES: { value: ConditionType; label: string }[] = [
  { value: "package", label: "Package installed" },
  { value: "file_exists", label: "File exists" },
  { value: "file_version", label: "File version" },
  { value: "file_sha256", label: "File SHA-256" },
  { value: "service_exists", label: "Service exists" },
  { value: "service_running", label: "Service running" },
  { value: "msi_product", label: "MSI product (Windows)" },
  { value: "registry", label: "Registry (Windows)" },
  { value: "script", label: "Script" },
];

export const VERSION_OPS: { value: VersionOp; label: string }[] = [
  { value: "eq", label: "=" },
  { value: "ne", label: "≠" },
  { value: "gte", label: "≥" },
  { value: "gt", label: ">" },
  { value: "lte", label: "≤" },
  { value: "lt", label: "<" },
];

export const MANAGERS: DetectionManager[] = ["dpkg", "rpm", "pacman", "winget", "choco"];
export const HIVES: RegistryHive[] = ["hklm", "hkcu", "hkcr", "hku"];
export const INTERPRETERS: Interpreter[] = ["sh", "bash", "python3", "powershell", "cmd"];

/**
 * One condition as the builder edits it: every field of every condition type, as text, so
 * switching the type keeps what still applies (a path stays a path).
 */
export interface ConditionNode {
  id: string;
  kind: "condition";
  type: ConditionType;
  manager: DetectionManager;
  name: string;
  path: string;
  productCode: string;
  sha256: string;
  /** "" when the condition has no version comparison (optional for package and MSI). */
  op: VersionOp | "";
  version: string;
  hive: RegistryHive;
  key: string;
  /** Whether a registry value is named (absent: the key itself). "" is the default value. */
  useValue: boolean;
  valueName: string;
  registryCheck: "exists" | "equals" | "version";
  data: string;
  wow64: boolean;
  interpreter: Interpreter;
  body: string;
  timeout: string;
}

export interface GroupNode {
  id: string;
  kind: "all" | "any";
  children: DetectionNode[];
}

export type DetectionNode = ConditionNode | GroupNode;

let nextId = 0;
const newId = () => `d${++nextId}`;

export function emptyCondition(type: ConditionType = "package"): ConditionNode {
  return {
    id: newId(),
    kind: "condition",
    type,
    manager: "dpkg",
    name: "",
    path: "",
    productCode: "",
    sha256: "",
    op: type === "file_version" ? "gte" : "",
    version: "",
    hive: "hklm",
    key: "",
    useValue: false,
    valueName: "",
    registryCheck: "exists",
    data: "",
    wow64: false,
    interpreter: "sh",
    body: "",
    timeout: "60",
  };
}

export function emptyGroup(kind: "all" | "any" = "all", children: DetectionNode[] = []): GroupNode {
  return { id: newId(), kind, children };
}

/** A condition of another type with the fields that still apply kept. */
export function changeType(c: ConditionNode, type: ConditionType): ConditionNode {
  let op = c.op;
  // A file version always compares; the others start without a comparison unless one was set.
  if (type === "file_version" && op === "") op = "gte";
  return { ...c, type, op };
}

/** The builder's tree of a rule. The root is always a group: a single condition becomes the
 *  only child of an ALL group, which {@link toDetection} unwraps again. */
export function parseDetection(d: Detection): GroupNode {
  const node = toNode(d);
  return node.kind === "condition" ? emptyGroup("all", [node]) : node;
}

function toNode(d: Detection): DetectionNode {
  if (d.type === "all" || d.type === "any") return emptyGroup(d.type, d.rules.map(toNode));
  const c = emptyCondition(d.type);
  c.op = "";
  switch (d.type) {
    case "package":
      c.manager = d.manager;
      c.name = d.name;
      if (d.version) Object.assign(c, { op: d.version.op, version: d.version.version });
      break;
    case "msi_product":
      c.productCode = d.product_code;
      if (d.version) Object.assign(c, { op: d.version.op, version: d.version.version });
      break;
    case "file_exists":
      c.path = d.path;
      break;
    case "file_version":
      c.path = d.path;
      c.op = d.check.op;
      c.version = d.check.version;
      break;
    case "file_sha256":
      c.path = d.path;
      c.sha256 = d.sha256;
      break;
    case "service_exists":
    case "service_running":
      c.name = d.name;
      break;
    case "registry":
      c.hive = d.hive;
      c.key = d.key;
      c.useValue = d.value !== undefined && d.value !== null;
      c.valueName = d.value ?? "";
      c.wow64 = d.wow64_32 ?? false;
      c.registryCheck = d.check.check;
      if (d.check.check === "equals") c.data = d.check.data;
      if (d.check.check === "version") Object.assign(c, { op: d.check.op, version: d.check.version });
      break;
    case "script":
      c.interpreter = d.interpreter;
      c.body = d.body;
      c.timeout = String(d.timeout_secs ?? 60);
      break;
  }
  return c;
}

/** The API shape of the tree. A root ALL group of exactly one child is that child. */
export function toDetection(root: DetectionNode): Detection {
  if (root.kind === "all" && root.children.length === 1) return fromNode(root.children[0]!);
  return fromNode(root);
}

function versionCheck(c: ConditionNode): Schemas["VersionCheck"] {
  return { op: c.op === "" ? "eq" : c.op, version: c.version.trim() };
}

function fromNode(n: DetectionNode): Detection {
  if (n.kind !== "condition") return { type: n.kind, rules: n.children.map(fromNode) };
  switch (n.type) {
    case "package":
      return {
        type: "package",
        manager: n.manager,
        name: n.name.trim(),
        ...(n.op !== "" ? { version: versionCheck(n) } : {}),
      };
    case "msi_product":
      return { type: "msi_product", product_code: n.productCode.trim(), ...(n.op !== "" ? { version: versionCheck(n) } : {}) };
    case "file_exists":
      return { type: "file_exists", path: n.path.trim() };
    case "file_version":
      return { type: "file_version", path: n.path.trim(), check: versionCheck(n) };
    case "file_sha256":
      return { type: "file_sha256", path: n.path.trim(), sha256: n.sha256.trim() };
    case "service_exists":
    case "service_running":
      return { type: n.type, name: n.name.trim() };
    case "registry": {
      const check: Schemas["RegistryCheck"] =
        n.registryCheck === "exists"
          ? { check: "exists" }
          : n.registryCheck === "equals"
            ? // Compared as written: Windows keeps leading and trailing spaces in data.
              { check: "equals", data: n.data }
            : { check: "version", op: n.op === "" ? "eq" : n.op, version: n.version.trim() };
      return {
        type: "registry",
        hive: n.hive,
        key: n.key.trim(),
        ...(n.useValue ? { value: n.valueName } : {}),
        check,
        wow64_32: n.wow64,
      };
    }
    case "script": {
      const t = Number(n.timeout.trim());
      // A non-number is sent as 0 so the server (and the check below) refuse it by name.
      return { type: "script", interpreter: n.interpreter, body: n.body, timeout_secs: Number.isInteger(t) ? t : 0 };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Validation: the server's `detection::validate`, path for path
// ---------------------------------------------------------------------------------------------

export interface Problem {
  /** JSON pointer relative to the rule, as the server reports it. */
  path: string;
  message: string;
}

const bytes = (s: string) => new TextEncoder().encode(s).length;
// Rust's `char::is_control`: the C0 and C1 control characters.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export function detectionProblems(d: Detection): Problem[] {
  const out: Problem[] = [];
  const nodes = countNodes(d);
  if (nodes > DETECTION_LIMITS.nodes) {
    out.push({
      path: "",
      message: `the rule has ${nodes} nodes (groups and conditions); the limit is ${DETECTION_LIMITS.nodes}`,
    });
  }
  checkNode(d, "", 1, out);
  return out;
}

function countNodes(d: Detection): number {
  return d.type === "all" || d.type === "any" ? 1 + d.rules.reduce((n, r) => n + countNodes(r), 0) : 1;
}

/** `{GUID}` with braces, either letter case. */
export function isProductCode(s: string): boolean {
  return /^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$/.test(s);
}

/** An absolute path on Linux (`/…`) or Windows (`C:\…`, `%VAR%\…`, `\\server\share\…`). */
export function isAbsolutePath(p: string): boolean {
  if (p.startsWith("/")) return true;
  if (/^[A-Za-z]:[\\/]/.test(p)) return true;
  if (p.startsWith("\\\\")) {
    const [server, share] = p.slice(2).split("\\");
    return !!server && share !== undefined && share !== "";
  }
  const m = /^%([A-Za-z0-9_()]+)%(.*)$/s.exec(p);
  if (m) return m[2] === "" || m[2]!.startsWith("\\") || m[2]!.startsWith("/");
  return false;
}

function checkText(path: string, what: string, s: string, max: number, out: Problem[]): boolean {
  if (bytes(s) > max) {
    out.push({ path, message: `${what} is at most ${max} bytes` });
    return false;
  }
  if (CONTROL.test(s)) {
    out.push({ path, message: `${what} cannot contain control characters` });
    return false;
  }
  return true;
}

function checkVersion(path: string, v: string, out: Problem[]) {
  if (v.trim() === "") out.push({ path, message: "a version cannot be empty" });
  else checkText(path, "a version", v, DETECTION_LIMITS.versionBytes, out);
}

function checkPath(path: string, p: string, out: Problem[]) {
  if (bytes(p) > DETECTION_LIMITS.pathBytes) out.push({ path, message: `a path is at most ${DETECTION_LIMITS.pathBytes} bytes` });
  else if (CONTROL.test(p)) out.push({ path, message: "a path cannot contain control characters (or NUL)" });
  else if (!isAbsolutePath(p)) {
    out.push({
      path,
      message: String.raw`a path must be absolute: /opt/app, C:\Program Files\App, %ProgramFiles%\App or \\server\share\app`,
    });
  }
}

function checkNode(d: Detection, path: string, depth: number, out: Problem[]) {
  if (depth > DETECTION_LIMITS.depth) {
    out.push({ path, message: `groups are nested too deeply; the limit is ${DETECTION_LIMITS.depth} levels` });
    return;
  }
  switch (d.type) {
    case "all":
    case "any":
      if (d.rules.length === 0) out.push({ path: `${path}/rules`, message: "a group needs at least one rule" });
      d.rules.forEach((r, i) => checkNode(r, `${path}/rules/${i}`, depth + 1, out));
      return;
    case "msi_product":
      if (!isProductCode(d.product_code)) {
        out.push({
          path: `${path}/product_code`,
          message: "an MSI product code is a GUID in braces: {XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}",
        });
      }
      if (d.version) checkVersion(`${path}/version/version`, d.version.version, out);
      return;
    case "registry": {
      const key = d.key;
      if (key.trim() === "") out.push({ path: `${path}/key`, message: "a registry key cannot be empty" });
      else if (key.startsWith("\\")) {
        out.push({
          path: `${path}/key`,
          message: String.raw`a registry key is the path below the hive, without a leading \ (SOFTWARE\Vendor\App)`,
        });
      } else checkText(`${path}/key`, "a registry key", key, DETECTION_LIMITS.textBytes, out);
      const value = d.value ?? null;
      if (value !== null) checkText(`${path}/value`, "a registry value name", value, DETECTION_LIMITS.textBytes, out);
      const c = d.check;
      if (c.check === "equals") {
        if (bytes(c.data) > DETECTION_LIMITS.textBytes) {
          out.push({ path: `${path}/check/data`, message: `longer than ${DETECTION_LIMITS.textBytes} bytes` });
        } else if (c.data.includes("\0")) out.push({ path: `${path}/check/data`, message: "contains a NUL byte" });
      } else if (c.check === "version") checkVersion(`${path}/check/version`, c.version, out);
      if (value === null && c.check !== "exists") {
        out.push({ path: `${path}/value`, message: 'comparing data needs a value name ("" for the key\'s default value)' });
      }
      return;
    }
    case "file_exists":
      checkPath(`${path}/path`, d.path, out);
      return;
    case "file_version":
      checkPath(`${path}/path`, d.path, out);
      checkVersion(`${path}/check/version`, d.check.version, out);
      return;
    case "file_sha256":
      checkPath(`${path}/path`, d.path, out);
      if (!/^[0-9a-f]{64}$/.test(d.sha256)) out.push({ path: `${path}/sha256`, message: "a SHA-256 is 64 lowercase hexadecimal digits" });
      return;
    case "service_exists":
    case "service_running": {
      const p = `${path}/name`;
      const n = d.name;
      if (n === "") out.push({ path: p, message: "a service name cannot be empty" });
      else if (!checkText(p, "a service name", n, DETECTION_LIMITS.nameBytes, out)) {
        // Reported above.
      } else if (n.startsWith("-") || /[/\\\s]/.test(n) || n === "." || n === "..") {
        out.push({ path: p, message: "a service name cannot contain / \\ or whitespace, start with -, or be . or .." });
      }
      return;
    }
    case "package": {
      const p = `${path}/name`;
      if (d.name === "") out.push({ path: p, message: "a package name cannot be empty" });
      else if (!checkText(p, "a package name", d.name, DETECTION_LIMITS.nameBytes, out)) {
        // Reported above.
      } else if (d.name.startsWith("-") || /\s/.test(d.name)) {
        out.push({ path: p, message: "a package name cannot contain whitespace or start with -" });
      }
      if (d.version) checkVersion(`${path}/version/version`, d.version.version, out);
      return;
    }
    case "script": {
      const p = `${path}/body`;
      const size = bytes(d.body);
      if (d.body.trim() === "") out.push({ path: p, message: "the script is empty" });
      else if (size > DETECTION_LIMITS.scriptBytes) {
        out.push({ path: p, message: `the script is ${size} bytes; the limit is ${DETECTION_LIMITS.scriptBytes} bytes` });
      } else if (d.body.includes("\0")) out.push({ path: p, message: "the script contains a NUL byte" });
      const t = d.timeout_secs ?? 60;
      if (!(t >= 1 && t <= DETECTION_LIMITS.scriptTimeoutMax)) {
        out.push({ path: `${path}/timeout_secs`, message: `must be between 1 and ${DETECTION_LIMITS.scriptTimeoutMax} seconds` });
      }
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Problems back onto the builder
// ---------------------------------------------------------------------------------------------

/** The builder field a problem belongs to ("group" for a group's own problems). */
export type ConditionField = "name" | "path" | "productCode" | "sha256" | "version" | "key" | "valueName" | "data" | "body" | "timeout" | "group";

const FIELD_OF: [suffix: string, field: ConditionField][] = [
  ["/version/version", "version"],
  ["/check/version", "version"],
  ["/check/data", "data"],
  ["/product_code", "productCode"],
  ["/timeout_secs", "timeout"],
  ["/sha256", "sha256"],
  ["/value", "valueName"],
  ["/path", "path"],
  ["/name", "name"],
  ["/body", "body"],
  ["/key", "key"],
  ["/rules", "group"],
];

/** Problems by node id and field; `general` holds those that name no node (the rule's size). */
export interface PlacedProblems {
  byNode: Map<string, Partial<Record<ConditionField, string>>>;
  general: string[];
}

/**
 * Places problems (pointers relative to the rule, as {@link detectionProblems} and the server
 * give them) onto the tree's nodes, following the same unwrapping as {@link toDetection}.
 */
export function placeProblems(root: GroupNode, problems: readonly Problem[]): PlacedProblems {
  const pointers = new Map<string, DetectionNode>();
  const walk = (n: DetectionNode, p: string) => {
    pointers.set(p, n);
    if (n.kind !== "condition") n.children.forEach((c, i) => walk(c, `${p}/rules/${i}`));
  };
  if (root.kind === "all" && root.children.length === 1) walk(root.children[0]!, "");
  else walk(root, "");
  const out: PlacedProblems = { byNode: new Map(), general: [] };
  for (const pr of problems) {
    let placed = false;
    // The deepest node whose pointer prefixes the problem's, then the field after it.
    for (const [p, node] of [...pointers].sort((a, b) => b[0].length - a[0].length)) {
      if (pr.path !== p && !pr.path.startsWith(`${p}/`)) continue;
      const rest = pr.path.slice(p.length);
      const field = rest === "" ? "group" : FIELD_OF.find(([s]) => rest === s)?.[1];
      if (!field) break;
      const mine = out.byNode.get(node.id) ?? {};
      mine[field] = mine[field] ? `${mine[field]}; ${pr.message}` : pr.message;
      out.byNode.set(node.id, mine);
      placed = true;
      break;
    }
    if (!placed) out.general.push(pr.path ? `${pr.path}: ${pr.message}` : pr.message);
  }
  return out;
}

/** Replaces the node `id` in the tree (`null` removes it); the same tree when `id` is absent. */
export function replaceDetectionNode<T extends DetectionNode>(tree: T, id: string, next: DetectionNode | null): T {
  if (tree.kind === "condition") return tree;
  let changed = false;
  const children: DetectionNode[] = [];
  for (const c of tree.children) {
    if (c.id === id) {
      changed = true;
      if (next) children.push(next);
    } else {
      const r = replaceDetectionNode(c, id, next);
      if (r !== c) changed = true;
      children.push(r);
    }
  }
  return changed ? { ...tree, children } : tree;
}
