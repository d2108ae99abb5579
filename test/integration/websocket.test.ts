// The WebSocket bridge on the wire: authentication (subprotocol or auth frame, 1008 on failure), the
// session (ack, replay, live, state), and every edge the issue names: bad JSON, unknown frames, oversized
// frames (1009), missed pongs, a slow consumer closed at the cap (1013) while others keep receiving, and the
// per-user connection cap. Runs on every available engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { Channel, DeliveryStatus } from '../../clients/node/index.js';
import { engines } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';
import { open } from '../support/ws-client.js';

describe.each(engines())('WebSocket bridge on $name', (engine) => {
  let server: TestServer;
  let wsUrl: string;
  beforeAll(async () => {
    server = await startTestServer(engine, {
      overrides: {
        HERALD_WS_AUTH_TIMEOUT_MS: '300',
        HERALD_WS_PING_MS: '100',
        HERALD_STREAM_HEARTBEAT_MS: '200',
        HERALD_WS_MAX_CONNECTIONS_PER_USER: '3',
        HERALD_WS_MAX_BUFFERED_BYTES: String(64 * 1024),
      },
    });
    wsUrl = `${server.url.replace('http', 'ws')}/ws`;
  });
  afterAll(() => server?.stop());

  const send = (userId: string, title = 'Hi') =>
    server.admin().send({ userId, type: 'chat.message', title, channels: [Channel.IN_APP] });

  async function userClient(userId: string, options: WebSocket.ClientOptions = {}) {
    const token = await server.userToken(userId);
    const client = open(wsUrl, ['herald.v1', `bearer.${token}`], options);
    const ack = await client.next('connection_ack');
    return { client, ack };
  }

  it('authenticates with a token in Sec-WebSocket-Protocol, replays after the seq, then streams live', async () => {
    const first = await send('ws-1', 'one');
    await send('ws-1', 'two');
    const { client, ack } = await userClient('ws-1');
    expect(client.ws.protocol).toBe('herald.v1');
    expect(ack).toMatchObject({ server_seq: Number(first.seq) + 1 });
    expect(ack.connection_id).toMatch(/^[0-9a-f-]{36}$/);
    client.send({ type: 'resume', after_seq: Number(first.seq) });
    const replayed = (await client.next('notification')).notification as Record<string, unknown>;
    expect(replayed).toMatchObject({ title: 'two', seq: String(Number(first.seq) + 1) });
    expect((await client.next('unread_count')).unread_count).toEqual({ count: '2' });
    const live = await send('ws-1', 'three');
    expect(((await client.next('notification')).notification as Record<string, unknown>).id).toBe(
      live.notificationId,
    );
    client.ws.close();
  });

  it('authenticates with an auth frame; an API key names the user', async () => {
    const key = await server.keyWith('read');
    const client = open(wsUrl);
    client.ws.on('open', () => client.send({ type: 'auth', token: key, user_id: 'ws-2' }));
    await client.next('connection_ack');
    client.send({ type: 'ping' });
    await client.next('pong');
    client.ws.close();
  });

  it('closes with 1008 on a forged token, no auth in time, a key without read, or another user', async () => {
    const forged = open(wsUrl, ['herald.v1', 'bearer.not-a-jwt']);
    const silent = open(wsUrl, ['herald.v1']);
    const sendOnly = open(wsUrl);
    const sendKey = await server.keyWith('send');
    sendOnly.ws.on('open', () => sendOnly.send({ type: 'auth', token: sendKey, user_id: 'ws-3' }));
    const other = open(wsUrl);
    const token = await server.userToken('ws-4');
    other.ws.on('open', () => other.send({ type: 'auth', token, user_id: 'somebody-else' }));
    for (const c of [forged, silent, sendOnly, other]) {
      expect((await c.closed).code).toBe(1008);
      expect(c.frames.filter((f) => f.type === 'connection_ack')).toHaveLength(0);
    }
  });

  it('lets a read-only key follow a user but neither mark nor acknowledge, as MarkNotifications requires send', async () => {
    const sent = await send('ws-scope', 'read only');
    const key = await server.keyWith('read');
    const client = open(wsUrl);
    client.ws.on('open', () => client.send({ type: 'auth', token: key, user_id: 'ws-scope' }));
    await client.next('connection_ack');
    client.send({ type: 'resume', after_seq: 0 });
    await client.next('notification');
    client.send({ type: 'mark', ids: [sent.notificationId], action: 'read' });
    expect((await client.next('error')).message).toBe('API key lacks the "send" scope');
    client.send({ type: 'ack', ids: [sent.notificationId] });
    expect((await client.next('error')).message).toBe('API key lacks the "send" scope');
    const n = (await server.admin().getNotification({ notificationId: sent.notificationId })).notification!;
    expect(n.readAt).toBeUndefined();
    expect(n.deliveries[0]?.status).not.toBe(DeliveryStatus.DELIVERED);
    // The RPC path answers the same key the same way.
    const rpc = server.client({ apiKey: key });
    await expect(
      rpc.markNotifications({ userId: 'ws-scope', notificationIds: [sent.notificationId], action: 1 }),
    ).rejects.toThrow('API key lacks the "send" scope');
    client.ws.close();
  });

  it('answers bad JSON and unknown frames with an error frame and keeps the connection', async () => {
    const { client } = await userClient('ws-5');
    client.ws.send('{not json');
    expect((await client.next('error')).message).toBe('frames are JSON objects with a "type"');
    client.send({ type: 'subscribe-everything' });
    expect((await client.next('error')).message).toBe('type: unknown frame type "subscribe-everything"');
    client.send({ type: 'resume', after_seq: -3 });
    expect((await client.next('error')).message).toBe('after_seq: must be a whole number, 0 or more');
    client.send({ type: 'ping' });
    await client.next('pong');
    client.ws.close();
  });

  it('closes with 1009 on a frame over 64 KiB', async () => {
    const { client } = await userClient('ws-6');
    client.ws.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(70 * 1024) }));
    expect((await client.closed).code).toBe(1009);
  });

  it('closes a connection that misses two pongs', async () => {
    const { client } = await userClient('ws-7', { autoPong: false });
    const closed = await client.closed;
    expect(closed.code).toBe(1006); // terminated without a close frame
  });

  it('closes a slow consumer at the buffer cap with 1013 while another client keeps receiving', async () => {
    // Its own server: the 100 ms ping of the others would end the stalled client first.
    const quiet = await startTestServer(engine, {
      overrides: { HERALD_WS_MAX_BUFFERED_BYTES: String(64 * 1024) },
    });
    try {
      const url = `${quiet.url.replace('http', 'ws')}/ws`;
      const connect = async (userId: string) => {
        const c = open(url, ['herald.v1', `bearer.${await quiet.userToken(userId)}`]);
        await c.next('connection_ack');
        c.send({ type: 'resume', after_seq: 0 });
        await c.next('unread_count');
        return c;
      };
      const slow = await connect('ws-slow');
      const healthy = await connect('ws-healthy');
      slow.ws.pause(); // stops reading: the kernel buffers fill, then the server's
      const blob = 'z'.repeat(60_000);
      const sendTo = (userId: string, title: string) =>
        quiet
          .admin()
          .send({ userId, type: 'chat.message', title, data: { blob }, channels: [Channel.IN_APP] });
      for (let i = 0; i < 500 && quiet.herald.websockets.connections() === 2; i++)
        await sendTo('ws-slow', `big ${i}`);
      expect(quiet.herald.websockets.connections()).toBe(1);
      const after = await sendTo('ws-healthy', 'still here');
      await until('healthy client received', 5_000, () =>
        healthy.frames.find(
          (f) =>
            f.type === 'notification' &&
            (f.notification as Record<string, unknown>).id === after.notificationId,
        ),
      );
      slow.ws.resume(); // it reads what was buffered, then the close frame
      expect((await slow.closed).code).toBe(1013);
      healthy.ws.close();
    } finally {
      await quiet.stop();
    }
  });

  it('caps connections per user', async () => {
    const clients = await Promise.all([1, 2, 3].map(() => userClient('ws-cap')));
    const fourth = open(wsUrl, ['herald.v1', `bearer.${await server.userToken('ws-cap')}`]);
    expect((await fourth.closed).code).toBe(1008);
    for (const { client } of clients) client.ws.close();
  });

  it("acknowledges deliveries (DELIVERED) and pushes marks to the user's other devices", async () => {
    const sent = await send('ws-8', 'ack me');
    const phone = (await userClient('ws-8')).client;
    const laptop = (await userClient('ws-8')).client;
    phone.send({ type: 'resume', after_seq: 0 });
    laptop.send({ type: 'resume', after_seq: 0 });
    await phone.next('notification');
    await laptop.next('unread_count');
    phone.send({ type: 'ack', ids: [sent.notificationId] });
    await until('delivered', 5_000, async () => {
      const n = (await server.admin().getNotification({ notificationId: sent.notificationId })).notification!;
      return n.deliveries[0]?.status === DeliveryStatus.DELIVERED ? true : undefined;
    });
    phone.send({ type: 'mark', ids: [sent.notificationId], action: 'read' });
    const state = (await laptop.next('state')).state as Record<string, unknown>;
    expect(state).toMatchObject({ notificationIds: [sent.notificationId], action: 'MARK_ACTION_READ' });
    expect((await laptop.next('unread_count')).unread_count).toEqual({ count: '0' });
    phone.ws.close();
    laptop.ws.close();
  });

  it('writes a broadcast, encoded once, to every session of every user, and heartbeats on an idle connection', async () => {
    const users = ['ws-b1', 'ws-b2', 'ws-b2'];
    const clients = await Promise.all(users.map(async (u) => (await userClient(u)).client));
    for (const client of clients) client.send({ type: 'resume', after_seq: 0 });
    for (const client of clients) await client.next('unread_count');
    await server.adminService().broadcastSystemMessage({ type: 'deploy.soon', data: { in: '5m' } });
    for (const client of clients) {
      expect((await client.next('system')).system).toEqual({ type: 'deploy.soon', data: { in: '5m' } });
    }
    const beat = await clients[0]!.next('heartbeat');
    expect(Date.parse(String(beat.server_time))).toBeGreaterThan(Date.now() - 60_000);
    for (const client of clients) client.ws.close();
  });
});
