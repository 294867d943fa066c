// Once per e2e run: only this run's screenshots stay in test-results/, so a reviewer never
// looks at stale ones (each suite adds its own).
import { mkdirSync, rmSync } from "node:fs";
import { SCREENSHOTS } from "./harness";

// The suites run in separate vitest processes (`npm run e2e`); the later runs keep the earlier
// runs' screenshots. (They were split when a page loaded without its stylesheet; the page log
// later named Chromium's "ERR_TOO_MANY_RETRIES" on an ignored certificate error — the browser
// now trusts the server's key instead, see harness.ts.)
export default function setup() {
  if (!process.env.CAPSTAN_E2E_KEEP_SCREENSHOTS) rmSync(SCREENSHOTS, { recursive: true, force: true });
  mkdirSync(SCREENSHOTS, { recursive: true });
}
