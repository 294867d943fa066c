// The device's security posture from its latest inventory: pending reboot, firewall, SSH and
// remote-desktop servers, local administrators and encrypted volumes, as badges and tables.
// A device without an inventory, a failed security collector and a section the agent did not
// report each say so. Every value comes from the agent and is rendered as text.
import { Alert, Badge, Card, Group, SimpleGrid, Stack, Table, Text, Title } from "@mantine/core";
import { Empty } from "../../components/QueryState";
import { formatDateTime } from "../../lib/format";
import type { DeviceDetail } from "../../services/devices";
import { Facts } from "./Facts";

type Inventory = NonNullable<DeviceDetail["inventory"]>;
type Security = NonNullable<Inventory["security"]>;

function Section({ title, children }: { title: string; children: React.ReactNode }) {
  return (
    <Card withBorder component="section" aria-label={title}>
      <Title order={3} size="h5" mb="sm">
        {title}
      </Title>
      {children}
    </Card>
  );
}

/** A yes/no/unknown fact as a badge; `good` says which answer is the safe one, if any. */
export function FlagBadge({ value, yes = "yes", no = "no", good }: { value: boolean | null | undefined; yes?: string; no?: string; good?: boolean }) {
  if (value === null || value === undefined) {
    return (
      <Badge color="gray" variant="light">
        unknown
      </Badge>
    );
  }
  const color = good === undefined ? "blue" : value === good ? "green" : "red";
  return (
    <Badge color={color} variant="light">
      {value ? yes : no}
    </Badge>
  );
}

/** The failure of a named collector, if it failed in this inventory. */
export function collectorFailure(inv: Inventory, name: string): string | null {
  const c = (inv.collectors ?? []).find((x) => x.name === name);
  return c && !c.ok ? (c.error ?? "failed without a message") : null;
}

export function CollectorFailed({ name, error }: { name: string; error: string }) {
  return (
    <Alert color="orange" title={`The ${name} collector failed`} role="alert">
      <Text size="sm">{error}</Text>
      <Text size="xs" c="dimmed" mt={4}>
        What it would have reported is missing from this inventory; the agent tries again at its next collection.
      </Text>
    </Alert>
  );
}

const ROOT_LOGIN_RISK: Record<string, string> = { yes: "red", "prohibit-password": "yellow", "without-password": "yellow", "forced-commands-only": "yellow", no: "green" };

function Ssh({ s }: { s: Security }) {
  const ssh = s.ssh;
  if (!ssh) return <Text size="sm" c="dimmed">Not reported.</Text>;
  if (!ssh.installed) {
    return (
      <Badge color="green" variant="light">
        not installed
      </Badge>
    );
  }
  return (
    <Facts
      label="SSH server"
      facts={[
        ["Enabled at boot", <FlagBadge key="e" value={ssh.enabled} />],
        ["Running", <FlagBadge key="r" value={ssh.running} />],
        [
          "Root login",
          ssh.permit_root_login ? (
            <Badge key="p" variant="light" tt="none" color={ROOT_LOGIN_RISK[ssh.permit_root_login] ?? "gray"}>
              {ssh.permit_root_login}
            </Badge>
          ) : null,
        ],
        ["Password authentication", <FlagBadge key="pa" value={ssh.password_authentication} yes="allowed" no="off" good={false} />],
      ]}
    />
  );
}

function RemoteDesktop({ s }: { s: Security }) {
  const rd = s.remote_desktop;
  if (!rd) return <Text size="sm" c="dimmed">Not reported.</Text>;
  return (
    <Facts
      label="Remote desktop"
      facts={[
        ["Kind", rd.kind],
        ["Installed", <FlagBadge key="i" value={rd.installed} />],
        ["Enabled", <FlagBadge key="e" value={rd.enabled} />],
        ["Running", <FlagBadge key="r" value={rd.running} />],
      ]}
    />
  );
}

export function SecurityTab({ device: d }: { device: DeviceDetail }) {
  const inv = d.inventory;
  if (!inv) return <Empty title="No inventory yet">The agent has not reported an inventory for this device.</Empty>;
  const failure = collectorFailure(inv, "security");
  const s = inv.security;
  if (!s) {
    return failure ? (
      <CollectorFailed name="security" error={failure} />
    ) : (
      <Empty title="No security information">The agent reported no security section (an older agent, or a platform without the collector).</Empty>
    );
  }
  const fw = s.firewall;
  const admins = s.local_admins ?? [];
  const volumes = s.encrypted_volumes ?? [];
  const reasons = s.pending_reboot_reasons ?? [];
  return (
    <Stack>
      {failure && <CollectorFailed name="security" error={failure} />}
      <Text size="sm" c="dimmed">
        From the inventory collected {formatDateTime(inv.collected_at_ms)}.
      </Text>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Section title="Pending reboot">
          <Group gap="xs">
            <FlagBadge value={s.pending_reboot} yes="reboot pending" no="no reboot pending" good={false} />
          </Group>
          {reasons.length > 0 && (
            <Stack gap={2} mt="xs">
              {reasons.map((r, i) => (
                <Text key={i} size="sm" ff="monospace">
                  {r}
                </Text>
              ))}
            </Stack>
          )}
        </Section>
        <Section title="Firewall">
          {fw ? (
            <Facts
              label="Firewall"
              facts={[
                ["State", <FlagBadge key="s" value={fw.enabled} yes="enabled" no="disabled" good />],
                ["Backend", fw.backend],
                ["Rules", fw.rule_count],
                ["Detail", fw.detail],
              ]}
            />
          ) : (
            <Text size="sm" c="dimmed">
              No firewall found.
            </Text>
          )}
        </Section>
        <Section title="SSH server">
          <Ssh s={s} />
        </Section>
        <Section title="Remote desktop">
          <RemoteDesktop s={s} />
        </Section>
      </SimpleGrid>
      <Section title={`Local administrators (${admins.length})`}>
        {admins.length === 0 ? (
          <Text size="sm" c="dimmed">
            None reported.
          </Text>
        ) : (
          <Table aria-label="Local administrators">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Account</Table.Th>
                <Table.Th>Why it is an administrator</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {admins.map((a, i) => (
                <Table.Tr key={`${a.name}-${i}`}>
                  <Table.Td ff="monospace">{a.name}</Table.Td>
                  <Table.Td>{a.via}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Section>
      <Section title={`Encrypted volumes (${volumes.length})`}>
        {volumes.length === 0 ? (
          <Group gap="xs">
            <Badge color="orange" variant="light">
              none found
            </Badge>
            <Text size="sm" c="dimmed">
              No LUKS or BitLocker volume was seen on this device.
            </Text>
          </Group>
        ) : (
          <Table aria-label="Encrypted volumes">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Device</Table.Th>
                <Table.Th>Kind</Table.Th>
                <Table.Th>Mapped as</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {volumes.map((v, i) => (
                <Table.Tr key={`${v.device}-${i}`}>
                  <Table.Td ff="monospace">{v.device}</Table.Td>
                  <Table.Td>{v.kind}</Table.Td>
                  <Table.Td>{v.mapped_as ?? "—"}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Section>
    </Stack>
  );
}
