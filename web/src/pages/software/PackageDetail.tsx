// One package: its versions, newest first, each with artifacts, install and uninstall
// commands, exit codes, requirements and the detection rule in words; edit a version in the
// version editor, add a package-manager version without an upload; delete with confirmation.
import { Accordion, Badge, Breadcrumbs, Button, Code, Group, Paper, Stack, Table, Text, Title } from "@mantine/core";
import { getRouteApi, useNavigate } from "@tanstack/react-router";
import { useState } from "react";
import { ApiError } from "../../api/client";
import { ConfirmDialog } from "../../components/Confirm";
import { Empty, ErrorState, Loading } from "../../components/QueryState";
import { RouterAnchor, RouterButton } from "../../components/links";
import { formatBytes, formatDateTime } from "../../lib/format";
import { joinCommand } from "../../lib/software";
import { useDeletePackage, useDeleteVersion, usePackage, useVersions, type VersionInfo } from "../../services/packages";
import { DetectionView } from "./DetectionView";
import { VersionEditor } from "./VersionEditor";

const route = getRouteApi("/app/software/$package");

function Version({ v, onDelete, onEdit }: { v: VersionInfo; onDelete: () => void; onEdit: () => void }) {
  const s = v.spec;
  const req = s.requirements;
  const facts: [string, React.ReactNode][] = [
    ["Installer", s.installer_type],
    ["Install command", s.install_command?.length ? <Code>{joinCommand(s.install_command)}</Code> : "default for the installer"],
    ["Uninstall command", s.uninstall_command?.length ? <Code>{joinCommand(s.uninstall_command)}</Code> : "default for the installer"],
    ["Success exit codes", s.success_exit_codes?.length ? s.success_exit_codes.join(", ") : "default (0)"],
    ["Reboot exit codes", [...(s.soft_reboot_exit_codes ?? []), ...(s.hard_reboot_exit_codes ?? [])].join(", ") || "default"],
    ["Timeout", `${s.timeout_secs ?? 3600} s`],
    [
      "Requirements",
      [
        req?.os_families?.length ? `OS: ${req.os_families.join(", ")}` : "",
        req?.min_os_version ? `OS version ≥ ${req.min_os_version}` : "",
        req?.min_free_disk_mb ? `${req.min_free_disk_mb} MiB free` : "",
      ]
        .filter(Boolean)
        .join(" · ") || "none",
    ],
    ["Dependencies", s.dependencies?.map((d) => `${d.package}${d.version ? ` ${d.version}` : ""}`).join(", ") || "none"],
  ];
  return (
    <Stack gap="sm">
      <Table withRowBorders={false} verticalSpacing={4} maw={900}>
        <Table.Tbody>
          {facts.map(([k, val]) => (
            <Table.Tr key={k}>
              <Table.Th w={200} c="dimmed" fw={500}>
                {k}
              </Table.Th>
              <Table.Td>{val}</Table.Td>
            </Table.Tr>
          ))}
          <Table.Tr>
            <Table.Th w={200} c="dimmed" fw={500}>
              Detection
            </Table.Th>
            <Table.Td>
              <DetectionView detection={s.detection} />
            </Table.Td>
          </Table.Tr>
        </Table.Tbody>
      </Table>
      <Table aria-label={`Artifacts of ${v.version}`}>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>File</Table.Th>
            <Table.Th>Platform</Table.Th>
            <Table.Th>Architecture</Table.Th>
            <Table.Th>Size</Table.Th>
            <Table.Th>SHA-256</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {v.artifacts.map((a) => (
            <Table.Tr key={a.sha256}>
              <Table.Td ff="monospace">{a.file_name}</Table.Td>
              <Table.Td>{a.platform}</Table.Td>
              <Table.Td>{a.arch}</Table.Td>
              <Table.Td>{formatBytes(a.size)}</Table.Td>
              <Table.Td ff="monospace">{a.sha256.slice(0, 16)}…</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      <Group>
        <Button size="xs" variant="light" onClick={onEdit}>
          Edit version {v.version}
        </Button>
        <RouterButton to="/deployments" search={{}} variant="light" size="xs">
          Deploy…
        </RouterButton>
        <Button size="xs" color="red" variant="subtle" onClick={onDelete}>
          Delete version {v.version}
        </Button>
      </Group>
    </Stack>
  );
}

export function PackageDetailPage() {
  const { package: name } = route.useParams();
  const pkg = usePackage(name);
  const versions = useVersions(name);
  const deleteVersion = useDeleteVersion(name);
  const deletePackage = useDeletePackage();
  const navigate = useNavigate();
  const [confirm, setConfirm] = useState<{ version?: string } | null>(null);
  // The version being edited, or "" for a new one.
  const [editing, setEditing] = useState<string | null>(null);
  if (pkg.isPending) return <Loading label="Loading the package…" />;
  if (pkg.isError) {
    if (pkg.error instanceof ApiError && pkg.error.status === 404) {
      return (
        <Empty title="Package not found">
          <RouterAnchor to="/software" search={{}}>
            Back to the catalogue
          </RouterAnchor>
        </Empty>
      );
    }
    return <ErrorState error={pkg.error} onRetry={() => pkg.refetch()} />;
  }
  const p = pkg.data;
  const pending = deleteVersion.isPending || deletePackage.isPending;
  return (
    <Stack>
      <Breadcrumbs>
        <RouterAnchor to="/software" search={{}} size="sm">
          Software
        </RouterAnchor>
        <Text size="sm">{p.display_name}</Text>
      </Breadcrumbs>
      <Group justify="space-between">
        <Group gap="md">
          <Title order={1} size="h2">
            {p.display_name}
          </Title>
          <Badge variant="outline" tt="none">
            {p.name}
          </Badge>
        </Group>
        <Group gap="xs">
          <Button variant="light" onClick={() => setEditing("")} disabled={editing === ""}>
            New version
          </Button>
          <Button color="red" variant="light" onClick={() => setConfirm({})}>
            Delete package
          </Button>
        </Group>
      </Group>
      <Text size="sm" c="dimmed">
        {p.publisher ?? "Unknown publisher"} · {p.version_count} version{p.version_count === 1 ? "" : "s"} · created {formatDateTime(p.created_at_ms)}
      </Text>
      {p.description && <Text size="sm">{p.description}</Text>}
      {editing === "" && (
        <Paper withBorder p="md">
          <Title order={2} size="h4" mb="sm">
            New version of {p.display_name}
          </Title>
          <VersionEditor pkg={p.name} onSaved={() => setEditing(null)} onCancel={() => setEditing(null)} />
        </Paper>
      )}
      {versions.isPending ? (
        <Loading label="Loading versions…" />
      ) : versions.isError ? (
        <ErrorState error={versions.error} onRetry={() => versions.refetch()} />
      ) : versions.data.length === 0 ? (
        <Empty title="No versions yet">Upload a package file to add one, or add a package-manager version with “New version”.</Empty>
      ) : (
        <Accordion variant="separated" defaultValue={versions.data[0]?.version} aria-label="Versions">
          {versions.data.map((v) => (
            <Accordion.Item key={v.id} value={v.version}>
              <Accordion.Control>
                <Group gap="sm">
                  <Text fw={500}>{v.version}</Text>
                  <Badge variant="light">{v.spec.installer_type}</Badge>
                  <Text size="sm" c="dimmed">
                    added {formatDateTime(v.created_at_ms)} by {v.created_by}
                  </Text>
                </Group>
              </Accordion.Control>
              <Accordion.Panel>
                {editing === v.version ? (
                  <VersionEditor pkg={p.name} version={v} onSaved={() => setEditing(null)} onCancel={() => setEditing(null)} />
                ) : (
                  <Version v={v} onDelete={() => setConfirm({ version: v.version })} onEdit={() => setEditing(v.version)} />
                )}
              </Accordion.Panel>
            </Accordion.Item>
          ))}
        </Accordion>
      )}
      <ConfirmDialog
        opened={confirm !== null}
        title={confirm?.version ? `Delete version ${confirm.version}?` : "Delete package?"}
        confirmLabel="Delete"
        pending={pending}
        error={deleteVersion.error ?? deletePackage.error}
        onClose={() => {
          setConfirm(null);
          deleteVersion.reset();
          deletePackage.reset();
        }}
        onConfirm={() => {
          if (confirm?.version) deleteVersion.mutate(confirm.version, { onSuccess: () => setConfirm(null) });
          else deletePackage.mutate(p.name, { onSuccess: () => void navigate({ to: "/software", search: {} }) });
        }}
      >
        {confirm?.version
          ? "Devices that have it installed keep it; new installs can no longer choose it. Its files stay in the depot until collected."
          : `“${p.display_name}” and all its versions leave the catalogue. Assignments using it must be removed first.`}
      </ConfirmDialog>
    </Stack>
  );
}
