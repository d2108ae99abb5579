// Token buckets per provider key, in two engines behind one contract: in process (one instance, injected
// clock) and in Redis (shared by every instance, Redis's own clock).
//
// Both count in milli-tokens: a bucket refills perSecond milli-tokens per millisecond and a take costs 1000,
// so with whole-millisecond clocks and integral rates the arithmetic is exact and waitMs is never off by one.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface RateLimit {
  /** Tokens added per second, continuously. */
  perSecond: number;
  /** Bucket capacity: how many takes may happen back to back after an idle spell. */
  burst: number;
}

export type RateLimitDecision = { ok: true } | { ok: false; waitMs: number };

/**
 * Buckets start full (burst tokens) and refill continuously at perSecond, never beyond burst. Takes on one key
 * are atomic: the tokens admitted over any interval of t ms never exceed burst + perSecond * t / 1000.
 */
export interface RateLimiter {
  /** Takes one token; when none is available, how long until one is (waiting for a token is not a failed attempt). */
  take(key: string, limit: RateLimit): Promise<RateLimitDecision>;
  /** Stops the limiter; later takes reject. A Redis connection passed in stays open: it belongs to the caller. */
  close(): Promise<void>;
}

const MILLI = 1000;

function checkLimit(limit: RateLimit): void {
  if (!Number.isFinite(limit.perSecond) || limit.perSecond <= 0) {
    throw new RangeError('perSecond: must be a finite number > 0');
  }
  if (!Number.isFinite(limit.burst) || limit.burst < 1) {
    throw new RangeError('burst: must be a finite number >= 1');
  }
}

function closedError(): Error {
  return new Error('rate limiter is closed');
}

interface Bucket {
  milliTokens: number;
  updatedAt: number;
}

export function createMemoryRateLimiter(clock: () => number = Date.now): RateLimiter {
  const buckets = new Map<string, Bucket>();
  let closed = false;
  return {
    async take(key, limit) {
      if (closed) throw closedError();
      checkLimit(limit);
      const now = clock();
      const capacity = limit.burst * MILLI;
      const bucket = buckets.get(key) ?? { milliTokens: capacity, updatedAt: now };
      // A clock that steps backwards refills nothing rather than draining the bucket.
      const elapsed = Math.max(0, now - bucket.updatedAt);
      bucket.milliTokens = Math.min(capacity, bucket.milliTokens + elapsed * limit.perSecond);
      bucket.updatedAt = now;
      buckets.set(key, bucket);
      if (bucket.milliTokens >= MILLI) {
        bucket.milliTokens -= MILLI;
        return { ok: true };
      }
      return { ok: false, waitMs: Math.ceil((MILLI - bucket.milliTokens) / limit.perSecond) };
    },
    async close() {
      closed = true;
      buckets.clear();
    },
  };
}

// KEYS[1] bucket; ARGV[1] perSecond, ARGV[2] burst. Returns {1, 0} when a token was taken, else {0, waitMs}.
// The clock is Redis TIME, so instances whose own clocks disagree still share one timeline. The key expires
// once the bucket would be full again (one ms late, as TIME is truncated to whole ms here): a missing key
// means a full bucket, so idle buckets vanish without changing any answer.
const takeScript = `
if redis.replicate_commands then redis.replicate_commands() end
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2]) * 1000
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local saved = redis.call('HMGET', KEYS[1], 'm', 't')
local milli = tonumber(saved[1])
local updated = tonumber(saved[2])
if milli == nil or updated == nil then
  milli = capacity
  updated = now
end
if now > updated then
  milli = math.min(capacity, milli + (now - updated) * rate)
end
local taken = 0
if milli >= 1000 then
  milli = milli - 1000
  taken = 1
end
redis.call('HSET', KEYS[1], 'm', tostring(milli), 't', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - milli) / rate) + 1)
if taken == 1 then
  return {1, 0}
end
return {0, math.ceil((1000 - milli) / rate)}
`;

const takeScriptSha = createHash('sha1').update(takeScript).digest('hex');

function parseDecision(reply: unknown): RateLimitDecision {
  if (Array.isArray(reply) && reply.length === 2) {
    const [taken, waitMs] = reply;
    if (taken === 1) return { ok: true };
    if (taken === 0 && typeof waitMs === 'number' && waitMs >= 0) return { ok: false, waitMs };
  }
  throw new Error(`rate limiter script returned an unexpected reply: ${JSON.stringify(reply)}`);
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

/**
 * Shared across instances: one atomic Lua script per take, sent by hash and by body only when Redis has not
 * cached it, using Redis TIME as the clock. Keys are `<prefix><key>` (default `herald:rl:<key>`).
 */
export function createRedisRateLimiter(redis: Redis, prefix = 'herald:rl:'): RateLimiter {
  let closed = false;
  return {
    async take(key, limit) {
      if (closed) throw closedError();
      checkLimit(limit);
      const args = [`${prefix}${key}`, String(limit.perSecond), String(limit.burst)];
      let reply: unknown;
      try {
        reply = await redis.evalsha(takeScriptSha, 1, ...args);
      } catch (error) {
        if (!isNoScript(error)) throw error;
        // EVAL also caches the script, so the next take goes by hash again.
        reply = await redis.eval(takeScript, 1, ...args);
      }
      return parseDecision(reply);
    },
    async close() {
      closed = true;
    },
  };
}
