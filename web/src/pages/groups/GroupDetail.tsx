// One group: its members (paged, searchable; added and removed by hand for static groups),
// the rule of a dynamic group in the builder with a live count, its software assignments (own
// and inherited), "why does this device match", and settings (rename, describe, move, delete
// with confirmation).
import {
  Alert,
  Badge,
  Breadcrumbs,
  Button,
  Checkbox,
  Group,
  List,
  Pagination,
  Paper,
  Select,
  Stack,
  Table,
  Tabs,
  Text,
  Textarea,
  TextInput,
  Title,
} from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { getRouteApi, useNavigate } from "@tanstack/react-router";
import { useEffect, useState } from "react";
import { ApiError, errorMessage } from "../../api/client";
import { ConfirmDialog } from "../../components/Confirm";
import { ErrorState, Empty, Loading } from "../../components/QueryState";
import { RouterAnchor } from "../../components/links";
import { DeviceMultiPicker, DevicePicker } from "../../components/TargetPicker";
import { formatRelative } from "../../lib/format";
import { parseRootRule, type RuleNode, toRuleJson } from "../../lib/rules";
import {
  type ExplanationNode,
  type GroupInfo,
  useChangeMembers,
  useDeleteGroup,
  useExplain,
  useGroup,
  useGroupMembers,
  useGroups,
  useUpdateGroup,
} from "../../services/groups";
import { StatusBadge } from "../Devices";
import { GroupAssignmentsTab } from "./GroupAssignments";
import { KindBadge } from "./GroupsPage";
import { RuleEditor, useBuilderContext } from "./RuleEditor";

const route = getRouteApi("/app/groups/$groupId");
const PAGE = 50;

