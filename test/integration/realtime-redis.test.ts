// Several instances on one PostgreSQL database and one Redis: a Send handled by instance A reaches the user's
// stream on instance B; a broadcast reaches clients on every instance; when B goes away the client resumes on
// A and misses nothing; when Redis restarts mid-stream, nothing sent during the outage is lost. Uses a private
// redis-server (it is killed and restarted here). Needs PostgreSQL and Redis (REDIS_URL says Redis is
// available on this machine).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  Channel,
  type NotificationServiceClient,
  type StreamNotificationsResponse,
} from '../../clients/node/index.js';
import { postgresEngine, type TestDatabase } from '../support/engines.js';
import { type PrivateRedis, startPrivateRedis } from '../support/redis-server.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

function follow(client: NotificationServiceClient, userId: string, afterSeq = 0n) {
  const events: StreamNotificationsResponse[] = [];
  const controller = new AbortController();
  const done = (async () => {
    try {
      for await (const e of client.streamNotifications({ userId, afterSeq }, { signal: controller.signal })) {
        events.push(e);
      }
    } catch {
      // Ended by stop() or by the server going away; the test checks what arrived.
    }
  })();
  return {
    events,
    seqs: () => events.flatMap((e) => (e.event.case === 'notification' ? [Number(e.event.value.seq)] : [])),
    async stop() {
      controller.abort();
      await done;
    },
    ended: done,
  };
}

const available = Boolean(process.env.TEST_DATABASE_URL && process.env.REDIS_URL);
const FALLBACK_POLL_MS = 300;

async function readiness(server: TestServer): Promise<string> {
  return (await fetch(`${server.url}/readyz`)).text();
}

async function busDegradedMetric(server: TestServer): Promise<string | undefined> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return /^herald_bus_degraded (\d)$/m.exec(text)?.[1];
}

