// Copies the static files (HTML, CSS) beside the compiled scripts: dist/ is what GC serves.
import { cpSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
mkdirSync(join(root, "dist", "assets"), { recursive: true });
cpSync(join(root, "public", "index.html"), join(root, "dist", "index.html"));
cpSync(join(root, "public", "app.css"), join(root, "dist", "assets", "app.css"));
