// The RateLimiter contract, run against the in-process limiter always and against Redis whenever REDIS_URL is
// set. The memory limiter runs on an injected clock, so its timing is asserted to the millisecond; Redis runs
// on its own clock in real time, so its tests leave a few ms of slack and bound what a drain can admit.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createMemoryRateLimiter,
  createRedisRateLimiter,
  type RateLimit,
  type RateLimiter,
} from '../../src/delivery/rate-limiter.js';

interface LimiterEngine {
  create(): RateLimiter;
  /** Lets time pass: exactly on the injected clock, at least `ms` (plus timer and truncation slack) for real. */
  wait(ms: number): Promise<void>;
}

let keySerial = 0;
/** A key no other test has used, so buckets never leak between tests. */
function freshKey(): string {
  keySerial += 1;
  return `provider-${keySerial}`;
}

async function takeMany(limiter: RateLimiter, key: string, limit: RateLimit, times: number) {
  const decisions = [];
  for (let i = 0; i < times; i++) decisions.push(await limiter.take(key, limit));
  return decisions;
}

function rateLimiterContract(name: string, engine: () => LimiterEngine): void {
  describe(`RateLimiter contract (${name})`, () => {
    it('starts full: burst takes succeed at once, the next is told to wait', async () => {
      const { create } = engine();
      const limiter = create();
      const limit = { perSecond: 10, burst: 4 };
      const key = freshKey();
      const decisions = await takeMany(limiter, key, limit, 4);
      expect(decisions).toEqual(Array(4).fill({ ok: true }));
      const refused = await limiter.take(key, limit);
      expect(refused.ok).toBe(false);
      if (!refused.ok) {
        expect(refused.waitMs).toBeGreaterThan(0);
        expect(refused.waitMs).toBeLessThanOrEqual(100);
      }
      await limiter.close();
    });

    it('admits a take once waitMs has passed', async () => {
      const { create, wait } = engine();
      const limiter = create();
      const limit = { perSecond: 20, burst: 1 };
      const key = freshKey();
      expect(await limiter.take(key, limit)).toEqual({ ok: true });
      const refused = await limiter.take(key, limit);
      if (refused.ok) throw new Error('expected the empty bucket to refuse');
      await wait(refused.waitMs);
      expect(await limiter.take(key, limit)).toEqual({ ok: true });
      await limiter.close();
    });

    it('keeps separate keys independent', async () => {
      const { create } = engine();
      const limiter = create();
      const limit = { perSecond: 1, burst: 2 };
      const [apns, fcm] = [freshKey(), freshKey()];
      await takeMany(limiter, apns, limit, 2);
      expect((await limiter.take(apns, limit)).ok).toBe(false);
      expect(await takeMany(limiter, fcm, limit, 2)).toEqual([{ ok: true }, { ok: true }]);
      await limiter.close();
    });

    it('never refills beyond burst, however long the bucket sat idle', async () => {
      const { create, wait } = engine();
      const limiter = create();
      // Slow enough that the takes themselves refill under a token, fast enough that the idle spell would
      // refill several times the burst were it not capped.
      const limit = { perSecond: 100, burst: 3 };
      const key = freshKey();
      await takeMany(limiter, key, limit, 3);
      await wait(100);
      const decisions = await takeMany(limiter, key, limit, 4);
      expect(decisions.filter((d) => d.ok)).toHaveLength(3);
      expect(decisions[3]?.ok).toBe(false);
      await limiter.close();
    });

    it.each([
      { perSecond: 0, burst: 1 },
      { perSecond: -1, burst: 1 },
      { perSecond: Number.POSITIVE_INFINITY, burst: 1 },
      { perSecond: 1, burst: 0 },
      { perSecond: 1, burst: Number.NaN },
    ])('rejects the limit %j', async (limit) => {
      const limiter = engine().create();
      await expect(limiter.take(freshKey(), limit)).rejects.toThrow(RangeError);
      await limiter.close();
    });

    it('rejects takes after close', async () => {
      const limiter = engine().create();
      await limiter.close();
      await expect(limiter.take(freshKey(), { perSecond: 1, burst: 1 })).rejects.toThrow(/closed/);
    });
  });
}

// ---- in process, injected clock -------------------------------------------------------------------------

function manualClock() {
  let now = 1_700_000_000_000;
  return {
    now: () => now,
    set: (t: number) => {
      now = t;
    },
    advance: (ms: number) => {
      now += ms;
    },
  };
}

rateLimiterContract('memory', () => {
  const clock = manualClock();
  return {
    create: () => createMemoryRateLimiter(clock.now),
    wait: async (ms) => clock.advance(ms),
  };
});