describe.runIf(available)('real time across instances (PostgreSQL + Redis)', () => {
  let redis: PrivateRedis;
  let db: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  const settings = () => ({
    REDIS_URL: redis.url,
    HERALD_REGISTRY_TTL_MS: '3000',
    HERALD_LOG_LEVEL: 'warn',
    HERALD_WS_MAX_CONNECTIONS_PER_USER: '2',
    HERALD_BUS_FALLBACK_POLL_MS: String(FALLBACK_POLL_MS),
  });

  /** A WebSocket to `server` as `userId`; resolves to it once acknowledged, or to its close code. */
  async function connect(server: TestServer, userId: string): Promise<WebSocket | number> {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws`, [
      'herald.v1',
      `bearer.${await server.userToken(userId)}`,
    ]);
    return new Promise((resolve) => {
      ws.on('message', (data) => {
        if (JSON.parse(String(data)).type === 'connection_ack') resolve(ws);
      });
      ws.on('close', (code) => resolve(code));
      ws.on('error', () => {});
    });
  }

  beforeAll(async () => {
    redis = await startPrivateRedis();
    db = await postgresEngine(process.env.TEST_DATABASE_URL!).open();
    a = await startTestServer(postgresEngine(''), { db, overrides: settings() });
    b = await startTestServer(postgresEngine(''), { db, overrides: settings() });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop().catch(() => {});
    await db?.destroy();
    await redis?.stop();
  });

  const sendVia = (server: TestServer, userId: string, title: string) =>
    server
      .client({ apiKey: a.adminKey })
      .send({ userId, type: 'chat.message', title, channels: [Channel.IN_APP] });

  it("delivers a Send handled by A to the user's stream on B", async () => {
    const stream = follow(b.client({ apiKey: a.adminKey }), 'multi-1');
    await until('connected', 5_000, () =>
      stream.events.some((e) => e.event.case === 'unreadCount') ? true : undefined,
    );
    const sent = await sendVia(a, 'multi-1', 'from A');
    await until('received on B', 5_000, () => (stream.seqs().includes(Number(sent.seq)) ? true : undefined));
    await stream.stop();
  });

  it('broadcasts a system message to clients on every instance', async () => {
    const onA = follow(a.client({ apiKey: a.adminKey }), 'multi-2');
    const wsOnB = new WebSocket(`${b.url.replace('http', 'ws')}/ws`, [
      'herald.v1',
      `bearer.${await b.userToken('multi-3')}`,
    ]);
    const frames: Record<string, unknown>[] = [];
    wsOnB.on('message', (data) => frames.push(JSON.parse(String(data))));
    await until('ws ack', 5_000, () => (frames.some((f) => f.type === 'connection_ack') ? true : undefined));
    wsOnB.send(JSON.stringify({ type: 'resume', after_seq: 0 }));
    await until('ws session', 5_000, () =>
      frames.some((f) => f.type === 'unread_count') ? true : undefined,
    );
    await until('stream session', 5_000, () => (onA.events.length > 0 ? true : undefined));
    await a.adminService().broadcastSystemMessage({ type: 'maintenance.scheduled', data: { at: '02:00' } });
    await until('both got it', 5_000, () =>
      onA.events.some((e) => e.event.case === 'system') && frames.some((f) => f.type === 'system')
        ? true
        : undefined,
    );
    const system = frames.find((f) => f.type === 'system')!.system as Record<string, unknown>;
    expect(system).toEqual({ type: 'maintenance.scheduled', data: { at: '02:00' } });
    wsOnB.close();
    await onA.stop();
  });

  it("caps a user's WebSocket connections across instances", async () => {
    const first = await connect(a, 'multi-cap');
    const second = await connect(b, 'multi-cap');
    expect([first, second].every((c) => c instanceof WebSocket)).toBe(true);
    expect(await connect(a, 'multi-cap')).toBe(1008);
    expect(await connect(b, 'multi-cap')).toBe(1008);
    // One closes on B: its place is free on either instance.
    (second as WebSocket).close();
    const third = await until('a free place', 5_000, async () => {
      const c = await connect(a, 'multi-cap');
      return c instanceof WebSocket ? c : undefined;
    });
    third.close();
    (first as WebSocket).close();
  });

  it('survives a Redis restart mid-stream: what was sent during the outage arrives once Redis is back', async () => {
    const stream = follow(b.client({ apiKey: a.adminKey }), 'multi-4');
    await until('connected', 5_000, () =>
      stream.events.some((e) => e.event.case === 'unreadCount') ? true : undefined,
    );
    await redis.kill();
    const during = await sendVia(a, 'multi-4', 'during the outage'); // the Send itself never depends on Redis
    await redis.start();
    await until('caught up after the outage', 20_000, () =>
      stream.seqs().includes(Number(during.seq)) ? true : undefined,
    );
    const after = await sendVia(a, 'multi-4', 'after');
    await until('live again', 10_000, () => (stream.seqs().includes(Number(after.seq)) ? true : undefined));
    expect(stream.seqs()).toEqual([Number(during.seq), Number(after.seq)]);
    await stream.stop();
  });

  it('keeps delivering live while Redis is down, on every instance, and says the bus is degraded', async () => {
    const onA = follow(a.client({ apiKey: a.adminKey }), 'degraded-a');
    const onB = follow(b.client({ apiKey: a.adminKey }), 'degraded-b');
    for (const stream of [onA, onB]) {
      await until('connected', 5_000, () =>
        stream.events.some((e) => e.event.case === 'unreadCount') ? true : undefined,
      );
    }
    await redis.kill();
    try {
      for (const server of [a, b]) {
        await until('degraded', 5_000, async () =>
          (await readiness(server)).includes('"bus":"degraded"') ? true : undefined,
        );
        expect(await busDegradedMetric(server)).toBe('1');
      }
      // Across instances and on the same one, both ways: each arrives live within the fallback interval.
      const sends = [
        [a, 'degraded-b', onB],
        [b, 'degraded-a', onA],
        [a, 'degraded-a', onA],
        [b, 'degraded-b', onB],
      ] as const;
      for (const [via, userId, stream] of sends) {
        const sentAt = Date.now();
        const sent = await sendVia(via, userId, `while Redis is down, via ${via === a ? 'A' : 'B'}`);
        await until(`${userId} live during the outage`, 10_000, () =>
          stream.seqs().includes(Number(sent.seq)) ? true : undefined,
        );
        expect(Date.now() - sentAt).toBeLessThan(FALLBACK_POLL_MS + 2_000);
      }
    } finally {
      await redis.start();
    }
    for (const server of [a, b]) {
      await until('bus back', 20_000, async () =>
        (await readiness(server)) === '{"status":"ready"}\n' ? true : undefined,
      );
      expect(await busDegradedMetric(server)).toBe('0');
    }
    // Nothing was written twice at the seam between polling and the bus.
    for (const stream of [onA, onB]) expect(new Set(stream.seqs()).size).toBe(stream.seqs().length);
    await onA.stop();
    await onB.stop();
  });

  it('lets a client whose instance went away resume on another one without missing anything', async () => {
    const userId = 'multi-5';
    const onB = follow(b.client({ apiKey: a.adminKey }), userId);
    await until('connected', 5_000, () =>
      onB.events.some((e) => e.event.case === 'unreadCount') ? true : undefined,
    );
    const sender = (async () => {
      const seqs: number[] = [];
      for (let i = 0; i < 60; i++) seqs.push(Number((await sendVia(a, userId, `m${i}`)).seq));
      return seqs;
    })();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await b.stop(); // B goes away: its streams end
    await onB.ended;
    const seen = onB.seqs();
    const onA = follow(a.client({ apiKey: a.adminKey }), userId, BigInt(seen.at(-1) ?? 0));
    const sent = await sender;
    await until('all on A', 10_000, () =>
      seen.length + onA.seqs().length >= sent.length ? true : undefined,
    );
    await onA.stop();
    expect([...seen, ...onA.seqs()]).toEqual(sent);
  });
});
