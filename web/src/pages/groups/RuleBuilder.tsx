// The visual rule builder: nested AND/OR blocks of conditions (field, software, tag, group),
// each negatable. It edits the tree of lib/rules.ts; the page turns it into rule JSON for the
// live preview and for saving. Every control has a label, so it is usable by keyboard and
// screen reader.
import {
  ActionIcon,
  Autocomplete,
  Button,
  Checkbox,
  Group,
  Paper,
  SegmentedControl,
  Select,
  Stack,
  Text,
  TextInput,
} from "@mantine/core";
import {
  type ConditionKind,
  emptyCondition,
  emptyGroup,
  type FieldDef,
  fieldType,
  findField,
  OPERATOR_LABELS,
  operatorsFor,
  replaceNode,
  type RuleNode,
  SOFTWARE_SOURCES,
  takesValue,
} from "../../lib/rules";

export interface BuilderContext {
  groups: { value: string; label: string }[];
  /** The server's field catalogue, custom fields included. */
  fields: FieldDef[];
}

const KIND_OPTIONS = [
  { value: "field", label: "Field" },
  { value: "software", label: "Software" },
  { value: "tag", label: "Tag" },
  { value: "group", label: "Group" },
];

const VERSION_OPS = ["version_eq", "version_ne", "version_gt", "version_gte", "version_lt", "version_lte"];

function Condition({
  node,
  ctx,
  onChange,
  onRemove,
  label,
}: {
  node: RuleNode;
  ctx: BuilderContext;
  onChange: (n: RuleNode) => void;
  onRemove: () => void;
  label: string;
}) {
  const kindSelect = (
    <Select
      label="Condition"
      aria-label={`${label}: kind`}
      data={KIND_OPTIONS}
      value={node.kind === "raw" ? null : node.kind}
      onChange={(k) => k && k !== node.kind && onChange({ ...emptyCondition(k as ConditionKind), id: node.id, negated: node.negated })}
      allowDeselect={false}
      w={120}
    />
  );
  let inputs: React.ReactNode = null;
  if (node.kind === "field") {
    const ops = operatorsFor(node.field, ctx.fields);
    const def = findField(node.field, ctx.fields);
    const type = fieldType(node.field, ctx.fields);
    const fieldPaths = ctx.fields.map((f) => f.path);
    inputs = (
      <>
        <Autocomplete
          label="Field"
          aria-label={`${label}: field`}
          data={fieldPaths}
          value={node.field}
          description={def?.description}
          onChange={(field) => {
            const nextOps = operatorsFor(field, ctx.fields);
            onChange({ ...node, field, op: nextOps.includes(node.op) ? node.op : (nextOps[0] ?? "eq") });
          }}
          limit={50}
          w={260}
        />
        <Select
          label="Operator"
          aria-label={`${label}: operator`}
          data={ops.map((o) => ({ value: o, label: OPERATOR_LABELS[o] ?? o }))}
          value={node.op}
          onChange={(op) => op && onChange({ ...node, op })}
          allowDeselect={false}
          w={160}
        />
        {takesValue(node.op) &&
          ((type === "boolean" || def?.values) && (node.op === "eq" || node.op === "ne") ? (
            <Select
              label="Value"
              aria-label={`${label}: value`}
              data={type === "boolean" ? ["true", "false"] : [...(def?.values ?? [])]}
              value={node.value || null}
              onChange={(v) => onChange({ ...node, value: v ?? "" })}
              w={type === "boolean" ? 100 : 200}
            />
          ) : (
            <TextInput
              label="Value"
              aria-label={`${label}: value`}
              placeholder={
                node.op === "in"
                  ? def?.values
                    ? def.values.slice(0, 3).join(", ")
                    : "a, b, c"
                  : node.op === "older_than" || node.op === "newer_than"
                    ? "7d"
                    : node.op === "cidr"
                      ? "10.0.0.0/8"
                      : ""
              }
              value={node.value}
              onChange={(e) => onChange({ ...node, value: e.currentTarget.value })}
              w={200}
            />
          ))}
        {["string", "address"].includes(type) &&
          ["eq", "ne", "in", "contains", "starts_with", "ends_with", "regex"].includes(node.op) && (
            <Checkbox
              label="ignore case"
              checked={node.caseInsensitive}
              onChange={(e) => onChange({ ...node, caseInsensitive: e.currentTarget.checked })}
              mt={24}
            />
          )}
      </>
    );
  } else if (node.kind === "software") {
    inputs = (
      <>
        <TextInput
          label="Package name"
          aria-label={`${label}: package name`}
          value={node.name}
          onChange={(e) => onChange({ ...node, name: e.currentTarget.value })}
          w={180}
        />
        <Select
          label="Source"
          aria-label={`${label}: source`}
          placeholder="any"
          data={SOFTWARE_SOURCES}
          value={node.source || null}
          onChange={(v) => onChange({ ...node, source: v ?? "" })}
          clearable
          w={140}
        />
        <Select
          label="Version"
          aria-label={`${label}: version test`}
          placeholder="any version"
          data={VERSION_OPS.map((o) => ({ value: o, label: OPERATOR_LABELS[o] ?? o }))}
          value={node.op || null}
          onChange={(v) => onChange({ ...node, op: v ?? "" })}
          clearable
          w={140}
        />
        {node.op && (
          <TextInput
            label="Version value"
            aria-label={`${label}: version`}
            value={node.value}
            onChange={(e) => onChange({ ...node, value: e.currentTarget.value })}
            w={120}
          />
        )}
      </>
    );
  } else if (node.kind === "tag") {
    inputs = (
      <TextInput
        label="Tag"
        aria-label={`${label}: tag`}
        value={node.tag}
        onChange={(e) => onChange({ ...node, tag: e.currentTarget.value })}
        w={200}
      />
    );
  } else if (node.kind === "group") {
    inputs = (
      <Select
        label="Member of"
        aria-label={`${label}: group`}
        data={ctx.groups}
        value={node.group || null}
        onChange={(v) => onChange({ ...node, group: v ?? "" })}
        searchable
        w={240}
      />
    );
  } else if (node.kind === "raw") {
    inputs = (
      <Text size="sm" ff="monospace" mt={24}>
        {JSON.stringify(node.json)}
      </Text>
    );
  }
  return (
    <Group align="flex-start" gap="xs" wrap="wrap" data-testid="rule-condition">
      <Checkbox
        label="NOT"
        aria-label={`${label}: negate`}
        checked={node.negated}
        onChange={(e) => onChange({ ...node, negated: e.currentTarget.checked })}
        mt={30}
      />
      {kindSelect}
      {inputs}
      <ActionIcon variant="subtle" color="red" aria-label={`Remove ${label}`} onClick={onRemove} mt={26}>
        ✕
      </ActionIcon>
    </Group>
  );
}

