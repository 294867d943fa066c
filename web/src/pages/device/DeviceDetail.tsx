// One device: a header with its name and status, and tabs for what the server knows about it.
// The tab is part of the URL (`?tab=software`). Everything shown comes from the agent and is
// rendered as text.
import { Badge, Breadcrumbs, Group, Stack, Tabs, Text, Title } from "@mantine/core";
import { getRouteApi } from "@tanstack/react-router";
import { ErrorState, Loading } from "../../components/QueryState";
import { RouterAnchor } from "../../components/links";
import { ApiError } from "../../api/client";
import { formatRelative } from "../../lib/format";
import { osLabel } from "../../services/dashboard";
import { useDevice } from "../../services/devices";
import { StatusBadge } from "../Devices";
import { HardwareTab, NetworkTab, OverviewTab } from "./InventoryTabs";
import { AssignmentsTab } from "./AssignmentsTab";
import { JobsTab } from "./JobsTab";
import { MembershipTab } from "./MembershipTab";
import { PerformanceTab } from "./PerformanceTab";
import { SecurityTab } from "./SecurityTab";
import { SoftwareTab } from "./SoftwareTab";
import { TimelineTab } from "./TimelineTab";

export const DEVICE_TABS = [
  { id: "overview", label: "Overview" },
  { id: "hardware", label: "Hardware" },
  { id: "software", label: "Software" },
  { id: "network", label: "Network" },
  { id: "security", label: "Security" },
  { id: "performance", label: "Performance" },
  { id: "membership", label: "Groups, tags & fields" },
  { id: "assignments", label: "Software assignments" },
  { id: "jobs", label: "Jobs" },
  { id: "timeline", label: "Timeline" },
] as const;
export type DeviceTab = (typeof DEVICE_TABS)[number]["id"];

export function parseDeviceTab(raw: Record<string, unknown>): { tab?: DeviceTab } {
  const t = raw.tab;
  return DEVICE_TABS.some((x) => x.id === t) && t !== "overview" ? { tab: t as DeviceTab } : {};
}

const route = getRouteApi("/app/devices/$deviceId");

export function DeviceDetailPage() {
  const { deviceId } = route.useParams();
  const { tab = "overview" } = route.useSearch();
  const navigate = route.useNavigate();
  const device = useDevice(deviceId);

  if (device.isPending) return <Loading label="Loading the device…" />;
  if (device.isError) {
    if (device.error instanceof ApiError && device.error.status === 404) {
      return (
        <Stack>
          <Title order={1} size="h2">
            Device not found
          </Title>
          <Text>
            This device does not exist or was deleted. <RouterAnchor to="/devices">Back to the device list</RouterAnchor>
          </Text>
        </Stack>
      );
    }
    return <ErrorState error={device.error} onRetry={() => device.refetch()} />;
  }
  const d = device.data;

  return (
    <Stack>
      <Breadcrumbs>
        <RouterAnchor to="/devices" size="sm">
          Devices
        </RouterAnchor>
        <Text size="sm">{d.hostname}</Text>
      </Breadcrumbs>
      <Group align="center" gap="md">
        <Title order={1} size="h2" data-testid="device-hostname">
          {d.hostname}
        </Title>
        <StatusBadge online={d.online} />
        {d.tags.map((t) => (
          <Badge key={t} variant="outline" tt="none">
            {t}
          </Badge>
        ))}
      </Group>
      <Text c="dimmed" size="sm">
        {osLabel(d)} · agent {d.agent_version ?? "unknown"} · last seen {formatRelative(d.last_seen_at_ms)}
      </Text>
      <Tabs
        value={tab}
        onChange={(v) =>
          navigate({ search: v && v !== "overview" ? { tab: v as DeviceTab } : {}, replace: true })
        }
        keepMounted={false}
      >
        <Tabs.List>
          {DEVICE_TABS.map((t) => (
            <Tabs.Tab key={t.id} value={t.id}>
              {t.label}
            </Tabs.Tab>
          ))}
        </Tabs.List>
        <Tabs.Panel value="overview" pt="md">
          <OverviewTab device={d} />
        </Tabs.Panel>
        <Tabs.Panel value="hardware" pt="md">
          <HardwareTab device={d} />
        </Tabs.Panel>
        <Tabs.Panel value="software" pt="md">
          <SoftwareTab device={d} />
        </Tabs.Panel>
        <Tabs.Panel value="network" pt="md">
          <NetworkTab device={d} />
        </Tabs.Panel>
        <Tabs.Panel value="security" pt="md">
          <SecurityTab device={d} />
        </Tabs.Panel>
        <Tabs.Panel value="performance" pt="md">
          <PerformanceTab device={d} />
        </Tabs.Panel>
        <Tabs.Panel value="membership" pt="md">
          <MembershipTab device={d} />
        </Tabs.Panel>
        <Tabs.Panel value="assignments" pt="md">
          <AssignmentsTab deviceId={d.id} />
        </Tabs.Panel>
        <Tabs.Panel value="jobs" pt="md">
          <JobsTab deviceId={d.id} />
        </Tabs.Panel>
        <Tabs.Panel value="timeline" pt="md">
          <TimelineTab deviceId={d.id} />
        </Tabs.Panel>
      </Tabs>
    </Stack>
  );
}
