// Enrollment tokens: list, create (the secret and install command come back once), revoke.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, type Schemas, unwrap } from "../api/client";

export type EnrollmentTokenInfo = Schemas["EnrollmentTokenInfo"];
export type CreatedEnrollmentToken = Schemas["CreatedEnrollmentToken"];
export type CreateEnrollmentTokenRequest = Schemas["CreateEnrollmentTokenRequest"];

export const enrollmentKeys = {
  all: ["enrollment-tokens"] as const,
  list: () => ["enrollment-tokens", "list"] as const,
};

export function useEnrollmentTokens() {
  return useQuery({
    queryKey: enrollmentKeys.list(),
    queryFn: () => unwrap(api.GET("/api/v1/enrollment-tokens")),
  });
}

export function createEnrollmentToken(req: CreateEnrollmentTokenRequest): Promise<CreatedEnrollmentToken> {
  return unwrap(api.POST("/api/v1/enrollment-tokens", { body: req }));
}

export function useCreateEnrollmentToken() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: createEnrollmentToken,
    onSuccess: () => qc.invalidateQueries({ queryKey: enrollmentKeys.all }),
  });
}

export function useRevokeEnrollmentToken() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) =>
      unwrap(api.DELETE("/api/v1/enrollment-tokens/{id}", { params: { path: { id } } })),
    onSuccess: () => qc.invalidateQueries({ queryKey: enrollmentKeys.all }),
  });
}
