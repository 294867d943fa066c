// The detection-rule builder as an operator uses it: conditions and nested blocks, switching
// ALL/ANY and condition types, the rule JSON that results, the preview in words, and problems
// shown on the field they concern.
import { screen, within } from "@testing-library/react";
import { useState } from "react";
import { expect, it } from "vitest";
import { renderUi } from "../../../test/render";
import { type Detection, detectionProblems, type GroupNode, parseDetection, placeProblems, toDetection } from "../../lib/detection";
import { DetectionBuilder } from "./DetectionBuilder";

function Harness({ initial, onRule, check }: { initial: GroupNode; onRule: (d: Detection) => void; check?: boolean }) {
  const [tree, setTree] = useState(initial);
  const rule = toDetection(tree);
  onRule(rule);
  return <DetectionBuilder value={tree} onChange={setTree} problems={check ? placeProblems(tree, detectionProblems(rule)) : undefined} />;
}

type User = ReturnType<typeof renderUi>["user"];

async function pick(user: User, combobox: HTMLElement, name: string) {
  if (combobox.getAttribute("aria-expanded") !== "true") await user.click(combobox);
  const list = document.getElementById(combobox.getAttribute("aria-controls") ?? "");
  if (!list) throw new Error("the select did not open");
  await user.click(within(list).getByRole("option", { name, hidden: true }));
}

function setup(initial: Detection | null, check = false) {
  let rule: Detection | undefined;
  const tree = initial ? parseDetection(initial) : ({ ...parseDetection({ type: "all", rules: [] }) } as GroupNode);
  const r = renderUi(<Harness initial={tree} onRule={(d) => (rule = d)} check={check} />);
  return { ...r, rule: () => rule };
}

it("builds a package condition AND an OR block of a file and a registry value", { timeout: 30_000 }, async () => {
  const { user, rule } = setup(null);
  expect(screen.getByText("No condition yet: add one.")).toBeTruthy();
  await user.click(screen.getByRole("button", { name: "Add condition" }));
  expect((screen.getByRole("combobox", { name: "condition 1: version comparison" }) as HTMLInputElement).value).toBe("any version");
  expect(screen.queryByRole("textbox", { name: "condition 1: version" })).toBeNull();
  await pick(user, screen.getByRole("combobox", { name: "condition 1: manager" }), "rpm");
  await user.type(screen.getByRole("textbox", { name: "condition 1: package name" }), "httpd");
  await pick(user, screen.getByRole("combobox", { name: "condition 1: version comparison" }), "≥");
  await user.type(screen.getByRole("textbox", { name: "condition 1: version" }), "2.4");
  // One condition: stored as itself, not as an ALL of one.
  expect(rule()).toEqual({ type: "package", manager: "rpm", name: "httpd", version: { op: "gte", version: "2.4" } });

  await user.click(screen.getByRole("button", { name: "Add OR block" }));
  const block = screen.getByRole("group", { name: "block 2" });
  await pick(user, within(block).getByRole("combobox", { name: "condition 2.1: type" }), "File exists");
  await user.type(within(block).getByRole("textbox", { name: "condition 2.1: path" }), "/opt/httpd/bin/httpd");
  await user.click(within(block).getByRole("button", { name: "Add condition" }));
  await pick(user, within(block).getByRole("combobox", { name: "condition 2.2: type" }), "Registry (Windows)");
  await user.type(within(block).getByRole("textbox", { name: "condition 2.2: key" }), String.raw`SOFTWARE\Apache`);
  await user.click(within(block).getByRole("checkbox", { name: "condition 2.2: names a value" }));
  await user.type(within(block).getByRole("textbox", { name: "condition 2.2: value name" }), "Version");
  await pick(user, within(block).getByRole("combobox", { name: "condition 2.2: registry check" }), "version");
  await user.type(within(block).getByRole("textbox", { name: "condition 2.2: version" }), "2.4");

  expect(rule()).toEqual({
    type: "all",
    rules: [
      { type: "package", manager: "rpm", name: "httpd", version: { op: "gte", version: "2.4" } },
      {
        type: "any",
        rules: [
          { type: "file_exists", path: "/opt/httpd/bin/httpd" },
          { type: "registry", hive: "hklm", key: String.raw`SOFTWARE\Apache`, value: "Version", check: { check: "version", op: "gte", version: "2.4" }, wow64_32: false },
        ],
      },
    ],
  });
  const words = screen.getByTestId("detection").textContent;
  expect(words).toContain("All of these hold:");
  expect(words).toContain("rpm package “httpd” is installed with version ≥ 2.4");
  expect(words).toContain("Any of these holds:");
  expect(words).toContain("File /opt/httpd/bin/httpd exists");

  // ANY at the top keeps the children; removing the package leaves a lone OR block.
  await user.click(within(screen.getByRole("group", { name: "detection rule" })).getAllByText("ANY (OR)")[0]!);
  expect(rule()).toMatchObject({ type: "any", rules: [{ type: "package" }, { type: "any" }] });
  await user.click(screen.getByRole("button", { name: "Remove condition 1" }));
  expect(rule()).toMatchObject({ type: "any", rules: [{ type: "any", rules: [{ type: "file_exists" }, { type: "registry" }] }] });
});

it("opens a stored rule, edits it, and changing a condition's type keeps its path", { timeout: 30_000 }, async () => {
  const { user, rule } = setup({
    type: "any",
    rules: [
      { type: "file_version", path: String.raw`C:\App\app.exe`, check: { op: "gte", version: "5.0" } },
      { type: "script", interpreter: "powershell", body: "Write-Output yes", timeout_secs: 30 },
    ],
  });
  expect((screen.getByRole("textbox", { name: "condition 1: version" }) as HTMLInputElement).value).toBe("5.0");
  expect((screen.getByRole("textbox", { name: "condition 2: script" }) as HTMLTextAreaElement).value).toBe("Write-Output yes");
  await pick(user, screen.getByRole("combobox", { name: "condition 1: type" }), "File exists");
  await user.clear(screen.getByRole("textbox", { name: "condition 2: timeout" }));
  await user.type(screen.getByRole("textbox", { name: "condition 2: timeout" }), "90");
  expect(rule()).toEqual({
    type: "any",
    rules: [
      { type: "file_exists", path: String.raw`C:\App\app.exe` },
      { type: "script", interpreter: "powershell", body: "Write-Output yes", timeout_secs: 90 },
    ],
  });
});

it("marks each problem on its field, as the server would word it", { timeout: 30_000 }, async () => {
  const { user } = setup(
    {
      type: "all",
      rules: [
        { type: "file_exists", path: "relative/path" },
        { type: "msi_product", product_code: "{nope}" },
      ],
    },
    true,
  );
  const path = screen.getByRole("textbox", { name: "condition 1: path" });
  expect(path.getAttribute("aria-invalid")).toBe("true");
  expect(screen.getByText(/a path must be absolute/)).toBeTruthy();
  expect(screen.getByText(/an MSI product code is a GUID in braces/)).toBeTruthy();
  await user.clear(path);
  await user.type(path, "/opt/app");
  expect(path.getAttribute("aria-invalid")).not.toBe("true");
  expect(screen.queryByText(/a path must be absolute/)).toBeNull();
  // An empty block is refused by the server; the builder says so on the block.
  await user.click(screen.getByRole("button", { name: "Add OR block" }));
  await user.click(screen.getByRole("button", { name: "Remove condition 3.1" }));
  expect(within(screen.getByRole("group", { name: "block 3" })).getByRole("alert").textContent).toBe("a group needs at least one rule");
});
