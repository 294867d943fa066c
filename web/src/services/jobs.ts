// Jobs: the queue, one job with its runs, the create-job request built from the wizard's
// form, the script library, cancel and retry.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, type Schemas, unwrap } from "../api/client";
import { splitCommand } from "../lib/software";

export type JobInfo = Schemas["JobInfo"];
export type RunInfo = Schemas["RunInfo"];
export type RunState = Schemas["RunState"];
export type RunCounts = Schemas["RunCounts"];
export type JobEvent = Schemas["JobEvent"];
export type ScriptInfo = Schemas["ScriptInfo"];
export type ScriptParameter = Schemas["ScriptParameter"];
export type CreateJobRequest = Schemas["CreateJobRequest"];
export type RunScriptRequest = Schemas["RunScriptRequest"];
export type Interpreter = Schemas["Interpreter"];

export const jobKeys = {
  all: ["jobs"] as const,
  list: (page: number) => ["jobs", "list", page] as const,
  detail: (id: string) => ["jobs", "detail", id] as const,
  runs: (id: string) => ["jobs", "runs", id] as const,
  run: (id: string, run: string) => ["jobs", "run", id, run] as const,
  scripts: ["scripts"] as const,
};

export const JOBS_PAGE = 50;

export function useJobs(page: number) {
  return useQuery({
    queryKey: jobKeys.list(page),
    queryFn: () => unwrap(api.GET("/api/v1/jobs", { params: { query: { limit: JOBS_PAGE, offset: (page - 1) * JOBS_PAGE } } })),
    placeholderData: keepPreviousData,
    refetchInterval: 5_000,
  });
}

export function useJob(id: string) {
  return useQuery({
    queryKey: jobKeys.detail(id),
    queryFn: () => unwrap(api.GET("/api/v1/jobs/{id}", { params: { path: { id } } })),
  });
}

/** Runs shown on a job's page (the server's page limit); the counts cover all of them. */
export const RUNS_SHOWN = 500;

export function useRuns(id: string) {
  return useQuery({
    queryKey: jobKeys.runs(id),
    queryFn: () => unwrap(api.GET("/api/v1/jobs/{id}/runs", { params: { path: { id }, query: { limit: RUNS_SHOWN } } })),
  });
}

export function useRun(id: string, run: string | null) {
  return useQuery({
    queryKey: jobKeys.run(id, run ?? ""),
    queryFn: () => unwrap(api.GET("/api/v1/jobs/{id}/runs/{run}", { params: { path: { id, run: run ?? "" } } })),
    enabled: run !== null,
  });
}

export function useScripts() {
  return useQuery({ queryKey: jobKeys.scripts, queryFn: () => unwrap(api.GET("/api/v1/scripts")) });
}

export const FINISHED: readonly RunState[] = ["succeeded", "failed", "timed_out", "cancelled", "expired"];

export function isFinished(c: RunCounts): boolean {
  return c.total > 0 && c.succeeded + c.failed + c.timed_out + c.cancelled + c.expired === c.total;
}

/** The wizard's form. Only the fields of the chosen action matter. */
export interface JobForm {
  action: "command" | "script" | "library" | "reboot";
  name: string;
  command: string;
  interpreter: Interpreter;
  body: string;
  scriptId: string;
  /** Library script arguments as typed by the operator, by parameter name. */
  args: Record<string, string>;
  devices: string[];
  groups: string[];
  timeoutSecs: number | "";
}

export const EMPTY_JOB_FORM: JobForm = {
  action: "command",
  name: "",
  command: "",
  interpreter: "sh",
  body: "",
  scriptId: "",
  args: {},
  devices: [],
  groups: [],
  timeoutSecs: "",
};

export type JobSubmission =
  | { kind: "job"; body: CreateJobRequest }
  | { kind: "library"; scriptId: string; body: RunScriptRequest };

