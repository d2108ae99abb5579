// The Redis bus across a dropped connection: it listens on its channels again once Redis is back (and says
// it is degraded until then), and an instance shut down while that subscription is still unanswered leaves
// nothing behind: no unhandled rejection, no error reported. The bus reaches Redis through a proxy here that
// can cut every connection and hold back Redis's replies on a connection once it sent SUBSCRIBE. Needs Redis
// (REDIS_URL).
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BusEvent } from '../../src/realtime/bus.js';
import { createRedisBus } from '../../src/realtime/redis-bus.js';
import { until } from '../support/until.js';

const url = process.env.REDIS_URL;

/** Forwards to Redis; `cut()` drops every connection; with `holdSubscribe`, replies stop after a SUBSCRIBE. */
class RedisProxy {
  holdSubscribe = false;
  readonly held = new Set<net.Socket>();
  private readonly sockets = new Set<net.Socket>();
  private readonly server = net.createServer((client) => {
    const target = new URL(url!);
    const upstream = net.connect(Number(target.port || 6379), target.hostname);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.once('close', () => {
        this.sockets.delete(socket);
        this.held.delete(socket);
      });
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => {
      if (this.holdSubscribe && /subscribe/i.test(chunk.toString('latin1'))) this.held.add(client);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!this.held.has(client)) client.write(chunk);
    });
  });

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `redis://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  cut(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe.runIf(url)('the Redis bus across a dropped connection', () => {
  const proxy = new RedisProxy();
  let proxied: string;
  let sender: Awaited<ReturnType<typeof createRedisBus>>;
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);

  beforeAll(async () => {
    proxied = await proxy.listen();
    sender = await createRedisBus({ url: url!, registryTtlMs: 3_000, onError: () => {} });
    process.on('unhandledRejection', onRejection);
  });
  afterEach(() => {
    proxy.holdSubscribe = false;
  });
  afterAll(async () => {
    process.off('unhandledRejection', onRejection);
    await sender?.close();
    await proxy.close();
  });

  it('listens on its channels again once Redis is back, degraded until it does', async () => {
    const bus = await createRedisBus({ url: proxied, registryTtlMs: 3_000, onError: () => {} });
    const userId = `reconnect-${Date.now()}`;
    const received: BusEvent[] = [];
    await bus.subscribe(userId, (event) => received.push(event));

    proxy.holdSubscribe = true;
    proxy.cut();
    await until('the subscription sent again, its reply held', 10_000, () =>
      proxy.held.size > 0 ? true : undefined,
    );
    // Connected again, but not yet listening: events for its users could be missed, so it says so.
    expect(bus.degraded()).toBe(true);

    proxy.holdSubscribe = false;
    proxy.cut();
    // Back after an outage, it wakes its sessions to re-read what they may have missed.
    await until('the sessions woken', 10_000, () => (received.length > 0 ? true : undefined));
    expect(received).toEqual([{ kind: 'resync', userId }]);
    expect(bus.degraded()).toBe(false);
    received.length = 0;
    await sender.publish({ kind: 'resync', userId });
    await until('the event reached the bus', 5_000, () => (received.length > 0 ? true : undefined));
    expect(received).toEqual([{ kind: 'resync', userId }]);
    await bus.close();
  });

  it('shuts down cleanly while its subscription after a reconnect is unanswered', async () => {
    const errors: unknown[] = [];
    const bus = await createRedisBus({ url: proxied, registryTtlMs: 3_000, onError: (e) => errors.push(e) });
    await bus.subscribe(`closing-${Date.now()}`, () => {});
    errors.length = 0; // a dropped connection is reported; what matters is what the shutdown leaves

    proxy.holdSubscribe = true;
    proxy.cut();
    await until('the subscription sent again, its reply held', 10_000, () =>
      proxy.held.size > 0 ? true : undefined,
    );
    errors.length = 0;
    await bus.close();
    // Rejections are reported after the microtasks of the turn that made them.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(rejections).toEqual([]);
    expect(errors).toEqual([]);
  });
});
