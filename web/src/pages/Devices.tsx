// The device list: server-side search, filters (status, group, tag, OS, hardware model, custom
// field), sorting and paging, all kept in the URL so the dashboard can link to a filtered list;
// a column chooser remembered in this browser; refreshed by the live event stream (presence)
// and every few seconds. Rows can be chosen across pages for bulk actions.
import {
  Badge,
  Button,
  Checkbox,
  Group,
  Menu,
  Pagination,
  Paper,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
  UnstyledButton,
} from "@mantine/core";
import { useDebouncedCallback, useLocalStorage } from "@mantine/hooks";
import { getRouteApi } from "@tanstack/react-router";
import { useEffect, useState } from "react";
import { Empty, ErrorState, Loading } from "../components/QueryState";
import { RouterAnchor } from "../components/links";
import { formatDateTime, formatRelative } from "../lib/format";
import { EMPTY_SELECTION, pageState, type Selection, toggle, togglePage } from "../lib/selection";
import {
  buildDeviceQuery,
  DEFAULT_PAGE_SIZE,
  type DeviceListSearch,
  type DeviceSummary,
  hasDeviceFilters,
  PAGE_SIZES,
  type SortKey,
  useDevices,
  useDeviceSummary,
} from "../services/devices";
import { useGroups } from "../services/groups";
import { FieldFilter, valueOptions } from "./devices/filters";
import { osLabel } from "../services/dashboard";
import { BulkActions } from "./devices/BulkActions";

const route = getRouteApi("/app/devices");

interface Column {
  id: string;
  label: string;
  sort?: SortKey;
  render: (d: DeviceSummary) => React.ReactNode;
}

export function StatusBadge({ online }: { online: boolean }) {
  return (
    <Badge color={online ? "green" : "gray"} variant="light">
      {online ? "online" : "offline"}
    </Badge>
  );
}

export const COLUMNS: Column[] = [
  {
    id: "hostname",
    label: "Hostname",
    sort: "hostname",
    render: (d) => (
      <RouterAnchor to="/devices/$deviceId" params={{ deviceId: d.id }} search={{}}>
        {d.hostname}
      </RouterAnchor>
    ),
  },
  { id: "status", label: "Status", render: (d) => <StatusBadge online={d.online} /> },
  { id: "os", label: "Operating system", render: (d) => osLabel(d) },
  { id: "agent", label: "Agent", render: (d) => d.agent_version ?? "—" },
  {
    id: "last_seen",
    label: "Last seen",
    sort: "last_seen",
    render: (d) => <span title={formatDateTime(d.last_seen_at_ms)}>{formatRelative(d.last_seen_at_ms)}</span>,
  },
  { id: "enrolled", label: "Enrolled", sort: "enrolled", render: (d) => formatDateTime(d.enrolled_at_ms) },
  {
    id: "tags",
    label: "Tags",
    render: (d) => (
      <Group gap={4}>
        {d.tags.map((t) => (
          <Badge key={t} variant="outline" size="sm" tt="none">
            {t}
          </Badge>
        ))}
      </Group>
    ),
  },
];

const DEFAULT_COLUMNS = ["hostname", "status", "os", "agent", "last_seen", "tags"];