/** A library argument's text as the JSON value its parameter type takes; blank → left out. */
export function argumentValue(p: ScriptParameter, text: string): unknown {
  const t = text.trim();
  if (t === "") return undefined;
  if (p.type === "number") return Number.isFinite(Number(t)) ? Number(t) : t;
  if (p.type === "boolean") return t === "true" ? true : t === "false" ? false : t;
  return t;
}

/** Problems that stop the wizard at its last step, in the operator's words. */
export function jobFormProblems(f: JobForm, script?: ScriptInfo): string[] {
  const out: string[] = [];
  if (f.devices.length === 0 && f.groups.length === 0) out.push("Choose at least one device or group.");
  if (f.action === "command" && splitCommand(f.command).length === 0) out.push("Enter a command.");
  if (f.action === "script" && f.body.trim() === "") out.push("Enter the script.");
  if (f.action === "library") {
    if (!script) out.push("Choose a script from the library.");
    for (const p of script?.parameters ?? []) {
      if (p.required && argumentValue(p, f.args[p.name] ?? "") === undefined && p.default === undefined) {
        out.push(`Parameter ${p.name} is required.`);
      }
    }
  }
  return out;
}

/** The request the wizard sends: a job, or a run of a library script. */
export function buildJobSubmission(f: JobForm, script?: ScriptInfo): JobSubmission {
  const targets: Schemas["JobTargets"] = {};
  if (f.devices.length > 0) targets.devices = f.devices;
  if (f.groups.length > 0) targets.groups = f.groups;
  const timeout = typeof f.timeoutSecs === "number" && f.timeoutSecs > 0 ? f.timeoutSecs : undefined;
  if (f.action === "library") {
    const args: Record<string, unknown> = {};
    for (const p of script?.parameters ?? []) {
      const v = argumentValue(p, f.args[p.name] ?? "");
      if (v !== undefined) args[p.name] = v;
    }
    const body: RunScriptRequest = { targets, arguments: args };
    if (timeout) body.timeout_secs = timeout;
    return { kind: "library", scriptId: f.scriptId, body };
  }
  const action: Schemas["JobAction"] =
    f.action === "command"
      ? { type: "command", argv: splitCommand(f.command) }
      : f.action === "script"
        ? { type: "script", interpreter: f.interpreter, body: f.body }
        : { type: "reboot" };
  const spec: Schemas["JobSpec"] = { action };
  if (timeout) spec.timeout_secs = timeout;
  const body: CreateJobRequest = { spec, targets };
  if (f.name.trim()) body.name = f.name.trim();
  return { kind: "job", body };
}

export function useCreateJob() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (s: JobSubmission): Promise<JobInfo> =>
      s.kind === "job"
        ? unwrap(api.POST("/api/v1/jobs", { body: s.body }))
        : unwrap(api.POST("/api/v1/scripts/{id}/run", { params: { path: { id: s.scriptId } }, body: s.body })),
    onSuccess: () => qc.invalidateQueries({ queryKey: jobKeys.all }),
  });
}

export function useJobAction(id: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (what: "cancel" | "retry") =>
      what === "cancel"
        ? unwrap(api.POST("/api/v1/jobs/{id}/cancel", { params: { path: { id } } }))
        : unwrap(api.POST("/api/v1/jobs/{id}/retry", { params: { path: { id } } })),
    onSuccess: () => qc.invalidateQueries({ queryKey: jobKeys.all }),
  });
}

export type DeviceRunInfo = Schemas["DeviceRunInfo"];

export const DEVICE_RUNS_PAGE = 25;

/** One device's runs across jobs, newest job first (the device's "Jobs" tab). */
export function useDeviceRuns(deviceId: string, page: number) {
  return useQuery({
    queryKey: ["jobs", "device-runs", deviceId, page] as const,
    queryFn: () =>
      unwrap(
        api.GET("/api/v1/devices/{id}/runs", {
          params: { path: { id: deviceId }, query: { limit: DEVICE_RUNS_PAGE, offset: (page - 1) * DEVICE_RUNS_PAGE } },
        }),
      ),
    placeholderData: keepPreviousData,
    refetchInterval: 10_000,
  });
}
