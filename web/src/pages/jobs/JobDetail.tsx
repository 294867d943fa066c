// One job: its counts, every device's run with its state, and the output streaming live from
// the job's event stream (`/api/v1/jobs/{id}/events`, which starts from the beginning, so a
// late viewer sees everything, and resumes by itself after a reconnect). Retry failed runs and
// cancel, each after confirmation.
import { Badge, Breadcrumbs, Button, Code, Group, Paper, ScrollArea, Stack, Table, Text, Title } from "@mantine/core";
import { useQueryClient } from "@tanstack/react-query";
import { getRouteApi } from "@tanstack/react-router";
import { useEffect, useRef, useState } from "react";
import { ApiError } from "../../api/client";
import { ConfirmDialog } from "../../components/Confirm";
import { Empty, ErrorState, Loading } from "../../components/QueryState";
import { RouterAnchor } from "../../components/links";
import { formatDateTime, formatRelative } from "../../lib/format";
import { isFinished, type JobEvent, jobKeys, type RunInfo, type RunState, useJob, useJobAction, useRuns } from "../../services/jobs";
import { CountsBar, jobState } from "./JobsPage";

const route = getRouteApi("/app/jobs/$jobId");

/** Output kept per run in the page; older text is dropped beyond this. */
const MAX_OUTPUT_CHARS = 512 * 1024;

const STATE_COLORS: Record<RunState, string> = {
  queued: "yellow",
  delivered: "cyan",
  running: "blue",
  rebooting: "violet",
  succeeded: "green",
  failed: "red",
  timed_out: "red",
  cancelled: "gray",
  expired: "gray",
};

export function RunStateBadge({ state }: { state: RunState }) {
  return (
    <Badge color={STATE_COLORS[state]} variant="light">
      {state.replace("_", " ")}
    </Badge>
  );
}

interface Output {
  text: string;
  stderr: boolean;
}

/** The job's live stream: output per run, and run changes written into the cached run list. */
function useJobStream(jobId: string) {
  const qc = useQueryClient();
  const [output, setOutput] = useState<Record<string, Output[]>>({});
  const [connected, setConnected] = useState(false);
  useEffect(() => {
    setOutput({});
    const source = new EventSource(`/api/v1/jobs/${encodeURIComponent(jobId)}/events`, { withCredentials: true });
    const parse = (m: MessageEvent<string>): JobEvent | null => {
      try {
        return JSON.parse(m.data) as JobEvent;
      } catch {
        return null;
      }
    };
    source.onopen = () => setConnected(true);
    source.onerror = () => setConnected(false);
    source.addEventListener("output", (m) => {
      const e = parse(m as MessageEvent<string>);
      if (e?.type !== "output") return;
      setOutput((prev) => {
        const list = [...(prev[e.run_id] ?? []), { text: e.data, stderr: e.stream === "stderr" }];
        let size = list.reduce((n, o) => n + o.text.length, 0);
        while (size > MAX_OUTPUT_CHARS && list.length > 1) size -= list.shift()!.text.length;
        return { ...prev, [e.run_id]: list };
      });
    });
    source.addEventListener("run", (m) => {
      const e = parse(m as MessageEvent<string>);
      if (e?.type !== "run") return;
      qc.setQueryData(jobKeys.runs(jobId), (old: { items: RunInfo[]; total: number } | undefined) => {
        if (!old) return old;
        const known = old.items.some((r) => r.id === e.run.id);
        return known ? { ...old, items: old.items.map((r) => (r.id === e.run.id ? e.run : r)) } : old;
      });
      void qc.invalidateQueries({ queryKey: jobKeys.detail(jobId) });
    });
    source.addEventListener("finished", () => {
      void qc.invalidateQueries({ queryKey: jobKeys.detail(jobId) });
      void qc.invalidateQueries({ queryKey: jobKeys.runs(jobId) });
    });
    return () => source.close();
  }, [jobId, qc]);
  return { output, connected };
}

function OutputView({ chunks }: { chunks: Output[] | undefined }) {
  const viewport = useRef<HTMLDivElement>(null);
  useEffect(() => {
    viewport.current?.scrollTo({ top: viewport.current.scrollHeight });
  }, [chunks]);
  if (!chunks || chunks.length === 0) {
    return (
      <Text size="sm" c="dimmed">
        No output yet.
      </Text>
    );
  }
  return (
    <ScrollArea.Autosize mah={360} viewportRef={viewport}>
      <Code block data-testid="run-output">
        {chunks.map((c, i) => (
          <span key={i} style={c.stderr ? { color: "var(--mantine-color-red-7)" } : undefined}>
            {c.text}
          </span>
        ))}
      </Code>
    </ScrollArea.Autosize>
  );
}

