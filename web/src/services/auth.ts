// The operator's session: who is logged in, logging in and out. The session itself is the
// HttpOnly cookie the server sets; the token in the login response is deliberately ignored.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, type Schemas, unwrap } from "../api/client";

export type UserInfo = Schemas["UserInfo"];
export type LoginRequest = Schemas["LoginRequest"];

export const authKeys = {
  me: ["auth", "me"] as const,
};

export function useMe() {
  return useQuery({
    queryKey: authKeys.me,
    queryFn: () => unwrap(api.GET("/api/v1/auth/me")),
    retry: false,
    staleTime: 60_000,
  });
}

export async function login(req: LoginRequest): Promise<UserInfo> {
  const resp = await unwrap(api.POST("/api/v1/auth/login", { body: req }));
  return resp.user;
}

export function useLogin() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: login,
    onSuccess: (user) => {
      // Whatever another operator's session had cached must not show.
      qc.clear();
      qc.setQueryData(authKeys.me, user);
    },
  });
}

export function useLogout() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/auth/logout")),
    onSettled: () => {
      qc.clear();
    },
  });
}
