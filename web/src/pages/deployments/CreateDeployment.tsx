// The create-deployment wizard: package and version (or latest), target, intent, schedule
// (available from, deadline), maintenance-window and network policy.
import { Alert, Button, Checkbox, Group, NumberInput, SegmentedControl, Select, Stack, Stepper, Textarea, TextInput } from "@mantine/core";
import { useState } from "react";
import { errorMessage } from "../../api/client";
import { DevicePicker } from "../../components/TargetPicker";
import {
  buildDeploymentRequest,
  type DeploymentForm,
  type DeploymentInfo,
  deploymentProblems,
  EMPTY_DEPLOYMENT,
  useCreateDeployment,
} from "../../services/deployments";
import { useGroups } from "../../services/groups";
import { usePackages } from "../../services/packages";
import { IntentControl, VersionSelect } from "../../components/PackageFields";

export function CreateDeploymentWizard({ initial, onCreated }: { initial?: Partial<DeploymentForm>; onCreated: (d: DeploymentInfo) => void }) {
  const [form, setForm] = useState<DeploymentForm>({ ...EMPTY_DEPLOYMENT, ...initial });
  const [step, setStep] = useState(0);
  const [pkgSearch, setPkgSearch] = useState("");
  const packages = usePackages(pkgSearch.trim(), 1);
  const groups = useGroups();
  const create = useCreateDeployment();
  const set = (patch: Partial<DeploymentForm>) => setForm((f) => ({ ...f, ...patch }));
  const problems = deploymentProblems(form);
  return (
    <Stack>
      <Stepper active={step} onStepClick={setStep} size="sm">
        <Stepper.Step label="What" description="package and intent">
          <Stack mt="md">
            <TextInput label="Deployment name" required value={form.name} onChange={(e) => set({ name: e.currentTarget.value })} />
            <Select
              label="Package"
              placeholder="Search the catalogue"
              data={(packages.data?.items ?? []).map((p) => ({ value: p.name, label: `${p.display_name} (${p.name})` }))}
              value={form.package || null}
              onChange={(v) => set({ package: v ?? "", version: "" })}
              searchable
              searchValue={pkgSearch}
              onSearchChange={setPkgSearch}
              nothingFoundMessage="No package matches"
            />
            {form.package && <VersionSelect pkg={form.package} value={form.version} onChange={(version) => set({ version })} />}
            <IntentControl value={form.intent} onChange={(intent) => set({ intent })} />
            <Textarea label="Description" value={form.description} onChange={(e) => set({ description: e.currentTarget.value })} autosize minRows={1} />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Where" description="group or device">
          <Stack mt="md">
            <SegmentedControl
              aria-label="Target kind"
              data={[
                { value: "group", label: "A group" },
                { value: "device", label: "One device" },
              ]}
              value={form.targetKind}
              onChange={(v) => set({ targetKind: v as "group" | "device", targetId: "" })}
            />
            {form.targetKind === "group" ? (
              <Select
                label="Target group"
                data={(groups.data ?? []).map((g) => ({ value: g.id, label: `${g.name} (${g.members})` }))}
                value={form.targetId || null}
                onChange={(v) => set({ targetId: v ?? "" })}
                searchable
              />
            ) : (
              <DevicePicker label="Target device" value={form.targetId} onChange={(targetId) => set({ targetId })} />
            )}
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="When and how" description="schedule and policies">
          <Stack mt="md">
            <Group grow>
              <TextInput
                type="datetime-local"
                label="Available from"
                description="Empty: now"
                value={form.availableFrom}
                onChange={(e) => set({ availableFrom: e.currentTarget.value })}
              />
              <TextInput
                type="datetime-local"
                label="Deadline"
                description="After it, installs ignore maintenance windows"
                value={form.deadline}
                onChange={(e) => set({ deadline: e.currentTarget.value })}
              />
            </Group>
            <SegmentedControl
              aria-label="Maintenance windows"
              data={[
                { value: "respect", label: "Wait for maintenance windows" },
                { value: "ignore", label: "Ignore maintenance windows" },
              ]}
              value={form.windowPolicy}
              onChange={(v) => set({ windowPolicy: v as DeploymentForm["windowPolicy"] })}
            />
            <Group align="flex-end">
              <NumberInput
                label="Download limit (KiB/s)"
                placeholder="unlimited"
                min={1}
                value={form.maxKbPerSec}
                onChange={(v) => set({ maxKbPerSec: typeof v === "number" ? v : "" })}
                w={200}
              />
              <Checkbox label="Skip metered connections" checked={form.skipMetered} onChange={(e) => set({ skipMetered: e.currentTarget.checked })} />
              <Checkbox label="Site sources only" checked={form.siteSourcesOnly} onChange={(e) => set({ siteSourcesOnly: e.currentTarget.checked })} />
            </Group>
            {form.intent !== "uninstall" && (
              <Checkbox
                label="Leave installed when the deployment is deleted"
                checked={form.leaveInstalled}
                onChange={(e) => set({ leaveInstalled: e.currentTarget.checked })}
              />
            )}
            {problems.length > 0 && (
              <Alert color="orange" title="Not ready yet">
                {problems.map((p) => (
                  <div key={p}>{p}</div>
                ))}
              </Alert>
            )}
            {create.isError && (
              <Alert color="red" role="alert" title="The deployment was not created">
                {errorMessage(create.error)}
              </Alert>
            )}
          </Stack>
        </Stepper.Step>
      </Stepper>
      <Group justify="space-between">
        <Button variant="default" disabled={step === 0} onClick={() => setStep((s) => s - 1)}>
          Back
        </Button>
        {step < 2 ? (
          <Button onClick={() => setStep((s) => s + 1)}>Next</Button>
        ) : (
          <Button disabled={problems.length > 0} loading={create.isPending} onClick={() => create.mutate(buildDeploymentRequest(form), { onSuccess: onCreated })}>
            Create deployment
          </Button>
        )}
      </Group>
    </Stack>
  );
}
