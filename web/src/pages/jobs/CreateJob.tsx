// The create-job wizard: what to run (a command, an ad-hoc script, a script from the library
// with its typed parameters, or a reboot), where (devices and groups), then a review.
import {
  Alert,
  Button,
  Group,
  NumberInput,
  SegmentedControl,
  Select,
  Stack,
  Stepper,
  Switch,
  Text,
  Textarea,
  TextInput,
} from "@mantine/core";
import { useState } from "react";
import { errorMessage } from "../../api/client";
import { DeviceMultiPicker, GroupMultiPicker } from "../../components/TargetPicker";
import {
  buildJobSubmission,
  EMPTY_JOB_FORM,
  type JobForm,
  type JobInfo,
  jobFormProblems,
  type ScriptParameter,
  useCreateJob,
  useScripts,
} from "../../services/jobs";

const INTERPRETERS = ["sh", "bash", "python3", "powershell", "cmd"] as const;


function ParameterInput({ p, value, onChange }: { p: ScriptParameter; value: string; onChange: (v: string) => void }) {
  const label = `${p.name}${p.required ? " *" : ""}`;
  const description = [p.description, p.default !== undefined && p.default !== null ? `default: ${String(p.default)}` : ""]
    .filter(Boolean)
    .join(" · ");
  if (p.type === "boolean") {
    return (
      <Switch
        label={label}
        description={description}
        checked={value === "true"}
        onChange={(e) => onChange(e.currentTarget.checked ? "true" : "false")}
      />
    );
  }
  if (p.type === "enum") {
    return <Select label={label} description={description} data={p.enum_values ?? []} value={value || null} onChange={(v) => onChange(v ?? "")} clearable />;
  }
  return (
    <TextInput
      label={label}
      description={description}
      type={p.type === "number" ? "number" : p.type === "date" ? "date" : "text"}
      value={value}
      onChange={(e) => onChange(e.currentTarget.value)}
    />
  );
}

export function CreateJobWizard({
  initial,
  knownDevices,
  onCreated,
}: {
  initial?: Partial<JobForm>;
  /** Hostnames of preselected devices, so the picker can name them. */
  knownDevices?: { value: string; label: string }[];
  onCreated: (j: JobInfo) => void;
}) {
  const [form, setForm] = useState<JobForm>({ ...EMPTY_JOB_FORM, ...initial });
  const [step, setStep] = useState(0);
  const scripts = useScripts();
  const create = useCreateJob();
  const script = scripts.data?.find((s) => s.id === form.scriptId);
  const set = (patch: Partial<JobForm>) => setForm((f) => ({ ...f, ...patch }));
  const problems = jobFormProblems(form, script);
  const actionOk = !problems.some((p) => !p.startsWith("Choose at least one device"));
  const targetOk = form.devices.length + form.groups.length > 0;

  return (
    <Stack>
      <Stepper active={step} onStepClick={setStep} size="sm">
        <Stepper.Step label="What" description="command, script or reboot">
          <Stack mt="md">
            <SegmentedControl
              aria-label="Action"
              data={[
                { value: "command", label: "Command" },
                { value: "library", label: "Script library" },
                { value: "script", label: "Ad-hoc script" },
                { value: "reboot", label: "Reboot" },
              ]}
              value={form.action}
              onChange={(v) => set({ action: v as JobForm["action"] })}
            />
            {form.action === "command" && (
              <TextInput
                label="Command"
                description="Run directly, without a shell; quote arguments with spaces."
                placeholder="systemctl restart nginx"
                value={form.command}
                onChange={(e) => set({ command: e.currentTarget.value })}
              />
            )}
            {form.action === "script" && (
              <>
                <Select
                  label="Interpreter"
                  data={[...INTERPRETERS]}
                  value={form.interpreter}
                  onChange={(v) => v && set({ interpreter: v as JobForm["interpreter"] })}
                  allowDeselect={false}
                  w={200}
                />
                <Textarea
                  label="Script"
                  ff="monospace"
                  autosize
                  minRows={6}
                  value={form.body}
                  onChange={(e) => set({ body: e.currentTarget.value })}
                />
              </>
            )}
            {form.action === "library" && (
              <>
                <Select
                  label="Script"
                  placeholder={scripts.isPending ? "Loading the library…" : scripts.data?.length ? "Pick a script" : "The library is empty"}
                  data={(scripts.data ?? []).map((s) => ({ value: s.id, label: `${s.name} (v${s.latest_version})` }))}
                  value={form.scriptId || null}
                  onChange={(v) => set({ scriptId: v ?? "", args: {} })}
                  searchable
                />
                {script && (
                  <>
                    {script.description && (
                      <Text size="sm" c="dimmed">
                        {script.description}
                      </Text>
                    )}
                    {script.parameters.map((p) => (
                      <ParameterInput key={p.name} p={p} value={form.args[p.name] ?? ""} onChange={(v) => set({ args: { ...form.args, [p.name]: v } })} />
                    ))}
                  </>
                )}
              </>
            )}
            {form.action === "reboot" && (
              <Alert color="orange">The devices restart; the run completes when each reports back from its new boot.</Alert>
            )}
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Where" description="devices and groups">
          <Stack mt="md">
            <GroupMultiPicker value={form.groups} onChange={(groups) => set({ groups })} />
            <DeviceMultiPicker value={form.devices} onChange={(devices) => set({ devices })} known={knownDevices} />
            <Text size="sm" c="dimmed">
              A group means its members and the members of its subgroups, resolved when the job is created.
            </Text>
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Review" description="name and limits">
          <Stack mt="md">
            {form.action !== "library" && (
              <TextInput label="Job name" placeholder="(from the command)" value={form.name} onChange={(e) => set({ name: e.currentTarget.value })} />
            )}
            <NumberInput
              label="Timeout (seconds)"
              placeholder="the server's default"
              min={1}
              value={form.timeoutSecs}
              onChange={(v) => set({ timeoutSecs: typeof v === "number" ? v : "" })}
              w={240}
            />
            {problems.length > 0 && (
              <Alert color="orange" title="Not ready yet">
                {problems.map((p) => (
                  <div key={p}>{p}</div>
                ))}
              </Alert>
            )}
            {create.isError && (
              <Alert color="red" role="alert" title="The job was not created">
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
          <Button onClick={() => setStep((s) => s + 1)} disabled={(step === 0 && !actionOk) || (step === 1 && !targetOk)}>
            Next
          </Button>
        ) : (
          <Button
            disabled={problems.length > 0}
            loading={create.isPending}
            onClick={() => create.mutate(buildJobSubmission(form, script), { onSuccess: onCreated })}
          >
            Run job
          </Button>
        )}
      </Group>
    </Stack>
  );
}
