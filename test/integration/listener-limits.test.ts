// The one-port listener's bounds before authentication, asserted on the wire: sniffing, HTTP/1.1 header,
// request and idle timeouts, HTTP/2 session idleness and stream limits, and the connection caps, with their
// refusals. Live streams (Connect over HTTP/1.1 and HTTP/2, the WebSocket bridge) outlive every timeout.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Channel } from '../../clients/node/index.js';
import { pgliteEngine, type TestDatabase } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';
import {
  FLAG,
  FRAME,
  frame,
  H2_PREFACE,
  http1Get,
  parseFrames,
  RawClient,
  requestHeaders,
  settingsOf,
} from '../support/wire.js';

const SNIFF_MS = 200;
const HEADERS_MS = 200;
const REQUEST_MS = 500;
const IDLE_MS = 300;
const MAX_STREAMS = 3;
/** Node keeps an HTTP/1.1 keep-alive connection this much longer than it advertises. */
const NODE_KEEP_ALIVE_BUFFER_MS = 1_000;
/** Timers are checked every quarter of the shortest timeout here; allow for that and a busy machine. */
const SLACK_MS = 1_000;
/** Longer than every timeout above, HTTP/1.1 keep-alive buffer included. */
const OUTLIVE_ALL_MS = Math.max(REQUEST_MS, IDLE_MS + NODE_KEEP_ALIVE_BUFFER_MS) + 300;

const SEND_PATH = '/herald.v1.NotificationService/Send';
const STREAM_PATH = '/herald.v1.NotificationService/StreamNotifications';
const REFUSED_STREAM = 0x7;
const CANCEL = 0x8;

let db: TestDatabase;
beforeAll(async () => {
  db = await pgliteEngine.open();
});
afterAll(() => db?.destroy());

const clients: { destroy(): void }[] = [];
/** A raw client that is destroyed after the test whatever happens. */
async function raw(port: number, localAddress?: string): Promise<RawClient> {
  const client = await RawClient.connect(port, localAddress);
  clients.push(client);
  return client;
}
function h2connect(url: string, localAddress?: string): http2.ClientHttp2Session {
  const { port } = new URL(url);
  const session = http2.connect(url, {
    createConnection: () => net.connect({ host: '127.0.0.1', port: Number(port), localAddress }),
  });
  session.on('error', () => {});
  clients.push(session);
  return session;
}
function cleanup() {
  for (const client of clients.splice(0)) client.destroy();
}

