// A group's software: its own assignments and those inherited from ancestor groups (marked),
// each with how many devices of its target are installed, under way or failed, and "Assign
// software" for the group (the same dialog as the device list's bulk assignment). The group's
// own assignments can be removed here (after a confirmation that says what that uninstalls);
// an assignment that belongs to a deployment is removed with its deployment.
import { Badge, Button, Group, Stack, Table, Text, Tooltip } from "@mantine/core";
import { lazy, Suspense, useState } from "react";
import { Empty, ErrorState, Loading } from "../../components/QueryState";
import { RemoveAssignmentButton, RemoveAssignmentDialog } from "../../components/RemoveAssignment";
import { RouterAnchor } from "../../components/links";
import { type AssignmentInfo, pendingDevices, useAssignmentsOfGroups } from "../../services/deployments";
import { type GroupInfo, useGroups } from "../../services/groups";
import { ancestorsOf, groupAssignmentRows } from "./assignments";

const AssignSoftwareDialog = lazy(() => import("../devices/AssignDialog").then((m) => ({ default: m.AssignSoftwareDialog })));

function Counts({ a }: { a: AssignmentInfo }) {
  const c = a.counts;
  if (!c || c.total === 0) {
    return (
      <Text size="sm" c="dimmed">
        no device yet
      </Text>
    );
  }
  const pending = pendingDevices(c);
  const badges: [string, number, string][] = [
    ["installed", c.installed, "green"],
    ["removed", c.removed, "teal"],
    ["available", c.available, "indigo"],
    ["under way", pending, "blue"],
    ["failed", c.failed, "red"],
    ["not applicable", c.not_applicable, "gray"],
  ];
  return (
    <Group gap={4}>
      {badges
        .filter(([, n]) => n > 0)
        .map(([label, n, color]) => (
          <Badge key={label} color={color} variant="light" size="sm" tt="none">
            {n.toLocaleString()} {label}
          </Badge>
        ))}
      <Text size="xs" c="dimmed">
        of {c.total.toLocaleString()}
      </Text>
    </Group>
  );
}

export function GroupAssignmentsTab({ group }: { group: GroupInfo }) {
  const groups = useGroups();
  const [assigning, setAssigning] = useState(false);
  const [removing, setRemoving] = useState<AssignmentInfo | null>(null);
  const chain = [group, ...ancestorsOf(group.id, groups.data ?? [])];
  const results = useAssignmentsOfGroups(chain.map((g) => g.id));
  const failed = results.find((r) => r.isError);
  const rows = groupAssignmentRows(
    chain,
    results.map((r) => r.data),
  );
  return (
    <Stack>
      <Group justify="space-between">
        <Text size="sm" c="dimmed">
          Software assigned to this group, and to the groups above it, reaches every member.
        </Text>
        <Button onClick={() => setAssigning(true)}>Assign software…</Button>
      </Group>
      {results.some((r) => r.isPending) ? (
        <Loading label="Loading assignments…" />
      ) : failed ? (
        <ErrorState error={failed.error} onRetry={() => results.forEach((r) => void r.refetch())} />
      ) : rows.length === 0 ? (
        <Empty title="No software assigned">Assign a package to install it on every member of the group.</Empty>
      ) : (
        <Table aria-label="Group assignments" striped>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Package</Table.Th>
              <Table.Th>Version</Table.Th>
              <Table.Th>Intent</Table.Th>
              <Table.Th>Assigned to</Table.Th>
              <Table.Th>Devices of its target</Table.Th>
              <Table.Th>Deployment</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {rows.map(({ assignment: a, inheritedFrom }) => (
              <Table.Tr key={a.id} data-assignment={a.package_name} data-inherited={inheritedFrom ? "true" : "false"}>
                <Table.Td>
                  <RouterAnchor to="/software/$package" params={{ package: a.package_name }}>
                    {a.package_name}
                  </RouterAnchor>
                </Table.Td>
                <Table.Td>
                  {a.version ?? (
                    <Tooltip label="Follows new versions">
                      <Text span size="sm">
                        latest{a.resolved_version ? ` (${a.resolved_version})` : ""}
                      </Text>
                    </Tooltip>
                  )}
                </Table.Td>
                <Table.Td>
                  {a.intent}
                  {a.leave_installed && (
                    <Text span size="xs" c="dimmed">
                      {" "}
                      · leave installed
                    </Text>
                  )}
                </Table.Td>
                <Table.Td>
                  {inheritedFrom ? (
                    <Group gap={4}>
                      <Badge variant="outline" color="gray" size="sm" tt="none">
                        inherited
                      </Badge>
                      <RouterAnchor to="/groups/$groupId" params={{ groupId: inheritedFrom.id }} size="sm">
                        {inheritedFrom.name}
                      </RouterAnchor>
                    </Group>
                  ) : (
                    <Text size="sm">this group</Text>
                  )}
                </Table.Td>
                <Table.Td>
                  <Counts a={a} />
                </Table.Td>
                <Table.Td>
                  {a.deployment ? (
                    <RouterAnchor to="/deployments/$deploymentId" params={{ deploymentId: a.deployment }}>
                      {a.deployment}
                    </RouterAnchor>
                  ) : (
                    "—"
                  )}
                </Table.Td>
                <Table.Td>
                  {!inheritedFrom && !a.deployment && (
                    <RemoveAssignmentButton assignment={a} onClick={() => setRemoving(a)} />
                  )}
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      <RemoveAssignmentDialog assignment={removing} where={`the members of ${group.name}`} onClose={() => setRemoving(null)} />
      {assigning && (
        <Suspense fallback={<Loading label="Loading…" />}>
          <AssignSoftwareDialog
            title={`Assign software to group ${group.name}`}
            targets={[{ kind: "group", id: group.id, label: group.name }]}
            onClose={() => setAssigning(false)}
          />
        </Suspense>
      )}
    </Stack>
  );
}
