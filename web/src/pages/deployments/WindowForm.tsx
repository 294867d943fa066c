// The maintenance-window form: a weekly range (days, start, duration) or a 5-field cron
// expression with its meaning in words as you type, in a fixed IANA time zone or each device's
// own. Problems are checked as the server checks them; the server's (which arrive as one
// message, "/schedule/expression: …; /timezone: …") are put back on their fields.
import { Alert, Autocomplete, Button, Checkbox, Group, NumberInput, Radio, SegmentedControl, Stack, Text, TextInput } from "@mantine/core";
import { useMemo, useState } from "react";
import { ApiError, errorMessage } from "../../api/client";
import { GroupMultiPicker } from "../../components/TargetPicker";
import { describeCron, EMPTY_WINDOW, formatMinutes, knownZones, parseCron, splitServerProblems, type Weekday, type WindowForm as Form, windowProblems, windowRequest } from "../../lib/cron";
import { useCreateWindow } from "../../services/deployments";

const DAYS: { value: Weekday; label: string }[] = [
  { value: "mon", label: "Mon" },
  { value: "tue", label: "Tue" },
  { value: "wed", label: "Wed" },
  { value: "thu", label: "Thu" },
  { value: "fri", label: "Fri" },
  { value: "sat", label: "Sat" },
  { value: "sun", label: "Sun" },
];

const EXAMPLES: [string, string][] = [
  ["0 22 * * 1-5", "weeknights at 22:00"],
  ["0 3 1 * *", "the 1st of each month at 03:00"],
  ["30 1 * * sat", "Saturdays at 01:30"],
];

export function WindowForm({ onDone }: { onDone: () => void }) {
  const create = useCreateWindow();
  const [form, setForm] = useState<Form>(EMPTY_WINDOW);
  const [submitted, setSubmitted] = useState(false);
  const set = (patch: Partial<Form>) => setForm((f) => ({ ...f, ...patch }));
  const zones = useMemo(knownZones, []);
  const local = windowProblems(form);
  const server = create.error instanceof ApiError && create.error.status === 400 ? splitServerProblems(create.error.message) : null;
  // The server's problems at a field or below it (`/schedule/days/1`, `/groups/0`).
  const serverAt = (p: string) => {
    const found = [...(server ?? [])].filter(([k]) => k === p || k.startsWith(`${p}/`)).map(([, m]) => m);
    return found.length ? found.join("; ") : undefined;
  };
  const problem = (p: string) => (submitted ? local.get(p) : undefined) ?? serverAt(p);
  const parsed = form.kind === "cron" ? parseCron(form.expression) : null;
  // The expression's errors show as you type: it is the field where feedback helps most.
  const cronError = parsed && "errors" in parsed ? (form.expression.trim() ? parsed.errors.join("; ") : submitted ? parsed.errors.join("; ") : undefined) : undefined;
  const cronHint = parsed && "cron" in parsed ? `${describeCron(parsed.cron)}${typeof form.duration === "number" && form.duration > 0 ? `, for ${formatMinutes(form.duration)}` : ""}.` : undefined;
  const unplaced = server ? [...server].filter(([p]) => !["/name", "/groups", "/schedule/days", "/schedule/start", "/schedule/expression", "/schedule/duration_minutes", "/timezone"].includes(p.replace(/\/\d+$/, ""))) : [];
  const groupsError = problem("/groups");

  return (
    <form
      aria-label="Create maintenance window"
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        setSubmitted(true);
        if (local.size > 0) return;
        create.mutate(windowRequest(form), { onSuccess: onDone });
      }}
    >
      <Stack>
        <TextInput label="Name" required value={form.name} error={problem("/name")} onChange={(e) => set({ name: e.currentTarget.value })} />
        <SegmentedControl
          aria-label="Schedule kind"
          data={[
            { value: "weekly", label: "Weekly" },
            { value: "cron", label: "Cron expression" },
          ]}
          value={form.kind}
          onChange={(v) => set({ kind: v as Form["kind"] })}
        />
        {form.kind === "weekly" ? (
          <>
            <Checkbox.Group label="Days" value={form.days} onChange={(v) => set({ days: v as Weekday[] })} error={problem("/schedule/days")}>
              <Group mt={4}>
                {DAYS.map((d) => (
                  <Checkbox key={d.value} value={d.value} label={d.label} />
                ))}
              </Group>
            </Checkbox.Group>
            <TextInput type="time" label="Start" w={160} value={form.start} error={problem("/schedule/start")} onChange={(e) => set({ start: e.currentTarget.value })} />
          </>
        ) : (
          <div>
            <TextInput
              label="Cron expression"
              description="minute hour day-of-month month day-of-week, e.g. 0 2 * * 6,0; or @daily, @weekly"
              value={form.expression}
              error={cronError ?? serverAt("/schedule/expression")}
              onChange={(e) => set({ expression: e.currentTarget.value })}
              styles={{ input: { fontFamily: "var(--mantine-font-family-monospace)" } }}
            />
            {cronHint && !cronError && (
              <Text size="sm" mt={4} data-testid="cron-hint">
                {cronHint}
              </Text>
            )}
            <Group gap={6} mt={4}>
              <Text size="xs" c="dimmed">
                Examples:
              </Text>
              {EXAMPLES.map(([expr, words]) => (
                <Button key={expr} size="compact-xs" variant="subtle" onClick={() => set({ expression: expr })} title={words}>
                  {expr}
                </Button>
              ))}
            </Group>
          </div>
        )}
        <NumberInput
          label="Duration (minutes)"
          description="How long the window stays open each time, up to one week"
          min={1}
          max={10080}
          w={260}
          value={form.duration}
          error={problem("/schedule/duration_minutes")}
          onChange={(v) => set({ duration: typeof v === "number" ? v : "" })}
        />
        <Radio.Group
          label="Time zone"
          description="The times above are read in this zone"
          value={form.zoneKind}
          onChange={(v) => set({ zoneKind: v as Form["zoneKind"] })}
        >
          <Stack gap={6} mt={6}>
            <Radio value="device" label="Each device's own time zone (from its inventory; UTC when unknown)" />
            <Radio value="fixed" label="One fixed time zone for every device" />
          </Stack>
        </Radio.Group>
        {form.zoneKind === "fixed" && (
          <Autocomplete
            label="IANA time zone"
            placeholder="Europe/Berlin"
            data={zones}
            limit={30}
            w={320}
            value={form.zone}
            error={problem("/timezone")}
            onChange={(zone) => set({ zone })}
          />
        )}
        {form.zoneKind === "device" && serverAt("/timezone") && (
          <Text size="sm" c="red">
            {serverAt("/timezone")}
          </Text>
        )}
        <div>
          <GroupMultiPicker label="Groups it applies to" value={form.groups} onChange={(groups) => set({ groups })} />
          {groupsError && (
            <Text size="xs" c="red" mt={4}>
              {groupsError}
            </Text>
          )}
        </div>
        {create.isError && (!server || unplaced.length > 0) && (
          <Alert color="red" role="alert" title="The window was not created">
            {server ? unplaced.map(([p, m]) => `${p}: ${m}`).join("; ") : errorMessage(create.error)}
          </Alert>
        )}
        <Group justify="flex-end">
          <Button type="submit" loading={create.isPending}>
            Create window
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