/** A Connect server-streaming request body: one enveloped JSON message. */
function envelope(message: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(message));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(json.length, 1);
  return Buffer.concat([head, json]);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`, or a failure naming `what` after `ms`: no wait in this file is unbounded. */
async function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('timeouts and stream limits', () => {
  let server: TestServer;
  let port: number;
  beforeAll(async () => {
    server = await startTestServer(pgliteEngine, {
      db,
      overrides: {
        HERALD_DISPATCHER: 'false',
        HERALD_SNIFF_TIMEOUT_MS: String(SNIFF_MS),
        HERALD_HEADERS_TIMEOUT_MS: String(HEADERS_MS),
        HERALD_REQUEST_TIMEOUT_MS: String(REQUEST_MS),
        HERALD_IDLE_TIMEOUT_MS: String(IDLE_MS),
        HERALD_HTTP2_MAX_CONCURRENT_STREAMS: String(MAX_STREAMS),
      },
    });
    port = server.herald.port;
  });
  afterAll(() => server?.stop());
  afterEach(cleanup);

  it('closes a connection that sends nothing after the sniff timeout', async () => {
    const client = await raw(port);
    const openFor = await client.closesWithin(SNIFF_MS + SLACK_MS);
    expect(openFor).toBeGreaterThanOrEqual(SNIFF_MS - 20);
    expect(client.received().length).toBe(0);
  });

  it('closes a connection that trickles an incomplete HTTP/2 preface after the sniff timeout', async () => {
    const client = await raw(port);
    let sent = 0;
    const trickle = setInterval(() => client.write(H2_PREFACE.subarray(sent, ++sent)), 20);
    try {
      const openFor = await client.closesWithin(SNIFF_MS + SLACK_MS);
      expect(openFor).toBeGreaterThanOrEqual(SNIFF_MS - 20);
      expect(sent).toBeLessThan(H2_PREFACE.length);
    } finally {
      clearInterval(trickle);
    }
  });

  it('answers 408 and closes an HTTP/1.1 request whose headers trickle past the headers timeout', async () => {
    const client = await raw(port);
    client.write('GET /healthz HTTP/1.1\r\nHost: herald\r\n');
    const started = performance.now();
    const trickle = setInterval(() => client.write('X-Slow: yes\r\n'), 40);
    try {
      await client.closesWithin(HEADERS_MS + SLACK_MS);
      expect(client.closedAt! - started).toBeGreaterThanOrEqual(HEADERS_MS - 20);
      // The request timeout is longer: the headers timeout cut it.
      expect(client.closedAt! - started).toBeLessThan(REQUEST_MS);
      expect(client.text()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    } finally {
      clearInterval(trickle);
    }
  });

  it('answers 408 and closes an HTTP/1.1 request whose body trickles past the request timeout', async () => {
    const client = await raw(port);
    client.write(
      `POST ${SEND_PATH} HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`,
    );
    const started = performance.now();
    const trickle = setInterval(() => client.write(' '), 40);
    try {
      await client.closesWithin(REQUEST_MS + SLACK_MS);
      // Its headers were complete in time: the request timeout cut it, not the headers timeout.
      expect(client.closedAt! - started).toBeGreaterThanOrEqual(REQUEST_MS - 20);
      expect(client.text()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    } finally {
      clearInterval(trickle);
    }
  });

  it('closes an idle HTTP/1.1 keep-alive connection after the idle timeout', async () => {
    const client = await raw(port);
    const answer = await http1Get(client, '/healthz', '{"status":"ok"}');
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(answer.toLowerCase()).toContain('connection: keep-alive');
    const answeredAt = performance.now();
    // Still usable while idle for less than the timeout.
    await sleep(IDLE_MS / 2);
    expect(await http1Get(client, '/healthz', '{"status":"ok"}')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    await client.closesWithin(IDLE_MS + NODE_KEEP_ALIVE_BUFFER_MS + SLACK_MS);
    expect(client.closedAt! - answeredAt).toBeGreaterThanOrEqual(IDLE_MS);
  });

  it('closes an idle HTTP/2 session with GOAWAY after the idle timeout', async () => {
    const session = h2connect(server.url);
    const goaway = new Promise<{ code: number; at: number }>((resolve) =>
      session.once('goaway', (code) => resolve({ code, at: performance.now() })),
    );
    const closed = new Promise<void>((resolve) => session.once('close', resolve));
    const req = session.request({ ':path': '/healthz' });
    req.resume();
    await within('the /healthz answer', 2_000, new Promise((resolve) => req.once('end', resolve)));
    const answeredAt = performance.now();
    const { code, at } = await within('GOAWAY', IDLE_MS + SLACK_MS, goaway);
    expect(code).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(at - answeredAt).toBeGreaterThanOrEqual(IDLE_MS - 20);
    expect(at - answeredAt).toBeLessThan(IDLE_MS + SLACK_MS);
    await within('the session to close', 2_000, closed);
  });

  it('keeps an HTTP/2 session with a quiet live StreamNotifications stream open, and closes it once the stream ends', async () => {
    const session = h2connect(server.url);
    let goawayAt: number | undefined;
    session.on('goaway', () => {
      goawayAt = performance.now();
    });
    // The heartbeat is 20 s here: the stream stays quiet for longer than every timeout.
    const stream = session.request({
      ':method': 'POST',
      ':path': STREAM_PATH,
      'content-type': 'application/connect+json',
      authorization: `Bearer ${server.adminKey}`,
    });
    stream.end(envelope({ userId: 'h2-live', afterSeq: '0' }));
    const status = await within(
      'the stream to open',
      5_000,
      new Promise((resolve) => stream.once('response', (h) => resolve(h[':status']))),
    );
    expect(status).toBe(200);
    let received = '';
    stream.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
    });
    await sleep(OUTLIVE_ALL_MS);
    expect(goawayAt).toBeUndefined();
    expect(session.closed || session.destroyed).toBe(false);

    await server
      .admin()
      .send({ userId: 'h2-live', type: 'live', title: 'still here', channels: [Channel.IN_APP] });
    await until('the notification on the live stream', 5_000, () =>
      received.includes('still here') ? true : undefined,
    );

    const endedAt = performance.now();
    stream.close();
    await until('GOAWAY after the stream ended', IDLE_MS + SLACK_MS, () => goawayAt);
    expect(goawayAt! - endedAt).toBeGreaterThanOrEqual(IDLE_MS - 20);
  });

  it('keeps a Connect stream over HTTP/1.1 open past the request and idle timeouts', async () => {
    const req = http.request(`${server.url}${STREAM_PATH}`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/connect+json', authorization: `Bearer ${server.adminKey}` },
    });
    req.on('error', () => {});
    clients.push(req);
    req.end(envelope({ userId: 'h1-live', afterSeq: '0' }));
    const res = await within(
      'the stream to open',
      5_000,
      new Promise<http.IncomingMessage>((resolve) => req.once('response', resolve)),
    );
    expect(res.statusCode).toBe(200);
    let received = '';
    let ended = false;
    res.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
    });
    res.on('close', () => {
      ended = true;
    });
    await sleep(OUTLIVE_ALL_MS);
    expect(ended).toBe(false);
    await server
      .admin()
      .send({ userId: 'h1-live', type: 'live', title: 'still here', channels: [Channel.IN_APP] });
    await until('the notification on the live stream', 5_000, () =>
      received.includes('still here') ? true : undefined,
    );
  });

  it('keeps a WebSocket open past the request and idle timeouts', async () => {
    const token = await server.userToken('ws-live');
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws`, ['herald.v1', `bearer.${token}`]);
    ws.on('error', () => {});
    clients.push({ destroy: () => ws.terminate() });
    const frames: { type: string; notification?: { title?: string } }[] = [];
    ws.on('message', (data) => frames.push(JSON.parse(data.toString())));
    await until('connection_ack', 5_000, () => frames.find((f) => f.type === 'connection_ack'));
    ws.send(JSON.stringify({ type: 'resume', after_seq: 0 }));
    await sleep(OUTLIVE_ALL_MS);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    await server
      .admin()
      .send({ userId: 'ws-live', type: 'live', title: 'still here', channels: [Channel.IN_APP] });
    await until('the notification on the WebSocket', 5_000, () =>
      frames.find((f) => f.type === 'notification' && f.notification?.title === 'still here'),
    );
  });

  it('advertises the configured max concurrent streams in its HTTP/2 SETTINGS', async () => {
    const session = h2connect(server.url);
    const settings = await within(
      'the server SETTINGS',
      2_000,
      new Promise<http2.Settings>((resolve) => session.once('remoteSettings', resolve)),
    );
    expect(settings.maxConcurrentStreams).toBe(MAX_STREAMS);
  });

  it('refuses the HTTP/2 stream beyond the limit (REFUSED_STREAM) and keeps the others', async () => {
    const client = await raw(port);
    // The streams wait for request bodies that never come. The server's SETTINGS is not acknowledged, so
    // nghttp2 refuses the stream over its (pending) limit instead of failing the whole connection.
    const headers = Array.from({ length: MAX_STREAMS + 1 }, (_, i) =>
      frame(
        FRAME.HEADERS,
        FLAG.END_HEADERS,
        2 * i + 1,
        requestHeaders('POST', SEND_PATH, 'application/json'),
      ),
    );
    client.write(Buffer.concat([H2_PREFACE, frame(FRAME.SETTINGS, 0, 0), ...headers]));
    const lastStream = 2 * MAX_STREAMS + 1;
    const resets = () => parseFrames(client.received()).filter((f) => f.type === FRAME.RST_STREAM);
    await client.until('RST_STREAM of the stream over the limit', 2_000, () =>
      resets().some((f) => f.streamId === lastStream),
    );
    const settings = parseFrames(client.received()).find(
      (f) => f.type === FRAME.SETTINGS && !(f.flags & FLAG.ACK),
    );
    expect(settingsOf(settings!).get(0x3)).toBe(MAX_STREAMS);
    expect(resets().map((f) => [f.streamId, f.payload.readUInt32BE(0)])).toEqual([
      [lastStream, REFUSED_STREAM],
    ]);
    expect(parseFrames(client.received()).some((f) => f.type === FRAME.GOAWAY)).toBe(false);
  });

  it('resets an HTTP/2 stream whose request does not arrive within the request timeout; the session lives on', async () => {
    const client = await raw(port);
    client.write(Buffer.concat([H2_PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
    await client.until('server SETTINGS', 2_000, (r) =>
      parseFrames(r).some((f) => f.type === FRAME.SETTINGS),
    );
    const opened = performance.now();
    client.write(
      Buffer.concat([
        frame(FRAME.SETTINGS, FLAG.ACK, 0),
        frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, requestHeaders('POST', SEND_PATH, 'application/json')),
        frame(FRAME.DATA, 0, 1, Buffer.from('{')),
      ]),
    );
    const reset = () =>
      parseFrames(client.received()).find((f) => f.type === FRAME.RST_STREAM && f.streamId === 1);
    await client.until(
      'RST_STREAM of the incomplete request',
      REQUEST_MS + SLACK_MS,
      () => reset() !== undefined,
    );
    expect(performance.now() - opened).toBeGreaterThanOrEqual(REQUEST_MS - 20);
    expect(reset()!.payload.readUInt32BE(0)).toBe(CANCEL);

    client.write(
      frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, requestHeaders('GET', '/healthz')),
    );
    await client.until('an answer on the same connection', 2_000, () =>
      parseFrames(client.received()).some((f) => f.type === FRAME.HEADERS && f.streamId === 3),
    );
    expect(parseFrames(client.received()).some((f) => f.type === FRAME.GOAWAY)).toBe(false);
  });
});

