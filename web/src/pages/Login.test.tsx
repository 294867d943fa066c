// The login form as an operator uses it: labelled fields, keyboard submit, and what a failed
// login says; and that the post-login redirect never leaves the console.
import { screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { renderUi } from "../../test/render";
import { ApiError } from "../api/client";
import { LoginForm, safeRedirect } from "./Login";

describe("LoginForm", () => {
  it("submits the trimmed username and the password with the keyboard", async () => {
    const onSubmit = vi.fn().mockResolvedValue(undefined);
    const { user } = renderUi(<LoginForm onSubmit={onSubmit} />);
    await user.type(screen.getByLabelText(/Username/), "  admin ");
    await user.type(screen.getByLabelText(/Password/), " secret with spaces {Enter}");
    expect(onSubmit).toHaveBeenCalledWith({ username: "admin", password: " secret with spaces " });
  });

  it("names empty fields instead of sending them", async () => {
    const onSubmit = vi.fn();
    const { user } = renderUi(<LoginForm onSubmit={onSubmit} />);
    await user.click(screen.getByRole("button", { name: "Log in" }));
    expect(screen.getByText("Enter your username")).toBeTruthy();
    expect(screen.getByText("Enter your password")).toBeTruthy();
    expect(onSubmit).not.toHaveBeenCalled();
  });

  it.each([
    [new ApiError(401, "invalid_credentials", "wrong username or password"), "Wrong username or password."],
    [new ApiError(429, "rate_limited", "too many failed attempts; retry in 30 s"), "Too many failed attempts. too many failed attempts; retry in 30 s"],
    [new ApiError(0, "network", "the server cannot be reached (offline)"), "the server cannot be reached (offline)"],
  ])("explains a failed login (%s)", async (error, text) => {
    const { user } = renderUi(<LoginForm onSubmit={() => Promise.reject(error)} />);
    await user.type(screen.getByLabelText(/Username/), "admin");
    await user.type(screen.getByLabelText(/Password/), "nope");
    await user.click(screen.getByRole("button", { name: "Log in" }));
    expect((await screen.findByRole("alert")).textContent).toContain(text);
    // The form stays usable for another attempt.
    expect(screen.getByRole("button", { name: "Log in" }).hasAttribute("disabled")).toBe(false);
  });
});

describe("safeRedirect", () => {
  it.each([
    [undefined, "/"],
    ["/devices?status=online", "/devices?status=online"],
    ["//evil.example/x", "/"],
    ["/\\evil.example", "/"],
    ["https://evil.example/", "/"],
    ["javascript:alert(1)", "/"],
  ])("%s -> %s", (input, expected) => {
    expect(safeRedirect(input)).toBe(expected);
  });
});
