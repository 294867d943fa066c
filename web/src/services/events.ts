// The live event stream (`GET /api/v1/events/stream`, server-sent events): which cached
// queries an event makes stale, and the hook the layout mounts once. EventSource reconnects by
// itself after a server restart and sends the last event id it saw, so the page catches up on
// what it missed; on every (re)connect the affected lists are refreshed as well, in case the
// server's event log was reset. Presence (`device.online` / `device.offline`, announced by the
// server within seconds of a device going silent or coming back) refreshes the lists, the
// dashboard and the open device; bursts are throttled like every other event.
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import type { Schemas } from "../api/client";

export type DomainEvent = Schemas["DomainEvent"];

export const EVENTS_URL = "/api/v1/events/stream";

/** The query-key prefixes an event makes stale. */
export function keysFor(e: Pick<DomainEvent, "kind" | "subject" | "object">): unknown[][] {
  if (e.kind.startsWith("group.member_")) {
    return [["devices", "list"], ["devices", "detail", e.subject], ["groups"]];
  }
  if (e.kind === "software.status") {
    return [["deployments"], ["devices", "software", e.subject], ["devices", "timeline", e.subject]];
  }
  if (e.kind === "device.online" || e.kind === "device.offline") {
    // Presence: every place that shows a status badge or counts devices by it.
    return [["devices", "list"], ["devices", "summary"], ["devices", "detail", e.subject], ["groups", "members"]];
  }
  if (e.kind.startsWith("device.")) return [["devices"]];
  return [];
}

/**
 * How long invalidations wait to be collected after an event of this kind. Presence changes
 * trickle in all the time in a large fleet and each refreshes the (costlier) device list and
 * summary, so they are batched over a longer window than the rest.
 */
export function throttleFor(kind: string): number {
  return kind === "device.online" || kind === "device.offline" ? 2_000 : 500;
}

export type LiveState = "connecting" | "live" | "reconnecting";

/**
 * Refreshes queries as events arrive. Events come in bursts (a rule change moves thousands of
 * devices): invalidations are collected and applied at most every 500 ms (2 s when the first
 * event of a batch is a presence change, see `throttleFor`).
 */
export function useLiveEvents(enabled: boolean): LiveState {
  const qc = useQueryClient();
  const [state, setState] = useState<LiveState>("connecting");
  useEffect(() => {
    if (!enabled || typeof EventSource === "undefined") return;
    const source = new EventSource(EVENTS_URL, { withCredentials: true });
    const pending = new Map<string, unknown[]>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flush = () => {
      timer = undefined;
      for (const key of pending.values()) void qc.invalidateQueries({ queryKey: key });
      pending.clear();
    };
    const schedule = (keys: unknown[][], delay = 500) => {
      for (const k of keys) pending.set(JSON.stringify(k), k);
      timer ??= setTimeout(flush, delay);
    };
    source.addEventListener("ready", () => {
      setState("live");
      schedule([["deployments"], ["groups"]]);
    });
    source.onmessage = (m: MessageEvent<string>) => {
      try {
        const e = JSON.parse(m.data) as DomainEvent;
        schedule(keysFor(e), throttleFor(e.kind));
      } catch {
        // A message this console does not understand changes nothing it shows.
      }
    };
    source.onerror = () => setState("reconnecting");
    return () => {
      source.close();
      if (timer) clearTimeout(timer);
    };
  }, [enabled, qc]);
  return state;
}

