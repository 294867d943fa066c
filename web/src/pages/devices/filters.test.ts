// The choices of the device list's OS / model selects and the custom-field value input.
import { describe, expect, it } from "vitest";
import { fixedChoices, valueOptions } from "./filters";

describe("valueOptions", () => {
  const d = { top: [{ value: "Debian GNU/Linux 12", count: 1200 }, { value: "Ubuntu 24.04", count: 3 }], other: 0, unknown: 0 };

  it("lists the summary's values with their counts", () => {
    expect(valueOptions(d, undefined)).toEqual([
      { value: "Debian GNU/Linux 12", label: `Debian GNU/Linux 12 (${(1200).toLocaleString()})` },
      { value: "Ubuntu 24.04", label: "Ubuntu 24.04 (3)" },
    ]);
  });

  it("keeps a value from the URL that the summary does not list, first", () => {
    expect(valueOptions(d, "Debian GNU/Linux").map((o) => o.value)).toEqual([
      "Debian GNU/Linux",
      "Debian GNU/Linux 12",
      "Ubuntu 24.04",
    ]);
    expect(valueOptions(d, "Ubuntu 24.04")).toHaveLength(2);
    expect(valueOptions(undefined, "x")).toEqual([{ value: "x", label: "x" }]);
  });
});

describe("fixedChoices", () => {
  it.each<[{ type: string; enum_values?: string[] } | undefined, string[] | undefined]>([
    [{ type: "boolean" }, ["true", "false"]],
    [{ type: "enum", enum_values: ["gold", "silver"] }, ["gold", "silver"]],
    [{ type: "string" }, undefined],
    [{ type: "date" }, undefined],
    [undefined, undefined],
  ])("%j", (field, want) => {
    expect(fixedChoices(field)).toEqual(want);
  });
});
