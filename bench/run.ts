// `npm run bench -- NAME [options]`: imports bench/NAME.ts and calls its exported main(options).
// Benchmarks are discovered from the files next to this one, so adding bench/foo.ts is all it takes.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { compileForBench } from './lib/compiled.js';

const benchDir = path.dirname(fileURLToPath(import.meta.url));

// If a benchmark leaves a handle open (a socket, a pool), the process still ends this long after main().
const EXIT_GRACE_MS = 5_000;

interface BenchmarkModule {
  main(args: string[]): Promise<void>;
}

function availableBenchmarks(): string[] {
  return readdirSync(benchDir)
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts') && file !== 'run.ts')
    .map((file) => file.slice(0, -'.ts'.length))
    .sort();
}

function isBenchmarkModule(value: unknown): value is BenchmarkModule {
  return (
    typeof value === 'object' && value !== null && typeof (value as { main?: unknown }).main === 'function'
  );
}

function printUsage(problem: string | undefined, available: string[]): void {
  const lines = [
    ...(problem ? [problem, ''] : []),
    'usage: npm run bench -- NAME [options]',
    '',
    'available benchmarks:',
    ...available.map((name) => `  ${name}`),
    '',
  ];
  process.stderr.write(lines.join('\n'));
}

async function run(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  const available = availableBenchmarks();
  // Only names from the directory listing are imported, so NAME can never point outside bench/.
  if (!name || !available.includes(name)) {
    printUsage(name ? `unknown benchmark "${name}"` : 'no benchmark named', available);
    return 2;
  }
  // Herald's processes run the compiled build, as in production (bench/lib/compiled.ts).
  process.stderr.write('compiling src/ and bench/ into dist/ (tsc -p tsconfig.bench.json)\n');
  compileForBench();
  const module: unknown = await import(pathToFileURL(path.join(benchDir, `${name}.ts`)).href);
  if (!isBenchmarkModule(module)) throw new Error(`bench/${name}.ts does not export main()`);
  await module.main(args);
  return 0;
}

function exitSoonIfStuck(): void {
  setTimeout(() => {
    process.stderr.write(`bench: still running ${EXIT_GRACE_MS} ms after finishing; exiting\n`);
    process.exit();
  }, EXIT_GRACE_MS).unref();
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    exitSoonIfStuck();
  },
  (error: unknown) => {
    process.stderr.write(
      `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
    exitSoonIfStuck();
  },
);
