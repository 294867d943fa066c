// The detection-rule builder: nested ALL/ANY groups of conditions (package installed with a
// version comparison, file exists / version / SHA-256, service, MSI product, registry, script).
// It edits the tree of lib/detection.ts; problems found here or by the server are shown on
// the field they concern, and the rule is previewed in words below. Every control has a label
// naming its place ("condition 2.1: path"), for keyboard and screen-reader use.
import { ActionIcon, Alert, Button, Checkbox, Group, Paper, SegmentedControl, Select, Stack, Text, Textarea, TextInput } from "@mantine/core";
import {
  CONDITION_TYPES,
  type ConditionField,
  type ConditionNode,
  type ConditionType,
  changeType,
  type DetectionNode,
  emptyCondition,
  emptyGroup,
  type GroupNode,
  HIVES,
  INTERPRETERS,
  MANAGERS,
  type PlacedProblems,
  replaceDetectionNode,
  toDetection,
  VERSION_OPS,
} from "../../lib/detection";
import { DetectionView } from "./DetectionView";

type Errors = Partial<Record<ConditionField, string>>;

function VersionCompare({
  c,
  label,
  optional,
  errors,
  onChange,
}: {
  c: ConditionNode;
  label: string;
  optional: boolean;
  errors: Errors;
  onChange: (c: ConditionNode) => void;
}) {
  return (
    <>
      <Select
        label="Version"
        aria-label={`${label}: version comparison`}
        data={[...(optional ? [{ value: "", label: "any version" }] : []), ...VERSION_OPS]}
        value={c.op}
        onChange={(v) => onChange({ ...c, op: (v ?? "") as ConditionNode["op"] })}
        allowDeselect={false}
        w={120}
      />
      {c.op !== "" && (
        <TextInput
          label="Version value"
          aria-label={`${label}: version`}
          value={c.version}
          error={errors.version}
          onChange={(e) => onChange({ ...c, version: e.currentTarget.value })}
          w={140}
        />
      )}
    </>
  );
}

