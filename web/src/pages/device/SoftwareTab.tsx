// Installed software of a device, searchable by name, version, source or publisher. The list
// is already on the page (part of the inventory), so search and paging happen here.
import { Group, Pagination, Stack, Table, Text, TextInput } from "@mantine/core";
import { useDeferredValue, useMemo, useState } from "react";
import { Empty } from "../../components/QueryState";
import { formatDateTime } from "../../lib/format";
import type { DeviceDetail } from "../../services/devices";

const PAGE = 100;

type Package = NonNullable<NonNullable<DeviceDetail["inventory"]>["software"]>[number];

export function filterSoftware(list: Package[], text: string): Package[] {
  const needle = text.trim().toLowerCase();
  const sorted = [...list].sort((a, b) => a.name.localeCompare(b.name) || a.source.localeCompare(b.source));
  if (!needle) return sorted;
  return sorted.filter((p) =>
    [p.name, p.version, p.source, p.publisher ?? ""].some((f) => f.toLowerCase().includes(needle)),
  );
}

export function SoftwareTab({ device: d }: { device: DeviceDetail }) {
  const [text, setText] = useState("");
  const [page, setPage] = useState(1);
  const deferred = useDeferredValue(text);
  const all = d.inventory?.software;
  const matches = useMemo(() => filterSoftware(all ?? [], deferred), [all, deferred]);

  if (!d.inventory) return <Empty title="No inventory yet">The agent has not reported an inventory for this device.</Empty>;
  if (!all) return <Empty title="No software information">The software collector reported nothing.</Empty>;

  const pages = Math.max(1, Math.ceil(matches.length / PAGE));
  const current = Math.min(page, pages);
  const shown = matches.slice((current - 1) * PAGE, current * PAGE);
  return (
    <Stack>
      <Group justify="space-between" align="flex-end">
        <TextInput
          label="Search software"
          placeholder="name, version, source or publisher"
          value={text}
          onChange={(e) => {
            setText(e.currentTarget.value);
            setPage(1);
          }}
          w={320}
        />
        <Text size="sm" c="dimmed" aria-live="polite">
          {matches.length === all.length
            ? `${all.length.toLocaleString()} package${all.length === 1 ? "" : "s"}`
            : `${matches.length.toLocaleString()} of ${all.length.toLocaleString()} package${all.length === 1 ? "" : "s"}`}
        </Text>
      </Group>
      {shown.length === 0 ? (
        <Empty title={all.length === 0 ? "No software installed" : "No package matches"} />
      ) : (
        <Table striped aria-label="Software">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Version</Table.Th>
              <Table.Th>Architecture</Table.Th>
              <Table.Th>Source</Table.Th>
              <Table.Th>Publisher</Table.Th>
              <Table.Th>Installed</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {shown.map((p) => (
              <Table.Tr key={`${p.source}/${p.name}/${p.architecture ?? ""}/${p.version}`}>
                <Table.Td>{p.name}</Table.Td>
                <Table.Td>{p.version}</Table.Td>
                <Table.Td>{p.architecture ?? "—"}</Table.Td>
                <Table.Td>{p.source}</Table.Td>
                <Table.Td>{p.publisher ?? "—"}</Table.Td>
                <Table.Td>{p.install_date ? formatDateTime(p.install_date * 1000) : "—"}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {pages > 1 && <Pagination total={pages} value={current} onChange={setPage} />}
    </Stack>
  );
}
