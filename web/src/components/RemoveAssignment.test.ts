import { describe, expect, it } from "vitest";
import { removalEffect } from "./RemoveAssignment";

describe("removalEffect", () => {
  const a = { package_name: "nginx", intent: "required" as const, leave_installed: false };
  it("says a required or available package is uninstalled unless another assignment keeps it", () => {
    expect(removalEffect(a, "this device")).toBe("nginx will be uninstalled from this device unless another assignment keeps it there.");
    expect(removalEffect({ ...a, intent: "available" }, "the members of Web")).toContain("uninstalled from the members of Web");
  });
  it("says a package assigned with leave installed stays", () => {
    expect(removalEffect({ ...a, leave_installed: true }, "this device")).toMatch(/^nginx stays installed on this device/);
  });
  it("says an uninstall assignment stops keeping the package off", () => {
    expect(removalEffect({ ...a, intent: "uninstall" }, "the members of Web")).toBe("nginx will no longer be kept off the members of Web.");
  });
});
