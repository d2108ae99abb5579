// Headless Chromium for browser tests: the Debian package driven by playwright-core (never a downloaded
// browser). HERALD_CHROMIUM overrides the path.
import { existsSync } from 'node:fs';

export const chromiumPath = process.env.HERALD_CHROMIUM ?? '/usr/bin/chromium';
export const chromiumAvailable = existsSync(chromiumPath);

export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
