// The API client: the CSRF header on state-changing requests and errors with the server's code.
import { describe, expect, it } from "vitest";
import { ApiError, CSRF_HEADER, makeClient, unwrap } from "./client";

function recorder(status: number, body: unknown) {
  const seen: Request[] = [];
  const fetchImpl = async (input: RequestInfo | URL, init?: RequestInit) => {
    seen.push(input instanceof Request ? input : new Request(input, init));
    return new Response(body === undefined ? null : JSON.stringify(body), {
      status,
      headers: { "Content-Type": "application/json" },
    });
  };
  return { seen, fetchImpl: fetchImpl as typeof fetch };
}

describe("api client", () => {
  it("marks state-changing requests for the server's CSRF check, and only those", async () => {
    const { seen, fetchImpl } = recorder(200, []);
    const client = makeClient("http://capstan.test", fetchImpl);
    await client.GET("/api/v1/enrollment-tokens");
    await client.POST("/api/v1/enrollment-tokens", { body: { name: "x", expires_in_secs: null, max_uses: null } });
    await client.DELETE("/api/v1/enrollment-tokens/{id}", { params: { path: { id: "t1" } } });
    expect(seen.map((r) => [r.method, r.headers.get(CSRF_HEADER)])).toEqual([
      ["GET", null],
      ["POST", "1"],
      ["DELETE", "1"],
    ]);
  });

  it("turns an error body into an ApiError with the server's code", async () => {
    const { fetchImpl } = recorder(404, { status: 404, code: "not_found", message: "device d1 not found" });
    const client = makeClient("http://capstan.test", fetchImpl);
    const err = await unwrap(client.GET("/api/v1/devices/{id}", { params: { path: { id: "d1" } } })).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect([err.status, err.code, err.message]).toEqual([404, "not_found", "device d1 not found"]);
  });

  it("reports an unreachable server as a network error", async () => {
    const client = makeClient("http://capstan.test", (() => Promise.reject(new TypeError("Failed to fetch"))) as typeof fetch);
    const err = await unwrap(client.GET("/api/v1/auth/me")).catch((e) => e);
    expect([err.status, err.code]).toEqual([0, "network"]);
    expect(err.message).toContain("Failed to fetch");
  });
});
