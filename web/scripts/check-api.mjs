// Fails when src/api/schema.d.ts is not what `npm run gen:api` makes from ../api/openapi.json,
// so the console's types cannot silently drift from the server's committed OpenAPI document.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const committed = join(web, "src/api/schema.d.ts");
const dir = mkdtempSync(join(tmpdir(), "capstan-api-"));
try {
  const fresh = join(dir, "schema.d.ts");
  execFileSync(
    process.execPath,
    [join(web, "node_modules/openapi-typescript/bin/cli.js"), join(web, "../api/openapi.json"), "-o", fresh],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  let current = "";
  try {
    current = readFileSync(committed, "utf8");
  } catch {
    // A missing file is stale too; reported below.
  }
  if (current !== readFileSync(fresh, "utf8")) {
    console.error("web/src/api/schema.d.ts is stale: run `npm run gen:api` in web/ and commit the result");
    process.exit(1);
  }
  console.log("web/src/api/schema.d.ts matches api/openapi.json");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
