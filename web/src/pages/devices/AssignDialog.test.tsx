// The bulk assignment dialog as an operator uses it: pick a package, assign to three devices,
// and read which were created and which the server refused, with its reason.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { screen, within } from "@testing-library/react";
import { afterEach, expect, it, vi } from "vitest";
import { renderUi } from "../../../test/render";

afterEach(() => vi.unstubAllGlobals());

it("creates one assignment per device and lists the refusals with the server's reason", async () => {
  const posted: unknown[] = [];
  vi.stubGlobal("fetch", async (req: Request) => {
    const url = new URL(req.url);
    const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
    if (req.method === "GET" && url.pathname === "/api/v1/packages") {
      return json(200, { items: [{ id: "p1", name: "nginx", display_name: "Nginx", created_at_ms: 0 }], total: 1, limit: 50, offset: 0 });
    }
    if (req.method === "GET") return json(200, []);
    const body = JSON.parse(await req.text()) as { target: { id: string } };
    posted.push(body);
    if (body.target.id === "d2") {
      return json(409, { status: 409, code: "conflict", message: "nginx is already assigned to host-d2" });
    }
    return json(201, { id: `a-${body.target.id}` });
  });
  const { AssignSoftwareDialog } = await import("./AssignDialog");
  const onClose = vi.fn();
  const targets = ["d1", "d2", "d3"].map((id) => ({ kind: "device" as const, id, label: `host-${id}` }));
  const { user } = renderUi(
    <QueryClientProvider client={new QueryClient()}>
      <AssignSoftwareDialog title="Assign software to 3 devices" targets={targets} onClose={onClose} />
    </QueryClientProvider>,
  );

  // Nothing is sent without a package.
  await user.click(screen.getByRole("button", { name: "Assign" }));
  expect(await screen.findByText("Choose a package.")).toBeTruthy();
  expect(posted).toEqual([]);

  const pkg = screen.getByRole("combobox", { name: "Package" });
  await user.click(pkg);
  const list = () => document.getElementById(pkg.getAttribute("aria-controls") ?? "")!;
  await vi.waitFor(() => expect(within(list()).getAllByRole("option", { hidden: true })).toHaveLength(1));
  await user.click(within(list()).getByRole("option", { name: "Nginx (nginx)", hidden: true }));
  await user.click(screen.getByRole("button", { name: "Assign" }));

  const summary = await screen.findByTestId("assign-summary");
  expect(within(summary).getByText("2 assignments created, 1 refused")).toBeTruthy();
  expect(summary.textContent).toContain("host-d2: nginx is already assigned to host-d2");
  expect(posted).toHaveLength(3);
  expect(posted).toContainEqual({ package: "nginx", target: { kind: "device", id: "d1" }, intent: "required" });
  // A refusal is final: nothing to retry.
  expect(screen.queryByRole("button", { name: /^Retry/ })).toBeNull();
  await user.click(screen.getByRole("button", { name: "Close" }));
  expect(onClose).toHaveBeenCalled();
});
