// The dashboard: how many devices there are and how many are online (live: presence events
// refresh the summary), which operating systems and hardware models they have, which
// deployments are under way and what failed recently. Counters and bars link to the lists
// filtered the same way.
import { Card, Group, Progress, SimpleGrid, Stack, Table, Text, Title } from "@mantine/core";
import { Empty, ErrorState, Loading } from "../components/QueryState";
import { RouterAnchor } from "../components/links";
import { formatRelative } from "../lib/format";
import { plural } from "../lib/selection";
import { type Bar, distributionBars, useFailedJobs } from "../services/dashboard";
import { summarizeDeployments, useDeployments } from "../services/deployments";
import { useDeviceSummary } from "../services/devices";

function Counter({ label, value, status }: { label: string; value: number; status?: "online" | "offline" }) {
  return (
    <Card withBorder padding="lg" aria-label={label}>
      <Text size="sm" c="dimmed">
        {label}
      </Text>
      <RouterAnchor to="/devices" search={status ? { status } : {}} fz={32} fw={700} underline="hover">
        {value.toLocaleString()}
      </RouterAnchor>
    </Card>
  );
}

function Counters() {
  const summary = useDeviceSummary();
  if (summary.isPending) return <Loading label="Counting devices…" />;
  if (summary.isError) return <ErrorState error={summary.error} onRetry={() => summary.refetch()} />;
  const c = summary.data;
  return (
    <SimpleGrid cols={3}>
      <Counter label="Devices" value={c.total} />
      <Counter label="Online" value={c.online} status="online" />
      <Counter label="Offline" value={c.offline} status="offline" />
    </SimpleGrid>
  );
}

/** Horizontal bars (Mantine Progress), each value a link to the devices it counts. */
function Bars({ bars, name }: { bars: Bar[]; name: string }) {
  return (
    <Stack gap="sm" role="list" aria-label={name}>
      {bars.map((b) => (
        <div key={`${b.search ? "v" : "x"}:${b.label}`} role="listitem">
          <Group justify="space-between" gap="xs" wrap="nowrap">
            {b.search ? (
              <RouterAnchor to="/devices" search={b.search} size="sm" truncate="end">
                {b.label}
              </RouterAnchor>
            ) : (
              <Text size="sm" c="dimmed">
                {b.label}
              </Text>
            )}
            <Text size="sm" c="dimmed" style={{ whiteSpace: "nowrap" }}>
              {b.count.toLocaleString()} ({Math.round(b.percent)} %)
            </Text>
          </Group>
          <Progress value={b.percent} color={b.search ? undefined : "gray"} aria-label={`${b.label}: ${b.count} devices`} />
        </div>
      ))}
    </Stack>
  );
}

function Distributions() {
  const summary = useDeviceSummary();
  if (summary.isPending) return <Loading label="Reading operating systems and hardware…" />;
  if (summary.isError) return <ErrorState error={summary.error} onRetry={() => summary.refetch()} />;
  const s = summary.data;
  if (s.total === 0) {
    return (
      <Card withBorder padding="lg">
        <Empty title="No devices yet">
          Create an <RouterAnchor to="/enrollment">enrollment token</RouterAnchor> and run its install command on a
          machine.
        </Empty>
      </Card>
    );
  }
  return (
    <SimpleGrid cols={{ base: 1, md: 2 }}>
      <Card withBorder padding="lg">
        <Title order={2} size="h4" mb="md">
          Operating systems
        </Title>
        <Bars bars={distributionBars(s.os, s.total, "os")} name="Operating systems" />
      </Card>
      <Card withBorder padding="lg">
        <Title order={2} size="h4" mb="md">
          Hardware models
        </Title>
        <Bars bars={distributionBars(s.model, s.total, "model")} name="Hardware models" />
      </Card>
    </SimpleGrid>
  );
}

