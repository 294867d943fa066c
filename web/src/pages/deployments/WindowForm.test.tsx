// The maintenance-window form against a stubbed server: a cron window in a fixed zone with its
// meaning in words, live expression errors, and the server's problems back on their fields.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { screen, within } from "@testing-library/react";
import { beforeAll, beforeEach, expect, it, vi } from "vitest";
import { renderUi } from "../../../test/render";

type Call = { method: string; path: string; body: unknown };
let calls: Call[] = [];
let answer: (c: Call) => Response;
const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

let WindowForm: (p: { onDone: () => void }) => React.ReactNode;
beforeAll(async () => {
  vi.stubGlobal("fetch", async (req: Request) => {
    const text = await req.text();
    const call = { method: req.method, path: new URL(req.url).pathname, body: text ? JSON.parse(text) : null };
    if (call.method === "GET" && call.path === "/api/v1/groups") return json(200, [{ id: "g1", name: "Pilot", members: 3 }]);
    calls.push(call);
    return answer(call);
  });
  ({ WindowForm } = await import("./WindowForm"));
});
beforeEach(() => {
  calls = [];
  answer = () => json(201, {});
});

function setup() {
  const done = vi.fn();
  const r = renderUi(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { mutations: { retry: false } } })}>
      <WindowForm onDone={done} />
    </QueryClientProvider>,
  );
  return { ...r, done };
}

type User = ReturnType<typeof renderUi>["user"];
const box = (name: RegExp) => screen.getByRole("textbox", { name }) as HTMLInputElement;
const zone = () => screen.getByRole("combobox", { name: /^IANA time zone/ }) as HTMLInputElement;

async function pickGroup(user: User) {
  const input = screen.getByRole("combobox", { name: "Groups it applies to" });
  await user.click(input);
  const list = document.getElementById(input.getAttribute("aria-controls") ?? "");
  await user.click(within(list!).getByRole("option", { name: "Pilot (3)", hidden: true }));
}

it("creates a cron window in a fixed time zone, explaining the expression as it is typed", { timeout: 30_000 }, async () => {
  const { user, done } = setup();
  await user.type(box(/^Name/), "Weeknights");
  await user.click(screen.getByText("Cron expression"));
  const expr = box(/^Cron expression/);
  expect(screen.getByTestId("cron-hint").textContent).toBe("Opens at 02:00 on Sunday and Saturday, for 2 h.");

  await user.clear(expr);
  await user.type(expr, "0 22 * * MON-FRY");
  expect(expr.getAttribute("aria-invalid")).toBe("true");
  expect(screen.getByText("day-of-week field `MON-FRY`: `FRY` is neither a number nor one of SUN, MON, TUE, WED, THU, FRI, SAT")).toBeTruthy();
  expect(screen.queryByTestId("cron-hint")).toBeNull();
  await user.type(expr, "{Backspace}I");
  expect(screen.getByTestId("cron-hint").textContent).toBe("Opens at 22:00 on Monday to Friday, for 2 h.");

  await user.clear(screen.getByRole("textbox", { name: /^Duration/ }));
  await user.type(screen.getByRole("textbox", { name: /^Duration/ }), "90");
  await user.click(screen.getByRole("radio", { name: /One fixed time zone/ }));
  await user.type(zone(), "Europe/Berlin");
  await pickGroup(user);
  await user.click(screen.getByRole("button", { name: "Create window" }));
  await vi.waitFor(() => expect(done).toHaveBeenCalled());
  expect(calls).toEqual([
    {
      method: "POST",
      path: "/api/v1/maintenance-windows",
      body: { name: "Weeknights", groups: ["g1"], timezone: "Europe/Berlin", schedule: { kind: "cron", expression: "0 22 * * MON-FRI", duration_minutes: 90 } },
    },
  ]);
});

it("sends nothing while the form is incomplete, and shows the server's problems per field", { timeout: 30_000 }, async () => {
  const { user, done } = setup();
  await user.click(screen.getByRole("button", { name: "Create window" }));
  expect(calls).toEqual([]);
  expect(screen.getByText("give the window a name")).toBeTruthy();
  expect(screen.getByText("choose at least one group the window applies to")).toBeTruthy();

  answer = () =>
    json(400, {
      status: 400,
      code: "validation_failed",
      message:
        "/timezone: `Mars/Olympus` is not a known time zone; use an IANA name such as Europe/Berlin, UTC, or `device` for each device's own zone; /groups/0: there is no group \"g1\"",
    });
  await user.type(box(/^Name/), "Weekend");
  await user.click(screen.getByRole("radio", { name: /One fixed time zone/ }));
  await user.type(zone(), "Mars/Olympus");
  await pickGroup(user);
  await user.click(screen.getByRole("button", { name: "Create window" }));
  await screen.findByText(/`Mars\/Olympus` is not a known time zone/);
  expect(zone().getAttribute("aria-invalid")).toBe("true");
  expect(screen.getByText('there is no group "g1"')).toBeTruthy();
  expect(screen.queryByRole("alert")).toBeNull();
  expect(calls[0]!.body).toMatchObject({ timezone: "Mars/Olympus", schedule: { kind: "weekly", days: ["sat", "sun"], start: "02:00" } });
  expect(done).not.toHaveBeenCalled();

  answer = () => json(500, { status: 500, code: "internal", message: "the database is unavailable" });
  await user.click(screen.getByRole("button", { name: "Create window" }));
  expect((await screen.findByRole("alert")).textContent).toContain("the database is unavailable");
});
