/// <reference lib="dom" />
// CORS from a real browser: a page served by a second HTTP server (another origin) loads
// @connectrpc/connect-web and calls Herald's GetPreferences with a user token over the Connect and the gRPC-Web
// transport, and opens the WebSocket bridge. From an origin in HERALD_CORS_ORIGINS all three work; from a
// third origin, not listed, Chromium rejects both fetches and the WebSocket upgrade fails.
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

const WAIT_MS = 10_000;

// The page's script: reads Herald's URL and a user token from the fragment, writes each outcome into the page.
const PAGE_SCRIPT = `
import { ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-web';
import { NotificationService } from './gen/herald/v1/notification_service_pb.js';

const params = new URLSearchParams(location.hash.slice(1));
const baseUrl = params.get('herald') ?? '';
const token = params.get('token') ?? '';
const show = (id: string, text: string) => {
  document.getElementById(id)!.textContent = text;
};
const bearer: Interceptor = (next) => (req) => {
  req.header.set('authorization', 'Bearer ' + token);
  return next(req);
};
const interceptors = [bearer];
const transports = {
  connect: createConnectTransport({ baseUrl, interceptors }),
  'grpc-web': createGrpcWebTransport({ baseUrl, interceptors }),
};
for (const [id, transport] of Object.entries(transports)) {
  createClient(NotificationService, transport)
    .getPreferences({})
    .then(
      (answer) => show(id, 'ok ' + answer.preferences?.userId),
      (error) => show(id, 'failed ' + ConnectError.from(error).message),
    );
}
const ws = new WebSocket(baseUrl.replace(/^http/, 'ws') + '/ws', ['herald.v1', 'bearer.' + token]);
ws.onmessage = (event) => {
  if (JSON.parse(event.data).type === 'connection_ack') show('websocket', 'ok acknowledged');
  ws.close();
};
ws.onerror = () => show('websocket', 'failed');
`;

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>another origin</title></head>
<body><p id="connect"></p><p id="grpc-web"></p><p id="websocket"></p>
<script type="module" src="/app.js"></script></body></html>
`;

describe.runIf(chromiumAvailable)('CORS from a page on another origin in headless Chromium', () => {
  let browser: Browser;
  let server: TestServer;
  let allowed: Awaited<ReturnType<typeof startPageServer>>;
  let other: Awaited<ReturnType<typeof startPageServer>>;
  let token: string;

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    const script = await bundlePageScript(PAGE_SCRIPT, 'cors-page.ts');
    allowed = await startPageServer(PAGE, script);
    other = await startPageServer(PAGE, script);
    server = await startTestServer(pgliteEngine, { overrides: { HERALD_CORS_ORIGINS: allowed.origin } });
    token = await server.userToken('cors-browser');
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await allowed?.close();
    await other?.close();
  });

  /** Opens the app page on `origin` and waits until every call has an outcome. */
  async function outcomes(origin: string): Promise<Record<string, string>> {
    const page = await browser.newPage();
    await page.goto(`${origin}/#herald=${encodeURIComponent(server.url)}&token=${token}`);
    await page.waitForFunction(
      () => ['connect', 'grpc-web', 'websocket'].every((id) => document.getElementById(id)?.textContent),
      undefined,
      { timeout: WAIT_MS },
    );
    const texts = await page.$$eval('p', (items) => items.map((p) => [p.id, p.textContent ?? ''] as const));
    await page.close();
    return Object.fromEntries(texts);
  }

  it('calls Herald over Connect and gRPC-Web, and opens /ws, from an allowed origin', async () => {
    expect(await outcomes(allowed.origin)).toEqual({
      connect: 'ok cors-browser',
      'grpc-web': 'ok cors-browser',
      websocket: 'ok acknowledged',
    });
  });

  it('gets no answer from Herald on an origin not allowed: both fetches reject, /ws is refused', async () => {
    const result = await outcomes(other.origin);
    expect(result.connect).toMatch(/^failed .*Failed to fetch/);
    expect(result['grpc-web']).toMatch(/^failed .*Failed to fetch/);
    expect(result.websocket).toBe('failed');
  });
});
