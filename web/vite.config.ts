// Build and unit-test configuration of the console. The build goes to dist/, which
// capstan-server embeds; `npm run dev` proxies the API to a running server so the console can be
// developed with hot reload (CAPSTAN_URL, default https://127.0.0.1:8080).
import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

const server = process.env.CAPSTAN_URL ?? "https://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // The server's CSP allows no inline script; keep every script a file.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1000,
  },
  server: {
    proxy: {
      "/api": { target: server, secure: false },
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    setupFiles: ["test/setup.ts"],
    css: false,
  },
});
