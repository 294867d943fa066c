// The device's timeline, newest first: inventory changes and lifecycle events, paged back with
// "Load older" and filterable by kind.
import { Badge, Button, Group, Select, Stack, Table, Text } from "@mantine/core";
import { useInfiniteQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Empty, ErrorState, Loading } from "../../components/QueryState";
import { formatDateTime, formatValue } from "../../lib/format";
import { deviceKeys, fetchTimelinePage, type TimelineEntry } from "../../services/devices";

// The kinds the server records today; the filter is a convenience, the list shows every kind.
const KINDS = [
  { value: "inventory_change", label: "Inventory changes" },
  { value: "inventory_first", label: "First inventory" },
  { value: "enrolled", label: "Enrolled" },
  { value: "reenrolled", label: "Re-enrolled" },
  { value: "group_joined", label: "Joined a group" },
  { value: "group_left", label: "Left a group" },
  { value: "tag_added", label: "Tag added" },
  { value: "tag_removed", label: "Tag removed" },
  { value: "software", label: "Software installs and removals" },
  { value: "software_drift", label: "Software drift" },
  { value: "refresh_requested", label: "Refresh requested" },
  { value: "revoked", label: "Revoked" },
];

function Change({ e }: { e: TimelineEntry }) {
  if (e.kind !== "inventory_change") return null;
  const oldV = e.old_value === undefined || e.old_value === null ? null : formatValue(e.old_value);
  const newV = e.new_value === undefined || e.new_value === null ? null : formatValue(e.new_value);
  return (
    <Text size="xs" c="dimmed">
      {e.field}
      {oldV !== null && newV !== null ? `: ${oldV} → ${newV}` : newV !== null ? `: ${newV}` : oldV !== null ? `: ${oldV}` : ""}
    </Text>
  );
}

export function TimelineTab({ deviceId }: { deviceId: string }) {
  const [kind, setKind] = useState<string | null>(null);
  const timeline = useInfiniteQuery({
    queryKey: deviceKeys.timeline(deviceId, kind ?? undefined),
    queryFn: ({ pageParam }) => fetchTimelinePage(deviceId, kind ?? undefined, pageParam),
    initialPageParam: undefined as number | undefined,
    getNextPageParam: (last) => last.next_before ?? undefined,
  });

  return (
    <Stack>
      <Select label="Kind" placeholder="All events" data={KINDS} clearable value={kind} onChange={setKind} w={220} />
      {timeline.isPending ? (
        <Loading label="Loading the timeline…" />
      ) : timeline.isError ? (
        <ErrorState error={timeline.error} onRetry={() => timeline.refetch()} />
      ) : timeline.data.pages[0]?.items.length === 0 ? (
        <Empty title="Nothing happened yet" />
      ) : (
        <>
          <Table aria-label="Timeline">
            <Table.Thead>
              <Table.Tr>
                <Table.Th w={190}>When</Table.Th>
                <Table.Th w={170}>Event</Table.Th>
                <Table.Th>What</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {timeline.data.pages.flatMap((p) =>
                p.items.map((e) => (
                  <Table.Tr key={e.id}>
                    <Table.Td>{formatDateTime(e.at_ms)}</Table.Td>
                    <Table.Td>
                      <Group gap={4}>
                        <Badge variant="light" tt="none">
                          {e.kind.replace(/_/g, " ")}
                        </Badge>
                        {e.change && (
                          <Badge variant="outline" tt="none" color={e.change === "removed" ? "red" : e.change === "added" ? "green" : "blue"}>
                            {e.change}
                          </Badge>
                        )}
                      </Group>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{e.summary}</Text>
                      <Change e={e} />
                    </Table.Td>
                  </Table.Tr>
                )),
              )}
            </Table.Tbody>
          </Table>
          {timeline.hasNextPage && (
            <Button variant="default" onClick={() => timeline.fetchNextPage()} loading={timeline.isFetchingNextPage}>
              Load older
            </Button>
          )}
        </>
      )}
    </Stack>
  );
}
