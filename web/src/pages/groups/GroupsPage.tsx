// The group list as a tree: parents with their children indented (collapsible), member counts
// (direct and with descendants), and a static/dynamic badge; creating a group opens a dialog.
import { ActionIcon, Badge, Button, Group, Modal, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useNavigate } from "@tanstack/react-router";
import { useMemo, useState } from "react";
import { Empty, ErrorState, Loading } from "../../components/QueryState";
import { RouterAnchor } from "../../components/links";
import { describeRule, parseRule } from "../../lib/rules";
import { buildGroupTree, flattenTree, useGroups } from "../../services/groups";
import { CreateGroupForm } from "./GroupForm";

export function KindBadge({ kind }: { kind: string }) {
  return (
    <Badge variant="light" color={kind === "dynamic" ? "grape" : "blue"}>
      {kind}
    </Badge>
  );
}

export function GroupsPage() {
  const groups = useGroups();
  const navigate = useNavigate();
  const [creating, setCreating] = useState(false);
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const [filter, setFilter] = useState("");
  const names = useMemo(() => new Map((groups.data ?? []).map((g) => [g.id, g.name])), [groups.data]);
  const rows = useMemo(() => {
    const all = groups.data ?? [];
    const needle = filter.trim().toLowerCase();
    if (needle) {
      return all
        .filter((g) => g.name.toLowerCase().includes(needle))
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((g) => ({ group: g, depth: 0, children: [] }));
    }
    return flattenTree(buildGroupTree(all), collapsed);
  }, [groups.data, collapsed, filter]);

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={1} size="h2">
          Groups
        </Title>
        <Button onClick={() => setCreating(true)}>Create group</Button>
      </Group>
      <TextInput label="Find a group" placeholder="part of a name" value={filter} onChange={(e) => setFilter(e.currentTarget.value)} w={280} />
      {groups.isPending ? (
        <Loading label="Loading groups…" />
      ) : groups.isError ? (
        <ErrorState error={groups.error} onRetry={() => groups.refetch()} />
      ) : groups.data.length === 0 ? (
        <Empty title="No groups yet">Groups collect devices by hand (static) or by a rule (dynamic); jobs and deployments target them.</Empty>
      ) : rows.length === 0 ? (
        <Empty title="No group matches" />
      ) : (
        <Table aria-label="Groups" highlightOnHover>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Kind</Table.Th>
              <Table.Th ta="right">Direct members</Table.Th>
              <Table.Th ta="right">With subgroups</Table.Th>
              <Table.Th>Rule / description</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {rows.map(({ group: g, depth, children }) => (
              <Table.Tr key={g.id} data-group-id={g.id}>
                <Table.Td>
                  <Group gap={4} pl={depth * 20} wrap="nowrap">
                    {children.length > 0 ? (
                      <ActionIcon
                        size="sm"
                        variant="subtle"
                        aria-label={`${collapsed.has(g.id) ? "Expand" : "Collapse"} ${g.name}`}
                        aria-expanded={!collapsed.has(g.id)}
                        onClick={() =>
                          setCollapsed((s) => {
                            const n = new Set(s);
                            if (n.has(g.id)) n.delete(g.id);
                            else n.add(g.id);
                            return n;
                          })
                        }
                      >
                        {collapsed.has(g.id) ? "▸" : "▾"}
                      </ActionIcon>
                    ) : (
                      <span style={{ width: 22, display: "inline-block" }} />
                    )}
                    <RouterAnchor to="/groups/$groupId" params={{ groupId: g.id }}>
                      {g.name}
                    </RouterAnchor>
                  </Group>
                </Table.Td>
                <Table.Td>
                  <KindBadge kind={g.kind} />
                </Table.Td>
                <Table.Td ta="right">{g.direct_members.toLocaleString()}</Table.Td>
                <Table.Td ta="right">{g.members.toLocaleString()}</Table.Td>
                <Table.Td maw={420}>
                  <Text size="sm" c="dimmed" truncate>
                    {g.rule ? describeRule(parseRule(g.rule), (id) => names.get(id) ?? id) : g.description}
                  </Text>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      <Modal opened={creating} onClose={() => setCreating(false)} title="Create group" size="xl">
        <CreateGroupForm
          onDone={(g) => {
            setCreating(false);
            void navigate({ to: "/groups/$groupId", params: { groupId: g.id } });
          }}
        />
      </Modal>
    </Stack>
  );
}
