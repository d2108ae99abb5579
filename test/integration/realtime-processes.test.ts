// Two `herald serve` processes on one PostgreSQL database and one Redis: a WebSocket client on B receives
// Sends handled by A; B is killed with SIGKILL mid-stream and the client, resuming on A from the last seq it
// saw, ends with every notification exactly once and in order.
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Channel, createHeraldClient } from '../../clients/node/index.js';
import { createPostgresDatabase } from '../support/engines.js';
import { type PrivateRedis, startPrivateRedis } from '../support/redis-server.js';
import { JWT_SECRET, signUserToken } from '../support/server.js';
import { until } from '../support/until.js';
import { killLeftovers, ServeProcess } from './lifecycle-process.js';

const available = Boolean(process.env.TEST_DATABASE_URL && process.env.REDIS_URL);

/** A WebSocket client that records every notification seq and resumes from the last one it saw. */
function wsClient(url: string, token: string, afterSeq: number) {
  const seqs: number[] = [];
  const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`, ['herald.v1', `bearer.${token}`]);
  ws.on('error', () => {});
  ws.on('message', (data) => {
    const frame = JSON.parse(String(data)) as { type: string; notification?: { seq: string } };
    if (frame.type === 'connection_ack') ws.send(JSON.stringify({ type: 'resume', after_seq: afterSeq }));
    if (frame.type === 'notification') seqs.push(Number(frame.notification!.seq));
  });
  const closed = new Promise<void>((resolve) => ws.on('close', () => resolve()));
  return { seqs, closed, ws };
}

describe.runIf(available)('real time across two server processes (PostgreSQL + Redis)', () => {
  let redis: PrivateRedis | undefined;
  let drop: (() => Promise<void>) | undefined;
  afterAll(async () => {
    killLeftovers();
    await drop?.();
    await redis?.stop();
  });

  it("delivers across processes and loses nothing when the client's process is killed", async () => {
    redis = await startPrivateRedis();
    const db = await createPostgresDatabase(process.env.TEST_DATABASE_URL!);
    drop = db.drop;
    const env = {
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      HERALD_JWT_SECRET: JWT_SECRET,
      HERALD_BOOTSTRAP_ADMIN_KEY: 'true',
      HERALD_REGISTRY_TTL_MS: '3000',
    };
    const a = await ServeProcess.start(env);
    const b = await ServeProcess.start({ ...env, HERALD_BOOTSTRAP_ADMIN_KEY: 'false' });
    const apiKey = a.bootstrapKey!;
    expect(apiKey).toBeDefined();
    const viaA = createHeraldClient({ baseUrl: a.url, apiKey, defaultTimeoutMs: 15_000 });
    const userId = 'proc-1';
    const token = await signUserToken(userId);

    const onB = wsClient(b.url, token, 0);
    const first = await (async () => {
      await until('B connected', 10_000, () => (onB.ws.readyState === WebSocket.OPEN ? true : undefined));
      await new Promise((resolve) => setTimeout(resolve, 200)); // the resume frame is on its way
      return viaA.send({ userId, type: 'chat.message', title: 'first', channels: [Channel.IN_APP] });
    })();
    await until('B got a Send handled by A', 10_000, () =>
      onB.seqs.includes(Number(first.seq)) ? true : undefined,
    );

    const sending = (async () => {
      const sent = [Number(first.seq)];
      for (let i = 0; i < 80; i++) {
        const r = await viaA.send({
          userId,
          type: 'chat.message',
          title: `m${i}`,
          channels: [Channel.IN_APP],
        });
        sent.push(Number(r.seq));
      }
      return sent;
    })();
    await new Promise((resolve) => setTimeout(resolve, 150));
    await b.stop('SIGKILL');
    await onB.closed;
    const seenOnB = [...onB.seqs];
    const onA = wsClient(a.url, token, seenOnB.at(-1) ?? 0);
    const sent = await sending;
    await until('all on A', 15_000, () =>
      seenOnB.length + onA.seqs.length >= sent.length ? true : undefined,
    );
    onA.ws.close();
    expect([...seenOnB, ...onA.seqs]).toEqual(sent);
    await a.stop();
  }, 90_000);
});
