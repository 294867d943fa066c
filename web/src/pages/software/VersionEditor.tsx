// The version editor: a version's install and uninstall commands (argv lists, one box per
// argument), exit codes, timeout, requirements and detection rule, saved with
// `PUT /api/v1/packages/{package}/versions/{version}`; or, without a version, a new
// package-manager version (no file to upload) posted to the package. Problems are checked as
// the server checks them and shown on their field; the server's own are placed the same way.
import { ActionIcon, Alert, Button, Checkbox, Code, Group, Paper, Select, Stack, Text, TextInput, Title } from "@mantine/core";
import { useMemo, useState } from "react";
import { errorMessage } from "../../api/client";
import { parseDetection, placeProblems, type Problem } from "../../lib/detection";
import { joinCommand, splitCommand } from "../../lib/software";
import {
  emptyManagerForm,
  formToSpec,
  managerDetection,
  OS_FAMILIES,
  PACKAGE_MANAGERS,
  type SpecForm,
  specProblems,
  specToForm,
  versionLabelProblem,
} from "../../lib/versionSpec";
import { ProblemsError, useAddVersion, useUpdateVersion, type VersionInfo } from "../../services/packages";
import { DetectionBuilder } from "./DetectionBuilder";

/** Problems by JSON pointer relative to the spec (several joined). */
type ByPath = Map<string, string>;

function byPath(problems: readonly Problem[]): ByPath {
  const m: ByPath = new Map();
  for (const p of problems) m.set(p.path, m.has(p.path) ? `${m.get(p.path)}; ${p.message}` : p.message);
  return m;
}

export function ArgvEditor({
  label,
  value,
  onChange,
  errors,
  defaultHint,
}: {
  /** "Install command": also the prefix of each argument's label. */
  label: string;
  value: string[];
  onChange: (argv: string[]) => void;
  /** Problems under this command's pointer: "" for the whole list, "2" for argument 3. */
  errors: Map<string, string>;
  defaultHint: string;
}) {
  const [line, setLine] = useState("");
  const set = (i: number, v: string) => onChange(value.map((a, j) => (j === i ? v : a)));
  return (
    <Paper withBorder p="sm" role="group" aria-label={label}>
      <Stack gap={6}>
        <Text size="sm" fw={500}>
          {label}
        </Text>
        {value.length === 0 ? (
          <Text size="sm" c="dimmed">
            {defaultHint}
          </Text>
        ) : (
          value.map((a, i) => (
            <Group key={i} gap={6} align="flex-start" wrap="nowrap">
              <Text size="xs" c="dimmed" w={18} mt={8} ta="right">
                {i}
              </Text>
              <TextInput
                aria-label={`${label} argument ${i + 1}`}
                value={a}
                error={errors.get(String(i))}
                onChange={(e) => set(i, e.currentTarget.value)}
                ff="monospace"
                style={{ flex: 1 }}
              />
              <ActionIcon variant="subtle" color="red" aria-label={`Remove ${label.toLowerCase()} argument ${i + 1}`} onClick={() => onChange(value.filter((_, j) => j !== i))} mt={4}>
                ✕
              </ActionIcon>
            </Group>
          ))
        )}
        {errors.get("") && (
          <Text size="xs" c="red">
            {errors.get("")}
          </Text>
        )}
        <Group gap="xs" align="flex-end">
          <Button size="compact-sm" variant="light" onClick={() => onChange([...value, ""])}>
            Add argument
          </Button>
          <TextInput
            size="xs"
            aria-label={`${label}: command line to split`}
            placeholder="or paste a command line: quotes group, \ escapes"
            value={line}
            onChange={(e) => setLine(e.currentTarget.value)}
            style={{ flex: 1 }}
            ff="monospace"
          />
          <Button
            size="compact-sm"
            variant="subtle"
            disabled={!line.trim()}
            onClick={() => {
              onChange(splitCommand(line));
              setLine("");
            }}
          >
            Split into arguments
          </Button>
        </Group>
        {value.length > 0 && (
          <Text size="xs" c="dimmed">
            Runs (no shell): <Code>{joinCommand(value)}</Code>
          </Text>
        )}
      </Stack>
    </Paper>
  );
}

