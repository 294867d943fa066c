// The one HTTP client of the console: typed by the generated OpenAPI schema, authenticated by
// the session cookie (never a token in JavaScript), and marking every state-changing request
// with the CSRF header the server requires for cookie sessions.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];

/** The header capstan-server demands on cookie-authenticated POST/PUT/PATCH/DELETE. */
export const CSRF_HEADER = "X-Capstan-CSRF";

/** An error response of the API, with the server's stable `code`. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

const csrf: Middleware = {
  onRequest({ request }) {
    if (!["GET", "HEAD", "OPTIONS"].includes(request.method)) {
      request.headers.set(CSRF_HEADER, "1");
    }
    return request;
  },
};

// Absolute, because a Request cannot be built from a relative URL outside a browser (tests).
export function makeClient(baseUrl = globalThis.location?.origin ?? "", fetchImpl?: typeof fetch) {
  const client = createClient<paths>({
    baseUrl,
    credentials: "same-origin",
    ...(fetchImpl ? { fetch: fetchImpl } : {}),
  });
  client.use(csrf);
  return client;
}

export const api = makeClient();

/** Anything the API can answer with when a request fails. */
function toApiError(status: number, body: unknown): ApiError {
  if (body && typeof body === "object" && "code" in body && "message" in body) {
    const b = body as { code: unknown; message: unknown };
    return new ApiError(status, String(b.code), String(b.message));
  }
  return new ApiError(status, "http_error", `the server answered ${status}`);
}

/**
 * The data of an openapi-fetch result, or throws {@link ApiError}: react-query wants a value
 * or an exception.
 */
export async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await call;
  } catch (e) {
    throw new ApiError(0, "network", `the server cannot be reached (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!result.response.ok) {
    throw toApiError(result.response.status, result.error);
  }
  return result.data as T;
}

/** A message for an operator, from any error a request can throw. */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) {
    return e.message;
  }
  return e instanceof Error ? e.message : String(e);
}

export function isUnauthenticated(e: unknown): boolean {
  return e instanceof ApiError && e.status === 401;
}
