// The version form after an upload: pre-filled from the parser's analysis, and on submit the
// package is created when new and then the version, with the operator's edits.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { screen } from "@testing-library/react";
import { afterEach, expect, it, vi } from "vitest";
import { renderUi } from "../../../test/render";
import type { UploadAnalysis } from "../../lib/software";

const analysis: UploadAnalysis = {
  sha256: "ab".repeat(32),
  size: 2048,
  file_name: "hello-tool_1.2.0_all.deb",
  package: "hello-tool",
  metadata: { format: "deb", name: "hello-tool", version: "1.2.0", maintainer: "Ops <ops@example.com>" },
  suggested: {
    version: "1.2.0",
    artifacts: [{ platform: "linux", arch: "any", sha256: "ab".repeat(32), file_name: "hello-tool_1.2.0_all.deb" }],
    spec: {
      installer_type: "deb",
      package_id: "hello-tool",
      timeout_secs: 3600,
      detection: { type: "package", manager: "dpkg", name: "hello-tool", version: { op: "gte", version: "1.2.0" } },
    },
  },
};

afterEach(() => vi.unstubAllGlobals());

it("pre-fills the form, creates the new package, then the edited version", async () => {
  const calls: { method: string; path: string; body: unknown; csrf: string | null }[] = [];
  vi.stubGlobal("fetch", async (req: Request) => {
    const url = new URL(req.url);
    const text = await req.text();
    calls.push({ method: req.method, path: url.pathname, body: text ? JSON.parse(text) : null, csrf: req.headers.get("X-Capstan-CSRF") });
    const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
    if (req.method === "GET") return json(404, { status: 404, code: "not_found", message: "package hello-tool" });
    if (url.pathname === "/api/v1/packages") return json(201, { id: "p1", name: "hello-tool" });
    return json(201, { id: "v1", package: "hello-tool", version: "1.2.0-1" });
  });
  // The client takes `fetch` when its module loads.
  const { VersionReview } = await import("./Upload");
  const created = vi.fn();
  const { user } = renderUi(
    <QueryClientProvider client={new QueryClient()}>
      <VersionReview analysis={analysis} onCreated={created} />
    </QueryClientProvider>,
  );
  const box = (label: string) => screen.getByRole("textbox", { name: new RegExp(`^${label}`) }) as HTMLInputElement;
  const value = (label: string) => box(label).value;
  expect(value("Package")).toBe("hello-tool");
  expect(value("Version")).toBe("1.2.0");
  expect(value("Publisher")).toBe("Ops <ops@example.com>");
  expect(screen.getByTestId("detection").textContent).toContain("dpkg package “hello-tool” is installed with version ≥ 1.2.0");

  await user.clear(box("Version"));
  await user.type(box("Version"), "1.2.0-1");
  await user.type(box("Success exit codes"), "0, 10");
  await user.click(screen.getByRole("button", { name: "Create version" }));
  await vi.waitFor(() => expect(created).toHaveBeenCalled());

  expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
    "GET /api/v1/packages/hello-tool",
    "POST /api/v1/packages",
    "POST /api/v1/packages/hello-tool/versions",
  ]);
  expect(calls[1]!.body).toEqual({ name: "hello-tool", display_name: "hello-tool", publisher: "Ops <ops@example.com>" });
  expect(calls[2]!.body).toMatchObject({
    version: "1.2.0-1",
    artifacts: analysis.suggested!.artifacts,
    spec: { installer_type: "deb", success_exit_codes: [0, 10], detection: analysis.suggested!.spec.detection },
  });
  expect(calls.filter((c) => c.method === "POST").every((c) => c.csrf === "1")).toBe(true);
});