/** The problems under `prefix` (`/install_command`), keyed by the rest without its slash. */
function under(problems: ByPath, prefix: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [p, m] of problems) {
    if (p === prefix) out.set("", m);
    else if (p.startsWith(`${prefix}/`)) out.set(p.slice(prefix.length + 1), m);
  }
  return out;
}

const KNOWN = [
  "/install_command",
  "/uninstall_command",
  "/success_exit_codes",
  "/soft_reboot_exit_codes",
  "/hard_reboot_exit_codes",
  "/timeout_secs",
  "/requirements/os_families",
  "/requirements/min_os_version",
  "/requirements/min_free_disk_mb",
  "/manager_package/name",
  "/manager_package/version",
  "/manager_package",
  "/package_id",
  "/product_code",
  "/detection",
];

/** What the editor does not show but sends back unchanged, in words; "" when there is none. */
function kept(spec: VersionInfo["spec"]): string {
  const parts: string[] = [];
  const deps = spec.dependencies ?? [];
  const sup = spec.supersedes ?? [];
  if (deps.length) parts.push(`dependencies (${deps.map((d) => `${d.package}${d.version ? ` ${d.version}` : ""}`).join(", ")})`);
  if (sup.length) parts.push(`supersedence (${sup.map((s) => `${s.package} ${s.version}, ${s.mode.replace("_", " ")}`).join("; ")})`);
  if (spec.pre_install) parts.push(`the pre-install ${spec.pre_install.interpreter} script`);
  if (spec.post_install) parts.push(`the post-install ${spec.post_install.interpreter} script`);
  return parts.join(", ");
}

export interface VersionEditorProps {
  pkg: string;
  /** The version to edit; absent: a new package-manager version. */
  version?: VersionInfo;
  onSaved: (v: VersionInfo) => void;
  onCancel: () => void;
}

