// The device's job history: every run it had, newest job first, with the job's name and kind,
// the run's state, attempt and exit code and when it ran; each links to the job's page, where
// the output is.
import { Badge, Group, Pagination, Stack, Table, Text } from "@mantine/core";
import { useState } from "react";
import { Empty, ErrorState, Loading } from "../../components/QueryState";
import { RouterAnchor } from "../../components/links";
import { formatDateTime, formatRelative } from "../../lib/format";
import { DEVICE_RUNS_PAGE, type RunState, useDeviceRuns } from "../../services/jobs";

const STATE_COLORS: Record<RunState, string> = {
  queued: "yellow",
  delivered: "cyan",
  running: "blue",
  rebooting: "violet",
  succeeded: "green",
  failed: "red",
  timed_out: "red",
  cancelled: "gray",
  expired: "gray",
};

export function JobsTab({ deviceId }: { deviceId: string }) {
  const [page, setPage] = useState(1);
  const runs = useDeviceRuns(deviceId, page);
  if (runs.isPending) return <Loading label="Loading the device's jobs…" />;
  if (runs.isError) return <ErrorState error={runs.error} onRetry={() => runs.refetch()} />;
  const { items, total } = runs.data;
  if (total === 0) return <Empty title="No jobs yet">No job has targeted this device.</Empty>;
  const pages = Math.max(1, Math.ceil(total / DEVICE_RUNS_PAGE));
  return (
    <Stack>
      <Text size="sm" c="dimmed">
        {total.toLocaleString()} job{total === 1 ? "" : "s"} on this device, newest first
      </Text>
      <Table aria-label="Jobs on this device" striped>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Job</Table.Th>
            <Table.Th>Kind</Table.Th>
            <Table.Th>State</Table.Th>
            <Table.Th>Exit code</Table.Th>
            <Table.Th>Attempt</Table.Th>
            <Table.Th>Started</Table.Th>
            <Table.Th>Finished</Table.Th>
            <Table.Th>Created</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {items.map((r) => (
            <Table.Tr key={r.run.id} data-run-id={r.run.id}>
              <Table.Td>
                <RouterAnchor to="/jobs/$jobId" params={{ jobId: r.run.job_id }}>
                  {r.job_name}
                </RouterAnchor>
              </Table.Td>
              <Table.Td>{r.job_kind}</Table.Td>
              <Table.Td>
                <Group gap={4}>
                  <Badge color={STATE_COLORS[r.run.state]} variant="light">
                    {r.run.state.replace("_", " ")}
                  </Badge>
                  {r.run.reason && (
                    <Text span size="xs" c="dimmed">
                      {r.run.reason}
                    </Text>
                  )}
                </Group>
              </Table.Td>
              <Table.Td>{r.run.exit_code ?? "—"}</Table.Td>
              <Table.Td>{r.run.attempt}</Table.Td>
              <Table.Td title={formatDateTime(r.started_at_ms)}>{r.started_at_ms ? formatRelative(r.started_at_ms) : "—"}</Table.Td>
              <Table.Td title={formatDateTime(r.finished_at_ms)}>{r.finished_at_ms ? formatRelative(r.finished_at_ms) : "—"}</Table.Td>
              <Table.Td title={formatDateTime(r.job_created_at_ms)}>
                {formatRelative(r.job_created_at_ms)} by {r.job_created_by}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      {pages > 1 && <Pagination total={pages} value={page} onChange={setPage} />}
    </Stack>
  );
}