function DeploymentCounter({ label, value, filter }: { label: string; value: number; filter: "active" | "failing" }) {
  return (
    <Card withBorder padding="lg" aria-label={label}>
      <Text size="sm" c="dimmed">
        {label}
      </Text>
      <RouterAnchor to="/deployments" search={{ filter }} fz={32} fw={700} underline="hover">
        {value.toLocaleString()}
      </RouterAnchor>
    </Card>
  );
}

function Deployments() {
  const deployments = useDeployments();
  if (deployments.isPending) return <Loading label="Reading deployments…" />;
  if (deployments.isError) return <ErrorState error={deployments.error} onRetry={() => deployments.refetch()} />;
  const s = summarizeDeployments(deployments.data);
  const failing = deployments.data.filter((d) => d.counts.failed > 0).slice(0, 5);
  return (
    <Stack>
      <SimpleGrid cols={3}>
        <DeploymentCounter label="Deployments in progress" value={s.active} filter="active" />
        <DeploymentCounter label="Deployments with failures" value={s.failing} filter="failing" />
        <Card withBorder padding="lg" aria-label="Devices failed in deployments">
          <Text size="sm" c="dimmed">
            Devices failed in deployments
          </Text>
          <Text fz={32} fw={700} c={s.failedDevices ? "red" : undefined}>
            {s.failedDevices.toLocaleString()}
          </Text>
          <Text size="xs" c="dimmed">
            {s.pendingDevices.toLocaleString()} still under way
          </Text>
        </Card>
      </SimpleGrid>
      {failing.length > 0 && (
        <Table aria-label="Deployments with failed devices">
          <Table.Tbody>
            {failing.map((d) => (
              <Table.Tr key={d.id}>
                <Table.Td>
                  <RouterAnchor to="/deployments/$deploymentId" params={{ deploymentId: d.id }}>
                    {d.name}
                  </RouterAnchor>
                </Table.Td>
                <Table.Td>
                  <Text size="sm" c="red">
                    {d.counts.failed.toLocaleString()} of {d.counts.total.toLocaleString()} devices failed
                  </Text>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Stack>
  );
}

function FailedJobs() {
  const jobs = useFailedJobs();
  if (jobs.isPending) return <Loading label="Reading jobs…" />;
  if (jobs.isError) return <ErrorState error={jobs.error} onRetry={() => jobs.refetch()} />;
  const { failures, total } = jobs.data;
  if (failures.length === 0) {
    return (
      <Text size="sm" c="dimmed">
        No job has a failed run.
      </Text>
    );
  }
  return (
    <Stack gap="xs">
      <Table aria-label="Recent failed jobs">
        <Table.Tbody>
          {failures.map((f) => (
            <Table.Tr key={f.id}>
              <Table.Td>
                <RouterAnchor to="/jobs/$jobId" params={{ jobId: f.id }}>
                  {f.name}
                </RouterAnchor>
              </Table.Td>
              <Table.Td>
                <Text size="sm" c="red">
                  {f.failed.toLocaleString()} of {f.total.toLocaleString()} runs failed
                </Text>
              </Table.Td>
              <Table.Td>
                <Text size="sm" c="dimmed">
                  {formatRelative(f.createdAtMs)}
                </Text>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      {total > failures.length && (
        <Text size="xs" c="dimmed">
          The newest {failures.length} of {plural(total, "job")} with failed runs.
        </Text>
      )}
    </Stack>
  );
}

export function DashboardPage() {
  return (
    <Stack>
      <Title order={1} size="h2">
        Dashboard
      </Title>
      <Counters />
      <Distributions />
      <Card withBorder padding="lg">
        <Title order={2} size="h4" mb="md">
          Deployments
        </Title>
        <Deployments />
      </Card>
      <Card withBorder padding="lg">
        <Title order={2} size="h4" mb="md">
          Recent job failures
        </Title>
        <FailedJobs />
      </Card>
    </Stack>
  );
}
