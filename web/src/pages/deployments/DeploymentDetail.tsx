// One deployment: its progress with per-device status badges (refreshed by the live event
// stream as `software.status` events arrive), failures grouped by exit code with what each
// code means and a log viewer, and pause / resume / delete with confirmation.
import { Alert, Badge, Breadcrumbs, Button, Code, Group, Modal, Paper, ScrollArea, Select, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { getRouteApi, useNavigate } from "@tanstack/react-router";
import { useMemo, useState } from "react";
import { ApiError, api, unwrap } from "../../api/client";
import { ConfirmDialog } from "../../components/Confirm";
import { Empty, ErrorState, Loading } from "../../components/QueryState";
import { ItemStatusBadge } from "../../components/ItemStatusBadge";
import { RouterAnchor } from "../../components/links";
import { formatDateTime, formatRelative } from "../../lib/format";
import { explainExitCode } from "../../lib/software";
import { type ItemStatus, STATUS_COLORS, useDeploymentAction, useDeploymentStatus } from "../../services/deployments";
import { formatRate, StatusBar } from "./DeploymentsPage";

const route = getRouteApi("/app/deployments/$deploymentId");

/** The package's history on one device: status changes with their exit codes and logs. */
function LogViewer({ device, pkg, hostname, onClose }: { device: string; pkg: string; hostname: string; onClose: () => void }) {
  const history = useQuery({
    queryKey: ["devices", "software", device, "history", pkg],
    queryFn: () => unwrap(api.GET("/api/v1/devices/{id}/software/{package}/history", { params: { path: { id: device, package: pkg } } })),
  });
  return (
    <Modal opened onClose={onClose} title={`${pkg} on ${hostname}`} size="xl">
      {history.isPending ? (
        <Loading label="Loading the history…" />
      ) : history.isError ? (
        <ErrorState error={history.error} />
      ) : (
        <Stack>
          {history.data.length === 0 && <Text size="sm">Nothing happened to it on this device yet.</Text>}
          {history.data.map((entry, i) => {
            return (
              <Paper key={i} withBorder p="sm">
                <Group gap="xs">
                  <Text size="sm">{formatDateTime(entry.at_ms)}</Text>
                  <ItemStatusBadge status={entry.status} />
                  {entry.version && <Text size="sm">{entry.version}</Text>}
                  {entry.exit_code !== null && entry.exit_code !== undefined && <Badge variant="outline">exit {entry.exit_code}</Badge>}
                </Group>
                {entry.exit_code !== null && entry.exit_code !== undefined && entry.exit_code !== 0 && (
                  <Text size="sm" c="dimmed">
                    {explainExitCode(entry.exit_code).meaning}
                  </Text>
                )}
                {entry.detail && <Text size="sm">{entry.detail}</Text>}
                {entry.log && (
                  <ScrollArea.Autosize mah={240}>
                    <Code block>{entry.log}</Code>
                  </ScrollArea.Autosize>
                )}
              </Paper>
            );
          })}
        </Stack>
      )}
    </Modal>
  );
}

export function DeploymentDetailPage() {
  const { deploymentId } = route.useParams();
  const status = useDeploymentStatus(deploymentId);
  const action = useDeploymentAction();
  const navigate = useNavigate();
  const [confirm, setConfirm] = useState<"pause" | "resume" | "delete" | null>(null);
  const [filter, setFilter] = useState<string | null>(null);
  const [search, setSearch] = useState("");
  const [log, setLog] = useState<{ device: string; hostname: string } | null>(null);
  const devices = useMemo(() => {
    const all = status.data?.devices ?? [];
    const needle = search.trim().toLowerCase();
    return all.filter((d) => (!filter || d.status === filter) && (!needle || d.hostname.toLowerCase().includes(needle)));
  }, [status.data, filter, search]);

  if (status.isPending) return <Loading label="Loading the deployment…" />;
  if (status.isError) {
    if (status.error instanceof ApiError && status.error.status === 404) {
      return (
        <Empty title="Deployment not found">
          <RouterAnchor to="/deployments" search={{}}>
            Back to the deployments
          </RouterAnchor>
        </Empty>
      );
    }
    return <ErrorState error={status.error} onRetry={() => status.refetch()} />;
  }
  const s = status.data;
  const d = s.deployment;
  const a = d.assignment;
  const statuses = Object.entries(d.counts).filter(([k, n]) => k !== "total" && n > 0) as [ItemStatus, number][];
  return (
    <Stack>
      <Breadcrumbs>
        <RouterAnchor to="/deployments" search={{}} size="sm">
          Deployments
        </RouterAnchor>
        <Text size="sm">{d.name}</Text>
      </Breadcrumbs>
      <Group justify="space-between">
        <Group gap="md">
          <Title order={1} size="h2">
            {d.name}
          </Title>
          {d.paused && <Badge color="orange">paused</Badge>}
        </Group>
        <Group>
          <Button variant="light" onClick={() => setConfirm(d.paused ? "resume" : "pause")}>
            {d.paused ? "Resume" : "Pause"}
          </Button>
          <Button color="red" variant="light" onClick={() => setConfirm("delete")}>
            Delete
          </Button>
        </Group>
      </Group>
      <Text size="sm" c="dimmed">
        {a.intent} <RouterAnchor to="/software/$package" params={{ package: a.package_name }}>{a.package_name}</RouterAnchor>{" "}
        {a.version ?? `latest${a.resolved_version ? ` (${a.resolved_version})` : ""}`} on {a.target_kind} {a.target_name} · windows {d.window_policy}
        {d.available_from_ms ? ` · from ${formatDateTime(d.available_from_ms)}` : ""}
        {d.deadline_ms ? ` · deadline ${formatDateTime(d.deadline_ms)}` : ""}
      </Text>
      <Paper withBorder p="sm">
        <StatusBar c={d.counts} />
        <Group gap="xs" mt="xs" aria-live="polite" data-testid="deployment-counts">
          {statuses.map(([k, n]) => (
            <Badge key={k} color={STATUS_COLORS[k]} variant="light">
              {n} {k.replace("_", " ")}
            </Badge>
          ))}
          <Text size="sm">
            {d.counts.total} devices · success rate {formatRate(s.success_rate)}
          </Text>
        </Group>
      </Paper>
      {s.failures_by_exit_code.length > 0 && (
        <Paper withBorder p="sm">
          <Title order={2} size="h5" mb="xs">
            Failures by exit code
          </Title>
          <Table aria-label="Failures by exit code">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Exit code</Table.Th>
                <Table.Th>Devices</Table.Th>
                <Table.Th>What it means</Table.Th>
                <Table.Th>Example</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {s.failures_by_exit_code.map((f) => {
                const m = explainExitCode(f.exit_code);
                return (
                  <Table.Tr key={String(f.exit_code)}>
                    <Table.Td>{f.exit_code ?? "none"}</Table.Td>
                    <Table.Td>{f.devices}</Table.Td>
                    <Table.Td>
                      <Text size="sm">{m.meaning}</Text>
                      {m.hint && (
                        <Text size="xs" c="dimmed">
                          {m.hint}
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      <Text size="xs" ff="monospace" lineClamp={3}>
                        {f.example ?? ""}
                      </Text>
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </Paper>
      )}
      <Group align="flex-end">
        <TextInput label="Search devices" value={search} onChange={(e) => setSearch(e.currentTarget.value)} w={240} />
        <Select label="Status" placeholder="Any" data={statuses.map(([k]) => k)} value={filter} onChange={setFilter} clearable w={180} />
      </Group>
      {devices.length === 0 ? (
        <Empty title={s.devices.length === 0 ? "No device is targeted yet" : "No device matches"} />
      ) : (
        <Table aria-label="Devices of the deployment">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Device</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Version</Table.Th>
              <Table.Th>Exit code</Table.Th>
              <Table.Th>Detail</Table.Th>
              <Table.Th>Updated</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {devices.map((i) => (
              <Table.Tr key={i.device_id} data-device-id={i.device_id}>
                <Table.Td>
                  <RouterAnchor to="/devices/$deviceId" params={{ deviceId: i.device_id }} search={{}}>
                    {i.hostname}
                  </RouterAnchor>
                </Table.Td>
                <Table.Td>
                  <ItemStatusBadge status={i.status} />
                  {i.progress && i.progress.total > 0 && (
                    <Text size="xs" c="dimmed">
                      {Math.round((i.progress.received / i.progress.total) * 100)} % downloaded
                    </Text>
                  )}
                </Table.Td>
                <Table.Td>{i.version ?? "—"}</Table.Td>
                <Table.Td title={i.exit_code !== null && i.exit_code !== undefined ? explainExitCode(i.exit_code).meaning : undefined}>
                  {i.exit_code ?? "—"}
                </Table.Td>
                <Table.Td>
                  <Text size="sm" lineClamp={2}>
                    {i.detail ?? ""}
                  </Text>
                </Table.Td>
                <Table.Td>{formatRelative(i.updated_at_ms)}</Table.Td>
                <Table.Td>
                  <Button size="compact-sm" variant="subtle" onClick={() => setLog({ device: i.device_id, hostname: i.hostname })}>
                    Log
                  </Button>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {log && <LogViewer device={log.device} hostname={log.hostname} pkg={a.package_name} onClose={() => setLog(null)} />}
      <ConfirmDialog
        opened={confirm !== null}
        title={confirm === "delete" ? "Delete deployment?" : confirm === "pause" ? "Pause deployment?" : "Resume deployment?"}
        confirmLabel={confirm === "delete" ? "Delete" : confirm === "pause" ? "Pause" : "Resume"}
        color={confirm === "delete" ? "red" : "blue"}
        pending={action.isPending}
        error={action.error}
        onClose={() => {
          setConfirm(null);
          action.reset();
        }}
        onConfirm={() =>
          confirm &&
          action.mutate(
            { id: d.id, what: confirm },
            { onSuccess: () => (confirm === "delete" ? void navigate({ to: "/deployments", search: {} }) : setConfirm(null)) },
          )
        }
      >
        {confirm === "delete" ? (
          d.assignment.leave_installed ? (
            "The deployment and its assignment are removed; devices keep what it installed."
          ) : (
            <Alert color="orange">Devices uninstall what this deployment installed.</Alert>
          )
        ) : confirm === "pause" ? (
          "Devices keep what they have; nothing new is installed or removed until it resumes."
        ) : (
          "Devices continue where they stopped."
        )}
      </ConfirmDialog>
    </Stack>
  );
}
