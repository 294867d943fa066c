// Filter controls of the device list that need data from the server: the OS and hardware-model
// choices (the fleet summary's values, so a choice always matches devices) and the custom-field
// filter (pick a field, then type or choose its value; the URL keeps `field=name=value`).
import { Group, Select, TextInput } from "@mantine/core";
import { useDebouncedCallback } from "@mantine/hooks";
import { useEffect, useState } from "react";
import { type Distribution, joinFieldFilter, splitFieldFilter } from "../../services/devices";
import { useCustomFields } from "../../services/groups";

export interface Option {
  value: string;
  label: string;
}

/**
 * Select options for a distribution: its values with their device counts, most devices first;
 * the current value is kept as a choice even when it is not among them (a link or a value
 * outside the top 20), so the control shows what filters the list.
 */
export function valueOptions(d: Distribution | undefined, current: string | undefined): Option[] {
  const out: Option[] = (d?.top ?? []).map((v) => ({ value: v.value, label: `${v.value} (${v.count.toLocaleString()})` }));
  if (current && !out.some((o) => o.value === current)) out.unshift({ value: current, label: current });
  return out;
}

/** The value choices of a field type, when there is a fixed set; text input otherwise. */
export function fixedChoices(field: { type: string; enum_values?: string[] } | undefined): string[] | undefined {
  if (!field) return undefined;
  if (field.type === "boolean") return ["true", "false"];
  if (field.type === "enum") return field.enum_values ?? [];
  return undefined;
}

export function FieldFilter({ value, onChange }: { value: string | undefined; onChange: (v: string | undefined) => void }) {
  const fields = useCustomFields();
  const parsed = splitFieldFilter(value);
  const [name, setName] = useState<string | null>(parsed?.name ?? null);
  const [text, setText] = useState(parsed?.value ?? "");
  useEffect(() => {
    const p = splitFieldFilter(value);
    if (p) {
      setName(p.name);
      setText(p.value);
    } else {
      setText("");
    }
  }, [value]);
  const push = (n: string | null, v: string) => onChange(n && v !== "" ? joinFieldFilter(n, v) : undefined);
  const pushText = useDebouncedCallback((n: string | null, v: string) => push(n, v), 400);
  const field = (fields.data ?? []).find((f) => f.name === name);
  const choices = fixedChoices(field);
  const names = (fields.data ?? []).map((f) => f.name);
  if (name && !names.includes(name)) names.unshift(name);
  if (!fields.isError && names.length === 0) return null;

  return (
    <Group gap={4} align="flex-end" wrap="nowrap">
      <Select
        label="Custom field"
        placeholder={fields.isError ? "Fields unavailable" : "Any"}
        data={names}
        searchable
        clearable
        disabled={fields.isError}
        value={name}
        onChange={(n) => {
          setName(n);
          setText("");
          if (!n || value) push(null, "");
        }}
        w={170}
      />
      {choices ? (
        <Select
          label="Value"
          aria-label="Custom field value"
          placeholder="Any"
          data={choices}
          clearable
          disabled={!name}
          value={text || null}
          onChange={(v) => {
            setText(v ?? "");
            push(name, v ?? "");
          }}
          w={150}
        />
      ) : (
        <TextInput
          label="Value"
          aria-label="Custom field value"
          placeholder={field?.type === "date" ? "YYYY-MM-DD" : field?.type === "number" ? "number" : "exact value"}
          disabled={!name}
          value={text}
          onChange={(e) => {
            setText(e.currentTarget.value);
            pushText(name, e.currentTarget.value);
          }}
          w={150}
        />
      )}
    </Group>
  );
}
