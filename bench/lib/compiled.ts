// Benchmarks measure the code the service runs in production: the TypeScript compiled by tsc (what `npm run
// build` makes and `bin/herald.js` runs), not the sources through tsx, whose transform keeps every function's
// name by wrapping it (`keepNames`): a call per closure made, and bigger closures, which on a hot path or per
// connection shows up in the very figures measured. `npm run bench` compiles src/ and bench/ into dist/ once
// before a benchmark starts; child processes then run the compiled files with plain node.
import { execFileSync } from 'node:child_process';
import { cpSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Compiles src/, gen/, clients/node and bench/ into dist/ (tsc -p tsconfig.bench.json), as `npm run build` does. */
export function compileForBench(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.bench.json'], { cwd: repoRoot, stdio: 'inherit' });
  cpSync(`${repoRoot}/src/server/console`, `${repoRoot}/dist/src/server/console`, { recursive: true });
}

/** The compiled file of a source file, given relative to the repository root: 'src/main.ts' → dist/src/main.js. */
export function compiled(source: string): string {
  return `${repoRoot}dist/${source.replace(/\.ts$/, '.js')}`;
}
