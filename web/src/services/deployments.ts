// Deployments and maintenance windows: lists, one deployment's status, the request the create
// wizard builds, pause / resume / delete; a device's software assignments.
import { useMutation, useQueries, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, type Schemas, unwrap } from "../api/client";

export type DeploymentInfo = Schemas["DeploymentInfo"];
export type DeploymentStatus = Schemas["DeploymentStatus"];
export type CreateDeploymentRequest = Schemas["CreateDeploymentRequest"];
export type StatusCounts = Schemas["StatusCounts"];
export type ItemStatus = Schemas["ItemStatus"];
export type WindowInfo = Schemas["WindowInfo"];
export type CreateWindowRequest = Schemas["CreateWindowRequest"];
export type Weekday = Schemas["Weekday"];

export const deploymentKeys = {
  all: ["deployments"] as const,
  list: () => ["deployments", "list"] as const,
  status: (id: string) => ["deployments", "status", id] as const,
  windows: ["deployments", "windows"] as const,
  deviceSoftware: (id: string) => ["devices", "software", id] as const,
};

export function useDeployments() {
  return useQuery({
    queryKey: deploymentKeys.list(),
    queryFn: () => unwrap(api.GET("/api/v1/deployments")),
    refetchInterval: 30_000,
  });
}

export function useDeploymentStatus(id: string) {
  return useQuery({
    queryKey: deploymentKeys.status(id),
    queryFn: () => unwrap(api.GET("/api/v1/deployments/{id}/status", { params: { path: { id }, query: { limit: 1000 } } })),
    refetchInterval: 30_000,
  });
}

export function useWindows() {
  return useQuery({ queryKey: deploymentKeys.windows, queryFn: () => unwrap(api.GET("/api/v1/maintenance-windows")) });
}

export function useDeviceSoftware(id: string) {
  return useQuery({
    queryKey: deploymentKeys.deviceSoftware(id),
    queryFn: () => unwrap(api.GET("/api/v1/devices/{id}/software", { params: { path: { id } } })),
  });
}

/** Statuses in the order a rollout moves through them; colours for the badges. */
export const STATUS_COLORS: Record<ItemStatus, string> = {
  planned: "gray",
  waiting: "yellow",
  downloading: "cyan",
  installing: "blue",
  installed: "green",
  failed: "red",
  not_applicable: "gray",
  uninstalling: "orange",
  removed: "teal",
  reboot_pending: "violet",
  available: "indigo",
};

export function successRate(c: StatusCounts): number | null {
  const done = c.installed + c.failed + c.removed;
  return done === 0 ? null : (c.installed + c.removed) / done;
}

/** The wizard's form as an operator fills it in. */
export interface DeploymentForm {
  name: string;
  description: string;
  package: string;
  /** A version, or "" for the latest. */
  version: string;
  targetKind: "group" | "device";
  targetId: string;
  intent: Schemas["Intent"];
  /** `datetime-local` values (the browser's zone), or "" for none. */
  availableFrom: string;
  deadline: string;
  windowPolicy: Schemas["WindowPolicy"];
  maxKbPerSec: number | "";
  skipMetered: boolean;
  siteSourcesOnly: boolean;
  leaveInstalled: boolean;
}

export const EMPTY_DEPLOYMENT: DeploymentForm = {
  name: "",
  description: "",
  package: "",
  version: "",
  targetKind: "group",
  targetId: "",
  intent: "required",
  availableFrom: "",
  deadline: "",
  windowPolicy: "respect",
  maxKbPerSec: "",
  skipMetered: false,
  siteSourcesOnly: false,
  leaveInstalled: false,
};

/** `datetime-local` text → Unix ms in the browser's zone; undefined when blank or invalid. */
export function localToMs(text: string): number | undefined {
  if (!text) return undefined;
  const ms = new Date(text).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

export function deploymentProblems(f: DeploymentForm): string[] {
  const out: string[] = [];
  if (!f.name.trim()) out.push("Give the deployment a name.");
  if (!f.package) out.push("Choose a package.");
  if (!f.targetId) out.push(f.targetKind === "group" ? "Choose a group." : "Choose a device.");
  const from = localToMs(f.availableFrom);
  const deadline = localToMs(f.deadline);
  if (from !== undefined && deadline !== undefined && deadline < from) out.push("The deadline is before the start.");
  return out;
}

export function buildDeploymentRequest(f: DeploymentForm): CreateDeploymentRequest {
  const req: CreateDeploymentRequest = {
    name: f.name.trim(),
    package: f.package,
    intent: f.intent,
    target: { kind: f.targetKind, id: f.targetId },
    window_policy: f.windowPolicy,
  };
  if (f.description.trim()) req.description = f.description.trim();
  if (f.version) req.version = f.version;
  const from = localToMs(f.availableFrom);
  if (from !== undefined) req.available_from_ms = from;
  const deadline = localToMs(f.deadline);
  if (deadline !== undefined) req.deadline_ms = deadline;
  const network: Schemas["NetworkPolicy"] = {};
  if (typeof f.maxKbPerSec === "number" && f.maxKbPerSec > 0) network.max_bytes_per_sec = Math.round(f.maxKbPerSec * 1024);
  if (f.skipMetered) network.skip_metered = true;
  if (f.siteSourcesOnly) network.site_sources_only = true;
  if (Object.keys(network).length > 0) req.network = network;
  // Only sent when it differs from the server's default (remove what the deployment installed).
  if (f.leaveInstalled && f.intent !== "uninstall") req.leave_installed = true;
  return req;
}

export function useCreateDeployment() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateDeploymentRequest) => unwrap(api.POST("/api/v1/deployments", { body })),
    onSuccess: () => qc.invalidateQueries({ queryKey: deploymentKeys.all }),
  });
}

