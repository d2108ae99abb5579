#!/usr/bin/env node
// `npm test`: runs the whole suite on what this machine has, and says plainly what it left out and why.
// PGlite suites always run. PostgreSQL suites run when TEST_DATABASE_URL is set, Redis suites when REDIS_URL is. With CI=true a missing
// server is an error, never a silent skip.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

const ci = process.env.CI === 'true' || process.env.CI === '1';
const requirements = [
  {
    name: 'PostgreSQL suites',
    variable: 'TEST_DATABASE_URL',
    present: Boolean(process.env.TEST_DATABASE_URL),
    hint: 'set TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test',
  },
  {
    name: 'Redis suites (shared rate limits; the real-time bus across instances, which also needs PostgreSQL and redis-server)',
    variable: 'REDIS_URL',
    present: Boolean(process.env.REDIS_URL),
    hint: 'set REDIS_URL=redis://127.0.0.1:6379',
  },
  {
    name: 'Browser suites (headless Chromium)',
    variable: 'HERALD_CHROMIUM',
    present: existsSync(process.env.HERALD_CHROMIUM ?? '/usr/bin/chromium'),
    hint: 'install Debian chromium (apt-get install -y chromium) or set HERALD_CHROMIUM to its path',
  },
];

const missing = requirements.filter((r) => !r.present);
process.stdout.write('Herald test suites:\n  embedded PGlite: run\n');
for (const r of requirements) {
  process.stdout.write(`  ${r.name}: ${r.present ? 'run' : `LEFT OUT (${r.hint})`}\n`);
}
if (ci && missing.length > 0) {
  process.stderr.write(
    `CI=true but ${missing.map((r) => r.name).join(', ')} missing: refusing to skip suites.\n`,
  );
  process.exit(1);
}

const child = spawn('npx', ['vitest', 'run', ...process.argv.slice(2)], { stdio: 'inherit' });
child.on('exit', (code, signal) => {
  if (missing.length > 0) {
    process.stdout.write(`\nNote: left out ${missing.map((r) => r.name).join(', ')} (see above).\n`);
  }
  process.exit(signal ? 1 : (code ?? 1));
});
