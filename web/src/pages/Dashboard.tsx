// The dashboard: how many devices there are, how many are online, which operating systems they
// run, which deployments are under way and what failed recently. Counters link to the lists
// filtered the same way.
import { Card, Group, Progress, SimpleGrid, Stack, Table, Text, Title } from "@mantine/core";
import { Empty, ErrorState, Loading } from "../components/QueryState";
import { RouterAnchor } from "../components/links";
import { formatRelative } from "../lib/format";
import { plural } from "../lib/selection";
import { recentJobFailures, useDeviceCounts, useOsDistribution } from "../services/dashboard";
import { summarizeDeployments, useDeployments } from "../services/deployments";
import { useJobs } from "../services/jobs";

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
  const counts = useDeviceCounts();
  if (counts.isPending) return <Loading label="Counting devices…" />;
  if (counts.isError) return <ErrorState error={counts.error} onRetry={() => counts.refetch()} />;
  const c = counts.data;
  return (
    <SimpleGrid cols={3}>
      <Counter label="Devices" value={c.total} />
      <Counter label="Online" value={c.online} status="online" />
      <Counter label="Offline" value={c.offline} status="offline" />
    </SimpleGrid>
  );
}

function OsDistribution() {
  const os = useOsDistribution();
  if (os.isPending) return <Loading label="Reading operating systems…" />;
  if (os.isError) return <ErrorState error={os.error} onRetry={() => os.refetch()} />;
  const { shares, counted, total } = os.data;
  if (counted === 0) {
    return (
      <Empty title="No devices yet">
        Create an <RouterAnchor to="/enrollment">enrollment token</RouterAnchor> and run its install command on a
        machine.
      </Empty>
    );
  }
  return (
    <Stack gap="sm">
      {shares.map((s) => (
        <div key={s.label}>
          <Group justify="space-between" gap="xs">
            <Text size="sm">{s.label}</Text>
            <Text size="sm" c="dimmed">
              {s.count.toLocaleString()} ({Math.round((s.count / counted) * 100)} %)
            </Text>
          </Group>
          <Progress value={(s.count / counted) * 100} aria-label={`${s.label}: ${s.count} devices`} />
        </div>
      ))}
      {counted < total && (
        <Text size="xs" c="dimmed">
          Counted over the first {counted.toLocaleString()} of {total.toLocaleString()} devices.
        </Text>
      )}
    </Stack>
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
  const jobs = useJobs(1);
  if (jobs.isPending) return <Loading label="Reading jobs…" />;
  if (jobs.isError) return <ErrorState error={jobs.error} onRetry={() => jobs.refetch()} />;
  const failures = recentJobFailures(jobs.data.items);
  if (jobs.data.items.length === 0) {
    return (
      <Text size="sm" c="dimmed">
        No jobs yet.
      </Text>
    );
  }
  if (failures.length === 0) {
    return (
      <Text size="sm" c="dimmed">
        No failed runs among the {plural(jobs.data.items.length, "newest job")}.
      </Text>
    );
  }
  return (
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
  );
}

export function DashboardPage() {
  return (
    <Stack>
      <Title order={1} size="h2">
        Dashboard
      </Title>
      <Counters />
      <Card withBorder padding="lg">
        <Title order={2} size="h4" mb="md">
          Operating systems
        </Title>
        <OsDistribution />
      </Card>
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
