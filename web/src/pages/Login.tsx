// The login page: a labelled username/password form. The server answers with an HttpOnly
// session cookie; afterwards the operator lands where they wanted to go.
import { Alert, Button, Center, Paper, PasswordInput, Stack, TextInput, Title } from "@mantine/core";
import { useNavigate } from "@tanstack/react-router";
import { type FormEvent, useState } from "react";
import { ApiError, errorMessage } from "../api/client";
import { type LoginRequest, useLogin } from "../services/auth";

export interface LoginFormProps {
  onSubmit: (req: LoginRequest) => Promise<unknown>;
}

/** Why a login failed, in the operator's terms. */
export function loginErrorText(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.code === "invalid_credentials") return "Wrong username or password.";
    if (e.code === "rate_limited") return `Too many failed attempts. ${e.message}`;
  }
  return errorMessage(e);
}

export function LoginForm({ onSubmit }: LoginFormProps) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [missing, setMissing] = useState<{ username?: string; password?: string }>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [pending, setPending] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const m = {
      username: username.trim() ? undefined : "Enter your username",
      password: password ? undefined : "Enter your password",
    };
    setMissing(m);
    if (m.username || m.password) return;
    setFailure(null);
    setPending(true);
    try {
      await onSubmit({ username: username.trim(), password });
    } catch (err) {
      setFailure(loginErrorText(err));
      setPending(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate aria-label="Log in">
      <Stack>
        {failure && (
          <Alert color="red" role="alert" title="Login failed">
            {failure}
          </Alert>
        )}
        <TextInput
          label="Username"
          name="username"
          autoComplete="username"
          value={username}
          onChange={(e) => setUsername(e.currentTarget.value)}
          error={missing.username}
          required
          data-autofocus
        />
        <PasswordInput
          label="Password"
          name="password"
          autoComplete="current-password"
          value={password}
          onChange={(e) => setPassword(e.currentTarget.value)}
          error={missing.password}
          required
        />
        <Button type="submit" loading={pending}>
          Log in
        </Button>
      </Stack>
    </form>
  );
}

/** Only same-origin paths are followed after login, never a URL to elsewhere. */
export function safeRedirect(target: string | undefined): string {
  if (!target || !target.startsWith("/") || target.startsWith("//") || target.startsWith("/\\")) {
    return "/";
  }
  return target;
}

export function LoginPage({ redirect }: { redirect?: string }) {
  const login = useLogin();
  const navigate = useNavigate();
  return (
    <Center mih="100vh" bg="gray.0">
      <Paper withBorder shadow="sm" p="xl" w={380}>
        <Stack>
          <Title order={1} size="h2">
            Capstan
          </Title>
          <LoginForm
            onSubmit={async (req) => {
              await login.mutateAsync(req);
              await navigate({ href: safeRedirect(redirect), replace: true });
            }}
          />
        </Stack>
      </Paper>
    </Center>
  );
}
