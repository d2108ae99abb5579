// Reconnect storms, as the server meets them: at most HERALD_SESSION_STARTS_MAX live sessions start at once
// (a WebSocket from its upgrade to the end of its replay, a StreamNotifications call likewise); a start
// beyond that waits its turn for HERALD_SESSION_START_WAIT_MS and is then refused with a suggested delay
// (WebSocket close 1013 with "retry after N ms", stream UNAVAILABLE with retry-after-ms metadata), counted in
// the metrics; and on shutdown every live WebSocket and stream is ended, WebSockets with 1012. Runs on every
// available engine.
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';
import { open } from '../support/ws-client.js';

const RETRY_AFTER = /^too many sessions starting; retry after (\d+) ms$/;

async function metric(server: TestServer, line: RegExp): Promise<number | undefined> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const found = text.split('\n').find((l) => line.test(l));
  return found === undefined ? undefined : Number(found.split(' ').at(-1));
}

describe.each(engines())('session starts on $name', (engine) => {
  let server: TestServer;
  let wsUrl: string;
  beforeAll(async () => {
    server = await startTestServer(engine, {
      overrides: { HERALD_SESSION_STARTS_MAX: '1', HERALD_SESSION_START_WAIT_MS: '400' },
    });
    wsUrl = `${server.url.replace('http', 'ws')}/ws`;
  });
  afterAll(() => server?.stop());

  const connect = async (userId: string) =>
    open(wsUrl, ['herald.v1', `bearer.${await server.userToken(userId)}`]);

  it('holds a start to its turn, refuses it with a delay once it waited too long, and admits the next', async () => {
    // The one start allowed: acknowledged, not resumed yet, so it holds its place.
    const first = await connect('start-1');
    await first.next('connection_ack');

    const refused = await connect('start-2');
    const closed = await refused.closed;
    expect(closed.code).toBe(1013);
    const delay = Number(RETRY_AFTER.exec(closed.reason)?.[1]);
    expect(delay).toBeGreaterThanOrEqual(1_000);
    expect(delay).toBeLessThanOrEqual(30_000);
    expect(refused.frames).toEqual([]);

    // A stream is refused the same way, saying when to come back.
    const client = server.client({ token: await server.userToken('start-3') });
    const error = await (async () => {
      for await (const _ of client.streamNotifications({ userId: 'start-3', afterSeq: 0n })) break;
    })().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.rawMessage).toMatch(RETRY_AFTER);
    // A trailers-only answer: the client sees the value in its headers and its trailers, joined.
    const [retryAfterMs] = (error?.metadata.get('retry-after-ms') ?? '').split(', ');
    expect(Number(retryAfterMs)).toBeGreaterThanOrEqual(1_000);

    // Waiting when the place frees: the next start takes it.
    const waiting = await connect('start-4');
    first.send({ type: 'resume', after_seq: 0 });
    await first.next('unread_count');
    await waiting.next('connection_ack');
    waiting.send({ type: 'resume', after_seq: 0 });
    await waiting.next('unread_count');

    expect(await metric(server, /^herald_session_starts_refused_total\{transport="websocket"\}/)).toBe(1);
    expect(await metric(server, /^herald_session_starts_refused_total\{transport="stream"\}/)).toBe(1);
    expect(await metric(server, /^herald_session_start_seconds_count\{transport="websocket"\}/)).toBe(2);
    expect(await metric(server, /^herald_session_starts_in_progress /)).toBe(0);
    first.ws.close();
    waiting.ws.close();
  });

  it('holds no place for a connection that has not presented a credential, nor for one refused', async () => {
    // Silent (no token offered, no auth frame yet), and refused (a bad token): neither keeps anyone waiting.
    const silent = open(wsUrl, ['herald.v1']);
    const refused = open(wsUrl, ['herald.v1', 'bearer.not-a-token']);
    expect((await refused.closed).code).toBe(1008);
    const next = await connect('start-5');
    await next.next('connection_ack', 1_000);
    expect(await metric(server, /^herald_session_starts_waiting /)).toBe(0);
    next.ws.close();
    silent.ws.close();
  });

  it('gives the place of a client that left while waiting to the one after it', async () => {
    const holder = await connect('leave-1');
    await holder.next('connection_ack');
    const leaving = await connect('leave-2');
    const next = await connect('leave-3');
    await until('both waiting', 2_000, async () =>
      (await metric(server, /^herald_session_starts_waiting /)) === 2 ? true : undefined,
    );
    leaving.ws.terminate();
    await until('one left', 2_000, async () =>
      (await metric(server, /^herald_session_starts_waiting /)) === 1 ? true : undefined,
    );
    holder.ws.close();
    await next.next('connection_ack');
    next.ws.close();
  });
});

describe.each(engines())('shutdown on $name', (engine) => {
  let server: TestServer | undefined;
  beforeAll(async () => {
    server = await startTestServer(engine, { overrides: { HERALD_DRAIN_MS: '3000' } });
  });
  afterAll(() => server?.stop());

  it('ends every live WebSocket with 1012 (service restart) and every stream', async () => {
    const running = server!;
    const wsUrl = `${running.url.replace('http', 'ws')}/ws`;
    const sockets = await Promise.all(
      ['drain-1', 'drain-2', 'drain-3'].map(async (userId) => {
        const client = open(wsUrl, ['herald.v1', `bearer.${await running.userToken(userId)}`]);
        await client.next('connection_ack');
        client.send({ type: 'resume', after_seq: 0 });
        await client.next('unread_count');
        return client;
      }),
    );
    const streamed = running.client({ token: await running.userToken('drain-4') });
    const events: string[] = [];
    const stream = (async () => {
      for await (const e of streamed.streamNotifications({ userId: 'drain-4', afterSeq: 0n })) {
        events.push(e.event.case ?? '');
      }
    })();
    await until('the stream live', 5_000, () => (events.includes('unreadCount') ? true : undefined));

    const stopping = running.stop();
    server = undefined; // stopped here, not again after the test
    await stopping;
    for (const socket of sockets)
      expect(await socket.closed).toEqual({ code: 1012, reason: 'service restart' });
    await expect(stream).resolves.toBeUndefined();
  });
});