function Condition({
  c,
  label,
  errors,
  onChange,
  onRemove,
}: {
  c: ConditionNode;
  label: string;
  errors: Errors;
  onChange: (c: ConditionNode) => void;
  onRemove: () => void;
}) {
  const text = (field: "name" | "path" | "productCode" | "sha256" | "key", title: string, w: number, placeholder?: string) => (
    <TextInput
      label={title}
      aria-label={`${label}: ${title.toLowerCase()}`}
      value={c[field]}
      placeholder={placeholder}
      error={errors[field]}
      onChange={(e) => onChange({ ...c, [field]: e.currentTarget.value })}
      w={w}
    />
  );
  let inputs: React.ReactNode = null;
  switch (c.type) {
    case "package":
      inputs = (
        <>
          <Select
            label="Manager"
            aria-label={`${label}: manager`}
            data={MANAGERS}
            value={c.manager}
            onChange={(v) => v && onChange({ ...c, manager: v as ConditionNode["manager"] })}
            allowDeselect={false}
            w={110}
          />
          {text("name", "Package name", 200)}
          <VersionCompare c={c} label={label} optional errors={errors} onChange={onChange} />
        </>
      );
      break;
    case "msi_product":
      inputs = (
        <>
          {text("productCode", "Product code", 340, "{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}")}
          <VersionCompare c={c} label={label} optional errors={errors} onChange={onChange} />
        </>
      );
      break;
    case "file_exists":
      inputs = text("path", "Path", 360, "/opt/app/bin/app or C:\\Program Files\\App\\app.exe");
      break;
    case "file_version":
      inputs = (
        <>
          {text("path", "Path", 320)}
          <VersionCompare c={c} label={label} optional={false} errors={errors} onChange={onChange} />
        </>
      );
      break;
    case "file_sha256":
      inputs = (
        <>
          {text("path", "Path", 280)}
          {text("sha256", "SHA-256", 300)}
        </>
      );
      break;
    case "service_exists":
    case "service_running":
      inputs = text("name", "Service name", 220);
      break;
    case "registry":
      inputs = (
        <>
          <Select
            label="Hive"
            aria-label={`${label}: hive`}
            data={HIVES.map((h) => ({ value: h, label: h.toUpperCase() }))}
            value={c.hive}
            onChange={(v) => v && onChange({ ...c, hive: v as ConditionNode["hive"] })}
            allowDeselect={false}
            w={100}
          />
          {text("key", "Key", 300, "SOFTWARE\\Vendor\\App")}
          <Checkbox
            label="Value"
            aria-label={`${label}: names a value`}
            checked={c.useValue}
            onChange={(e) => onChange({ ...c, useValue: e.currentTarget.checked })}
            mt={30}
          />
          {c.useValue && (
            <TextInput
              label="Value name"
              aria-label={`${label}: value name`}
              description="Empty: the key's default value"
              value={c.valueName}
              error={errors.valueName}
              onChange={(e) => onChange({ ...c, valueName: e.currentTarget.value })}
              w={180}
            />
          )}
          <Select
            label="Check"
            aria-label={`${label}: registry check`}
            data={[
              { value: "exists", label: "exists" },
              { value: "equals", label: "equals" },
              { value: "version", label: "version" },
            ]}
            value={c.registryCheck}
            onChange={(v) =>
              v && onChange({ ...c, registryCheck: v as ConditionNode["registryCheck"], op: v === "version" && c.op === "" ? "gte" : c.op })
            }
            allowDeselect={false}
            w={110}
          />
          {c.registryCheck === "equals" && (
            <TextInput
              label="Data"
              aria-label={`${label}: data`}
              value={c.data}
              error={errors.data}
              onChange={(e) => onChange({ ...c, data: e.currentTarget.value })}
              w={160}
            />
          )}
          {c.registryCheck === "version" && <VersionCompare c={c} label={label} optional={false} errors={errors} onChange={onChange} />}
          {!c.useValue && errors.valueName && (
            <Text size="xs" c="red" mt={30}>
              {errors.valueName}
            </Text>
          )}
          <Checkbox
            label="32-bit view"
            aria-label={`${label}: 32-bit view`}
            checked={c.wow64}
            onChange={(e) => onChange({ ...c, wow64: e.currentTarget.checked })}
            mt={30}
          />
        </>
      );
      break;
    case "script":
      inputs = (
        <Stack gap={4} style={{ flex: 1, minWidth: 360 }}>
          <Group gap="xs" align="flex-start">
            <Select
              label="Interpreter"
              aria-label={`${label}: interpreter`}
              data={INTERPRETERS}
              value={c.interpreter}
              onChange={(v) => v && onChange({ ...c, interpreter: v as ConditionNode["interpreter"] })}
              allowDeselect={false}
              w={130}
            />
            <TextInput
              label="Timeout (s)"
              aria-label={`${label}: timeout`}
              value={c.timeout}
              error={errors.timeout}
              onChange={(e) => onChange({ ...c, timeout: e.currentTarget.value })}
              w={110}
            />
          </Group>
          <Textarea
            label="Script"
            aria-label={`${label}: script`}
            description="Detected when it exits 0 and prints something"
            value={c.body}
            error={errors.body}
            onChange={(e) => onChange({ ...c, body: e.currentTarget.value })}
            rows={4}
            styles={{ input: { fontFamily: "var(--mantine-font-family-monospace)" } }}
          />
        </Stack>
      );
      break;
  }
  return (
    <Group align="flex-start" gap="xs" wrap="wrap" data-testid="detection-condition">
      <Select
        label="Condition"
        aria-label={`${label}: type`}
        data={CONDITION_TYPES}
        value={c.type}
        onChange={(t) => t && t !== c.type && onChange(changeType(c, t as ConditionType))}
        allowDeselect={false}
        w={190}
      />
      {inputs}
      <ActionIcon variant="subtle" color="red" aria-label={`Remove ${label}`} onClick={onRemove} mt={28}>
        ✕
      </ActionIcon>
      {errors.group && (
        <Text size="xs" c="red" w="100%">
          {errors.group}
        </Text>
      )}
    </Group>
  );
}

