// The device's performance snapshot from its last check-in: CPU, load (against its thread
// count), memory and swap with usage bars, uptime, and every mount's usage, fullest first.
// A device that has sent no snapshot, and a snapshot without any measurement (the probe
// failed), each say so. Mount points and file systems come from the agent: rendered as text.
import { Alert, Badge, Card, Group, Progress, SimpleGrid, Stack, Table, Text, Title } from "@mantine/core";
import { Empty } from "../../components/QueryState";
import { formatBytes, formatDateTime, formatDuration, formatRelative } from "../../lib/format";
import type { DeviceDetail } from "../../services/devices";

type Snapshot = NonNullable<DeviceDetail["performance"]>;

/** Usage colour: calm below 75 %, a warning to 90 %, red above. */
export function usageColor(percent: number): string {
  return percent >= 90 ? "red" : percent >= 75 ? "orange" : "blue";
}

function pct(used: number | null | undefined, total: number | null | undefined): number | null {
  return used === null || used === undefined || !total ? null : Math.min(100, (used / total) * 100);
}

function Meter({ label, percent, detail }: { label: string; percent: number | null; detail: string }) {
  return (
    <Card withBorder component="section" aria-label={label}>
      <Group justify="space-between" mb={6}>
        <Title order={3} size="h5">
          {label}
        </Title>
        <Text size="lg" fw={600}>
          {percent === null ? "—" : `${Math.round(percent)} %`}
        </Text>
      </Group>
      <Progress value={percent ?? 0} color={usageColor(percent ?? 0)} aria-label={`${label} usage`} />
      <Text size="xs" c="dimmed" mt={6}>
        {detail}
      </Text>
    </Card>
  );
}

function hasMeasurement(p: Snapshot): boolean {
  return (
    [p.cpu_percent, p.load_1, p.load_5, p.load_15, p.memory_total_bytes, p.memory_used_bytes, p.swap_total_bytes, p.uptime_seconds].some(
      (v) => v !== null && v !== undefined,
    ) || (p.mounts ?? []).length > 0
  );
}

export function PerformanceTab({ device: d }: { device: DeviceDetail }) {
  const p = d.performance;
  if (!p) return <Empty title="No performance data yet">The agent sends a snapshot with each check-in; none has arrived from this device.</Empty>;
  if (!hasMeasurement(p)) {
    return (
      <Alert color="orange" title="No measurements" role="alert">
        The last check-in carried a performance snapshot without any value: the agent could not read this device's counters.
      </Alert>
    );
  }
  const threads = d.inventory?.hardware?.cpu?.threads ?? null;
  const loads = [p.load_1, p.load_5, p.load_15];
  const mounts = [...(p.mounts ?? [])].sort((a, b) => (pct(b.used_bytes, b.total_bytes) ?? -1) - (pct(a.used_bytes, a.total_bytes) ?? -1));
  const swapPct = pct(p.swap_used_bytes, p.swap_total_bytes);
  return (
    <Stack>
      <Text size="sm" c="dimmed">
        As of the last check-in, {formatRelative(d.last_seen_at_ms)} ({formatDateTime(d.last_seen_at_ms)}).
      </Text>
      <SimpleGrid cols={{ base: 1, sm: 2, lg: 4 }}>
        <Meter
          label="CPU"
          percent={p.cpu_percent ?? null}
          detail={`Busy over the sampling interval${threads ? ` · ${threads} thread${threads === 1 ? "" : "s"}` : ""}`}
        />
        <Meter
          label="Memory"
          percent={pct(p.memory_used_bytes, p.memory_total_bytes)}
          detail={`${formatBytes(p.memory_used_bytes)} of ${formatBytes(p.memory_total_bytes)} in use`}
        />
        <Meter
          label="Swap"
          percent={swapPct}
          detail={p.swap_total_bytes === 0 ? "No swap configured" : `${formatBytes(p.swap_used_bytes)} of ${formatBytes(p.swap_total_bytes)} in use`}
        />
        <Card withBorder component="section" aria-label="Load and uptime">
          <Title order={3} size="h5" mb={6}>
            Load and uptime
          </Title>
          <Text size="sm">
            Load {loads.map((l) => (l === null || l === undefined ? "—" : l.toFixed(2))).join(" / ")}{" "}
            <Text span size="xs" c="dimmed">
              (1 / 5 / 15 min)
            </Text>
          </Text>
          {threads && p.load_5 !== null && p.load_5 !== undefined && p.load_5 > threads && (
            <Group gap={6} mt={4} wrap="nowrap">
              <Badge color="orange" variant="light">
                overloaded
              </Badge>
              <Text size="xs" c="dimmed">
                more runnable tasks than threads
              </Text>
            </Group>
          )}
          <Text size="sm" mt={4}>
            Up {formatDuration(p.uptime_seconds)}
          </Text>
        </Card>
      </SimpleGrid>
      <Card withBorder component="section" aria-label="Mounts">
        <Title order={3} size="h5" mb="sm">
          Mounts ({mounts.length})
        </Title>
        {mounts.length === 0 ? (
          <Text size="sm" c="dimmed">
            No mounts reported.
          </Text>
        ) : (
          <Table aria-label="Mount usage">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Mount point</Table.Th>
                <Table.Th>Device</Table.Th>
                <Table.Th>File system</Table.Th>
                <Table.Th w={220}>Used</Table.Th>
                <Table.Th>Free</Table.Th>
                <Table.Th>Size</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {mounts.map((m, i) => {
                const used = pct(m.used_bytes, m.total_bytes);
                return (
                  <Table.Tr key={`${m.mount_point}-${i}`}>
                    <Table.Td ff="monospace">{m.mount_point}</Table.Td>
                    <Table.Td ff="monospace">{m.device ?? "—"}</Table.Td>
                    <Table.Td>{m.filesystem ?? "—"}</Table.Td>
                    <Table.Td>
                      <Group gap={6} wrap="nowrap">
                        <Progress value={used ?? 0} color={usageColor(used ?? 0)} w={120} aria-label={`${m.mount_point} usage`} />
                        <Text size="sm">{used === null ? "—" : `${Math.round(used)} %`}</Text>
                      </Group>
                    </Table.Td>
                    <Table.Td>{formatBytes(Math.max(0, m.total_bytes - m.used_bytes))}</Table.Td>
                    <Table.Td>{formatBytes(m.total_bytes)}</Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        )}
      </Card>
    </Stack>
  );
}