describe('memory rate limiter timing (injected clock)', () => {
  it('refills one token exactly every 1000/perSecond ms after the burst', async () => {
    const clock = manualClock();
    const limiter = createMemoryRateLimiter(clock.now);
    const limit = { perSecond: 10, burst: 3 };
    expect(await takeMany(limiter, 'ses', limit, 3)).toEqual(Array(3).fill({ ok: true }));
    expect(await limiter.take('ses', limit)).toEqual({ ok: false, waitMs: 100 });
    clock.advance(99);
    expect(await limiter.take('ses', limit)).toEqual({ ok: false, waitMs: 1 });
    clock.advance(1);
    expect(await limiter.take('ses', limit)).toEqual({ ok: true });
    expect(await limiter.take('ses', limit)).toEqual({ ok: false, waitMs: 100 });
    clock.advance(250);
    expect(await takeMany(limiter, 'ses', limit, 3)).toEqual([
      { ok: true },
      { ok: true },
      { ok: false, waitMs: 50 },
    ]);
  });

  it('reports the wait for the missing fraction of a token', async () => {
    const clock = manualClock();
    const limiter = createMemoryRateLimiter(clock.now);
    const limit = { perSecond: 4, burst: 1 };
    await limiter.take('twilio', limit);
    clock.advance(100);
    expect(await limiter.take('twilio', limit)).toEqual({ ok: false, waitMs: 150 });
    clock.advance(149);
    expect(await limiter.take('twilio', limit)).toEqual({ ok: false, waitMs: 1 });
    clock.advance(1);
    expect(await limiter.take('twilio', limit)).toEqual({ ok: true });
  });

  it('rounds the wait up so that waiting it is always enough', async () => {
    const clock = manualClock();
    const limiter = createMemoryRateLimiter(clock.now);
    const limit = { perSecond: 3, burst: 1 };
    await limiter.take('fcm', limit);
    expect(await limiter.take('fcm', limit)).toEqual({ ok: false, waitMs: 334 });
    clock.advance(333);
    expect((await limiter.take('fcm', limit)).ok).toBe(false);
    clock.advance(1);
    expect(await limiter.take('fcm', limit)).toEqual({ ok: true });
  });

  it('handles rates below one per second', async () => {
    const clock = manualClock();
    const limiter = createMemoryRateLimiter(clock.now);
    const limit = { perSecond: 0.5, burst: 1 };
    await limiter.take('slow', limit);
    expect(await limiter.take('slow', limit)).toEqual({ ok: false, waitMs: 2_000 });
  });

  it('counts a refused take as no take: refusals do not push the next token back', async () => {
    const clock = manualClock();
    const limiter = createMemoryRateLimiter(clock.now);
    const limit = { perSecond: 10, burst: 1 };
    await limiter.take('smtp', limit);
    for (let t = 0; t < 100; t += 10) {
      expect((await limiter.take('smtp', limit)).ok).toBe(false);
      clock.advance(10);
    }
    expect(await limiter.take('smtp', limit)).toEqual({ ok: true });
  });

  it('neither refills nor drains when the clock steps backwards', async () => {
    const clock = manualClock();
    const limiter = createMemoryRateLimiter(clock.now);
    const limit = { perSecond: 10, burst: 2 };
    await limiter.take('apns', limit);
    clock.advance(-5_000);
    expect(await takeMany(limiter, 'apns', limit, 2)).toEqual([{ ok: true }, { ok: false, waitMs: 100 }]);
  });
});

// ---- Redis, real time ---------------------------------------------------------------------------------

const redisUrl = process.env.REDIS_URL;

describe.runIf(Boolean(redisUrl))('Redis rate limiter', () => {
  const prefix = `herald:rl:test-${randomBytes(6).toString('hex')}:`;
  const connections: Redis[] = [];
  let redis: Redis;

  function connect(): Redis {
    const connection = new Redis(redisUrl ?? '', { maxRetriesPerRequest: 1 });
    connections.push(connection);
    return connection;
  }

  beforeAll(() => {
    redis = connect();
  });

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await Promise.all(connections.map((connection) => connection.quit()));
  });

  rateLimiterContract('redis', () => ({
    create: () => createRedisRateLimiter(redis, prefix),
    // Real timers may fire a little early, and the script reads Redis TIME truncated to whole ms.
    wait: (ms) => sleep(ms + 5),
  }));

  it('shares one bucket between instances on separate connections', async () => {
    const first = createRedisRateLimiter(connect(), prefix);
    const second = createRedisRateLimiter(connect(), prefix);
    const limit = { perSecond: 1, burst: 3 };
    const key = freshKey();
    expect(await takeMany(first, key, limit, 2)).toEqual([{ ok: true }, { ok: true }]);
    expect(await second.take(key, limit)).toEqual({ ok: true });
    expect((await first.take(key, limit)).ok).toBe(false);
    expect((await second.take(key, limit)).ok).toBe(false);
  });

  it('stores the bucket under <prefix><key> and lets it expire once it would be full again', async () => {
    const limiter = createRedisRateLimiter(redis, prefix);
    const key = freshKey();
    await limiter.take(key, { perSecond: 1, burst: 2 });
    const ttl = await redis.pttl(`${prefix}${key}`);
    expect(ttl).toBeGreaterThan(900);
    expect(ttl).toBeLessThanOrEqual(1_001);

    const quick = freshKey();
    await limiter.take(quick, { perSecond: 1_000, burst: 1 });
    await sleep(20);
    expect(await redis.exists(`${prefix}${quick}`)).toBe(0);
  });

  it('admits no more than burst + perSecond * elapsed across two instances draining at once', async () => {
    const limit = { perSecond: 50, burst: 5 };
    const key = freshKey();
    const limiters = [createRedisRateLimiter(connect(), prefix), createRedisRateLimiter(connect(), prefix)];
    const started = performance.now();
    const deadline = started + 1_000;

    async function drain(limiter: RateLimiter): Promise<number> {
      let admitted = 0;
      // The iteration cap keeps the loop finite even if the limiter misbehaves.
      for (let i = 0; i < 10_000 && performance.now() < deadline; i++) {
        const decision = await limiter.take(key, limit);
        if (decision.ok) admitted += 1;
        else await sleep(Math.min(decision.waitMs, Math.max(0, deadline - performance.now())));
      }
      return admitted;
    }

    const admitted = (await Promise.all(limiters.map(drain))).reduce((a, b) => a + b, 0);
    const elapsedSeconds = (performance.now() - started) / 1_000;
    expect(admitted).toBeLessThanOrEqual(5 + 50 * elapsedSeconds + 2);
    // And it does admit at about the configured rate rather than refusing everything.
    expect(admitted).toBeGreaterThanOrEqual(40);
  });
});
