// The device tabs read straight from the latest inventory document: overview, hardware and
// network. A device that has not reported an inventory yet says so instead of showing dashes.
import { Badge, Card, SimpleGrid, Stack, Table, Text, Title } from "@mantine/core";
import { Empty } from "../../components/QueryState";
import { formatBytes, formatDateTime, formatDuration, formatRelative } from "../../lib/format";
import type { DeviceDetail } from "../../services/devices";
import { Facts, yesNo } from "./Facts";

function NoInventory() {
  return <Empty title="No inventory yet">The agent has not reported an inventory for this device.</Empty>;
}

function Section({ title, children }: { title: string; children: React.ReactNode }) {
  return (
    <Card withBorder>
      <Title order={3} size="h5" mb="sm">
        {title}
      </Title>
      {children}
    </Card>
  );
}

export function OverviewTab({ device: d }: { device: DeviceDetail }) {
  const inv = d.inventory;
  const perf = d.performance;
  const os = inv?.os;
  return (
    <Stack>
      <Section title="Device">
        <Facts
          label="Device"
          facts={[
            ["Hostname", d.hostname],
            ["Status", d.online ? "online" : "offline"],
            ["Last seen", `${formatRelative(d.last_seen_at_ms)} (${formatDateTime(d.last_seen_at_ms)})`],
            ["Enrolled", formatDateTime(d.enrolled_at_ms)],
            ["Agent version", d.agent_version],
            ["Identity source", d.identity_source],
            ["Device id", <Text key="id" ff="monospace" size="sm">{d.id}</Text>],
            ["Inventory updated", formatDateTime(d.inventory_updated_at_ms)],
          ]}
        />
      </Section>
      {os && (
        <Section title="Operating system">
          <Facts
            label="Operating system"
            facts={[
              ["Name", os.name ?? os.family],
              ["Version", os.version ?? os.version_id],
              ["Kernel", os.kernel],
              ["Architecture", os.architecture],
              ["FQDN", os.fqdn],
              ["Time zone", os.timezone],
              ["Booted", os.boot_time ? formatDateTime(os.boot_time * 1000) : null],
              ["Domain", os.domain ? `${os.domain.kind}${os.domain.name ? ` ${os.domain.name}` : ""}` : null],
            ]}
          />
        </Section>
      )}
      {inv?.virtualization && (
        <Section title="Virtualization">
          <Facts
            label="Virtualization"
            facts={[
              ["Kind", inv.virtualization.kind.replace("_", " ")],
              ["Technology", inv.virtualization.technology],
              ["Evidence", inv.virtualization.evidence],
            ]}
          />
        </Section>
      )}
      {perf && (
        <Section title="Performance (last check-in)">
          <Facts
            label="Performance"
            facts={[
              ["CPU", perf.cpu_percent === null || perf.cpu_percent === undefined ? null : `${perf.cpu_percent.toFixed(0)} %`],
              ["Load (1/5/15 min)", [perf.load_1, perf.load_5, perf.load_15].map((l) => l?.toFixed(2) ?? "—").join(" / ")],
              ["Memory", `${formatBytes(perf.memory_used_bytes)} of ${formatBytes(perf.memory_total_bytes)}`],
              ["Swap", `${formatBytes(perf.swap_used_bytes)} of ${formatBytes(perf.swap_total_bytes)}`],
              ["Uptime", formatDuration(perf.uptime_seconds)],
            ]}
          />
          {(perf.mounts ?? []).length > 0 && (
            <Table aria-label="Mounts" mt="sm">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Mount point</Table.Th>
                  <Table.Th>Filesystem</Table.Th>
                  <Table.Th>Used</Table.Th>
                  <Table.Th>Size</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {(perf.mounts ?? []).map((m) => (
                  <Table.Tr key={m.mount_point}>
                    <Table.Td>{m.mount_point}</Table.Td>
                    <Table.Td>{m.filesystem ?? "—"}</Table.Td>
                    <Table.Td>
                      {formatBytes(m.used_bytes)}
                      {m.total_bytes > 0 ? ` (${Math.round((m.used_bytes / m.total_bytes) * 100)} %)` : ""}
                    </Table.Td>
                    <Table.Td>{formatBytes(m.total_bytes)}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          )}
        </Section>
      )}
      {inv && (inv.collectors ?? []).some((c) => !c.ok) && (
        <Section title="Collector problems">
          <Stack gap={4}>
            {(inv.collectors ?? [])
              .filter((c) => !c.ok)
              .map((c) => (
                <Text key={c.name} size="sm">
                  <Badge color="orange" variant="light" mr="xs">
                    {c.name}
                  </Badge>
                  {c.error ?? "failed"}
                </Text>
              ))}
          </Stack>
        </Section>
      )}
    </Stack>
  );
}

export function HardwareTab({ device: d }: { device: DeviceDetail }) {
  const hw = d.inventory?.hardware;
  if (!d.inventory) return <NoInventory />;
  if (!hw) return <Empty title="No hardware information">The hardware collector reported nothing.</Empty>;
  return (
    <Stack>
      <SimpleGrid cols={2}>
        <Section title="System">
          <Facts
            label="System"
            facts={[
              ["Manufacturer", hw.system?.manufacturer],
              ["Model", hw.system?.product],
              ["Serial number", hw.system?.serial_number],
              ["Chassis", hw.system?.chassis],
              ["UUID", hw.system?.uuid],
              ["Memory", formatBytes(hw.memory_bytes)],
            ]}
          />
        </Section>
        <Section title="Processor">
          <Facts
            label="Processor"
            facts={[
              ["Model", hw.cpu?.model],
              ["Vendor", hw.cpu?.vendor],
              ["Sockets", hw.cpu?.sockets],
              ["Cores", hw.cpu?.cores],
              ["Threads", hw.cpu?.threads],
              ["Architecture", hw.cpu?.architecture],
            ]}
          />
        </Section>
      </SimpleGrid>
      <Section title="Firmware">
        <Facts
          label="Firmware"
          facts={[
            ["Vendor", hw.firmware?.vendor],
            ["Version", hw.firmware?.version],
            ["Date", hw.firmware?.date],
            ["Boot mode", hw.firmware?.boot_mode],
            ["Secure Boot", yesNo(hw.firmware?.secure_boot)],
          ]}
        />
      </Section>
      <Section title="Disks">
        {(hw.disks ?? []).length === 0 ? (
          <Text c="dimmed" size="sm">
            No disks reported.
          </Text>
        ) : (
          <Table aria-label="Disks">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Model</Table.Th>
                <Table.Th>Size</Table.Th>
                <Table.Th>Type</Table.Th>
                <Table.Th>Transport</Table.Th>
                <Table.Th>Serial</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {(hw.disks ?? []).map((disk) => (
                <Table.Tr key={disk.name}>
                  <Table.Td>{disk.name}</Table.Td>
                  <Table.Td>{disk.model ?? "—"}</Table.Td>
                  <Table.Td>{formatBytes(disk.size_bytes)}</Table.Td>
                  <Table.Td>{disk.rotational === null || disk.rotational === undefined ? "—" : disk.rotational ? "HDD" : "SSD"}</Table.Td>
                  <Table.Td>{disk.transport ?? "—"}</Table.Td>
                  <Table.Td>{disk.serial ?? "—"}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Section>
    </Stack>
  );
}

export function NetworkTab({ device: d }: { device: DeviceDetail }) {
  const net = d.inventory?.network;
  if (!d.inventory) return <NoInventory />;
  if (!net) return <Empty title="No network information">The network collector reported nothing.</Empty>;
  return (
    <Stack>
      <Section title="Routing and DNS">
        <Facts
          label="Routing and DNS"
          facts={[
            ["Default gateway (IPv4)", net.default_gateway_v4],
            ["Default gateway (IPv6)", net.default_gateway_v6],
            ["DNS servers", (net.dns_servers ?? []).join(", ")],
            ["DNS search domains", (net.dns_search ?? []).join(", ")],
          ]}
        />
      </Section>
      <Section title="Interfaces">
        {(net.interfaces ?? []).length === 0 ? (
          <Text c="dimmed" size="sm">
            No interfaces reported.
          </Text>
        ) : (
          <Table aria-label="Interfaces">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>State</Table.Th>
                <Table.Th>MAC</Table.Th>
                <Table.Th>IPv4</Table.Th>
                <Table.Th>IPv6</Table.Th>
                <Table.Th>MTU</Table.Th>
                <Table.Th>Speed</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {(net.interfaces ?? []).map((i) => (
                <Table.Tr key={i.name}>
                  <Table.Td>
                    {i.name}
                    {i.virtual_interface ? (
                      <Badge size="xs" variant="light" ml={6}>
                        virtual
                      </Badge>
                    ) : null}
                  </Table.Td>
                  <Table.Td>{i.up === null || i.up === undefined ? "—" : i.up ? "up" : "down"}</Table.Td>
                  <Table.Td ff="monospace">{i.mac ?? "—"}</Table.Td>
                  <Table.Td>{(i.ipv4 ?? []).join(", ") || "—"}</Table.Td>
                  <Table.Td>{(i.ipv6 ?? []).join(", ") || "—"}</Table.Td>
                  <Table.Td>{i.mtu ?? "—"}</Table.Td>
                  <Table.Td>{i.speed_mbps ? `${i.speed_mbps} Mbit/s` : "—"}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Section>
    </Stack>
  );
}
