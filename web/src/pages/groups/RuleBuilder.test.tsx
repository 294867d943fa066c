// The rule builder as an operator uses it: adding conditions and nested blocks, switching
// AND/OR, negating, and the JSON that results.
import { screen, within } from "@testing-library/react";
import { useState } from "react";
import { expect, it } from "vitest";
import { renderUi } from "../../../test/render";
import { emptyGroup, parseRootRule, type RuleNode, toRuleJson } from "../../lib/rules";
import { FIELDS } from "../../lib/rules.fixture";
import { type BuilderContext, RuleBuilder } from "./RuleBuilder";

const ctx: BuilderContext = { groups: [{ value: "g-pilot", label: "Pilot" }], fields: FIELDS };

function Harness({ initial, onJson }: { initial: RuleNode; onJson: (j: unknown) => void }) {
  const [rule, setRule] = useState(initial);
  onJson(toRuleJson(rule, ctx.fields));
  return <RuleBuilder value={rule} onChange={setRule} ctx={ctx} />;
}

/** Opens a Mantine select and picks an option of its own list (others stay in the DOM). */
async function pick(user: ReturnType<typeof setup>["user"], combobox: HTMLElement, name: string) {
  if (combobox.getAttribute("aria-expanded") !== "true") await user.click(combobox);
  const list = document.getElementById(combobox.getAttribute("aria-controls") ?? "");
  if (!list) throw new Error("the select did not open");
  await user.click(within(list).getByRole("option", { name, hidden: true }));
}

/** The option labels of a select. */
async function optionsOf(user: ReturnType<typeof setup>["user"], combobox: HTMLElement) {
  await user.click(combobox);
  const list = document.getElementById(combobox.getAttribute("aria-controls") ?? "");
  return within(list!).getAllByRole("option", { hidden: true }).map((o) => o.textContent);
}

function setup(initial: RuleNode = emptyGroup("all")) {
  let json: unknown;
  const r = renderUi(<Harness initial={initial} onJson={(j) => (json = j)} />);
  return { ...r, json: () => json };
}

it("builds an AND of a field condition and a nested OR block", async () => {
  const { user, json } = setup();
  expect(screen.getByText("No condition: every device matches.")).toBeTruthy();
  await user.click(screen.getByRole("button", { name: "Add condition" }));
  await user.clear(screen.getByRole("combobox", { name: "condition 1: field" }));
  await user.type(screen.getByRole("combobox", { name: "condition 1: field" }), "os.id");
  await user.type(screen.getByRole("textbox", { name: "condition 1: value" }), "debian");
  expect(json()).toEqual({ all: [{ field: "os.id", op: "eq", value: "debian" }] });

  await user.click(screen.getByRole("button", { name: "Add OR block" }));
  const block = screen.getByRole("group", { name: "block 2" });
  // The new block starts with one field condition; make it a tag, add a second one.
  await pick(user, within(block).getByRole("combobox", { name: /: kind$/ }), "Tag");
  await user.type(within(block).getByRole("textbox", { name: /: tag$/ }), "web");
  await user.click(within(block).getByRole("button", { name: "Add condition" }));
  const conditions = within(block).getAllByTestId("rule-condition");
  await pick(user, within(conditions[1]!).getByRole("combobox", { name: /: kind$/ }), "Group");
  await pick(user, within(conditions[1]!).getByRole("combobox", { name: /: group$/ }), "Pilot");
  await user.click(within(conditions[1]!).getByRole("checkbox", { name: /: negate$/ }));
  expect(json()).toEqual({
    all: [{ field: "os.id", op: "eq", value: "debian" }, { any: [{ tag: "web" }, { not: { group: "g-pilot" } }] }],
  });

  // Switching the top level to OR keeps its children.
  await user.click(within(screen.getByRole("group", { name: "rule" })).getAllByText("ANY (OR)")[0]!);
  expect(json()).toMatchObject({ any: [{ field: "os.id" }, { any: [{}, {}] }] });
});

it("offers the operators of the field's type and drops the value for exists", async () => {
  const { user, json } = setup(parseRootRule({ field: "status.online", op: "eq", value: true }));
  const operator = screen.getByRole("combobox", { name: "condition 1: operator" });
  const options = await optionsOf(user, operator);
  expect(options).toEqual(["equals", "does not equal", "exists", "does not exist"]);
  await pick(user, operator, "exists");
  expect(json()).toEqual({ all: [{ field: "status.online", op: "exists" }] });
  expect(screen.queryByRole("textbox", { name: "condition 1: value" })).toBeNull();
});

it("removes a condition and keeps what it does not understand", async () => {
  const { user, json } = setup(parseRootRule({ all: [{ tag: "a" }, { future: 1 }] }));
  expect(screen.getByText('{"future":1}')).toBeTruthy();
  await user.click(screen.getByRole("button", { name: "Remove condition 1" }));
  expect(json()).toEqual({ all: [{ future: 1 }] });
});

it("offers what the server's catalogue lists: a whole list's operators, an enum's values", async () => {
  const { user, json } = setup(parseRootRule({ field: "tags", op: "contains", value: "web" }));
  expect(await optionsOf(user, screen.getByRole("combobox", { name: "condition 1: operator" }))).toEqual([
    "contains",
    "exists",
    "does not exist",
  ]);
  // The field's description from the catalogue is shown with it.
  expect(screen.getByText("The list as a whole (tags[]).")).toBeTruthy();

  const field = screen.getByRole("combobox", { name: "condition 1: field" });
  await user.clear(field);
  await user.type(field, "custom.tier");
  // "contains" applies to a text field too, so it stays; "equals" picks from the values.
  await pick(user, screen.getByRole("combobox", { name: "condition 1: operator" }), "equals");
  await pick(user, screen.getByRole("combobox", { name: "condition 1: value" }), "silver");
  expect(json()).toEqual({ all: [{ field: "custom.tier", op: "eq", value: "silver" }] });
});