function Block({
  node,
  ctx,
  onChange,
  onRemove,
  path,
  numbering,
}: {
  node: RuleNode & { kind: "all" | "any" };
  ctx: BuilderContext;
  onChange: (n: RuleNode) => void;
  onRemove?: () => void;
  /** The block's accessible name: "rule" at the top, "block 2", "block 2.1" below. */
  path: string;
  /** Prefix of its children's numbers: "" at the top, "2." inside block 2. */
  numbering: string;
}) {
  const setChild = (id: string, next: RuleNode | null) => {
    const updated = replaceNode(node, id, next);
    if (updated) onChange(updated);
  };
  return (
    <Paper withBorder p="sm" bg={node.negated ? "red.0" : path === "rule" ? undefined : "gray.0"} role="group" aria-label={path}>
      <Stack gap="xs">
        <Group gap="xs">
          {onRemove && (
            <Checkbox
              label="NOT"
              aria-label={`${path}: negate`}
              checked={node.negated}
              onChange={(e) => onChange({ ...node, negated: e.currentTarget.checked })}
            />
          )}
          <Text size="sm">Match</Text>
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
          <Text size="sm">of these:</Text>
          {onRemove && (
            <Button size="compact-xs" variant="subtle" color="red" onClick={onRemove} aria-label={`Remove ${path}`}>
              Remove block
            </Button>
          )}
        </Group>
        {node.children.length === 0 && (
          <Text size="sm" c="dimmed">
            {node.kind === "all" ? "No condition: every device matches." : "No condition: no device matches."}
          </Text>
        )}
        {node.children.map((c, i) => {
          const number = `${numbering}${i + 1}`;
          return c.kind === "all" || c.kind === "any" ? (
            <Block
              key={c.id}
              node={c}
              ctx={ctx}
              path={`block ${number}`}
              numbering={`${number}.`}
              onChange={(n) => setChild(c.id, n)}
              onRemove={() => setChild(c.id, null)}
            />
          ) : (
            <Condition
              key={c.id}
              node={c}
              ctx={ctx}
              label={`condition ${number}`}
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
            onClick={() =>
              onChange({ ...node, children: [...node.children, emptyGroup(node.kind === "all" ? "any" : "all", [emptyCondition()])] })
            }
          >
            Add {node.kind === "all" ? "OR" : "AND"} block
          </Button>
        </Group>
      </Stack>
    </Paper>
  );
}

/** The builder; `value` is always a group (see `parseRootRule`). */
export function RuleBuilder({ value, onChange, ctx }: { value: RuleNode; onChange: (n: RuleNode) => void; ctx: BuilderContext }) {
  if (value.kind !== "all" && value.kind !== "any") return null;
  return <Block node={value} ctx={ctx} onChange={onChange} path="rule" numbering="" />;
}
