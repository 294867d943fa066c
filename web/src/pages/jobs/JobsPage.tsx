// The job queue: newest first, with each job's run counts as a progress bar and a state
// summary; refreshed every few seconds. "New job" opens the wizard.
import { Badge, Button, Group, Modal, Pagination, Progress, Stack, Table, Text, Title, Tooltip } from "@mantine/core";
import { useNavigate } from "@tanstack/react-router";
import { useState } from "react";
import { Empty, ErrorState, Loading } from "../../components/QueryState";
import { RouterAnchor } from "../../components/links";
import { formatRelative } from "../../lib/format";
import { isFinished, JOBS_PAGE, type RunCounts, useJobs } from "../../services/jobs";
import { CreateJobWizard } from "./CreateJob";

export function CountsBar({ c }: { c: RunCounts }) {
  const pct = (n: number) => (c.total ? (n / c.total) * 100 : 0);
  const active = c.delivered + c.running + c.rebooting;
  return (
    <Tooltip
      label={`${c.succeeded} succeeded · ${c.failed + c.timed_out} failed · ${active} running · ${c.queued} queued · ${c.cancelled + c.expired} cancelled/expired`}
    >
      <Progress.Root size="lg" aria-label={`${c.succeeded} of ${c.total} succeeded`}>
        <Progress.Section value={pct(c.succeeded)} color="green" />
        <Progress.Section value={pct(c.failed + c.timed_out)} color="red" />
        <Progress.Section value={pct(active)} color="blue" />
        <Progress.Section value={pct(c.cancelled + c.expired)} color="gray" />
      </Progress.Root>
    </Tooltip>
  );
}

export function jobState(c: RunCounts, cancelled: boolean): { label: string; color: string } {
  if (cancelled) return { label: "cancelled", color: "gray" };
  if (!isFinished(c)) return c.running + c.delivered + c.rebooting > 0 ? { label: "running", color: "blue" } : { label: "queued", color: "yellow" };
  if (c.failed + c.timed_out > 0) return { label: "failed", color: "red" };
  if (c.succeeded === c.total) return { label: "succeeded", color: "green" };
  return { label: "finished", color: "gray" };
}

export function JobsPage() {
  const [page, setPage] = useState(1);
  const [creating, setCreating] = useState(false);
  const jobs = useJobs(page);
  const navigate = useNavigate();
  const pages = Math.max(1, Math.ceil((jobs.data?.total ?? 0) / JOBS_PAGE));
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={1} size="h2">
          Jobs
        </Title>
        <Button onClick={() => setCreating(true)}>New job</Button>
      </Group>
      {jobs.isPending ? (
        <Loading label="Loading jobs…" />
      ) : jobs.isError ? (
        <ErrorState error={jobs.error} onRetry={() => jobs.refetch()} />
      ) : jobs.data.items.length === 0 ? (
        <Empty title="No jobs yet">A job runs a command, a script or a reboot on devices and groups.</Empty>
      ) : (
        <Table aria-label="Jobs" highlightOnHover>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Job</Table.Th>
              <Table.Th>Kind</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th w={240}>Runs</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th>By</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {jobs.data.items.map((j) => {
              const st = jobState(j.counts, Boolean(j.cancelled_at_ms));
              return (
                <Table.Tr key={j.id} data-job-id={j.id}>
                  <Table.Td>
                    <RouterAnchor to="/jobs/$jobId" params={{ jobId: j.id }}>
                      {j.name}
                    </RouterAnchor>
                  </Table.Td>
                  <Table.Td>{j.kind}</Table.Td>
                  <Table.Td>
                    <Badge color={st.color} variant="light">
                      {st.label}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    <Stack gap={2}>
                      <CountsBar c={j.counts} />
                      <Text size="xs" c="dimmed">
                        {j.counts.succeeded}/{j.counts.total} succeeded
                        {j.counts.failed + j.counts.timed_out > 0 ? `, ${j.counts.failed + j.counts.timed_out} failed` : ""}
                      </Text>
                    </Stack>
                  </Table.Td>
                  <Table.Td>{formatRelative(j.created_at_ms)}</Table.Td>
                  <Table.Td>{j.created_by}</Table.Td>
                </Table.Tr>
              );
            })}
          </Table.Tbody>
        </Table>
      )}
      {pages > 1 && <Pagination total={pages} value={page} onChange={setPage} />}
      <Modal opened={creating} onClose={() => setCreating(false)} title="New job" size="xl">
        <CreateJobWizard
          onCreated={(j) => {
            setCreating(false);
            void navigate({ to: "/jobs/$jobId", params: { jobId: j.id } });
          }}
        />
      </Modal>
    </Stack>
  );
}
