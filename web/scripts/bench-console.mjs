// The console's device list under a large fleet (issue 7): API latency of the list queries the
// page sends (p50/p95 from a small closed loop), then, in Chromium, the time from navigation to
// the device table and from typing a search to the filtered table. Run by
// ../../scripts/bench-console.sh against a server it filled; prints a Markdown report.
//
// Usage: node scripts/bench-console.mjs URL   (password in $CAPSTAN_ADMIN_PASSWORD)
import { chromium } from "playwright-core";

const url = process.argv[2];
const password = process.env.CAPSTAN_ADMIN_PASSWORD;
if (!url || !password) {
  console.error("usage: CAPSTAN_ADMIN_PASSWORD=… node scripts/bench-console.mjs URL");
  process.exit(2);
}
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 200);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);
const BROWSER_ROUNDS = Number(process.env.BENCH_BROWSER_ROUNDS ?? 5);

async function call(method, path, token, body) {
  const r = await fetch(url + path, {
    method,
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summary(ms) {
  const s = [...ms].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 50), p95: pct(s, 95), max: s[s.length - 1] };
}

const fmt = (v) => `${v.toFixed(1)}`;

/** `paths()` gives each request's path, so searches vary instead of hitting one cached answer. */
async function loop(token, paths) {
  const times = [];
  let next = 0;
  let total = -1;
  const worker = async () => {
    while (next < REQUESTS) {
      const i = next++;
      const t0 = performance.now();
      const page = await call("GET", paths(i), token);
      times.push(performance.now() - t0);
      if (i === 0) total = page.total;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { ...summary(times), total };
}

const { token } = await call("POST", "/api/v1/auth/login", undefined, { username: "admin", password });
const fleet = await call("GET", "/api/v1/devices?limit=1", token);
const sample = (await call("GET", "/api/v1/devices?limit=1&offset=" + Math.floor(fleet.total / 2), token)).items[0];
// A tag on a slice of the fleet (loadgen's hostnames bench-SEED-00000…09999, a fifth of 50,000),
// set through the bulk API, so the tag filter has something realistic to find.
const tagged = await call("POST", "/api/v1/tags/add", token, { filter: { search: "-0" }, tags: ["bench-slice"] });

const digits = (i) => String((i * 7919) % 10000).padStart(4, "0");
const scenarios = [
  ["first page (50, by hostname)", () => "/api/v1/devices?offset=0&limit=50"],
  ["search, 4 digits of a hostname", (i) => `/api/v1/devices?offset=0&limit=50&search=${digits(i)}`],
  ["search, one exact hostname", () => `/api/v1/devices?offset=0&limit=50&search=${encodeURIComponent(sample.hostname)}`],
  ["filter status=online", () => "/api/v1/devices?offset=0&limit=50&status=online"],
  ["filter tag (hostnames …-0xxxx)", () => "/api/v1/devices?offset=0&limit=50&tag=bench-slice"],
  ["sort -last_seen", () => "/api/v1/devices?offset=0&limit=50&sort=-last_seen"],
  ["sort enrolled, page 500 (offset 24,950)", () => "/api/v1/devices?offset=24950&limit=50&sort=enrolled"],
];

const out = [];
out.push(`Devices: ${fleet.total.toLocaleString("en")}; tagged bench-slice: ${tagged.matched.toLocaleString("en")}. "matches" is the total of the first request.`);
out.push("");
out.push(`API, ${REQUESTS} requests each, ${CONCURRENCY} concurrent (ms):`);
out.push("");
out.push("| query | matches | p50 | p95 | max |");
out.push("|---|---:|---:|---:|---:|");
for (const [name, paths] of scenarios) {
  await loop(token, paths); // warm-up pass, not counted
  const r = await loop(token, paths);
  out.push(`| ${name} | ${r.total.toLocaleString("en")} | ${fmt(r.p50)} | ${fmt(r.p95)} | ${fmt(r.max)} |`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
try {
  const context = await browser.newContext({ baseURL: url, ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto("/login");
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel(/^Password/).fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();

  // Search terms taken from real hostnames (their last four digits), so each finds something.
  const terms = [];
  for (let round = 0; round < BROWSER_ROUNDS; round++) {
    const offset = Math.floor(((round + 0.5) / BROWSER_ROUNDS) * fleet.total);
    const d = (await call("GET", `/api/v1/devices?limit=1&offset=${offset}`, token)).items[0];
    terms.push(d.hostname.slice(-4));
  }
  const rows = page.locator('table[aria-label="Devices"] tbody tr[data-device-id]');
  const load = [];
  const searchTimes = [];
  for (let round = 0; round < BROWSER_ROUNDS; round++) {
    // A full navigation each round: HTML, scripts (from cache after the first), session check,
    // the list query and rendering 50 rows.
    const t0 = performance.now();
    await page.goto("/devices");
    await rows.first().waitFor({ state: "visible", timeout: 30_000 });
    load.push(performance.now() - t0);

    const q = terms[round];
    const box = page.getByLabel("Search hostname");
    const t1 = performance.now();
    await box.fill(q);
    // Filtered: the URL carries the search and every row shown matches it.
    await page.waitForFunction(
      (needle) => {
        if (!new URL(location.href).searchParams.get("q")) return false;
        const table = document.querySelector('table[aria-label="Devices"]');
        if (!table || table.getAttribute("aria-busy") === "true") return false;
        const links = [...table.querySelectorAll("tbody tr[data-device-id] td a")];
        return links.length > 0 && links.every((a) => (a.textContent ?? "").includes(needle));
      },
      q,
      { timeout: 30_000, polling: "raf" },
    );
    searchTimes.push(performance.now() - t1);
  }
  const l = summary(load);
  const s = summary(searchTimes);
  out.push("");
  out.push(`Browser (Chromium, headless, ${BROWSER_ROUNDS} rounds, ms): navigation to the table rendered p50 ${fmt(l.p50)}, max ${fmt(l.max)}; ` +
    `typing a search to the filtered table p50 ${fmt(s.p50)}, max ${fmt(s.max)} (includes the list's 300 ms typing debounce).`);
} finally {
  await browser.close();
}
console.log(out.join("\n"));
