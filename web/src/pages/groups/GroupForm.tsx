// Creating a group: name, description, parent, and static or dynamic with the rule builder.
import { Alert, Button, Group, SegmentedControl, Select, Stack, Textarea, TextInput } from "@mantine/core";
import { useState } from "react";
import { errorMessage } from "../../api/client";
import { emptyCondition, emptyGroup, type RuleNode, toRuleJson } from "../../lib/rules";
import { type GroupInfo, useCreateGroup, useGroups } from "../../services/groups";
import { RuleEditor, useBuilderContext } from "./RuleEditor";

export function CreateGroupForm({ onDone }: { onDone: (g: GroupInfo) => void }) {
  const create = useCreateGroup();
  const groups = useGroups();
  const ctx = useBuilderContext();
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [parent, setParent] = useState<string | null>(null);
  const [kind, setKind] = useState<"static" | "dynamic">("static");
  const [rule, setRule] = useState<RuleNode>(() => emptyGroup("all", [emptyCondition()]));
  const [nameError, setNameError] = useState<string | null>(null);

  const submit = () => {
    if (!name.trim()) {
      setNameError("Give the group a name");
      return;
    }
    create.mutate(
      {
        name: name.trim(),
        description,
        ...(parent ? { parent_id: parent } : {}),
        ...(kind === "dynamic" ? { kind, rule: toRuleJson(rule, ctx.fields) } : {}),
      },
      { onSuccess: onDone },
    );
  };
  return (
    <form
      aria-label="Create group"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <Stack>
        <Group grow align="flex-start">
          <TextInput
            label="Name"
            required
            value={name}
            error={nameError}
            onChange={(e) => {
              setName(e.currentTarget.value);
              setNameError(null);
            }}
          />
          <Select
            label="Parent group"
            placeholder="None (top level)"
            data={(groups.data ?? []).map((g) => ({ value: g.id, label: g.name }))}
            value={parent}
            onChange={setParent}
            searchable
            clearable
          />
        </Group>
        <Textarea label="Description" value={description} onChange={(e) => setDescription(e.currentTarget.value)} autosize minRows={1} />
        <SegmentedControl
          aria-label="Membership"
          data={[
            { value: "static", label: "Static: members added by hand" },
            { value: "dynamic", label: "Dynamic: members from a rule" },
          ]}
          value={kind}
          onChange={(v) => setKind(v as "static" | "dynamic")}
        />
        {kind === "dynamic" && <RuleEditor value={rule} onChange={setRule} />}
        {create.isError && (
          <Alert color="red" role="alert" title="The group was not created">
            {errorMessage(create.error)}
          </Alert>
        )}
        <Group justify="flex-end">
          <Button type="submit" loading={create.isPending}>
            Create group
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
