// Credentials are checked at the door and again while a connection stays open: a StreamNotifications call
// ends with UNAUTHENTICATED, and a WebSocket closes with 4001, when the user token behind it expires or the
// API key behind it is revoked — within a second of the token's exp, and within the API key cache's lifetime
// of the revocation. Runs on every available engine.
import { randomBytes } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Channel } from '../../clients/node/index.js';
import { revokeApiKey } from '../../src/store/index.js';
import { engines } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { RawClient } from '../support/wire.js';

const KEY_CACHE_TTL_MS = 400;

/** A client-to-server WebSocket text frame (masked, as RFC 6455 requires of clients). */
function maskedTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const head =
    payload.length < 126
      ? Buffer.from([0x81, 0x80 | payload.length])
      : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, mask, payload.map((byte, i) => byte ^ mask[i % 4]!)]);
}

/** The token's exp, in ms. */
function expOf(token: string): number {
  const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as {
    exp: number;
  };
  return payload.exp * 1000;
}

describe.each(engines())('credentials that end while a connection is open, on $name', (engine) => {
  let server: TestServer;
  let wsUrl: string;
  beforeAll(async () => {
    server = await startTestServer(engine, {
      overrides: { HERALD_API_KEY_CACHE_TTL_MS: String(KEY_CACHE_TTL_MS), HERALD_STREAM_HEARTBEAT_MS: '200' },
    });
    wsUrl = `${server.url.replace('http', 'ws')}/ws`;
  });
  afterAll(() => server?.stop());

  /** Follows a stream until it ends; resolves to how it ended and when. */
  async function followStream(credential: { apiKey?: string; token?: string }, userId: string) {
    const client = server.client(credential);
    let heartbeats = 0;
    try {
      for await (const event of client.streamNotifications({ userId })) {
        if (event.event.case === 'heartbeat') heartbeats++;
      }
      return { code: 'ended' as const, heartbeats, at: Date.now() };
    } catch (error) {
      return {
        code: ConnectError.from(error).code,
        message: ConnectError.from(error).rawMessage,
        heartbeats,
        at: Date.now(),
      };
    }
  }

  function openWebSocket(protocols: string[], authFrame?: Record<string, unknown>) {
    const ws = new WebSocket(wsUrl, protocols);
    const acked = new Promise<void>((resolve) =>
      ws.on('message', (data) => {
        if ((JSON.parse(String(data)) as { type: string }).type === 'connection_ack') resolve();
      }),
    );
    if (authFrame) ws.on('open', () => ws.send(JSON.stringify(authFrame)));
    const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) =>
      ws.on('close', (code, reason) => resolve({ code, reason: String(reason), at: Date.now() })),
    );
    return { acked, closed };
  }

  it('ends a stream with UNAUTHENTICATED once its user token expires', async () => {
    const token = await server.userToken('expiring-stream', { expiresIn: '3s' });
    const expiresAt = expOf(token);
    const ended = await followStream({ token }, '');
    expect([ended.code, ended.message]).toEqual([
      Code.Unauthenticated,
      'the user token expired; reconnect with a fresh one',
    ]);
    expect(ended.heartbeats).toBeGreaterThan(0); // it was open and alive until then
    expect(ended.at).toBeGreaterThanOrEqual(expiresAt);
    expect(ended.at - expiresAt).toBeLessThan(2_500);
  });

  it('ends a stream with UNAUTHENTICATED once its API key is revoked', async () => {
    const key = await server.keyWith('read');
    const following = followStream({ apiKey: key }, 'revoked-stream');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const revokedAt = Date.now();
    await revokeApiKey(server.db.database.db, key.slice(0, 11));
    const ended = await following;
    expect([ended.code, ended.message]).toEqual([Code.Unauthenticated, 'the API key was revoked']);
    expect(ended.at - revokedAt).toBeLessThan(KEY_CACHE_TTL_MS + 2_000);
  });

  it('closes a WebSocket with 4001 once its user token expires', async () => {
    const token = await server.userToken('expiring-ws', { expiresIn: '3s' });
    const expiresAt = expOf(token);
    const ws = openWebSocket(['herald.v1', `bearer.${token}`]);
    await ws.acked;
    const closed = await ws.closed;
    expect([closed.code, closed.reason]).toEqual([4001, 'credential expired']);
    expect(closed.at).toBeGreaterThanOrEqual(expiresAt);
    expect(closed.at - expiresAt).toBeLessThan(2_500);
  });

  it('closes a WebSocket with 4001 once its API key is revoked', async () => {
    const key = await server.keyWith('read');
    const ws = openWebSocket([], { type: 'auth', token: key, user_id: 'revoked-ws' });
    await ws.acked;
    const revokedAt = Date.now();
    await revokeApiKey(server.db.database.db, key.slice(0, 11));
    const closed = await ws.closed;
    expect([closed.code, closed.reason]).toEqual([4001, 'credential revoked']);
    expect(closed.at - revokedAt).toBeLessThan(KEY_CACHE_TTL_MS + 2_000);
  });

  it('ignores frames from a client that goes on sending after its 4001 close', async () => {
    const sent = await server
      .admin()
      .send({ userId: 'ignores-close', type: 'chat.message', title: 'Hi', channels: [Channel.IN_APP] });
    const token = await server.userToken('ignores-close', { expiresIn: '3s' });
    const raw = await RawClient.connect(Number(new URL(server.url).port));
    raw.write(
      'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Protocol: herald.v1, bearer.${token}\r\n\r\n`,
    );
    await raw.until('acknowledged', 5_000, (bytes) => bytes.includes('connection_ack'));
    await raw.until('closed by the server', 5_000, (bytes) => bytes.includes('credential expired'));
    // A well-behaved client would answer the close; this one marks instead, and must not be heard.
    raw.write(maskedTextFrame(JSON.stringify({ type: 'mark', ids: [sent.notificationId], action: 'read' })));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const { notification } = await server.admin().getNotification({ notificationId: sent.notificationId });
    expect(notification?.readAt).toBeUndefined();
    raw.destroy();
  });
});
