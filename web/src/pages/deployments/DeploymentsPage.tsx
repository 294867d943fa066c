// Deployments: the list with device counts per status and the success rate, the create
// wizard, and the maintenance windows (list with cron schedules in words, create with
// WindowForm, delete). `?filter=active|failing` narrows the list (the dashboard links there).
import { Badge, Button, Group, Modal, Progress, Stack, Table, Tabs, Text, Title } from "@mantine/core";
import { getRouteApi, useNavigate } from "@tanstack/react-router";
import { useState } from "react";
import { ConfirmDialog } from "../../components/Confirm";
import { Empty, ErrorState, Loading } from "../../components/QueryState";
import { RouterAnchor } from "../../components/links";
import { formatDateTime } from "../../lib/format";
import {
  type DeploymentFilter,
  matchesDeploymentFilter,
  type StatusCounts,
  successRate,
  useDeleteWindow,
  useDeployments,
  useWindows,
  type WindowInfo,
} from "../../services/deployments";
import { describeCron, formatMinutes, parseCron } from "../../lib/cron";
import { CreateDeploymentWizard } from "./CreateDeployment";
import { WindowForm } from "./WindowForm";

const route = getRouteApi("/app/deployments");

export function StatusBar({ c }: { c: StatusCounts }) {
  const pct = (n: number) => (c.total ? (n / c.total) * 100 : 0);
  const busy = c.downloading + c.installing + c.uninstalling + c.reboot_pending;
  return (
    <Progress.Root size="lg" aria-label={`${c.installed} of ${c.total} installed`}>
      <Progress.Section value={pct(c.installed + c.removed)} color="green" />
      <Progress.Section value={pct(c.failed)} color="red" />
      <Progress.Section value={pct(busy)} color="blue" />
      <Progress.Section value={pct(c.waiting + c.planned)} color="yellow" />
    </Progress.Root>
  );
}

export function formatRate(r: number | null | undefined): string {
  return r === null || r === undefined ? "—" : `${Math.round(r * 1000) / 10} %`;
}

const FILTER_LABELS: Record<DeploymentFilter, string> = {
  active: "Only deployments in progress",
  failing: "Only deployments with failed devices",
};

