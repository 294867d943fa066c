// The rule builder's model: rules read from the server come back out unchanged (modulo a
// wrapping "all"), values get the JSON type of their field, AND/OR nesting and NOT survive,
// and what the builder does not understand is kept verbatim.
import { describe, expect, it } from "vitest";
import {
  describeRule,
  emptyCondition,
  emptyGroup,
  fieldsFromCatalogue,
  fieldType,
  findField,
  operatorsFor,
  parseRootRule,
  parseRule,
  replaceNode,
  type RuleNode,
  textToValue,
  toRuleJson,
} from "./rules";
import { FIELDS } from "./rules.fixture";

const roundTrip = (json: unknown) => toRuleJson(parseRule(json), FIELDS);

describe("parseRule → toRuleJson", () => {
  it.each<[string, unknown]>([
    ["a field condition", { field: "os.id", op: "eq", value: "debian" }],
    ["a list for `in`", { field: "os.id", op: "in", value: ["debian", "ubuntu"] }],
    ["a number", { field: "hardware.memory_bytes", op: "gte", value: 8589934592 }],
    ["a boolean", { field: "status.online", op: "eq", value: true }],
    ["no value for exists", { field: "os.domain.name", op: "exists" }],
    ["case-insensitive", { field: "os.hostname", op: "starts_with", value: "WEB", case_insensitive: true }],
    ["a duration", { field: "status.last_seen", op: "older_than", value: "7d" }],
    ["a tag", { tag: "web" }],
    ["a group", { group: "01HVZK3Q7RM3W5C2Y8P0T4N6BD" }],
    ["software installed", { software: { name: "nginx" } }],
    ["software with version", { software: { name: "nginx", source: "dpkg", op: "version_gte", value: "1.22" } }],
    ["not", { not: { tag: "retired" } }],
    [
      "the documentation's example",
      {
        all: [
          { field: "os.id", op: "in", value: ["debian", "ubuntu"] },
          { any: [{ software: { name: "nginx", op: "version_gte", value: "1.22" } }, { tag: "web" }] },
          { not: { group: "01HVZK3Q7RM3W5C2Y8P0T4N6BD" } },
          { field: "network.interfaces[].ipv4", op: "cidr", value: "10.0.0.0/8" },
        ],
      },
    ],
    ["a negated group", { not: { any: [{ tag: "a" }, { not: { all: [] } }] } }],
    ["a version scheme", { field: "os.version_id", op: "version_gte", value: "10.0.22000", scheme: "windows" }],
    ["unknown keys are kept as written", { field: "os.id", op: "eq", value: "x", mode: "strict" }],
    ["an unknown condition is kept", { future: { x: 1 } }],
  ])("%s", (_, json) => {
    expect(roundTrip(json)).toEqual(json);
  });

  it("a double negation reads as the positive condition", () => {
    expect(roundTrip({ not: { not: { tag: "a" } } })).toEqual({ tag: "a" });
  });

  it("the top level is always a group the builder can add to", () => {
    const root = parseRootRule({ tag: "web" });
    expect(root.kind).toBe("all");
    expect(toRuleJson(root)).toEqual({ all: [{ tag: "web" }] });
    expect(toRuleJson(parseRootRule({ not: { any: [] } }))).toEqual({ all: [{ not: { any: [] } }] });
    expect(toRuleJson(parseRootRule({ any: [{ tag: "a" }] }))).toEqual({ any: [{ tag: "a" }] });
  });
});

describe("textToValue", () => {
  it.each<[Parameters<typeof textToValue>, unknown]>([
    [["string", "eq", " debian "], "debian"],
    [["string", "in", "debian, ubuntu,, "], ["debian", "ubuntu"]],
    [["number", "in", "1, 2,3"], [1, 2, 3]],
    [["number", "gt", "42"], 42],
    [["number", "gt", "lots"], "lots"],
    [["boolean", "eq", "false"], false],
    [["timestamp", "lt", "2026-01-31"], "2026-01-31"],
    [["timestamp", "lt", "1767225600000"], 1767225600000],
    [["timestamp", "older_than", "7d"], "7d"],
  ])("%j → %j", (args, want) => {
    expect(textToValue(...args)).toEqual(want);
  });
});

describe("building a rule", () => {
  it("nests AND and OR groups and negates a condition", () => {
    const tag = { ...emptyCondition("tag"), tag: "web" } as RuleNode;
    const online = { ...emptyCondition("field"), field: "status.online", op: "eq", value: "true" } as RuleNode;
    const software = { ...emptyCondition("software"), name: "telnet", negated: true } as RuleNode;
    const inner = emptyGroup("any", [tag, software]);
    const root = emptyGroup("all", [online, inner]);
    expect(toRuleJson(root, FIELDS)).toEqual({
      all: [
        { field: "status.online", op: "eq", value: true },
        { any: [{ tag: "web" }, { not: { software: { name: "telnet" } } }] },
      ],
    });
    expect(describeRule(root)).toBe("(status.online equals true AND (tag web OR NOT software telnet installed))");

    const without = replaceNode(root, software.id, null);
    expect(toRuleJson(without!, FIELDS)).toEqual({
      all: [{ field: "status.online", op: "eq", value: true }, { any: [{ tag: "web" }] }],
    });
    const flipped = replaceNode(root, inner.id, { ...inner, kind: "all" } as RuleNode);
    expect(toRuleJson(flipped!)).toMatchObject({ all: [{}, { all: [{ tag: "web" }, {}] }] });
  });

  it("leaves out the value of exists and names groups in descriptions", () => {
    const n = parseRule({ all: [{ field: "os.domain.name", op: "exists", value: "ignored" }, { group: "g1" }] });
    expect(toRuleJson(n)).toEqual({ all: [{ field: "os.domain.name", op: "exists" }, { group: "g1" }] });
    expect(describeRule(n, (id) => (id === "g1" ? "Pilot" : id))).toBe("(os.domain.name exists AND in group Pilot)");
  });
});

describe("the field catalogue", () => {
  it("gives operators and value types from the server's list, not a list of its own", () => {
    expect(operatorsFor("status.online", FIELDS)).toEqual(["eq", "ne", "exists", "not_exists"]);
    expect(operatorsFor("tags", FIELDS)).toEqual(["contains", "exists", "not_exists"]);
    expect(fieldType("hardware.memory_bytes", FIELDS)).toBe("number");
    expect(findField("custom.tier", FIELDS)?.values).toEqual(["gold", "silver"]);
    // Without the catalogue a number is sent as typed text; with it, as a number.
    const rule = { field: "hardware.memory_bytes", op: "gte", value: 8 };
    expect(toRuleJson(parseRule(rule))).toEqual({ ...rule, value: "8" });
    expect(toRuleJson(parseRule(rule), FIELDS)).toEqual(rule);
  });

  it("offers every operator for a field it does not know, so the server can name the problem", () => {
    expect(operatorsFor("os.nmae", FIELDS)).toContain("cidr");
    expect(operatorsFor("os.nmae", FIELDS)).toContain("older_than");
    expect(fieldType("os.nmae", FIELDS)).toBe("string");
  });

  it("keeps only non-empty value sets", () => {
    expect(fieldsFromCatalogue([{ name: "os.id", type: "string", operators: ["eq"], description: "d", values: [] }])).toEqual([
      { path: "os.id", type: "string", operators: ["eq"], description: "d" },
    ]);
  });
});