describe('connection caps', () => {
  const MAX_CONNECTIONS = 4;
  const PER_ADDRESS = 2;
  const EXEMPT = '127.0.0.9';
  let server: TestServer;
  let port: number;
  beforeAll(async () => {
    server = await startTestServer(pgliteEngine, {
      db,
      overrides: {
        HERALD_DISPATCHER: 'false',
        HERALD_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
        HERALD_MAX_CONNECTIONS_PER_ADDRESS: String(PER_ADDRESS),
        // Loopback is exempt by default (a local proxy is every client); here only the probe's address is.
        HERALD_PER_ADDRESS_EXEMPT_NETWORKS: EXEMPT,
      },
    });
    port = server.herald.port;
  });
  afterAll(() => server?.stop());
  afterEach(async () => {
    cleanup();
    // The next test starts when the server has seen every connection of this one close.
    await until('the server to see the connections close', 5_000, async () => {
      const probe = await RawClient.connect(port, EXEMPT);
      try {
        const metrics = await http1Get(probe, '/metrics', 'herald_connections_open ');
        return /^herald_connections_open 1$/m.test(metrics) ? true : undefined;
      } catch {
        return undefined;
      } finally {
        probe.destroy();
      }
    });
  });

  async function healthy(localAddress: string): Promise<RawClient> {
    const client = await raw(port, localAddress);
    expect(await http1Get(client, '/healthz', '{"status":"ok"}')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    return client;
  }

  it('reports the descriptor limit and the caps at start', () => {
    const line = server.logs.lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'connection limits');
    expect(line).toMatchObject({ maxConnections: MAX_CONNECTIONS, maxConnectionsPerAddress: PER_ADDRESS });
    expect(line.openFilesLimit).toEqual(
      process.platform === 'linux'
        ? { soft: expect.anything(), hard: expect.anything() }
        : expect.any(String),
    );
  });

  it('refuses a connection over the per-address cap with 503, while other connections still answer', async () => {
    const first = await healthy('127.0.0.1');
    await healthy('127.0.0.1');
    const refused = await raw(port, '127.0.0.1');
    refused.write('GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n');
    await refused.closesWithin(2_000);
    expect(refused.text()).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(refused.text()).toMatch(/\r\nConnection: close\r\n/);
    expect(refused.text()).toMatch(/\r\n\r\ntoo many connections from your address/);

    expect(await http1Get(first, '/healthz', '{"status":"ok"}')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    await healthy('127.0.0.2');
  });

  it('does not cap an exempt address per address, only in total', async () => {
    for (let i = 0; i < PER_ADDRESS + 1; i++) await healthy(EXEMPT);
  });

  it('refuses a connection over the total cap with 503 (HTTP/1.1) or GOAWAY (HTTP/2), while others still answer', async () => {
    const first = await healthy('127.0.0.1');
    const second = await healthy('127.0.0.1');
    await healthy('127.0.0.2');
    await healthy('127.0.0.2');

    const refused = await raw(port, '127.0.0.3');
    refused.write('GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n');
    await refused.closesWithin(2_000);
    expect(refused.text()).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(refused.text()).toMatch(/\r\n\r\ntoo many connections to this server/);

    const session = h2connect(server.url, '127.0.0.3');
    const [code, , debug] = await within(
      'GOAWAY for the refused HTTP/2 connection',
      2_000,
      new Promise<[number, number, Buffer | undefined]>((resolve) =>
        session.once('goaway', (errorCode: number, lastStreamId: number, data?: Buffer) =>
          resolve([errorCode, lastStreamId, data]),
        ),
      ),
    );
    expect(code).toBe(REFUSED_STREAM);
    expect(debug?.toString()).toContain('too many connections to this server');

    expect(await http1Get(first, '/healthz', '{"status":"ok"}')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    // A freed place is taken by the next connection.
    first.destroy();
    await until('a new connection to be admitted', 5_000, async () => {
      const next = await raw(port, '127.0.0.3');
      try {
        return (await http1Get(next, '/healthz', '{"status":"ok"}')).startsWith('HTTP/1.1 200')
          ? true
          : undefined;
      } catch {
        return undefined;
      }
    });

    const metrics = await http1Get(second, '/metrics', 'herald_connections_refused_total');
    expect(metrics).toMatch(/herald_connections_refused_total\{reason="max_connections"\} [1-9]/);
    expect(server.logs.text()).toContain('connections refused');
  });
});
