// Bulk changes to chosen devices: tags added or removed, static-group membership added or
// removed. Each answers with the server's counts (matched / changed) and refreshes every device
// and group view, since a tag change can move devices in and out of dynamic groups.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, type Schemas, unwrap } from "../api/client";

export type BulkResult = Schemas["BulkResult"];

export type BulkChange =
  | { kind: "add-tags" | "remove-tags"; deviceIds: string[]; tags: string[] }
  | { kind: "add-group" | "remove-group"; deviceIds: string[]; groupId: string };

export async function applyBulkChange(change: BulkChange): Promise<BulkResult> {
  const device_ids = change.deviceIds;
  switch (change.kind) {
    case "add-tags":
      return unwrap(api.POST("/api/v1/tags/add", { body: { device_ids, tags: change.tags } }));
    case "remove-tags":
      return unwrap(api.POST("/api/v1/tags/remove", { body: { device_ids, tags: change.tags } }));
    case "add-group":
      return unwrap(
        api.POST("/api/v1/groups/{id}/members", { params: { path: { id: change.groupId } }, body: { device_ids } }),
      );
    case "remove-group":
      return unwrap(
        api.POST("/api/v1/groups/{id}/members/remove", {
          params: { path: { id: change.groupId } },
          body: { device_ids },
        }),
      );
  }
}

export function useBulkChange() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: applyBulkChange,
    onSettled: () => {
      void qc.invalidateQueries({ queryKey: ["devices"] });
      void qc.invalidateQueries({ queryKey: ["groups"] });
    },
  });
}