export function useDeploymentAction() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, what }: { id: string; what: "pause" | "resume" | "delete" }) =>
      what === "delete"
        ? unwrap(api.DELETE("/api/v1/deployments/{id}", { params: { path: { id } } }))
        : what === "pause"
          ? unwrap(api.POST("/api/v1/deployments/{id}/pause", { params: { path: { id } } }))
          : unwrap(api.POST("/api/v1/deployments/{id}/resume", { params: { path: { id } } })),
    onSuccess: () => qc.invalidateQueries({ queryKey: deploymentKeys.all }),
  });
}

export function useCreateWindow() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateWindowRequest) => unwrap(api.POST("/api/v1/maintenance-windows", { body })),
    onSuccess: () => qc.invalidateQueries({ queryKey: deploymentKeys.windows }),
  });
}

export function useDeleteWindow() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/api/v1/maintenance-windows/{id}", { params: { path: { id } } })),
    onSuccess: () => qc.invalidateQueries({ queryKey: deploymentKeys.windows }),
  });
}

/** Devices a deployment has not finished with yet; `available` (offered for self-service) is an
 *  end state like installed, failed or not applicable. */
export function pendingDevices(c: StatusCounts): number {
  return c.planned + c.waiting + c.downloading + c.installing + c.uninstalling + c.reboot_pending;
}

/** Which deployments a list filter keeps: `active` still has devices under way and is not
 *  paused; `failing` has at least one failed device. */
export type DeploymentFilter = "active" | "failing";

export function matchesDeploymentFilter(d: Pick<DeploymentInfo, "paused" | "counts">, f: DeploymentFilter | undefined): boolean {
  if (f === "active") return !d.paused && pendingDevices(d.counts) > 0;
  if (f === "failing") return d.counts.failed > 0;
  return true;
}

export interface DeploymentSummary {
  active: number;
  failing: number;
  /** Devices failed, summed over every deployment. */
  failedDevices: number;
  /** Devices still under way in active deployments. */
  pendingDevices: number;
}

export function summarizeDeployments(list: readonly Pick<DeploymentInfo, "paused" | "counts">[]): DeploymentSummary {
  const active = list.filter((d) => matchesDeploymentFilter(d, "active"));
  return {
    active: active.length,
    failing: list.filter((d) => matchesDeploymentFilter(d, "failing")).length,
    failedDevices: list.reduce((n, d) => n + d.counts.failed, 0),
    pendingDevices: active.reduce((n, d) => n + pendingDevices(d.counts), 0),
  };
}

export type AssignmentInfo = Schemas["AssignmentInfo"];
export type CreateAssignmentRequest = Schemas["CreateAssignmentRequest"];
export type Intent = Schemas["Intent"];

export const assignmentKeys = {
  all: ["assignments"] as const,
  ofGroup: (group: string) => ["assignments", "group", group] as const,
};

/** The assignments that target one group (not those of its ancestors), with device counts. */
export function groupAssignmentsQuery(groupId: string) {
  return {
    queryKey: assignmentKeys.ofGroup(groupId),
    queryFn: () => unwrap(api.GET("/api/v1/assignments", { params: { query: { group: groupId } } })),
    refetchInterval: 30_000,
  };
}

/** Remove an assignment: devices it reached lose what it installed (unless it was made with
 *  "leave installed") once the controller has recompiled their manifests. */
export function useRemoveAssignment() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/api/v1/assignments/{id}", { params: { path: { id } } })),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: assignmentKeys.all });
      void qc.invalidateQueries({ queryKey: deploymentKeys.all });
      void qc.invalidateQueries({ queryKey: ["devices", "software"] });
    },
  });
}

/** The assignments of each group in `groupIds` (a group and its ancestors), one query each. */
export function useAssignmentsOfGroups(groupIds: readonly string[]) {
  return useQueries({ queries: groupIds.map(groupAssignmentsQuery) });
}

export function createAssignment(body: CreateAssignmentRequest): Promise<AssignmentInfo> {
  return unwrap(api.POST("/api/v1/assignments", { body }));
}
