// Bulk actions on the devices chosen in the list: tags, static-group membership, a job and
// software assignments.
// Removals ask for confirmation; every change ends with a notification carrying the server's
// counts, and the selection stays so a follow-up action can use it.
import { Alert, Button, Group, Modal, Paper, Select, TagsInput, Text } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useNavigate } from "@tanstack/react-router";
import { lazy, Suspense, useState } from "react";
import { errorMessage } from "../../api/client";
import { ConfirmDialog } from "../../components/Confirm";
import { bulkMessage, describeSelection, MAX_BULK_IDS, plural, type Selection, tagProblems } from "../../lib/selection";
import { type BulkChange, useBulkChange } from "../../services/bulk";
import { useGroups } from "../../services/groups";
import { Loading } from "../../components/QueryState";

// The assignment dialog loads when first opened, like the job wizard below.
const AssignSoftwareDialog = lazy(() => import("./AssignDialog").then((m) => ({ default: m.AssignSoftwareDialog })));

// The wizard belongs to the jobs section; it loads only when a bulk job is started, so the
// device list stays small.
const CreateJobWizard = lazy(() => import("../jobs/CreateJob").then((m) => ({ default: m.CreateJobWizard })));

type Action = BulkChange["kind"];

const BUTTONS: Record<Action, string> = {
  "add-tags": "Add tags…",
  "remove-tags": "Remove tags…",
  "add-group": "Add to group…",
  "remove-group": "Remove from group…",
};

const TITLES: Record<Action, string> = {
  "add-tags": "Add tags",
  "remove-tags": "Remove tags",
  "add-group": "Add to a static group",
  "remove-group": "Remove from a static group",
};

function BulkDialog({ action, selection, onClose }: { action: Action; selection: Selection; onClose: () => void }) {
  const [tags, setTags] = useState<string[]>([]);
  const [groupId, setGroupId] = useState<string | null>(null);
  const [tried, setTried] = useState(false);
  const groups = useGroups();
  const change = useBulkChange();
  const isTags = action === "add-tags" || action === "remove-tags";
  const removing = action === "remove-tags" || action === "remove-group";
  const statics = (groups.data ?? []).filter((g) => g.kind === "static");
  const group = statics.find((g) => g.id === groupId);
  const problems = isTags ? tagProblems(tags) : group ? [] : ["Choose a static group."];
  const count = plural(selection.size, "device");

  const submit = () => {
    setTried(true);
    if (problems.length > 0) return;
    const deviceIds = [...selection.keys()];
    const body: BulkChange = isTags
      ? { kind: action as "add-tags" | "remove-tags", deviceIds, tags }
      : { kind: action as "add-group" | "remove-group", deviceIds, groupId: group?.id ?? "" };
    const what = isTags ? `${tags.length === 1 ? "Tag" : "Tags"} ${tags.join(", ")}` : `group “${group?.name ?? ""}”`;
    change.mutate(body, {
      onSuccess: (r) => {
        notifications.show({ title: TITLES[action], message: bulkMessage(action, r, what), color: "green" });
        onClose();
      },
    });
  };

  return (
    <ConfirmDialog
      opened
      title={`${TITLES[action]}: ${count}`}
      confirmLabel={TITLES[action]}
      color={removing ? "red" : "blue"}
      onConfirm={submit}
      onClose={onClose}
      pending={change.isPending}
      error={change.error ?? undefined}
    >
      <Text size="sm" mb="sm">
        {removing ? "This changes" : "For"} {describeSelection(selection)}.
        {removing && action === "remove-tags" && " Dynamic groups whose rules use these tags may lose these devices."}
      </Text>
      {isTags ? (
        <TagsInput
          label="Tags"
          description="Press Enter after each tag."
          placeholder="e.g. prod"
          value={tags}
          onChange={setTags}
          data-autofocus
          error={tried && problems.length ? problems.join(" ") : undefined}
        />
      ) : (
        <Select
          label="Static group"
          placeholder={groups.isPending ? "Loading groups…" : statics.length ? "Pick a group" : "No static groups yet"}
          data={statics.map((g) => ({ value: g.id, label: g.name }))}
          value={groupId}
          onChange={setGroupId}
          searchable
          data-autofocus
          error={tried && problems.length ? problems.join(" ") : undefined}
        />
      )}
      {groups.isError && !isTags && (
        <Alert color="red" mt="sm">
          {errorMessage(groups.error)}
        </Alert>
      )}
    </ConfirmDialog>
  );
}

export function BulkActions({ selection, onClear }: { selection: Selection; onClear: () => void }) {
  const [action, setAction] = useState<Action | null>(null);
  const [job, setJob] = useState(false);
  const [assign, setAssign] = useState(false);
  const navigate = useNavigate();
  const n = selection.size;
  const tooMany = n > MAX_BULK_IDS;
  return (
    <Paper withBorder p="xs" role="region" aria-label="Bulk actions">
      <Group gap="sm">
        <Text size="sm" fw={600} aria-live="polite">
          {plural(n, "device")} selected
        </Text>
        <Button size="xs" variant="subtle" onClick={onClear}>
          Clear selection
        </Button>
        {tooMany && (
          <Text size="sm" c="red">
            At most {MAX_BULK_IDS.toLocaleString()} at once — use a group instead.
          </Text>
        )}
        <Group gap="xs" ml="auto">
          {(Object.keys(TITLES) as Action[]).map((a) => (
            <Button
              key={a}
              size="xs"
              variant={a.startsWith("remove") ? "light" : "default"}
              color={a.startsWith("remove") ? "red" : undefined}
              disabled={tooMany}
              onClick={() => setAction(a)}
            >
              {BUTTONS[a]}
            </Button>
          ))}
          <Button size="xs" variant="default" disabled={tooMany} onClick={() => setAssign(true)}>
            Assign software…
          </Button>
          <Button size="xs" disabled={tooMany} onClick={() => setJob(true)}>
            Run job…
          </Button>
        </Group>
      </Group>
      {action && <BulkDialog key={action} action={action} selection={selection} onClose={() => setAction(null)} />}
      {assign && (
        <Suspense fallback={<Loading label="Loading…" />}>
          <AssignSoftwareDialog
            title={`Assign software to ${plural(n, "device")}`}
            targets={[...selection.entries()].map(([id, label]) => ({ kind: "device" as const, id, label }))}
            onClose={() => setAssign(false)}
          />
        </Suspense>
      )}
      <Modal opened={job} onClose={() => setJob(false)} title={`New job on ${plural(n, "device")}`} size="xl">
        {job && (
          <Suspense fallback={<Loading label="Loading the job wizard…" />}>
            <CreateJobWizard
              initial={{ devices: [...selection.keys()] }}
              knownDevices={[...selection.entries()].map(([value, label]) => ({ value, label }))}
              onCreated={(j) => {
                setJob(false);
                notifications.show({ message: `Job “${j.name}” created for ${plural(n, "device")}.`, color: "green" });
                void navigate({ to: "/jobs/$jobId", params: { jobId: j.id } });
              }}
            />
          </Suspense>
        )}
      </Modal>
    </Paper>
  );
}
