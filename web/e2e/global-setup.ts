// Once per e2e run: only this run's screenshots stay in test-results/, so a reviewer never
// looks at stale ones (each suite adds its own).
import { mkdirSync, rmSync } from "node:fs";
import { SCREENSHOTS } from "./harness";

export default function setup() {
  rmSync(SCREENSHOTS, { recursive: true, force: true });
  mkdirSync(SCREENSHOTS, { recursive: true });
}
