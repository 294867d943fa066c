// The version editor against a stubbed server: the PUT it sends after edits (argv lists,
// exit codes, requirements, detection, and the parts it does not show kept), problems it
// refuses before sending, the server's field problems shown on their fields, and a new
// package-manager version posted without an upload.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { screen, within } from "@testing-library/react";
import { beforeAll, beforeEach, expect, it, vi } from "vitest";
import { renderUi } from "../../../test/render";
import type { VersionInfo } from "../../services/packages";
import type { VersionEditorProps } from "./VersionEditor";

type Call = { method: string; path: string; body: unknown; csrf: string | null };
let calls: Call[] = [];
let answer: (c: Call) => Response;
const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

let VersionEditor: (p: VersionEditorProps) => React.ReactNode;
beforeAll(async () => {
  // The API client takes `fetch` when its module loads: stub it once, answer per test.
  vi.stubGlobal("fetch", async (req: Request) => {
    const text = await req.text();
    const call = { method: req.method, path: new URL(req.url).pathname, body: text ? JSON.parse(text) : null, csrf: req.headers.get("X-Capstan-CSRF") };
    calls.push(call);
    return answer(call);
  });
  ({ VersionEditor } = await import("./VersionEditor"));
});
beforeEach(() => {
  calls = [];
  answer = (c) => json(200, { ...msi, spec: c.body });
});

const msi: VersionInfo = {
  id: "v1",
  package_id: "p1",
  package: "7zip",
  version: "24.08",
  artifacts: [{ platform: "windows", arch: "x86_64", sha256: "ab".repeat(32), size: 1, file_name: "7z.msi" }],
  created_at_ms: 0,
  created_by: "admin",
  spec: {
    installer_type: "msi",
    product_code: "{23170F69-40C1-2702-2408-000001000000}",
    install_command: ["msiexec", "/i", "{file}", "/qn", "/norestart", "/l*v", "{log}"],
    uninstall_command: ["msiexec", "/x", "{product_code}", "/qn", "/norestart", "/l*v", "{log}"],
    success_exit_codes: [0, 1707],
    soft_reboot_exit_codes: [3010],
    hard_reboot_exit_codes: [1641],
    timeout_secs: 3600,
    requirements: {},
    dependencies: [{ package: "vcredist" }],
    detection: { type: "msi_product", product_code: "{23170F69-40C1-2702-2408-000001000000}" },
  },
};

function renderEditor(props: Partial<VersionEditorProps> = {}) {
  const saved = vi.fn();
  const r = renderUi(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { mutations: { retry: false } } })}>
      <VersionEditor pkg="7zip" version={msi} onSaved={saved} onCancel={() => undefined} {...props} />
    </QueryClientProvider>,
  );
  return { ...r, saved };
}

const box = (name: string | RegExp) => screen.getByRole("textbox", { name }) as HTMLInputElement;

it("sends the edited spec with PUT and keeps what it does not show", { timeout: 30_000 }, async () => {
  const { user, saved } = renderEditor();
  expect(screen.getByText("Kept as they are: dependencies (vcredist) (not edited here).")).toBeTruthy();
  const install = screen.getByRole("group", { name: "Install command" });
  expect(within(install).getAllByRole("textbox", { name: /^Install command argument/ })).toHaveLength(7);
  // Argument 4 (/qn) becomes "/passive"; one argument with a space stays one argument.
  await user.clear(box("Install command argument 4"));
  await user.type(box("Install command argument 4"), "/passive");
  await user.click(within(install).getByRole("button", { name: "Add argument" }));
  await user.type(box("Install command argument 8"), "INSTALLDIR=C:\\Program Files\\7-Zip");
  await user.clear(box("Reboot later exit codes"));
  await user.type(box("Reboot later exit codes"), "3010, 3011");
  await user.click(screen.getByRole("checkbox", { name: "windows" }));
  await user.type(box(/^Minimum OS version/), "10.0.19045");
  await user.type(box(/^Free disk space/), "200");
  await user.click(screen.getByRole("button", { name: "Save version" }));
  await vi.waitFor(() => expect(saved).toHaveBeenCalled());

  expect(calls.map((c) => `${c.method} ${c.path} csrf=${c.csrf}`)).toEqual(["PUT /api/v1/packages/7zip/versions/24.08 csrf=1"]);
  expect(calls[0]!.body).toEqual({
    ...msi.spec,
    install_command: ["msiexec", "/i", "{file}", "/passive", "/norestart", "/l*v", "{log}", String.raw`INSTALLDIR=C:\Program Files\7-Zip`],
    soft_reboot_exit_codes: [3010, 3011],
    requirements: { os_families: ["windows"], min_os_version: "10.0.19045", min_free_disk_mb: 200 },
  });
});

