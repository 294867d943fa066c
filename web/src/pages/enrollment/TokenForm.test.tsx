// Creating an enrollment token: form values to API request (the server's rules, checked before
// sending), and the form as an operator fills it in.
import { screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { renderUi } from "../../../test/render";
import { ApiError } from "../../api/client";
import { buildTokenRequest, EMPTY_TOKEN_FORM, TokenForm, type TokenFormValues } from "./TokenForm";

const base: TokenFormValues = { ...EMPTY_TOKEN_FORM, name: "Berlin laptops" };

describe("buildTokenRequest", () => {
  it.each<[string, Partial<TokenFormValues>, object]>([
    ["defaults", {}, { name: "Berlin laptops", expires_in_secs: 604800, default_tags: [] }],
    ["trimmed name, one day", { name: "  lab  ", lifetimeSecs: "86400" }, { name: "lab", expires_in_secs: 86400, default_tags: [] }],
    ["max uses", { maxUses: 5 }, { name: "Berlin laptops", expires_in_secs: 604800, max_uses: 5, default_tags: [] }],
    [
      "tags split on spaces and commas, deduplicated",
      { tags: "site:berlin, laptop  laptop,env=prod" },
      { name: "Berlin laptops", expires_in_secs: 604800, default_tags: ["site:berlin", "laptop", "env=prod"] },
    ],
  ])("%s", (_, patch, expected) => {
    expect(buildTokenRequest({ ...base, ...patch })).toEqual({ ok: true, request: expected });
  });

  it.each<[string, Partial<TokenFormValues>, keyof TokenFormValues]>([
    ["empty name", { name: "   " }, "name"],
    ["name too long", { name: "x".repeat(201) }, "name"],
    ["zero uses", { maxUses: 0 }, "maxUses"],
    ["fractional uses", { maxUses: 1.5 }, "maxUses"],
    ["tag with markup", { tags: "ok <b>" }, "tags"],
    ["tag too long", { tags: "t".repeat(65) }, "tags"],
  ])("refuses %s", (_, patch, field) => {
    const r = buildTokenRequest({ ...base, ...patch });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(Object.keys(r.errors)).toEqual([field]);
  });
});

describe("TokenForm", () => {
  it("sends what the operator entered", async () => {
    const onSubmit = vi.fn().mockResolvedValue(undefined);
    const { user } = renderUi(<TokenForm onSubmit={onSubmit} />);
    await user.type(screen.getByLabelText(/^Name/), "Lab machines");
    await user.type(screen.getByLabelText(/Maximum enrollments/), "3");
    await user.type(screen.getByLabelText(/Default tags/), "lab e2e");
    await user.click(screen.getByRole("button", { name: "Create token" }));
    expect(onSubmit).toHaveBeenCalledWith({
      name: "Lab machines",
      expires_in_secs: 604800,
      max_uses: 3,
      default_tags: ["lab", "e2e"],
    });
  });

  it("shows what is wrong before sending", async () => {
    const onSubmit = vi.fn();
    const { user } = renderUi(<TokenForm onSubmit={onSubmit} />);
    await user.type(screen.getByLabelText(/Default tags/), "bad<tag");
    await user.click(screen.getByRole("button", { name: "Create token" }));
    expect(screen.getByText(/Give the token a name/)).toBeTruthy();
    expect(screen.getByText(/"bad<tag" is not a valid tag/)).toBeTruthy();
    expect(onSubmit).not.toHaveBeenCalled();
  });

  it("shows the server's refusal", async () => {
    const { user } = renderUi(
      <TokenForm onSubmit={() => Promise.reject(new ApiError(403, "forbidden", "role viewer lacks the permission enrollment.manage"))} />,
    );
    await user.type(screen.getByLabelText(/^Name/), "x");
    await user.click(screen.getByRole("button", { name: "Create token" }));
    expect((await screen.findByRole("alert")).textContent).toContain("lacks the permission enrollment.manage");
  });
});
