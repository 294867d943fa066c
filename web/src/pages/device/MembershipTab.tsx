// What an operator attached to the device: its groups, tags and custom field values.
import { Badge, Card, Group, Stack, Table, Text, Title } from "@mantine/core";
import { formatValue } from "../../lib/format";
import type { DeviceDetail } from "../../services/devices";

export function MembershipTab({ device: d }: { device: DeviceDetail }) {
  const fields = Object.entries(d.custom_fields ?? {});
  const groups = d.groups ?? [];
  return (
    <Stack>
      <Card withBorder>
        <Title order={3} size="h5" mb="sm">
          Groups
        </Title>
        {groups.length === 0 ? (
          <Text c="dimmed" size="sm">
            Not a direct member of any group.
          </Text>
        ) : (
          <Table aria-label="Groups">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Group</Table.Th>
                <Table.Th>Membership</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {groups.map((g) => (
                <Table.Tr key={g.id}>
                  <Table.Td>{g.name}</Table.Td>
                  <Table.Td>
                    <Badge variant="light" color={g.source === "dynamic" ? "grape" : "blue"}>
                      {g.source}
                    </Badge>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Card>
      <Card withBorder>
        <Title order={3} size="h5" mb="sm">
          Tags
        </Title>
        {d.tags.length === 0 ? (
          <Text c="dimmed" size="sm">
            No tags.
          </Text>
        ) : (
          <Group gap="xs">
            {d.tags.map((t) => (
              <Badge key={t} variant="outline" tt="none">
                {t}
              </Badge>
            ))}
          </Group>
        )}
      </Card>
      <Card withBorder>
        <Title order={3} size="h5" mb="sm">
          Custom fields
        </Title>
        {fields.length === 0 ? (
          <Text c="dimmed" size="sm">
            No custom field has a value for this device.
          </Text>
        ) : (
          <Table aria-label="Custom fields">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Field</Table.Th>
                <Table.Th>Value</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {fields.map(([name, value]) => (
                <Table.Tr key={name}>
                  <Table.Td>{name}</Table.Td>
                  <Table.Td>{formatValue(value)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Card>
    </Stack>
  );
}