export function JobDetailPage() {
  const { jobId } = route.useParams();
  const job = useJob(jobId);
  const runs = useRuns(jobId);
  const { output, connected } = useJobStream(jobId);
  const action = useJobAction(jobId);
  const [confirm, setConfirm] = useState<"cancel" | "retry" | null>(null);
  const [open, setOpen] = useState<string | null>(null);

  if (job.isPending) return <Loading label="Loading the job…" />;
  if (job.isError) {
    if (job.error instanceof ApiError && job.error.status === 404) {
      return (
        <Empty title="Job not found">
          <RouterAnchor to="/jobs">Back to the jobs</RouterAnchor>
        </Empty>
      );
    }
    return <ErrorState error={job.error} onRetry={() => job.refetch()} />;
  }
  const j = job.data;
  const st = jobState(j.counts, Boolean(j.cancelled_at_ms));
  const failed = j.counts.failed + j.counts.timed_out;
  const runList = runs.data?.items ?? [];
  const shown = open ?? (runList.length === 1 ? (runList[0]?.id ?? null) : null);
  const action_ = j.spec.action;
  const what =
    action_.type === "command"
      ? action_.argv.join(" ")
      : action_.type === "script"
        ? `${action_.interpreter} script${j.script_id ? ` (library v${j.script_version ?? "?"})` : ""}`
        : action_.type.replace("_", " ");

  return (
    <Stack>
      <Breadcrumbs>
        <RouterAnchor to="/jobs" size="sm">
          Jobs
        </RouterAnchor>
        <Text size="sm">{j.name}</Text>
      </Breadcrumbs>
      <Group justify="space-between">
        <Group gap="md">
          <Title order={1} size="h2">
            {j.name}
          </Title>
          <Badge color={st.color} variant="light" size="lg" data-testid="job-state">
            {st.label}
          </Badge>
          <Badge variant="dot" color={connected ? "green" : "orange"}>
            {connected ? "live" : "connecting"}
          </Badge>
        </Group>
        <Group>
          <Button variant="light" disabled={failed === 0} onClick={() => setConfirm("retry")}>
            Retry failed
          </Button>
          <Button color="red" variant="light" disabled={isFinished(j.counts) || Boolean(j.cancelled_at_ms)} onClick={() => setConfirm("cancel")}>
            Cancel job
          </Button>
        </Group>
      </Group>
      <Text size="sm" c="dimmed">
        <Code>{what}</Code> · created {formatDateTime(j.created_at_ms)} by {j.created_by} · expires {formatRelative(j.expires_at_ms)}
      </Text>
      <Paper withBorder p="sm">
        <CountsBar c={j.counts} />
        <Text size="sm" mt={4} aria-live="polite" data-testid="job-counts">
          {j.counts.succeeded} succeeded · {failed} failed · {j.counts.running + j.counts.delivered} running · {j.counts.queued} queued ·{" "}
          {j.counts.total} total
        </Text>
      </Paper>
      {runs.isPending ? (
        <Loading label="Loading runs…" />
      ) : runs.isError ? (
        <ErrorState error={runs.error} onRetry={() => runs.refetch()} />
      ) : runList.length === 0 ? (
        <Empty title="No runs">No device was targeted.</Empty>
      ) : (
        <Table aria-label="Runs">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Device</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>Exit code</Table.Th>
              <Table.Th>Attempt</Table.Th>
              <Table.Th>Reason</Table.Th>
              <Table.Th>Updated</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {runList.map((r) => (
              <Table.Tr key={r.id} data-run-device={r.device_id}>
                <Table.Td>
                  <RouterAnchor to="/devices/$deviceId" params={{ deviceId: r.device_id }} search={{}}>
                    {r.hostname}
                  </RouterAnchor>
                </Table.Td>
                <Table.Td>
                  <RunStateBadge state={r.state} />
                </Table.Td>
                <Table.Td>{r.exit_code ?? "—"}</Table.Td>
                <Table.Td>{r.attempt}</Table.Td>
                <Table.Td>
                  <Text size="sm" lineClamp={2}>
                    {r.reason ?? ""}
                  </Text>
                </Table.Td>
                <Table.Td>{formatRelative(r.updated_at_ms)}</Table.Td>
                <Table.Td>
                  <Button size="compact-sm" variant="subtle" onClick={() => setOpen(shown === r.id ? "" : r.id)} aria-label={`Output of ${r.hostname}`}>
                    {shown === r.id ? "Hide output" : "Output"}
                  </Button>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {runs.data && runs.data.total > runList.length && (
        <Text size="sm" c="dimmed">
          The first {runList.length.toLocaleString()} of {runs.data.total.toLocaleString()} runs, by hostname.
        </Text>
      )}
      {shown && (
        <Paper withBorder p="sm">
          <Text fw={500} mb="xs">
            Output of {runList.find((r) => r.id === shown)?.hostname ?? shown}
          </Text>
          <OutputView chunks={output[shown]} />
        </Paper>
      )}
      <ConfirmDialog
        opened={confirm !== null}
        title={confirm === "cancel" ? "Cancel this job?" : "Retry failed runs?"}
        confirmLabel={confirm === "cancel" ? "Cancel job" : "Retry"}
        color={confirm === "cancel" ? "red" : "blue"}
        pending={action.isPending}
        error={action.error}
        onClose={() => {
          setConfirm(null);
          action.reset();
        }}
        onConfirm={() => confirm && action.mutate(confirm, { onSuccess: () => setConfirm(null) })}
      >
        {confirm === "cancel"
          ? "Runs that have not finished become cancelled; running processes are stopped on their devices."
          : `The ${failed} failed or timed-out run${failed === 1 ? "" : "s"} run again as a new attempt.`}
      </ConfirmDialog>
    </Stack>
  );
}