it("refuses to send what the server would refuse, and says where", { timeout: 30_000 }, async () => {
  const { user } = renderEditor();
  await user.clear(box("Install command argument 3"));
  // user-event reads "{{" as one literal brace: the argument is "{fil}".
  await user.type(box("Install command argument 3"), "{{fil}");
  await user.clear(box("Success exit codes"));
  await user.type(box("Success exit codes"), "0, 3010");
  await user.clear(box(/^Timeout/));
  await user.type(box(/^Timeout/), "0");
  await user.click(screen.getByRole("button", { name: "Remove condition 1" }));
  await user.click(screen.getByRole("button", { name: "Save version" }));

  expect(calls).toEqual([]);
  const err = (el: HTMLElement) => document.getElementById(el.getAttribute("aria-describedby")?.split(" ").find((id) => id.includes("error")) ?? "")?.textContent;
  expect(box("Install command argument 3").getAttribute("aria-invalid")).toBe("true");
  expect(screen.getByText(/unknown placeholder \{fil\} \(known: \{file\}/)).toBeTruthy();
  expect(err(box("Reboot later exit codes"))).toBe("a code cannot mean both plain success and reboot");
  expect(err(box(/^Timeout/))).toBe("between 1 second and 24 hours");
  expect(within(screen.getByRole("group", { name: "detection rule" })).getByRole("alert").textContent).toBe("a group needs at least one rule");
  expect(screen.getByRole("status").textContent).toMatch(/Nothing was saved: correct the 4 marked problems/);
});

it("shows the server's problems on their fields, and other refusals as a message", { timeout: 30_000 }, async () => {
  answer = () =>
    json(400, {
      status: 400,
      code: "validation_failed",
      message: "/spec/requirements/min_os_version: a dotted version; /spec/detection/path: must be absolute",
      details: [
        { path: "/spec/requirements/min_os_version", message: "a dotted version like 12 or 10.0.19045", valid: [] },
        { path: "/spec/detection/product_code", message: "the server disagrees about this GUID", valid: [] },
      ],
    });
  const { user, saved } = renderEditor();
  await user.click(screen.getByRole("button", { name: "Save version" }));
  await screen.findByText("a dotted version like 12 or 10.0.19045");
  expect(box(/^Minimum OS version/).getAttribute("aria-invalid")).toBe("true");
  expect(box("condition 1: product code").getAttribute("aria-invalid")).toBe("true");
  expect(screen.getByText("the server disagrees about this GUID")).toBeTruthy();
  expect(saved).not.toHaveBeenCalled();

  answer = () => json(400, { status: 400, code: "validation_failed", message: "/installer_type: the installer type follows the artifacts and cannot change; add a new version" });
  await user.click(screen.getByRole("button", { name: "Save version" }));
  const refusal = await screen.findByText(/the installer type follows the artifacts and cannot change/);
  expect(refusal.closest('[role="alert"]')).not.toBeNull();
  // Problems of the earlier answer are gone.
  expect(screen.queryByText("a dotted version like 12 or 10.0.19045")).toBeNull();
});

it("creates a package-manager version without an upload", { timeout: 30_000 }, async () => {
  answer = (c) => json(201, { ...msi, version: "1.24", spec: (c.body as { spec: unknown }).spec });
  const { user, saved } = renderEditor({ version: undefined, pkg: "nginx" });
  await user.click(screen.getByRole("button", { name: "Create version" }));
  // Without a version label and package name nothing is sent.
  expect(calls).toEqual([]);
  expect(box(/^Version( \*)?$/).getAttribute("aria-invalid")).toBe("true");

  await user.type(box(/^Version( \*)?$/), "1.24");
  await user.type(box(/^Package in the manager/), "nginx");
  await user.type(box(/^Version pin/), "1.24.*");
  await user.click(screen.getByRole("button", { name: "Detect by the manager package" }));
  expect(box("condition 1: package name").value).toBe("nginx");
  await user.click(screen.getByRole("button", { name: "Create version" }));
  await vi.waitFor(() => expect(saved).toHaveBeenCalled());
  expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(["POST /api/v1/packages/nginx/versions"]);
  expect(calls[0]!.body).toEqual({
    version: "1.24",
    spec: {
      installer_type: "package_manager",
      manager_package: { manager: "apt", name: "nginx", version: "1.24.*" },
      soft_reboot_exit_codes: [],
      hard_reboot_exit_codes: [],
      timeout_secs: 3600,
      requirements: {},
      detection: { type: "package", manager: "dpkg", name: "nginx" },
    },
  });
});