function Block({
  node,
  path,
  numbering,
  problems,
  onChange,
  onRemove,
}: {
  node: GroupNode;
  /** Accessible name: "detection rule" at the top, "block 2", "block 2.1" below. */
  path: string;
  numbering: string;
  problems?: PlacedProblems;
  onChange: (n: GroupNode) => void;
  onRemove?: () => void;
}) {
  const setChild = (id: string, next: DetectionNode | null) => onChange(replaceDetectionNode(node, id, next));
  const own = problems?.byNode.get(node.id)?.group;
  return (
    <Paper withBorder p="sm" bg={onRemove ? "gray.0" : undefined} role="group" aria-label={path}>
      <Stack gap="xs">
        <Group gap="xs">
          <Text size="sm">{onRemove ? "A block:" : "Installed when"}</Text>
          <SegmentedControl
            size="xs"
            aria-label={`${path}: combine with`}
            data={[
              { value: "all", label: "ALL (AND)" },
              { value: "any", label: "ANY (OR)" },
            ]}
            value={node.kind}
            onChange={(k) => onChange({ ...node, kind: k as "all" | "any" })}
          />
          <Text size="sm">of these hold:</Text>
          {onRemove && (
            <Button size="compact-xs" variant="subtle" color="red" onClick={onRemove} aria-label={`Remove ${path}`}>
              Remove block
            </Button>
          )}
        </Group>
        {own && (
          <Text size="sm" c="red" role="alert">
            {own}
          </Text>
        )}
        {node.children.map((c, i) => {
          const number = `${numbering}${i + 1}`;
          return c.kind === "condition" ? (
            <Condition
              key={c.id}
              c={c}
              label={`condition ${number}`}
              errors={problems?.byNode.get(c.id) ?? {}}
              onChange={(n) => setChild(c.id, n)}
              onRemove={() => setChild(c.id, null)}
            />
          ) : (
            <Block
              key={c.id}
              node={c}
              path={`block ${number}`}
              numbering={`${number}.`}
              problems={problems}
              onChange={(n) => setChild(c.id, n)}
              onRemove={() => setChild(c.id, null)}
            />
          );
        })}
        <Group gap="xs">
          <Button size="compact-sm" variant="light" onClick={() => onChange({ ...node, children: [...node.children, emptyCondition()] })}>
            Add condition
          </Button>
          <Button
            size="compact-sm"
            variant="subtle"
            onClick={() => onChange({ ...node, children: [...node.children, emptyGroup(node.kind === "all" ? "any" : "all", [emptyCondition()])] })}
          >
            Add {node.kind === "all" ? "OR" : "AND"} block
          </Button>
        </Group>
      </Stack>
    </Paper>
  );
}

export function DetectionBuilder({
  value,
  onChange,
  problems,
}: {
  value: GroupNode;
  onChange: (n: GroupNode) => void;
  /** Problems to show (from lib/detection's checks or the server), placed on the tree. */
  problems?: PlacedProblems;
}) {
  return (
    <Stack gap="xs">
      <Block node={value} path="detection rule" numbering="" problems={problems} onChange={onChange} />
      {problems && problems.general.length > 0 && (
        <Alert color="red" role="alert" p="xs">
          {problems.general.join("; ")}
        </Alert>
      )}
      <Text size="sm" fw={500}>
        In words
      </Text>
      {value.children.length > 0 ? <DetectionView detection={toDetection(value)} /> : <Text size="sm" c="dimmed">No condition yet: add one.</Text>}
    </Stack>
  );
}
