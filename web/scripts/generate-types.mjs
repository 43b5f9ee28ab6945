// Generates the page's types from the documents the services publish, into src/:
//   generated-signaling.ts  from docs/signaling.schema.json (json-schema-to-typescript): every
//                           client and server message of the signaling WebSocket, and the
//                           constants of its `x-constants` (close codes, default timings)
//   generated-gc-api.ts,    from docs/openapi/{gc,ac}-service.json (openapi-typescript)
//   generated-ac-api.ts
// Beside the hand-written modules, not in a folder: GC serves the page's scripts from one flat
// directory (/assets/{name}), so an import must name a sibling.
//
//   node scripts/generate-types.mjs           write the files
//   node scripts/generate-types.mjs --check   write nothing; exit 1 naming each file that is
//                                             not what the documents generate
//
// scripts/signaling-schema.sh runs this after writing the schema; its --check runs in
// scripts/test.sh. The generated files are checked in and never edited by hand.

import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { compile } from "json-schema-to-typescript";
import openapiTS, { astToString } from "openapi-typescript";

const web = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const repo = path.dirname(web);
const out = path.join(web, "src");

const banner = (source) =>
  `// Generated from ${source} by web/scripts/generate-types.mjs: do not edit.\n` +
  `// Regenerate with scripts/signaling-schema.sh.\n`;

async function signaling() {
  const source = "docs/signaling.schema.json";
  const schema = JSON.parse(await readFile(path.join(repo, source), "utf8"));
  const constants = schema["x-constants"];
  delete schema["x-constants"];
  const types = await compile(schema, "SignalingProtocol", {
    bannerComment: "",
    additionalProperties: false,
    unreachableDefinitions: true,
    strictIndexSignatures: true,
    format: true,
  });
  const lines = [
    "",
    "/** The signaling close codes by name (x-constants.close_codes). */",
    `export const CLOSE = ${JSON.stringify(constants.close_codes, null, 2)} as const;`,
    "",
    "/** MC's default reconnect grace (RECONNECT_GRACE): how long a dropped seat is kept. */",
    `export const RECONNECT_GRACE_DEFAULT_MS = ${constants.reconnect_grace_default_ms};`,
    "/** MC's default idle timeout: a socket that sends nothing this long is closed. */",
    `export const IDLE_TIMEOUT_DEFAULT_MS = ${constants.idle_timeout_default_ms};`,
    "/** MC's default time to authenticate after the upgrade. */",
    `export const AUTH_TIMEOUT_DEFAULT_MS = ${constants.auth_timeout_default_ms};`,
    "/** The largest frame MC accepts, in bytes. */",
    `export const MAX_FRAME_BYTES = ${constants.max_frame_bytes};`,
    "",
  ];
  return ["generated-signaling.ts", banner(source) + "\n" + types + lines.join("\n")];
}

async function openapi(service, file) {
  const source = `docs/openapi/${service}.json`;
  const document = JSON.parse(await readFile(path.join(repo, source), "utf8"));
  const ast = await openapiTS(document, { alphabetize: true });
  return [file, banner(source) + "\n" + astToString(ast)];
}

const check = process.argv.includes("--check");
const files = await Promise.all([
  signaling(),
  openapi("gc-service", "generated-gc-api.ts"),
  openapi("ac-service", "generated-ac-api.ts"),
]);
let stale = 0;
for (const [name, text] of files) {
  const target = path.join(out, name);
  if (check) {
    const current = await readFile(target, "utf8").catch(() => null);
    if (current !== text) {
      console.error(`web/src/${name} is not what the documents generate: run scripts/signaling-schema.sh`);
      stale += 1;
    }
  } else {
    await writeFile(target, text);
    console.log(`wrote web/src/${name}`);
  }
}
process.exit(stale === 0 ? 0 : 1);
