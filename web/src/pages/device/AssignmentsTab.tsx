// The device's software assignments: every package the server wants on it with its status,
// the assignments that reach it (directly or through a group) and conflicts between them. An
// assignment made to this device itself (not part of a deployment) can be removed here.
import { Alert, Badge, Stack, Table, Text, Title } from "@mantine/core";
import { useState } from "react";
import { RemoveAssignmentButton, RemoveAssignmentDialog } from "../../components/RemoveAssignment";
import { ItemStatusBadge } from "../../components/ItemStatusBadge";
import { Empty, ErrorState, Loading } from "../../components/QueryState";
import { RouterAnchor } from "../../components/links";
import { formatRelative } from "../../lib/format";
import { explainExitCode } from "../../lib/software";
import { type AssignmentInfo, useDeviceSoftware } from "../../services/deployments";

export function AssignmentsTab({ deviceId }: { deviceId: string }) {
  const sw = useDeviceSoftware(deviceId);
  const [removing, setRemoving] = useState<AssignmentInfo | null>(null);
  if (sw.isPending) return <Loading label="Loading software assignments…" />;
  if (sw.isError) return <ErrorState error={sw.error} onRetry={() => sw.refetch()} />;
  const s = sw.data;
  if (s.items.length === 0 && s.assignments.length === 0) {
    return <Empty title="No software assigned">No assignment or deployment reaches this device.</Empty>;
  }
  return (
    <Stack>
      {s.conflicts.map((c) => (
        <Alert key={`${c.package_id}-${c.loser}`} color="orange" title={`Conflict on ${c.package_name}`}>
          {c.reason}
        </Alert>
      ))}
      <Table aria-label="Software assignments">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Package</Table.Th>
            <Table.Th>Version</Table.Th>
            <Table.Th>Wanted</Table.Th>
            <Table.Th>Status</Table.Th>
            <Table.Th>Exit code</Table.Th>
            <Table.Th>Detail</Table.Th>
            <Table.Th>Updated</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {s.items.map((i) => (
            <Table.Tr key={i.package_id} data-package={i.package_name}>
              <Table.Td>
                <RouterAnchor to="/software/$package" params={{ package: i.package_name }}>
                  {i.package_name}
                </RouterAnchor>
              </Table.Td>
              <Table.Td>{i.version ?? "—"}</Table.Td>
              <Table.Td>{i.desired ?? "—"}</Table.Td>
              <Table.Td>
                <ItemStatusBadge status={i.status} />
                {i.drift_repairs > 0 && (
                  <Badge ml={4} variant="outline" color="orange" size="sm">
                    drift repaired ×{i.drift_repairs}
                  </Badge>
                )}
              </Table.Td>
              <Table.Td title={i.exit_code !== null && i.exit_code !== undefined ? explainExitCode(i.exit_code).meaning : undefined}>
                {i.exit_code ?? "—"}
              </Table.Td>
              <Table.Td>
                <Text size="sm" lineClamp={2}>
                  {i.detail ?? ""}
                </Text>
              </Table.Td>
              <Table.Td>{formatRelative(i.updated_at_ms)}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      <Title order={3} size="h5">
        Assignments reaching this device
      </Title>
      <Table aria-label="Assignments">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Package</Table.Th>
            <Table.Th>Intent</Table.Th>
            <Table.Th>Through</Table.Th>
            <Table.Th>Deployment</Table.Th>
            <Table.Th />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {s.assignments.map((a) => (
            <Table.Tr key={a.id}>
              <Table.Td>
                {a.package_name} {a.version ?? "(latest)"}
              </Table.Td>
              <Table.Td>{a.intent}</Table.Td>
              <Table.Td>
                {a.target_kind} {a.target_name}
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
                {a.target_kind === "device" && !a.deployment && (
                  <RemoveAssignmentButton assignment={a} onClick={() => setRemoving(a)} />
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      <RemoveAssignmentDialog assignment={removing} where="this device" onClose={() => setRemoving(null)} />
    </Stack>
  );
}
