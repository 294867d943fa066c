// The dashboard: how many devices there are, how many are online, and which operating systems
// they run. Counters link to the device list filtered the same way.
import { Card, Group, Progress, SimpleGrid, Stack, Text, Title } from "@mantine/core";
import { Empty, ErrorState, Loading } from "../components/QueryState";
import { RouterAnchor } from "../components/links";
import { useDeviceCounts, useOsDistribution } from "../services/dashboard";

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
    </Stack>
  );
}
