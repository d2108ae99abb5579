#!/usr/bin/env node
// Runs the compiled CLI when `npm run build` has produced it, the TypeScript sources through tsx otherwise.
import { existsSync } from 'node:fs';

const built = new URL('../dist/src/main.js', import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/main.ts', import.meta.url).href);
}
