// The depot and its catalogue: packages, versions, the upload (with progress, which fetch
// cannot report, hence XMLHttpRequest), creating a version from a reviewed upload, editing a
// version's spec (and adding one without a file), and depot sources with their status.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, api, CSRF_HEADER, type Schemas, unwrap } from "../api/client";
import type { CreateVersionRequest, UploadAnalysis } from "../lib/software";

export type PackageInfo = Schemas["PackageInfo"];
export type VersionInfo = Schemas["VersionInfo"];
export type DepotSourceInfo = Schemas["DepotSourceInfo"];
export type SourceStatus = Schemas["SourceStatus"];
export type VersionSpec = Schemas["VersionSpec"];

/** A refused request with the server's per-field problems (`details`, JSON pointers). */
export class ProblemsError extends ApiError {
  readonly details: { path: string; message: string }[];

  constructor(status: number, code: string, message: string, details: { path: string; message: string }[]) {
    super(status, code, message);
    this.name = "ProblemsError";
    this.details = details;
  }
}

/** Like `unwrap`, but keeps the `details` of a validation error for field-level display. */
async function unwrapDetailed<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await call;
  } catch (e) {
    throw new ApiError(0, "network", `the server cannot be reached (${e instanceof Error ? e.message : String(e)})`);
  }
  if (result.response.ok) return result.data as T;
  const body = result.error;
  if (body && typeof body === "object" && "message" in body) {
    const b = body as { code?: unknown; message: unknown; details?: unknown };
    const details = Array.isArray(b.details)
      ? b.details
          .filter((d): d is { path: unknown; message: unknown } => !!d && typeof d === "object" && "message" in d)
          .map((d) => ({ path: String(d.path ?? ""), message: String(d.message) }))
      : [];
    throw new ProblemsError(result.response.status, String(b.code ?? "http_error"), String(b.message), details);
  }
  throw new ApiError(result.response.status, "http_error", `the server answered ${result.response.status}`);
}

export const packageKeys = {
  all: ["packages"] as const,
  list: (search: string, page: number) => ["packages", "list", search, page] as const,
  detail: (name: string) => ["packages", "detail", name] as const,
  versions: (name: string) => ["packages", "versions", name] as const,
  sources: ["depot-sources"] as const,
  sourceStatus: (id: string) => ["depot-sources", "status", id] as const,
};

export const PACKAGES_PAGE = 50;

export function usePackages(search: string, page: number) {
  return useQuery({
    queryKey: packageKeys.list(search, page),
    queryFn: () =>
      unwrap(
        api.GET("/api/v1/packages", {
          params: { query: { ...(search ? { search } : {}), limit: PACKAGES_PAGE, offset: (page - 1) * PACKAGES_PAGE } },
        }),
      ),
    placeholderData: keepPreviousData,
  });
}

export function usePackage(name: string) {
  return useQuery({
    queryKey: packageKeys.detail(name),
    queryFn: () => unwrap(api.GET("/api/v1/packages/{package}", { params: { path: { package: name } } })),
  });
}

export function useVersions(name: string) {
  return useQuery({
    queryKey: packageKeys.versions(name),
    queryFn: () => unwrap(api.GET("/api/v1/packages/{package}/versions", { params: { path: { package: name } } })),
  });
}

export function useDeleteVersion(pkg: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (version: string) =>
      unwrap(api.DELETE("/api/v1/packages/{package}/versions/{version}", { params: { path: { package: pkg, version } } })),
    onSuccess: () => qc.invalidateQueries({ queryKey: packageKeys.all }),
  });
}

export function useDeletePackage() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (pkg: string) => unwrap(api.DELETE("/api/v1/packages/{package}", { params: { path: { package: pkg } } })),
    onSuccess: () => qc.invalidateQueries({ queryKey: packageKeys.all }),
  });
}

/**
 * Sends a package file to `POST /api/v1/packages/upload`, reporting progress (0..1) as the
 * bytes leave. The session cookie authenticates it; the CSRF header marks it as ours.
 */
export function uploadPackage(
  file: Blob & { name: string },
  onProgress: (fraction: number) => void,
  signal?: AbortSignal,
): Promise<UploadAnalysis> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/packages/upload?file_name=${encodeURIComponent(file.name)}`);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader(CSRF_HEADER, "1");
    xhr.withCredentials = true;
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // Not JSON: reported by status below.
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        onProgress(1);
        resolve(body as UploadAnalysis);
      } else if (body && typeof body === "object" && "message" in body) {
        const b = body as { code?: unknown; message: unknown };
        reject(new ApiError(xhr.status, String(b.code ?? "http_error"), String(b.message)));
      } else {
        reject(new ApiError(xhr.status, "http_error", `the server answered ${xhr.status}`));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "the upload was interrupted (network error)"));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "the upload was cancelled"));
    signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(file);
  });
}

/** Creates the package when it is new, then the version. */
export async function createVersion(
  pkg: { name: string; displayName: string; publisher: string },
  version: CreateVersionRequest,
): Promise<VersionInfo> {
  const existing = await api.GET("/api/v1/packages/{package}", { params: { path: { package: pkg.name } } });
  if (existing.response.status === 404) {
    await unwrap(
      api.POST("/api/v1/packages", {
        body: {
          name: pkg.name,
          ...(pkg.displayName.trim() ? { display_name: pkg.displayName.trim() } : {}),
          ...(pkg.publisher.trim() ? { publisher: pkg.publisher.trim() } : {}),
        },
      }),
    );
  } else if (!existing.response.ok) {
    await unwrap(Promise.resolve(existing));
  }
  return unwrap(api.POST("/api/v1/packages/{package}/versions", { params: { path: { package: pkg.name } }, body: version }));
}

export function useCreateVersion() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (a: { pkg: { name: string; displayName: string; publisher: string }; version: CreateVersionRequest }) =>
      createVersion(a.pkg, a.version),
    onSuccess: () => qc.invalidateQueries({ queryKey: packageKeys.all }),
  });
}

/** Replaces a version's spec (its artifacts stay). */
export function updateVersion(pkg: string, version: string, spec: VersionSpec): Promise<VersionInfo> {
  return unwrapDetailed(
    api.PUT("/api/v1/packages/{package}/versions/{version}", { params: { path: { package: pkg, version } }, body: spec }),
  );
}

export function useUpdateVersion(pkg: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (a: { version: string; spec: VersionSpec }) => updateVersion(pkg, a.version, a.spec),
    onSuccess: () => qc.invalidateQueries({ queryKey: packageKeys.all }),
  });
}

/** Adds a version to an existing package without an upload (package-manager references). */
export function addVersion(pkg: string, body: CreateVersionRequest): Promise<VersionInfo> {
  return unwrapDetailed(api.POST("/api/v1/packages/{package}/versions", { params: { path: { package: pkg } }, body }));
}

export function useAddVersion(pkg: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateVersionRequest) => addVersion(pkg, body),
    onSuccess: () => qc.invalidateQueries({ queryKey: packageKeys.all }),
  });
}

export function useSources() {
  return useQuery({ queryKey: packageKeys.sources, queryFn: () => unwrap(api.GET("/api/v1/depot/sources")) });
}

export function useSourceStatus(id: string | null) {
  return useQuery({
    queryKey: packageKeys.sourceStatus(id ?? ""),
    queryFn: () => unwrap(api.GET("/api/v1/depot/sources/{source}/status", { params: { path: { source: id ?? "" } } })),
    enabled: id !== null,
  });
}
