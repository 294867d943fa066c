// Real processes for the browser end-to-end suite: a capstan-server on a free loopback port in
// a temporary data directory (ready once it writes server.json, as crates/testkit does), agents
// enrolled with `--identity instance` so several on one machine are distinct devices, an admin
// API session for setup, and Chromium from Debian driven by playwright-core.
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type APIRequestContext, type Browser, chromium, type Page, request } from "playwright-core";

const WEB = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const ADMIN_PASSWORD = "e2e-admin-password";
export const SCREENSHOTS = join(WEB, "test-results");

/** Where the cargo-built binaries are: CAPSTAN_BIN_DIR, else `$CARGO_TARGET_DIR/debug`, else ../target/debug. */
export function binDir(): string {
  if (process.env.CAPSTAN_BIN_DIR) return process.env.CAPSTAN_BIN_DIR;
  if (process.env.CARGO_TARGET_DIR) return join(process.env.CARGO_TARGET_DIR, "debug");
  return join(WEB, "..", "target", "debug");
}

function bin(name: string): string {
  const p = join(binDir(), name);
  if (!existsSync(p)) {
    throw new Error(`${p} does not exist: build it with \`cargo build -p capstan-server -p capstan-agent\` (set CAPSTAN_BIN_DIR to use other binaries)`);
  }
  return p;
}

async function sleep(ms: number) {
  await new Promise((r) => setTimeout(r, ms));
}

/** Waits for `check` to return a value (not undefined), failing with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    }
    await sleep(250);
  }
}

function logTail(path: string, lines = 40): string {
  try {
    return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

async function stop(child: ChildProcess | undefined) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const killed = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
  if (!killed) {
    child.kill("SIGKILL");
    await exited;
  }
}

export class Agent {
  constructor(
    readonly stateDir: string,
    public child: ChildProcess,
    private readonly relaunch: () => ChildProcess,
  ) {}

  /** Kills the agent process at once (SIGKILL), as a crash or a pulled cable would. */
  async kill() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGKILL");
    await exited;
  }

  /** Starts the agent process again with the same state directory. */
  restart() {
    this.child = this.relaunch();
  }

  deviceId(): string {
    const creds = JSON.parse(readFileSync(join(this.stateDir, "credentials.json"), "utf8")) as { device_id?: unknown };
    if (typeof creds.device_id !== "string") throw new Error(`${this.stateDir}/credentials.json has no device_id`);
    return creds.device_id;
  }

  log(): string {
    return logTail(join(this.stateDir, "agent.log"));
  }
}

export class Fixture {
  private agents: Agent[] = [];
  private dirs: string[] = [];
  api!: APIRequestContext;
  browser!: Browser;

  private constructor(
    readonly url: string,
    readonly fingerprint: string | undefined,
    readonly dataDir: string,
    private server: ChildProcess,
    private readonly serverArgs: string[],
  ) {
    this.dirs.push(dataDir);
  }

  /** Starts `capstan-server serve` on `listen` and waits until it wrote server.json. */
  private static async launch(dataDir: string, listen: string, args: string[]) {
    const logPath = join(dataDir, "server.log");
    rmSync(join(dataDir, "server.json"), { force: true });
    const log = openSync(logPath, "a");
    const server = spawn(bin("capstan-server"), ["serve", "--data-dir", dataDir, "--listen", listen, ...args], {
      env: { ...process.env, CAPSTAN_ADMIN_PASSWORD: ADMIN_PASSWORD, CAPSTAN_LOG_FORMAT: "text" },
      stdio: ["ignore", log, log],
    });
    const ready = await waitFor(
      "capstan-server to write server.json",
      () => {
        if (server.exitCode !== null) {
          throw new Error(`capstan-server exited (${server.exitCode}):\n${logTail(logPath)}`);
        }
        try {
          return JSON.parse(readFileSync(join(dataDir, "server.json"), "utf8")) as { url: string; fingerprint?: string };
        } catch {
          return undefined;
        }
      },
      60_000,
    ).catch((e) => {
      server.kill("SIGKILL");
      throw e;
    });
    return { server, ready };
  }

