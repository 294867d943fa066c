import { describe, expect, it } from "vitest";
import { formatRelative } from "./format";

describe("formatRelative", () => {
  const now = Date.UTC(2026, 10, 26, 12, 0, 0);
  it.each([
    [null, "never"],
    [now - 2_000, "just now"],
    [now - 20_000, "20 s ago"],
    [now - 59_000, "59 s ago"],
    [now - 90_000, "2 min ago"],
    [now - 3 * 3_600_000, "3 h ago"],
    [now - 86_400_000, "1 day ago"],
  ])("%s → %s", (ms, text) => {
    expect(formatRelative(ms, now)).toBe(text);
  });

  it("shows a time in the future (a device clock ahead) as a date, not as ago", () => {
    expect(formatRelative(now + 60_000, now)).not.toMatch(/ago|just now/);
  });
});