function Members({ group }: { group: GroupInfo }) {
  const [search, setSearch] = useState("");
  const [debounced] = useDebouncedValue(search.trim(), 300);
  const [page, setPage] = useState(1);
  const [selected, setSelected] = useState<string[]>([]);
  const [adding, setAdding] = useState<string[]>([]);
  const members = useGroupMembers(group.id, { ...(debounced ? { search: debounced } : {}), offset: (page - 1) * PAGE, limit: PAGE });
  const change = useChangeMembers(group.id);
  const isStatic = group.kind === "static";
  const pages = Math.max(1, Math.ceil((members.data?.total ?? 0) / PAGE));
  return (
    <Stack>
      {isStatic && (
        <Paper withBorder p="sm">
          <Group align="flex-end">
            <div style={{ flex: 1 }}>
              <DeviceMultiPicker label="Add devices" value={adding} onChange={setAdding} />
            </div>
            <Button
              disabled={adding.length === 0}
              loading={change.isPending}
              onClick={() => change.mutate({ add: true, deviceIds: adding }, { onSuccess: () => setAdding([]) })}
            >
              Add to group
            </Button>
          </Group>
          {change.isError && (
            <Alert color="red" mt="xs" role="alert">
              {errorMessage(change.error)}
            </Alert>
          )}
        </Paper>
      )}
      <Group justify="space-between" align="flex-end">
        <TextInput
          label="Search members"
          placeholder="part of a hostname"
          value={search}
          onChange={(e) => {
            setSearch(e.currentTarget.value);
            setPage(1);
          }}
          w={260}
        />
        {isStatic && selected.length > 0 && (
          <Button
            color="red"
            variant="light"
            loading={change.isPending}
            onClick={() => change.mutate({ add: false, deviceIds: selected }, { onSuccess: () => setSelected([]) })}
          >
            Remove {selected.length} from group
          </Button>
        )}
      </Group>
      {members.isPending ? (
        <Loading label="Loading members…" />
      ) : members.isError ? (
        <ErrorState error={members.error} onRetry={() => members.refetch()} />
      ) : members.data.items.length === 0 ? (
        <Empty title={debounced ? "No member matches" : "No members"}>
          {group.kind === "dynamic" && !debounced ? "No device matches the rule right now." : null}
        </Empty>
      ) : (
        <>
          <Text size="sm" c="dimmed" aria-live="polite">
            {members.data.total.toLocaleString()} device{members.data.total === 1 ? "" : "s"} (this group and its subgroups)
          </Text>
          <Table aria-label="Members" striped>
            <Table.Thead>
              <Table.Tr>
                {isStatic && <Table.Th w={40} />}
                <Table.Th>Hostname</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Operating system</Table.Th>
                <Table.Th>Last seen</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {members.data.items.map((d) => (
                <Table.Tr key={d.id} data-device-id={d.id}>
                  {isStatic && (
                    <Table.Td>
                      <Checkbox
                        aria-label={`Select ${d.hostname}`}
                        checked={selected.includes(d.id)}
                        onChange={(e) =>
                          setSelected((s) => (e.currentTarget.checked ? [...s, d.id] : s.filter((x) => x !== d.id)))
                        }
                      />
                    </Table.Td>
                  )}
                  <Table.Td>
                    <RouterAnchor to="/devices/$deviceId" params={{ deviceId: d.id }} search={{}}>
                      {d.hostname}
                    </RouterAnchor>
                  </Table.Td>
                  <Table.Td>
                    <StatusBadge online={d.online} />
                  </Table.Td>
                  <Table.Td>{[d.os_name, d.os_version].filter(Boolean).join(" ") || "—"}</Table.Td>
                  <Table.Td>{formatRelative(d.last_seen_at_ms)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
          {pages > 1 && <Pagination total={pages} value={page} onChange={setPage} />}
        </>
      )}
    </Stack>
  );
}

function RuleTab({ group }: { group: GroupInfo }) {
  const [rule, setRule] = useState<RuleNode>(() => parseRootRule(group.rule ?? { all: [] }));
  const [dirty, setDirty] = useState(false);
  const update = useUpdateGroup(group.id);
  const ctx = useBuilderContext(group.id);
  useEffect(() => {
    if (!dirty) setRule(parseRootRule(group.rule ?? { all: [] }));
    // Only a rule saved elsewhere replaces the one on screen, never one being edited.
  }, [group.rule, dirty]);
  return (
    <Stack>
      <RuleEditor
        value={rule}
        excludeGroup={group.id}
        onChange={(n) => {
          setRule(n);
          setDirty(true);
        }}
      />
      {update.isError && (
        <Alert color="red" role="alert" title="The rule was not saved">
          {errorMessage(update.error)}
        </Alert>
      )}
      <Group>
        <Button
          disabled={!dirty}
          loading={update.isPending}
          onClick={() => update.mutate({ rule: toRuleJson(rule, ctx.fields) }, { onSuccess: () => setDirty(false) })}
        >
          Save rule
        </Button>
        {dirty && (
          <Button
            variant="default"
            onClick={() => {
              setRule(parseRootRule(group.rule ?? { all: [] }));
              setDirty(false);
            }}
          >
            Discard changes
          </Button>
        )}
        {update.isSuccess && !dirty && <Text size="sm" c="green">Saved; members are being re-evaluated.</Text>}
      </Group>
    </Stack>
  );
}

function ExplanationTree({ node }: { node: ExplanationNode }) {
  return (
    <List.Item icon={<Badge color={node.matched ? "green" : "red"} variant="light" size="sm">{node.matched ? "true" : "false"}</Badge>}>
      <Text size="sm" span>
        {node.text.replace(/: (true|false)$/, "")}
      </Text>
      {(node.children ?? []).length > 0 && (
        <List withPadding spacing={4}>
          {(node.children ?? []).map((c, i) => (
            <ExplanationTree key={`${c.path}-${i}`} node={c} />
          ))}
        </List>
      )}
    </List.Item>
  );
}

function ExplainTab({ group }: { group: GroupInfo }) {
  const [device, setDevice] = useState("");
  const explain = useExplain(group.id, device || null);
  return (
    <Stack>
      <DevicePicker label="Device to explain" value={device} onChange={setDevice} />
      {!device ? (
        <Text size="sm" c="dimmed">
          Pick a device to see, condition by condition, why it is or is not a member.
        </Text>
      ) : explain.isPending ? (
        <Loading label="Asking the server…" />
      ) : explain.isError ? (
        <ErrorState error={explain.error} />
      ) : (
        <Paper withBorder p="md" data-testid="explanation">
          <Text fw={600} mb="xs">
            {explain.data.member ? "Member of this group" : "Not a member of this group"}
          </Text>
          <List spacing={4}>
            <ExplanationTree node={explain.data.explanation} />
          </List>
        </Paper>
      )}
    </Stack>
  );
}

function SettingsTab({ group }: { group: GroupInfo }) {
  const update = useUpdateGroup(group.id);
  const remove = useDeleteGroup();
  const groups = useGroups();
  const navigate = useNavigate();
  const [name, setName] = useState(group.name);
  const [description, setDescription] = useState(group.description);
  const [parent, setParent] = useState<string | null>(group.parent_id ?? null);
  const [confirming, setConfirming] = useState(false);
  return (
    <Stack maw={640}>
      <TextInput label="Name" value={name} onChange={(e) => setName(e.currentTarget.value)} />
      <Textarea label="Description" value={description} onChange={(e) => setDescription(e.currentTarget.value)} autosize minRows={2} />
      <Select
        label="Parent group"
        placeholder="None (top level)"
        data={(groups.data ?? []).filter((g) => g.id !== group.id).map((g) => ({ value: g.id, label: g.name }))}
        value={parent}
        onChange={setParent}
        searchable
        clearable
      />
      {update.isError && (
        <Alert color="red" role="alert">
          {errorMessage(update.error)}
        </Alert>
      )}
      <Group justify="space-between">
        <Button
          loading={update.isPending}
          onClick={() =>
            update.mutate({
              ...(name.trim() !== group.name ? { name: name.trim() } : {}),
              ...(description !== group.description ? { description } : {}),
              ...(parent !== (group.parent_id ?? null) ? { parent_id: parent } : {}),
            })
          }
        >
          Save changes
        </Button>
        <Button color="red" variant="light" onClick={() => setConfirming(true)}>
          Delete group
        </Button>
      </Group>
      <ConfirmDialog
        opened={confirming}
        title="Delete group?"
        confirmLabel="Delete"
        pending={remove.isPending}
        error={remove.error}
        onClose={() => {
          setConfirming(false);
          remove.reset();
        }}
        onConfirm={() =>
          remove.mutate(group.id, {
            onSuccess: () => void navigate({ to: "/groups" }),
          })
        }
      >
        “{group.name}” will be deleted and its {group.direct_members.toLocaleString()} direct member
        {group.direct_members === 1 ? "" : "s"} leave it. Jobs already created keep their devices; assignments and
        deployments targeting the group must be removed first.
      </ConfirmDialog>
    </Stack>
  );
}

export function GroupDetailPage() {
  const { groupId } = route.useParams();
  const group = useGroup(groupId);
  const groups = useGroups();
  const [tab, setTab] = useState<string | null>("members");
  if (group.isPending) return <Loading label="Loading the group…" />;
  if (group.isError) {
    if (group.error instanceof ApiError && group.error.status === 404) {
      return (
        <Empty title="Group not found">
          It may have been deleted. <RouterAnchor to="/groups">Back to the groups</RouterAnchor>
        </Empty>
      );
    }
    return <ErrorState error={group.error} onRetry={() => group.refetch()} />;
  }
  const g = group.data;
  const parent = groups.data?.find((x) => x.id === g.parent_id);
  return (
    <Stack>
      <Breadcrumbs>
        <RouterAnchor to="/groups" size="sm">
          Groups
        </RouterAnchor>
        {parent && (
          <RouterAnchor to="/groups/$groupId" params={{ groupId: parent.id }} size="sm">
            {parent.name}
          </RouterAnchor>
        )}
        <Text size="sm">{g.name}</Text>
      </Breadcrumbs>
      <Group gap="md">
        <Title order={1} size="h2" data-testid="group-name">
          {g.name}
        </Title>
        <KindBadge kind={g.kind} />
        <Text c="dimmed" size="sm">
          {g.members.toLocaleString()} device{g.members === 1 ? "" : "s"} ({g.direct_members.toLocaleString()} direct)
        </Text>
      </Group>
      {g.description && <Text size="sm">{g.description}</Text>}
      <Tabs value={tab} onChange={setTab} keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="members">Members</Tabs.Tab>
          {g.kind === "dynamic" && <Tabs.Tab value="rule">Rule</Tabs.Tab>}
          <Tabs.Tab value="assignments">Software</Tabs.Tab>
          <Tabs.Tab value="explain">Why does a device match?</Tabs.Tab>
          <Tabs.Tab value="settings">Settings</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="members" pt="md">
          <Members group={g} />
        </Tabs.Panel>
        <Tabs.Panel value="rule" pt="md">
          <RuleTab group={g} />
        </Tabs.Panel>
        <Tabs.Panel value="assignments" pt="md">
          <GroupAssignmentsTab group={g} />
        </Tabs.Panel>
        <Tabs.Panel value="explain" pt="md">
          <ExplainTab group={g} />
        </Tabs.Panel>
        <Tabs.Panel value="settings" pt="md">
          <SettingsTab group={g} />
        </Tabs.Panel>
      </Tabs>
    </Stack>
  );
}
