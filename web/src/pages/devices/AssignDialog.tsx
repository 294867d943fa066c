// "Assign software" for chosen devices or a group: package, version (or latest), intent and
// "leave installed", then one assignment per target with a progress bar and a summary of what
// was created and what the server refused, with its reason. The same form serves the device
// list's bulk selection and the group page.
import { Alert, Button, Checkbox, Group, List, Modal, Progress, Select, Stack, Text } from "@mantine/core";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { plural } from "../../lib/selection";
import { createAssignment } from "../../services/deployments";
import { usePackages } from "../../services/packages";
import { IntentControl, VersionSelect } from "../../components/PackageFields";
import {
  type AssignForm,
  type AssignOutcome,
  assignAll,
  assignProblems,
  type AssignTarget,
  EMPTY_ASSIGN_FORM,
  retryTargets,
  summarizeAssignments,
  summaryLine,
} from "./AssignDialog.model";

/** Refusals listed one by one; beyond this, a count. */
const LISTED = 20;

/** Package, version, intent and "leave installed": what an assignment asks for. */
export function AssignFields({ form, onChange, error }: { form: AssignForm; onChange: (f: AssignForm) => void; error?: string }) {
  const [search, setSearch] = useState("");
  const packages = usePackages(search.trim(), 1);
  const set = (patch: Partial<AssignForm>) => onChange({ ...form, ...patch });
  return (
    <Stack gap="sm">
      <Select
        label="Package"
        placeholder="Search the catalogue"
        data={(packages.data?.items ?? []).map((p) => ({ value: p.name, label: `${p.display_name} (${p.name})` }))}
        value={form.package || null}
        onChange={(v) => set({ package: v ?? "", version: "" })}
        searchable
        searchValue={search}
        onSearchChange={setSearch}
        nothingFoundMessage={packages.isPending ? "Loading…" : "No package matches"}
        error={error}
        data-autofocus
      />
      {form.package && <VersionSelect pkg={form.package} value={form.version} onChange={(version) => set({ version })} />}
      <IntentControl value={form.intent} onChange={(intent) => set({ intent })} />
      {form.intent !== "uninstall" && (
        <Checkbox
          label="Leave installed when the assignment is removed"
          checked={form.leaveInstalled}
          onChange={(e) => set({ leaveInstalled: e.currentTarget.checked })}
        />
      )}
    </Stack>
  );
}

function Summary({ outcomes }: { outcomes: AssignOutcome[] }) {
  const s = summarizeAssignments(outcomes);
  const lines = (items: { label: string; reason: string }[]) => (
    <List size="sm" spacing={2}>
      {items.slice(0, LISTED).map((r, i) => (
        <List.Item key={`${r.label}-${i}`}>
          <Text span fw={600} size="sm">
            {r.label}
          </Text>
          : {r.reason}
        </List.Item>
      ))}
      {items.length > LISTED && <List.Item>… and {items.length - LISTED} more</List.Item>}
    </List>
  );
  return (
    <Stack gap="sm" data-testid="assign-summary">
      <Alert color={s.refused.length + s.failed.length === 0 ? "green" : "orange"} title={summaryLine(s)} role="status" />
      {s.refused.length > 0 && (
        <div>
          <Text size="sm" fw={600}>
            Refused by the server
          </Text>
          {lines(s.refused)}
        </div>
      )}
      {s.failed.length > 0 && (
        <div>
          <Text size="sm" fw={600} c="red">
            Could not be created
          </Text>
          {lines(s.failed)}
        </div>
      )}
    </Stack>
  );
}

/**
 * The dialog: the form, then the progress of the requests, then the summary. `targets` are
 * devices (one assignment each) or a group (one assignment for all its members).
 */
export function AssignSoftwareDialog({ targets, title, onClose }: { targets: AssignTarget[]; title: string; onClose: () => void }) {
  const qc = useQueryClient();
  const [form, setForm] = useState<AssignForm>(EMPTY_ASSIGN_FORM);
  const [tried, setTried] = useState(false);
  const [progress, setProgress] = useState<{ done: number; total: number } | null>(null);
  const [outcomes, setOutcomes] = useState<AssignOutcome[] | null>(null);
  const problems = assignProblems(form, targets);
  const running = progress !== null && outcomes === null;

  const run = async (list: AssignTarget[], previous: AssignOutcome[] = []) => {
    setTried(true);
    if (problems.length > 0 || list.length === 0) return;
    setOutcomes(null);
    setProgress({ done: 0, total: list.length });
    const got = await assignAll(form, list, createAssignment, (done, total) => setProgress({ done, total }));
    // A retry replaces the failed outcomes of the same targets and keeps the rest.
    const retried = new Set(list.map((t) => `${t.kind}:${t.id}`));
    setOutcomes([...previous.filter((o) => !retried.has(`${o.target.kind}:${o.target.id}`)), ...got]);
    void qc.invalidateQueries({ queryKey: ["assignments"] });
    void qc.invalidateQueries({ queryKey: ["deployments"] });
    void qc.invalidateQueries({ queryKey: ["devices", "software"] });
  };

  const what = targets.length === 1 ? targets[0]!.label : plural(targets.length, targets[0]?.kind === "group" ? "group" : "device");
  return (
    <Modal opened onClose={running ? () => {} : onClose} title={title} size="lg" closeOnClickOutside={!running}>
      <Stack>
        <Text size="sm">
          For {what}
          {targets.length > 1 ? ": one assignment each." : "."}
        </Text>
        {outcomes === null && !running && (
          <AssignFields form={form} onChange={setForm} error={tried && problems.length ? problems.join(" ") : undefined} />
        )}
        {progress && (running || targets.length > 1) && (
          <div>
            <Text size="sm" mb={4} aria-live="polite">
              {progress.done} of {progress.total} done
            </Text>
            <Progress value={(progress.done / Math.max(1, progress.total)) * 100} aria-label="Assignments created" animated={running} />
          </div>
        )}
        {outcomes && <Summary outcomes={outcomes} />}
        <Group justify="flex-end">
          {outcomes === null ? (
            <>
              <Button variant="default" onClick={onClose} disabled={running}>
                Cancel
              </Button>
              <Button loading={running} onClick={() => void run(targets)}>
                Assign
              </Button>
            </>
          ) : (
            <>
              {retryTargets(outcomes).length > 0 && (
                <Button variant="light" onClick={() => void run(retryTargets(outcomes), outcomes)}>
                  Retry {plural(retryTargets(outcomes).length, "failed target")}
                </Button>
              )}
              <Button onClick={onClose}>Close</Button>
            </>
          )}
        </Group>
      </Stack>
    </Modal>
  );
}
