/// <reference lib="dom" />
// The browser client spreads a reconnect storm: refused because too many sessions are starting on the server
// (WebSocket close 1013, "retry after N ms"), it waits the N ms the server suggested, with its own jittered
// backoff on top, before it connects again. In headless Chromium, with the client bundled from clients/web.
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bundlePageScript,
  chromiumArgs,
  chromiumAvailable,
  chromiumPath,
  startPageServer,
} from '../support/browser.js';
import { pgliteEngine } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { open } from '../support/ws-client.js';

const WAIT_MS = 15_000;
const BACKOFF_MS = 50;

// The page: the web client over the WebSocket bridge, logging when it connects and disconnects.
const PAGE_SCRIPT = `
import { createHeraldWebClient } from './clients/web/src/index.js';

const params = new URLSearchParams(location.hash.slice(1));
const herald = createHeraldWebClient({
  baseUrl: params.get('herald') ?? '',
  token: params.get('token') ?? '',
  transport: 'websocket',
  baseDelayMs: ${BACKOFF_MS},
  maxDelayMs: ${BACKOFF_MS},
});
const log: { type: string; at: number; error?: string }[] = [];
herald.subscribe((event) => {
  if (event.type !== 'connected' && event.type !== 'disconnected') return;
  log.push({ type: event.type, at: performance.now(), ...(event.type === 'disconnected' ? { error: event.error } : {}) });
  document.getElementById('log')!.textContent = JSON.stringify(log);
});
`;

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>web client</title></head>
<body><pre id="log"></pre><script type="module" src="/app.js"></script></body></html>
`;

describe.runIf(chromiumAvailable)('the web client refused by a busy server, in headless Chromium', () => {
  let browser: Browser;
  let server: TestServer;
  let app: Awaited<ReturnType<typeof startPageServer>>;

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    app = await startPageServer(PAGE, await bundlePageScript(PAGE_SCRIPT, 'retry-page.ts'));
    server = await startTestServer(pgliteEngine, {
      overrides: { HERALD_SESSION_STARTS_MAX: '1', HERALD_SESSION_START_WAIT_MS: '100' },
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await app?.close();
  });

  it('waits the delay the server suggested before it connects again', async () => {
    // Another client holds the one place among the sessions starting.
    const holder = open(`${server.url.replace('http', 'ws')}/ws`, [
      'herald.v1',
      `bearer.${await server.userToken('retry-holder')}`,
    ]);
    await holder.next('connection_ack');

    const page = await browser.newPage();
    const token = await server.userToken('retry-browser');
    await page.goto(`${app.origin}/#herald=${encodeURIComponent(server.url)}&token=${token}`);
    await page.waitForFunction(() => document.getElementById('log')?.textContent?.includes('disconnected'), {
      timeout: WAIT_MS,
    });
    // The place is free again at once: only the client's own waiting keeps it away.
    holder.send({ type: 'resume', after_seq: 0 });
    await holder.next('unread_count');
    await page.waitForFunction(() => document.getElementById('log')?.textContent?.includes('"connected"'), {
      timeout: WAIT_MS + 30_000,
    });
    const log = JSON.parse((await page.textContent('#log')) ?? '[]') as {
      type: string;
      at: number;
      error?: string;
    }[];
    await page.close();
    holder.ws.close();

    const [refused, connected] = log;
    expect(refused?.type).toBe('disconnected');
    expect(refused?.error).toMatch(
      /^websocket closed \(1013: too many sessions starting; retry after \d+ ms\)$/,
    );
    expect(connected?.type).toBe('connected');
    const suggested = Number(/retry after (\d+) ms/.exec(refused!.error!)![1]);
    expect(suggested).toBeGreaterThanOrEqual(1_000);
    const waited = connected!.at - refused!.at;
    expect(waited).toBeGreaterThanOrEqual(suggested);
    expect(waited).toBeLessThan(suggested + BACKOFF_MS + 5_000);
  });
});
