// Assigning software to many targets at once. The API creates one assignment per target, so a
// bulk assignment is a series of requests: a few at a time, each outcome kept, and a summary
// that separates what the server refused (with its reason, e.g. the package is already
// assigned there) from what could not be asked (network, server errors).
import { ApiError, errorMessage } from "../../api/client";
import type { AssignmentInfo, CreateAssignmentRequest, Intent } from "../../services/deployments";

export interface AssignForm {
  /** Package name (or id). */
  package: string;
  /** A version, or "" for the latest (follows new versions). */
  version: string;
  intent: Intent;
  leaveInstalled: boolean;
}

export const EMPTY_ASSIGN_FORM: AssignForm = { package: "", version: "", intent: "required", leaveInstalled: false };

export interface AssignTarget {
  kind: "device" | "group";
  id: string;
  /** Hostname or group name, for the summary. */
  label: string;
}

export function assignProblems(f: AssignForm, targets: readonly AssignTarget[]): string[] {
  const out: string[] = [];
  if (!f.package) out.push("Choose a package.");
  if (targets.length === 0) out.push("Nothing is selected.");
  return out;
}

export function buildAssignmentRequest(f: AssignForm, t: AssignTarget): CreateAssignmentRequest {
  const req: CreateAssignmentRequest = { package: f.package, target: { kind: t.kind, id: t.id }, intent: f.intent };
  if (f.version) req.version = f.version;
  // Meaningless for an uninstall; otherwise only sent when it differs from the default.
  if (f.leaveInstalled && f.intent !== "uninstall") req.leave_installed = true;
  return req;
}

export type AssignOutcome =
  | { target: AssignTarget; ok: true; assignment: AssignmentInfo }
  | { target: AssignTarget; ok: false; status: number; reason: string };

/**
 * Creates one assignment per target, at most `concurrency` requests at a time, reporting
 * progress after each; outcomes come back in the order of `targets`. A failed request never
 * stops the others.
 */
export async function assignAll(
  form: AssignForm,
  targets: readonly AssignTarget[],
  create: (req: CreateAssignmentRequest) => Promise<AssignmentInfo>,
  onProgress: (done: number, total: number) => void = () => {},
  concurrency = 4,
): Promise<AssignOutcome[]> {
  const out: AssignOutcome[] = new Array(targets.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < targets.length) {
      const i = next++;
      const target = targets[i]!;
      try {
        out[i] = { target, ok: true, assignment: await create(buildAssignmentRequest(form, target)) };
      } catch (e) {
        out[i] = { target, ok: false, status: e instanceof ApiError ? e.status : 0, reason: errorMessage(e) };
      }
      done += 1;
      onProgress(done, targets.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, targets.length)) }, worker));
  return out;
}

export interface AssignSummary {
  created: number;
  /** The server answered no (4xx): its reason per target. */
  refused: { label: string; reason: string }[];
  /** The request failed otherwise (network, 5xx): worth retrying. */
  failed: { label: string; reason: string }[];
}

export function summarizeAssignments(outcomes: readonly AssignOutcome[]): AssignSummary {
  const s: AssignSummary = { created: 0, refused: [], failed: [] };
  for (const o of outcomes) {
    if (o.ok) s.created += 1;
    else if (o.status >= 400 && o.status < 500) s.refused.push({ label: o.target.label, reason: o.reason });
    else s.failed.push({ label: o.target.label, reason: o.reason });
  }
  return s;
}

/** "3 assignments created, 1 refused, 1 failed" — the one-line result. */
export function summaryLine(s: AssignSummary): string {
  const parts = [`${s.created} assignment${s.created === 1 ? "" : "s"} created`];
  if (s.refused.length > 0) parts.push(`${s.refused.length} refused`);
  if (s.failed.length > 0) parts.push(`${s.failed.length} failed`);
  return parts.join(", ");
}

/** The targets of the outcomes that failed for reasons other than a refusal, to try again. */
export function retryTargets(outcomes: readonly AssignOutcome[]): AssignTarget[] {
  return outcomes.filter((o) => !o.ok && !(o.status >= 400 && o.status < 500)).map((o) => o.target);
}
