// Builds dist/herald-inbox.js: the <herald-inbox> element and the browser client with their dependencies in one
// minified ESM file, for a page to load with <script type="module" src="…/herald-inbox.js">. Prints its size,
// minified and gzipped, against the budget (40 KB gzipped).
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const BUDGET_GZIP_BYTES = 40 * 1024;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outfile = path.join(root, 'dist', 'herald-inbox.js');

const result = await build({
  entryPoints: [path.join(root, 'src', 'inbox-element.ts')],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  write: false,
  logLevel: 'warning',
});
const code = result.outputFiles[0].contents;
await writeFile(outfile, code);

const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;
const gzipped = gzipSync(code).length;
console.log(
  `dist/herald-inbox.js (element + client): ${kb(code.length)} minified, ${kb(gzipped)} gzipped ` +
    `(budget ${kb(BUDGET_GZIP_BYTES)})`,
);
if (gzipped > BUDGET_GZIP_BYTES) {
  console.warn(`warning: herald-inbox.js is ${kb(gzipped - BUDGET_GZIP_BYTES)} over its gzip budget`);
}