function List({ filter }: { filter?: DeploymentFilter }) {
  const deployments = useDeployments();
  if (deployments.isPending) return <Loading label="Loading deployments…" />;
  if (deployments.isError) return <ErrorState error={deployments.error} onRetry={() => deployments.refetch()} />;
  if (deployments.data.length === 0) return <Empty title="No deployments yet">A deployment puts a package on a group's devices, on a schedule.</Empty>;
  const shown = deployments.data.filter((d) => matchesDeploymentFilter(d, filter));
  return (
    <Stack>
      {filter && (
        <Group gap="sm">
          <Text size="sm">
            {FILTER_LABELS[filter]}: {shown.length} of {deployments.data.length}.
          </Text>
          <RouterAnchor to="/deployments" search={{}} size="sm">
            Show all
          </RouterAnchor>
        </Group>
      )}
      {shown.length === 0 ? (
        <Empty title="No deployment matches" />
      ) : (
    <Table aria-label="Deployments" highlightOnHover>
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Deployment</Table.Th>
          <Table.Th>Package</Table.Th>
          <Table.Th>Target</Table.Th>
          <Table.Th>Intent</Table.Th>
          <Table.Th w={220}>Progress</Table.Th>
          <Table.Th>Success rate</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {shown.map((d) => (
          <Table.Tr key={d.id} data-deployment-id={d.id}>
            <Table.Td>
              <Group gap={6}>
                <RouterAnchor to="/deployments/$deploymentId" params={{ deploymentId: d.id }}>
                  {d.name}
                </RouterAnchor>
                {d.paused && (
                  <Badge color="orange" size="sm">
                    paused
                  </Badge>
                )}
              </Group>
            </Table.Td>
            <Table.Td>
              {d.assignment.package_name} {d.assignment.version ?? "(latest)"}
            </Table.Td>
            <Table.Td>
              {d.assignment.target_kind}: {d.assignment.target_name}
            </Table.Td>
            <Table.Td>{d.assignment.intent}</Table.Td>
            <Table.Td>
              <Stack gap={2}>
                <StatusBar c={d.counts} />
                <Text size="xs" c="dimmed">
                  {d.counts.installed} installed · {d.counts.failed} failed · {d.counts.total} devices
                </Text>
              </Stack>
            </Table.Td>
            <Table.Td>{formatRate(successRate(d.counts))}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
      )}
    </Stack>
  );
}

function describeSchedule(w: WindowInfo): string {
  const s = w.schedule;
  const zone = w.timezone === "device" ? "each device's time zone" : w.timezone;
  if (s.kind === "weekly") return `${s.days.join(", ")} at ${s.start} for ${formatMinutes(s.duration_minutes)} (${zone})`;
  const parsed = parseCron(s.expression);
  const words = "cron" in parsed ? ` — ${describeCron(parsed.cron)}` : "";
  return `cron ${s.expression}${words}, for ${formatMinutes(s.duration_minutes)} (${zone})`;
}

function Windows() {
  const windows = useWindows();
  const remove = useDeleteWindow();
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<WindowInfo | null>(null);
  return (
    <Stack>
      <Group justify="flex-end">
        <Button variant="light" onClick={() => setCreating(true)}>
          New window
        </Button>
      </Group>
      {windows.isPending ? (
        <Loading label="Loading maintenance windows…" />
      ) : windows.isError ? (
        <ErrorState error={windows.error} onRetry={() => windows.refetch()} />
      ) : windows.data.length === 0 ? (
        <Empty title="No maintenance windows">Without windows, required installs run as soon as they are due.</Empty>
      ) : (
        <Table aria-label="Maintenance windows">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Schedule</Table.Th>
              <Table.Th>Groups</Table.Th>
              <Table.Th>Next opens</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {windows.data.map((w) => (
              <Table.Tr key={w.id}>
                <Table.Td>{w.name}</Table.Td>
                <Table.Td>{describeSchedule(w)}</Table.Td>
                <Table.Td>{w.groups.map((g) => g.name).join(", ")}</Table.Td>
                <Table.Td>{formatDateTime(w.next_open_ms)}</Table.Td>
                <Table.Td>
                  <Button size="compact-sm" color="red" variant="subtle" onClick={() => setDeleting(w)} aria-label={`Delete ${w.name}`}>
                    Delete
                  </Button>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      <Modal opened={creating} onClose={() => setCreating(false)} title="New maintenance window" size="lg">
        <WindowForm onDone={() => setCreating(false)} />
      </Modal>
      <ConfirmDialog
        opened={deleting !== null}
        title="Delete maintenance window?"
        confirmLabel="Delete"
        pending={remove.isPending}
        error={remove.error}
        onClose={() => {
          setDeleting(null);
          remove.reset();
        }}
        onConfirm={() => deleting && remove.mutate(deleting.id, { onSuccess: () => setDeleting(null) })}
      >
        Installs waiting for “{deleting?.name}” proceed unless another window holds them.
      </ConfirmDialog>
    </Stack>
  );
}

export function DeploymentsPage() {
  const { tab, filter } = route.useSearch();
  const navigate = useNavigate();
  const [creating, setCreating] = useState(false);
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={1} size="h2">
          Deployments
        </Title>
        <Button onClick={() => setCreating(true)}>New deployment</Button>
      </Group>
      <Tabs
        value={tab ?? "deployments"}
        onChange={(v) => void navigate({ to: "/deployments", search: v === "windows" ? { tab: "windows" } : {}, replace: true })}
        keepMounted={false}
      >
        <Tabs.List>
          <Tabs.Tab value="deployments">Deployments</Tabs.Tab>
          <Tabs.Tab value="windows">Maintenance windows</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="deployments" pt="md">
          <List filter={filter} />
        </Tabs.Panel>
        <Tabs.Panel value="windows" pt="md">
          <Windows />
        </Tabs.Panel>
      </Tabs>
      <Modal opened={creating} onClose={() => setCreating(false)} title="New deployment" size="xl">
        <CreateDeploymentWizard
          onCreated={(d) => {
            setCreating(false);
            void navigate({ to: "/deployments/$deploymentId", params: { deploymentId: d.id } });
          }}
        />
      </Modal>
    </Stack>
  );
}