export function VersionEditor({ pkg, version, onSaved, onCancel }: VersionEditorProps) {
  const creating = version === undefined;
  const [form, setForm] = useState<SpecForm>(() => (version ? specToForm(version.spec) : emptyManagerForm()));
  const [label, setLabel] = useState("");
  const [submitted, setSubmitted] = useState(false);
  const [server, setServer] = useState<{ spec: Problem[]; label?: string; other: string[] } | null>(null);
  const update = useUpdateVersion(pkg);
  const add = useAddVersion(pkg);
  const mutation = creating ? add : update;
  const set = (patch: Partial<SpecForm>) => setForm((f) => ({ ...f, ...patch }));

  const spec = useMemo(() => formToSpec(form, version?.spec), [form, version]);
  const local = useMemo(() => specProblems(form, spec), [form, spec]);
  const labelProblem = creating ? versionLabelProblem(label.trim()) : null;
  // Our own checks once the operator has tried to save (a new form is not red all over), and
  // the server's where ours found nothing at the same place.
  const shown = submitted ? local : [];
  const serverSpec = (server?.spec ?? []).filter((p) => !shown.some((l) => l.path === p.path));
  const problems = byPath([...shown, ...serverSpec]);
  const detection = placeProblems(
    form.detection,
    [...problems]
      .filter(([p]) => p === "/detection" || p.startsWith("/detection/"))
      .map(([p, message]) => ({ path: p.slice("/detection".length), message })),
  );
  const unplaced = [...problems].filter(([p]) => !KNOWN.some((k) => p === k || p.startsWith(`${k}/`))).map(([p, m]) => `${p}: ${m}`);
  const codeHint = (t: SpecForm["installerType"]) => (t === "msi" ? "0, 1707" : "0");

  const save = () => {
    setSubmitted(true);
    setServer(null);
    if (local.length > 0 || labelProblem) return;
    const onError = (e: unknown) => {
      if (e instanceof ProblemsError && e.details.length > 0) {
        const specProblems: Problem[] = [];
        const other: string[] = [];
        let labelMsg: string | undefined;
        for (const d of e.details) {
          if (d.path === "/spec" || d.path.startsWith("/spec/")) specProblems.push({ path: d.path.slice("/spec".length), message: d.message });
          else if (d.path === "/version") labelMsg = d.message;
          else other.push(d.path ? `${d.path}: ${d.message}` : d.message);
        }
        setServer({ spec: specProblems, label: labelMsg, other });
      }
    };
    if (creating) add.mutate({ version: label.trim(), spec }, { onSuccess: onSaved, onError });
    else update.mutate({ version: version.version, spec }, { onSuccess: onSaved, onError });
  };

  const pm = form.installerType === "package_manager";
  const msg = (p: string) => problems.get(p);
  return (
    <form
      aria-label={creating ? "New package-manager version" : `Edit version ${version.version}`}
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
    >
      <Stack>
        {creating ? (
          <Text size="sm" c="dimmed">
            A version installed by the device's package manager, by name: no file to upload. For an installer file, use the upload on
            the catalogue page.
          </Text>
        ) : (
          <Text size="sm" c="dimmed">
            Installer {form.installerType} · the files stay as uploaded; jobs already created keep the spec they were created with.
          </Text>
        )}
        {creating && (
          <TextInput
            label="Version"
            required
            w={240}
            value={label}
            error={(submitted ? labelProblem : null) ?? server?.label}
            onChange={(e) => setLabel(e.currentTarget.value)}
          />
        )}
        {pm && (
          <Group align="flex-start">
            <Select
              label="Package manager"
              data={PACKAGE_MANAGERS}
              value={form.managerKind}
              onChange={(v) => v && set({ managerKind: v as SpecForm["managerKind"] })}
              allowDeselect={false}
              w={160}
            />
            <TextInput
              label="Package in the manager"
              required
              value={form.managerName}
              error={msg("/manager_package/name") ?? msg("/manager_package")}
              onChange={(e) => set({ managerName: e.currentTarget.value })}
              w={240}
            />
            <TextInput
              label="Version pin"
              description="Empty: the newest available"
              value={form.managerVersion}
              error={msg("/manager_package/version")}
              onChange={(e) => set({ managerVersion: e.currentTarget.value })}
              w={200}
            />
          </Group>
        )}
        {(form.installerType === "deb" || form.installerType === "rpm" || form.installerType === "pacman" || form.packageId) && (
          <TextInput
            label="Package database name"
            description="The name dpkg / rpm / pacman knows ({package} in commands)"
            value={form.packageId}
            error={msg("/package_id")}
            onChange={(e) => set({ packageId: e.currentTarget.value })}
            w={320}
          />
        )}
        {(form.installerType === "msi" || form.productCode) && (
          <TextInput
            label="MSI product code"
            description="{product_code} in commands"
            value={form.productCode}
            error={msg("/product_code")}
            onChange={(e) => set({ productCode: e.currentTarget.value })}
            w={380}
            styles={{ input: { fontFamily: "var(--mantine-font-family-monospace)" } }}
          />
        )}

        <Title order={3} size="h5">
          Commands
        </Title>
        <Text size="xs" c="dimmed">
          Each argument is passed as is, never through a shell. Placeholders: {"{file}"} the downloaded file, {"{dir}"} its directory or
          the extracted archive, {"{log}"} a log file kept with the result, {"{package}"}, {"{version}"}, {"{product_code}"}; {"{{"} and{" "}
          {"}}"} for literal braces.
        </Text>
        <ArgvEditor
          label="Install command"
          value={form.installCommand}
          onChange={(installCommand) => set({ installCommand })}
          errors={under(problems, "/install_command")}
          defaultHint="Empty: the installer type's default command."
        />
        <ArgvEditor
          label="Uninstall command"
          value={form.uninstallCommand}
          onChange={(uninstallCommand) => set({ uninstallCommand })}
          errors={under(problems, "/uninstall_command")}
          defaultHint="Empty: the installer type's default command."
        />
        <TextInput
          label="Timeout (seconds)"
          description="Per install or uninstall command, 1 to 86400"
          value={form.timeout}
          error={msg("/timeout_secs")}
          onChange={(e) => set({ timeout: e.currentTarget.value })}
          w={300}
        />

        <Title order={3} size="h5">
          Exit codes
        </Title>
        <Group grow align="flex-start">
          <TextInput
            label="Success exit codes"
            description={`Comma-separated; empty: ${codeHint(form.installerType)}`}
            value={form.successCodes}
            error={msg("/success_exit_codes")}
            onChange={(e) => set({ successCodes: e.currentTarget.value })}
          />
          <TextInput
            label="Reboot later exit codes"
            description="Success, a reboot may wait (MSI 3010)"
            value={form.softRebootCodes}
            error={msg("/soft_reboot_exit_codes")}
            onChange={(e) => set({ softRebootCodes: e.currentTarget.value })}
          />
          <TextInput
            label="Reboot now exit codes"
            description="Success, reboot needed now (MSI 1641)"
            value={form.hardRebootCodes}
            error={msg("/hard_reboot_exit_codes")}
            onChange={(e) => set({ hardRebootCodes: e.currentTarget.value })}
          />
        </Group>

        <Title order={3} size="h5">
          Requirements
        </Title>
        <Text size="xs" c="dimmed">
          Devices that do not meet them get “not applicable” with the reason, not a failure.
        </Text>
        <Checkbox.Group
          label="Operating systems"
          description="None ticked: the files' platforms decide"
          value={form.osFamilies}
          onChange={(v) => set({ osFamilies: v as SpecForm["osFamilies"] })}
          error={msg("/requirements/os_families")}
        >
          <Group mt={4}>
            {OS_FAMILIES.map((o) => (
              <Checkbox key={o} value={o} label={o} />
            ))}
          </Group>
        </Checkbox.Group>
        <Group align="flex-start">
          <TextInput
            label="Minimum OS version"
            description="Dotted: 12, 10.0.19045"
            value={form.minOsVersion}
            error={msg("/requirements/min_os_version")}
            onChange={(e) => set({ minOsVersion: e.currentTarget.value })}
            w={220}
          />
          <TextInput
            label="Free disk space (MiB)"
            description="On the install volume; empty: no minimum"
            value={form.minFreeDiskMb}
            error={msg("/requirements/min_free_disk_mb")}
            onChange={(e) => set({ minFreeDiskMb: e.currentTarget.value })}
            w={220}
          />
        </Group>

        <Group justify="space-between">
          <Title order={3} size="h5">
            Detection
          </Title>
          {pm && (
            <Button
              size="compact-sm"
              variant="subtle"
              onClick={() => set({ detection: parseDetection(managerDetection(form.managerKind, form.managerName, form.managerVersion)) })}
            >
              Detect by the manager package
            </Button>
          )}
        </Group>
        <DetectionBuilder value={form.detection} onChange={(detection) => set({ detection })} problems={detection} />

        {version && kept(version.spec) && (
          <Text size="xs" c="dimmed">
            Kept as they are: {kept(version.spec)} (not edited here).
          </Text>
        )}
        {(unplaced.length > 0 || (server?.other.length ?? 0) > 0) && (
          <Alert color="red" role="alert" title="Problems">
            {[...unplaced, ...(server?.other ?? [])].join("; ")}
          </Alert>
        )}
        {submitted && (local.length > 0 || labelProblem) && (
          <Text size="sm" c="red" role="status">
            Nothing was saved: correct the {local.length + (labelProblem ? 1 : 0)} marked problem{local.length + (labelProblem ? 1 : 0) === 1 ? "" : "s"}{" "}
            first.
          </Text>
        )}
        {mutation.isError && !(mutation.error instanceof ProblemsError && mutation.error.details.length > 0) && (
          <Alert color="red" role="alert" title={creating ? "The version was not created" : "The version was not saved"}>
            {errorMessage(mutation.error)}
          </Alert>
        )}
        {mutation.isError && mutation.error instanceof ProblemsError && mutation.error.details.length > 0 && (
          <Text size="sm" c="red" role="status">
            The server refused the version; the problems are marked above.
          </Text>
        )}
        <Group justify="flex-end">
          <Button variant="default" onClick={onCancel}>
            Cancel
          </Button>
          <Button type="submit" loading={mutation.isPending}>
            {creating ? "Create version" : "Save version"}
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
