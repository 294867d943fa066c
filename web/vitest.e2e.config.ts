// The browser end-to-end suite: Node tests that start a real capstan-server and capstan-agent
// and drive Debian's Chromium with playwright-core (see e2e/). Slow by nature, hence long
// timeouts and one file at a time.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "node",
    include: ["e2e/**/*.spec.ts"],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    globalSetup: ["e2e/global-setup.ts"],
  },
});