export function DevicesPage() {
  const search = route.useSearch();
  const navigate = route.useNavigate();
  const query = buildDeviceQuery(search);
  const devices = useDevices(query);
  const groups = useGroups();
  const summary = useDeviceSummary(60_000);
  const [columns, setColumns] = useLocalStorage<string[]>({
    key: "capstan.devices.columns",
    defaultValue: DEFAULT_COLUMNS,
  });
  const shown = COLUMNS.filter((c) => c.id === "hostname" || columns.includes(c.id));

  // Filters change the result set, so they go back to page 1.
  const update = (patch: Partial<DeviceListSearch>, keepPage = false) =>
    navigate({
      search: (prev: DeviceListSearch) => {
        const next: DeviceListSearch = { ...prev, ...patch };
        if (!keepPage) delete next.page;
        for (const k of Object.keys(next) as (keyof DeviceListSearch)[]) {
          if (next[k] === undefined || next[k] === "" || next[k] === false) delete next[k];
        }
        return next;
      },
      replace: true,
    });

  const [selection, setSelection] = useState<Selection>(EMPTY_SELECTION);
  const rows = devices.data?.items ?? [];
  const headerState = pageState(selection, rows);

  const [text, setText] = useState(search.q ?? "");
  const [tag, setTag] = useState(search.tag ?? "");
  useEffect(() => setText(search.q ?? ""), [search.q]);
  useEffect(() => setTag(search.tag ?? ""), [search.tag]);
  const pushText = useDebouncedCallback((q: string) => update({ q: q || undefined }), 300);
  const pushTag = useDebouncedCallback((t: string) => update({ tag: t || undefined }), 500);

  const sortBy = (key: SortKey) => {
    const current = search.sort ?? "hostname";
    update({ sort: key, desc: current === key ? !search.desc : false }, true);
  };

  const size = search.size ?? DEFAULT_PAGE_SIZE;
  const page = search.page ?? 1;
  const total = devices.data?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / size));

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={1} size="h2">
          Devices
        </Title>
        {devices.data && (
          <Text c="dimmed" size="sm" aria-live="polite">
            {total.toLocaleString()} device{total === 1 ? "" : "s"}
          </Text>
        )}
      </Group>
      <Paper withBorder p="sm">
        <Group align="flex-end" gap="sm">
          <TextInput
            label="Search hostname"
            placeholder="part of a hostname"
            value={text}
            onChange={(e) => {
              setText(e.currentTarget.value);
              pushText(e.currentTarget.value);
            }}
            w={240}
          />
          <Select
            label="Status"
            data={[
              { value: "online", label: "Online" },
              { value: "offline", label: "Offline" },
            ]}
            placeholder="Any"
            clearable
            value={search.status ?? null}
            onChange={(v) => update({ status: (v as "online" | "offline" | null) ?? undefined })}
            w={140}
          />
          <Select
            label="Group"
            placeholder={groups.isError ? "Groups unavailable" : "Any"}
            data={(groups.data ?? []).map((g) => ({ value: g.id, label: g.name }))}
            searchable
            clearable
            disabled={groups.isError}
            value={search.group ?? null}
            onChange={(v) => update({ group: v ?? undefined })}
            w={200}
          />
          <TextInput
            label="Tag"
            placeholder="exact tag"
            value={tag}
            onChange={(e) => {
              setTag(e.currentTarget.value);
              pushTag(e.currentTarget.value);
            }}
            w={160}
          />
          <Select
            label="Operating system"
            placeholder={summary.isError ? "Unavailable" : "Any"}
            data={valueOptions(summary.data?.os, search.os)}
            searchable
            clearable
            value={search.os ?? null}
            onChange={(v) => update({ os: v ?? undefined })}
            w={220}
          />
          <Select
            label="Hardware model"
            placeholder={summary.isError ? "Unavailable" : "Any"}
            data={valueOptions(summary.data?.model, search.model)}
            searchable
            clearable
            value={search.model ?? null}
            onChange={(v) => update({ model: v ?? undefined })}
            w={220}
          />
          <FieldFilter value={search.field} onChange={(field) => update({ field })} />
          <Menu closeOnItemClick={false} position="bottom-end">
            <Menu.Target>
              <Button variant="default">Columns</Button>
            </Menu.Target>
            <Menu.Dropdown>
              {COLUMNS.filter((c) => c.id !== "hostname").map((c) => (
                <Menu.Item key={c.id} component="div">
                  <Checkbox
                    label={c.label}
                    checked={columns.includes(c.id)}
                    onChange={(e) =>
                      setColumns(
                        e.currentTarget.checked ? [...columns, c.id] : columns.filter((id) => id !== c.id),
                      )
                    }
                  />
                </Menu.Item>
              ))}
            </Menu.Dropdown>
          </Menu>
          {hasDeviceFilters(search) && (
            <Button variant="subtle" onClick={() => navigate({ search: {}, replace: true })}>
              Clear filters
            </Button>
          )}
        </Group>
      </Paper>

      {selection.size > 0 && <BulkActions selection={selection} onClear={() => setSelection(EMPTY_SELECTION)} />}

      {devices.isPending ? (
        <Loading label="Loading devices…" />
      ) : devices.isError ? (
        <ErrorState error={devices.error} onRetry={() => devices.refetch()} />
      ) : devices.data.items.length === 0 ? (
        hasDeviceFilters(search) ? (
          <Empty title="No device matches these filters" />
        ) : page > 1 ? (
          <Empty title="This page is empty">
            <RouterAnchor to="/devices" search={{ ...search, page: undefined }}>
              Go to the first page
            </RouterAnchor>
          </Empty>
        ) : (
          <Empty title="No devices enrolled yet">
            Create an <RouterAnchor to="/enrollment">enrollment token</RouterAnchor> and run its install command.
          </Empty>
        )
      ) : (
        <Table striped highlightOnHover verticalSpacing="xs" aria-label="Devices" aria-busy={devices.isFetching}>
          <Table.Thead>
            <Table.Tr>
              <Table.Th w={36}>
                <Checkbox
                  aria-label={headerState === "all" ? "Clear this page's selection" : "Select every device on this page"}
                  checked={headerState === "all"}
                  indeterminate={headerState === "some"}
                  onChange={() => setSelection((sel) => togglePage(sel, rows))}
                />
              </Table.Th>
              {shown.map((c) => {
                const active = (search.sort ?? "hostname") === c.sort;
                return (
                  <Table.Th
                    key={c.id}
                    aria-sort={c.sort && active ? (search.desc ? "descending" : "ascending") : undefined}
                  >
                    {c.sort ? (
                      <UnstyledButton onClick={() => c.sort && sortBy(c.sort)} fw={700} fz="sm">
                        {c.label} {active ? (search.desc ? "▼" : "▲") : ""}
                      </UnstyledButton>
                    ) : (
                      c.label
                    )}
                  </Table.Th>
                );
              })}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {devices.data.items.map((d) => (
              <Table.Tr key={d.id} data-device-id={d.id} bg={selection.has(d.id) ? "var(--mantine-primary-color-light)" : undefined}>
                <Table.Td>
                  <Checkbox
                    aria-label={`Select ${d.hostname}`}
                    checked={selection.has(d.id)}
                    onChange={() => setSelection((sel) => toggle(sel, d))}
                  />
                </Table.Td>
                {shown.map((c) => (
                  <Table.Td key={c.id}>{c.render(d)}</Table.Td>
                ))}
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}

      <Group justify="space-between">
        <Select
          label="Rows per page"
          data={PAGE_SIZES.map(String)}
          value={String(size)}
          onChange={(v) => update({ size: v ? Number(v) : undefined })}
          w={130}
          allowDeselect={false}
        />
        {pages > 1 && (
          <Pagination
            total={pages}
            value={Math.min(page, pages)}
            onChange={(p) => update({ page: p > 1 ? p : undefined }, true)}
            getControlProps={(control) => ({ "aria-label": `${control} page` })}
          />
        )}
      </Group>
    </Stack>
  );
}
