// Software: the package catalogue (searchable), the upload, and the depot sources with their
// replication status.
import { Badge, Button, Group, Modal, Pagination, Stack, Table, Tabs, Text, TextInput, Title } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { getRouteApi, useNavigate } from "@tanstack/react-router";
import { useState } from "react";
import { Empty, ErrorState, Loading } from "../../components/QueryState";
import { RouterAnchor } from "../../components/links";
import { formatRelative } from "../../lib/format";
import { PACKAGES_PAGE, usePackages, useSources, useSourceStatus } from "../../services/packages";
import { UploadPanel } from "./Upload";

const route = getRouteApi("/app/software");

function Catalogue() {
  const [search, setSearch] = useState("");
  const [debounced] = useDebouncedValue(search.trim(), 300);
  const [page, setPage] = useState(1);
  const packages = usePackages(debounced, page);
  const pages = Math.max(1, Math.ceil((packages.data?.total ?? 0) / PACKAGES_PAGE));
  return (
    <Stack>
      <TextInput
        label="Search packages"
        placeholder="name or display name"
        value={search}
        onChange={(e) => {
          setSearch(e.currentTarget.value);
          setPage(1);
        }}
        w={280}
      />
      {packages.isPending ? (
        <Loading label="Loading the catalogue…" />
      ) : packages.isError ? (
        <ErrorState error={packages.error} onRetry={() => packages.refetch()} />
      ) : packages.data.items.length === 0 ? (
        <Empty title={debounced ? "No package matches" : "The catalogue is empty"}>{debounced ? null : "Upload a package file to add one."}</Empty>
      ) : (
        <Table aria-label="Packages" highlightOnHover>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Package</Table.Th>
              <Table.Th>Name</Table.Th>
              <Table.Th>Publisher</Table.Th>
              <Table.Th>Latest version</Table.Th>
              <Table.Th ta="right">Versions</Table.Th>
              <Table.Th>Updated</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {packages.data.items.map((p) => (
              <Table.Tr key={p.id}>
                <Table.Td>
                  <RouterAnchor to="/software/$package" params={{ package: p.name }}>
                    {p.display_name}
                  </RouterAnchor>
                </Table.Td>
                <Table.Td ff="monospace">{p.name}</Table.Td>
                <Table.Td>{p.publisher ?? "—"}</Table.Td>
                <Table.Td>{p.latest_version ?? "—"}</Table.Td>
                <Table.Td ta="right">{p.version_count}</Table.Td>
                <Table.Td>{formatRelative(p.updated_at_ms)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {pages > 1 && <Pagination total={pages} value={page} onChange={setPage} />}
    </Stack>
  );
}

function SourceStatusView({ id }: { id: string }) {
  const status = useSourceStatus(id);
  if (status.isPending) return <Loading label="Reading the source's status…" />;
  if (status.isError) return <ErrorState error={status.error} onRetry={() => status.refetch()} />;
  const s = status.data;
  return (
    <Stack gap="xs">
      <Group gap="xs">
        <Badge color="green" variant="light">
          {s.synced} synced
        </Badge>
        <Badge color="yellow" variant="light">
          {s.pending} pending
        </Badge>
        <Badge color="red" variant="light">
          {s.failed} failed
        </Badge>
        <Badge color="gray" variant="light">
          {s.lacking} lacking
        </Badge>
      </Group>
      {s.artifacts.length > 0 && (
        <Table aria-label={`Artifacts on ${s.source.name}`}>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Package</Table.Th>
              <Table.Th>Version</Table.Th>
              <Table.Th>File</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>Error</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {s.artifacts.map((a) => (
              <Table.Tr key={`${a.sha256}-${a.version}`}>
                <Table.Td>{a.package}</Table.Td>
                <Table.Td>{a.version}</Table.Td>
                <Table.Td ff="monospace">{a.file_name}</Table.Td>
                <Table.Td>
                  <Badge variant="light" color={a.state === "synced" ? "green" : a.state === "failed" || a.state === "missing" ? "red" : "gray"}>
                    {a.state}
                  </Badge>
                </Table.Td>
                <Table.Td>{a.error ?? ""}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Stack>
  );
}

function Sources() {
  const sources = useSources();
  const [open, setOpen] = useState<string | null>(null);
  if (sources.isPending) return <Loading label="Loading depot sources…" />;
  if (sources.isError) return <ErrorState error={sources.error} onRetry={() => sources.refetch()} />;
  if (sources.data.length === 0) {
    return (
      <Empty title="No depot sources">
        Devices download from this server. Sources (HTTP mirrors, file shares, S3) are added with <code>capstan depot sources add</code>.
      </Empty>
    );
  }
  return (
    <Stack>
      <Table aria-label="Depot sources">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Priority</Table.Th>
            <Table.Th>Name</Table.Th>
            <Table.Th>Kind</Table.Th>
            <Table.Th>Location</Table.Th>
            <Table.Th>Groups</Table.Th>
            <Table.Th />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {sources.data.map((s) => (
            <Table.Tr key={s.id}>
              <Table.Td>{s.priority}</Table.Td>
              <Table.Td>
                {s.name}
                {s.exclusive && (
                  <Badge ml={6} size="xs" color="orange">
                    exclusive
                  </Badge>
                )}
              </Table.Td>
              <Table.Td>{s.kind}</Table.Td>
              <Table.Td ff="monospace">{s.location}</Table.Td>
              <Table.Td>{s.groups.map((g) => g.name).join(", ") || "all devices"}</Table.Td>
              <Table.Td>
                <Button size="compact-sm" variant="subtle" onClick={() => setOpen(open === s.id ? null : s.id)}>
                  {open === s.id ? "Hide status" : "Status"}
                </Button>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      {open && <SourceStatusView id={open} />}
    </Stack>
  );
}

export function SoftwarePage() {
  const { tab } = route.useSearch();
  const navigate = useNavigate();
  const [uploading, setUploading] = useState(false);
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={1} size="h2">
          Software
        </Title>
        <Button onClick={() => setUploading(true)}>Upload package</Button>
      </Group>
      <Tabs
        value={tab ?? "catalogue"}
        onChange={(v) => void navigate({ to: "/software", search: v === "sources" ? { tab: "sources" } : {}, replace: true })}
        keepMounted={false}
      >
        <Tabs.List>
          <Tabs.Tab value="catalogue">Catalogue</Tabs.Tab>
          <Tabs.Tab value="sources">Depot sources</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="catalogue" pt="md">
          <Catalogue />
        </Tabs.Panel>
        <Tabs.Panel value="sources" pt="md">
          <Sources />
        </Tabs.Panel>
      </Tabs>
      <Modal opened={uploading} onClose={() => setUploading(false)} title="Upload a package" size="xl">
        <UploadPanel
          onCreated={(v) => {
            setUploading(false);
            void navigate({ to: "/software/$package", params: { package: v.package } });
          }}
        />
      </Modal>
      <Text size="xs" c="dimmed">
        Large files upload straight into the depot; nothing is stored for a file that is not a package.
      </Text>
    </Stack>
  );
}
