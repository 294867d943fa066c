// Groups, as far as this increment needs them: the list for the device filter.
import { useQuery } from "@tanstack/react-query";
import { api, type Schemas, unwrap } from "../api/client";

export type GroupInfo = Schemas["GroupInfo"];

export const groupKeys = {
  all: ["groups"] as const,
  list: () => ["groups", "list"] as const,
};

export function useGroups() {
  return useQuery({
    queryKey: groupKeys.list(),
    queryFn: () => unwrap(api.GET("/api/v1/groups")),
    staleTime: 30_000,
  });
}
