// The whole console in jsdom with a scripted server: the session redirect, login, and the
// device list's query string as the server receives it.
import { MantineProvider } from "@mantine/core";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createMemoryHistory, RouterProvider } from "@tanstack/react-router";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { expect, it, vi } from "vitest";

const admin = { id: "u1", username: "admin", role: "admin", created_at_ms: 0, disabled: false };
const device = {
  id: "d1",
  hostname: "web-01",
  online: true,
  last_seen_at_ms: Date.now(),
  enrolled_at_ms: Date.now(),
  os_family: "linux",
  os_name: "Debian GNU/Linux",
  os_version: "12",
  agent_version: "0.1.0",
  tags: ["prod"],
};

function json(status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

it("sends an operator without a session to the login page, then where they were going", async () => {
  let loggedIn = false;
  const requests: string[] = [];
  vi.stubGlobal("fetch", async (req: Request) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    if (url.pathname === "/api/v1/auth/login") {
      const body = (await req.json()) as { password: string };
      if (body.password !== "right-password") {
        return json(401, { status: 401, code: "invalid_credentials", message: "wrong username or password" });
      }
      loggedIn = true;
      return json(200, { token: "caps_x", expires_at_ms: 0, user: admin });
    }
    if (!loggedIn) return json(401, { status: 401, code: "unauthenticated", message: "log in" });
    if (url.pathname === "/api/v1/auth/me") return json(200, admin);
    if (url.pathname === "/api/v1/groups") return json(200, []);
    if (url.pathname === "/api/v1/devices") return json(200, { items: [device], total: 1, offset: 0, limit: 25 });
    return json(404, { status: 404, code: "route_not_found", message: url.pathname });
  });
  // The API client takes `fetch` when its module loads, so load the app after stubbing it.
  const { router } = await import("./router");
  router.update({ history: createMemoryHistory({ initialEntries: ["/devices?status=online&size=25&sort=last_seen&desc=true"] }) });
  const user = userEvent.setup();
  render(
    <MantineProvider>
      <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
        <RouterProvider router={router} />
      </QueryClientProvider>
    </MantineProvider>,
  );

  await screen.findByRole("button", { name: "Log in" });
  expect(router.state.location.pathname).toBe("/login");
  await user.type(screen.getByLabelText(/Username/), "admin");
  await user.type(screen.getByLabelText(/Password/), "wrong{Enter}");
  expect((await screen.findByRole("alert")).textContent).toContain("Wrong username or password.");

  await user.clear(screen.getByLabelText(/Password/));
  await user.type(screen.getByLabelText(/Password/), "right-password{Enter}");
  expect(await screen.findByRole("link", { name: "web-01" })).toBeTruthy();
  expect(router.state.location.pathname).toBe("/devices");
  const list = requests.find((r) => r.startsWith("GET /api/v1/devices?"));
  expect(Object.fromEntries(new URLSearchParams(list?.split("?")[1]))).toEqual({
    status: "online",
    sort: "-last_seen",
    offset: "0",
    limit: "25",
  });
  vi.unstubAllGlobals();
});