  /** `args`: extra `capstan-server serve` options, e.g. `["--checkin-interval-secs", "5"]`. */
  static async start(opts: { args?: string[] } = {}): Promise<Fixture> {
    const dataDir = mkdtempSync(join(tmpdir(), "capstan-web-e2e-"));
    const args = opts.args ?? [];
    const { server, ready } = await Fixture.launch(dataDir, "127.0.0.1:0", args);
    const fx = new Fixture(ready.url, ready.fingerprint ?? undefined, dataDir, server, args);
    // The setup session uses a bearer token, as the CLI would; the browser gets its own cookie.
    const anon = await request.newContext({ baseURL: fx.url, ignoreHTTPSErrors: true });
    const login = await anon.post("/api/v1/auth/login", { data: { username: "admin", password: ADMIN_PASSWORD } });
    if (!login.ok()) throw new Error(`admin login failed: ${login.status()} ${await login.text()}`);
    const { token } = (await login.json()) as { token: string };
    await anon.dispose();
    fx.api = await request.newContext({
      baseURL: fx.url,
      ignoreHTTPSErrors: true,
      extraHTTPHeaders: { Authorization: `Bearer ${token}` },
    });
    // Chromium trusts the server's own certificate by its public key, as an administrator's
    // browser would once it trusts the server: with an *ignored* certificate error instead,
    // Chromium now and then gave up on a page's stylesheet ("ERR_TOO_MANY_RETRIES") while
    // several connections to the new host were being set up at once.
    const spki = createHash("sha256")
      .update(
        new X509Certificate(readFileSync(join(dataDir, "tls", "cert.pem"))).publicKey.export({ type: "spki", format: "der" }),
      )
      .digest("base64");
    fx.browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: [
        `--ignore-certificate-errors-spki-list=${spki}`,
        "--headless",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    // Emptied once per run by e2e/global-setup.ts, so every suite's screenshots stay.
    mkdirSync(SCREENSHOTS, { recursive: true });
    return fx;
  }

  async json<T>(method: "GET" | "POST" | "DELETE", path: string, data?: unknown): Promise<T> {
    const resp = await this.api.fetch(path, { method, data });
    if (!resp.ok()) throw new Error(`${method} ${path}: ${resp.status()} ${await resp.text()}`);
    return (await resp.json()) as T;
  }

  async createEnrollmentToken(name: string): Promise<string> {
    const t = await this.json<{ token: string }>("POST", "/api/v1/enrollment-tokens", { name });
    return t.token;
  }

  /**
   * Enrolls and starts an agent. With `hostname`, the agent runs in its own UTS namespace
   * (`unshare --uts`, needs root) whose host name is set to exactly that string, so it reports
   * it like a real machine would.
   */
  async startAgent(token: string, opts: { hostname?: string; env?: Record<string, string> } = {}): Promise<Agent> {
    const stateDir = mkdtempSync(join(tmpdir(), "capstan-web-e2e-agent-"));
    this.dirs.push(stateDir);
    const agentBin = bin("capstan-agent");
    const wrap = (args: string[]): [string, string[]] =>
      opts.hostname === undefined
        ? [agentBin, args]
        : [
            "unshare",
            ["--uts", "sh", "-c", 'printf %s "$CAPSTAN_E2E_HOSTNAME" > /proc/sys/kernel/hostname && exec "$0" "$@"', agentBin, ...args],
          ];
    const env = { ...process.env, CAPSTAN_AGENT_LOG: "debug", CAPSTAN_E2E_HOSTNAME: opts.hostname ?? "", ...opts.env };
    const enrollArgs = ["enroll", "--server", this.url, "--token", token, "--state-dir", stateDir, "--identity", "instance"];
    if (this.fingerprint) enrollArgs.push("--fingerprint", this.fingerprint);
    const [cmd, args] = wrap(enrollArgs);
    const out = await new Promise<{ code: number | null; text: string }>((done, fail) => {
      const p = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
      let text = "";
      p.stdout?.on("data", (b: Buffer) => (text += b.toString()));
      p.stderr?.on("data", (b: Buffer) => (text += b.toString()));
      p.on("error", fail);
      p.on("exit", (code) => done({ code, text }));
    });
    if (out.code !== 0) throw new Error(`capstan-agent enroll failed (${out.code}):\n${out.text}`);
    const log = openSync(join(stateDir, "agent.log"), "a");
    const [runCmd, runArgs] = wrap(["run", "--state-dir", stateDir]);
    const launch = () => spawn(runCmd, runArgs, { env, stdio: ["ignore", log, log] });
    const agent = new Agent(stateDir, launch(), launch);
    this.agents.push(agent);
    return agent;
  }

  private pageEvents: string[] = [];

  /**
   * Records what went wrong in the page as it happened — failed requests, answers with an
   * error status, console errors, uncaught exceptions — for `pageLog()`, so a failure such as
   * a page without its stylesheet explains itself.
   */
  watch(page: Page) {
    const note = (line: string) => {
      this.pageEvents.push(`${new Date().toISOString()} ${line}`);
      if (this.pageEvents.length > 200) this.pageEvents.shift();
    };
    page.on("requestfailed", (r) => note(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText ?? "?"}`));
    page.on("response", (r) => {
      if (r.status() >= 400) note(`answer ${r.status()}: ${r.request().method()} ${r.url()}`);
      else if (/\/assets\/.*\.css$/.test(r.url()) && !(r.headers()["content-type"] ?? "").startsWith("text/css")) {
        note(`stylesheet with content-type ${r.headers()["content-type"] ?? "none"}: ${r.url()}`);
      }
    });
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") note(`console ${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => note(`page error: ${e.message}`));
  }

  /** What `watch` recorded, oldest first. */
  pageLog(): string {
    return this.pageEvents.length ? this.pageEvents.join("\n") : "(nothing went wrong in the page)";
  }

  /** A temporary directory removed with the fixture (kept when the suite failed). */
  tempDir(prefix: string): string {
    const d = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(d);
    return d;
  }

  /**
   * Stops the server (SIGTERM) and starts it again on the same address, data directory and
   * TLS key, as an upgrade or a reboot of the server machine would. Sessions and agents'
   * credentials stay valid.
   */
  async restartServer() {
    await stop(this.server);
    const listen = new URL(this.url).host;
    const { server, ready } = await Fixture.launch(this.dataDir, listen, this.serverArgs);
    if (ready.url !== this.url) throw new Error(`the server came back at ${ready.url}, not ${this.url}`);
    this.server = server;
  }

  serverLog(): string {
    return logTail(join(this.dataDir, "server.log"));
  }

  /** Stops everything; keeps the directories (and says where) when the suite failed. */
  async close(failed: boolean) {
    await this.browser?.close().catch(() => undefined);
    await this.api?.dispose().catch(() => undefined);
    for (const a of this.agents) await stop(a.child);
    await stop(this.server);
    if (failed) {
      console.error(`e2e data kept for inspection:\n  ${this.dirs.join("\n  ")}`);
    } else {
      for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
    }
  }
}
