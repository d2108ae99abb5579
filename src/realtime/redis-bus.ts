// The Redis bus: several instances, one logical bus (see bus.ts for the guarantee: events are hints).
//
// - Registry: `herald:rt:u:<user>` is a sorted set of the instances holding that user's sessions, scored by
//   when the entry expires. Each instance refreshes its entries every third of the TTL, so the entries of an
//   instance that died vanish within the TTL.
// - Routing: an event for a user is published, by one Lua script (one round trip), to the channel of every
//   instance in the user's set: `herald:rt:i:<instance>`. Broadcasts go to `herald:rt:all`.
// - Connections: `herald:rt:n:<user>` is a hash of how many WebSocket connections each instance holds for the
//   user; a claim counts the fields of instances that are alive (`herald:rt:alive:<instance>`, refreshed with
//   the registry) and drops the others, so a dead instance's connections stop counting within the TTL. Each
//   instance writes only its own field, always with its exact local count, and rewrites it on every refresh.
//   While Redis is away, a claim is decided by this instance's own count.
// - Outage: sessions stay up. When the connection comes back, the instance re-registers its users and
//   wakes every local session with a catch-up hint, so each re-reads Postgres from the last seq it sent; and
//   it publishes the events it could not publish meanwhile (the latest per user and kind), for sessions on
//   instances that were back before it. Nothing committed during the outage is lost.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { type Bus, type BusEvent, ConnectionCounts, type SystemEvent } from './bus.js';

export interface RedisBusOptions {
  url: string;
  /** How long a registry entry lives without a refresh (an instance that died drops out after this). */
  registryTtlMs: number;
  onError: (error: unknown) => void;
}

const USER_KEY = 'herald:rt:u:';
const INSTANCE_CHANNEL = 'herald:rt:i:';
const BROADCAST_CHANNEL = 'herald:rt:all';

// Registry entries expire by Redis's clock, never by an instance's: hosts' clocks differ, and an instance
// whose clock ran ahead would otherwise prune other instances' live entries and drop their users' events.
const REDIS_NOW_MS = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)`;

// KEYS = the users' sets; ARGV[1] = this instance, ARGV[2] = the entries' lifetime (ms).
const REGISTER = `${REDIS_NOW_MS}
local ttl = tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[1])
  redis.call('PEXPIRE', key, ttl * 2)
end
return #KEYS`;

// KEYS[1] = the user's set; ARGV[1] = the message, ARGV[2] = the channel prefix.
const ROUTE = `${REDIS_NOW_MS}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local instances = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, instance in ipairs(instances) do
  redis.call('PUBLISH', ARGV[2] .. instance, ARGV[1])
end
return #instances`;

/** Users registered per REGISTER call, so one call never holds Redis for long. */
const REGISTER_CHUNK = 500;

const CONNECTIONS_KEY = 'herald:rt:n:';
const ALIVE_KEY = 'herald:rt:alive:';

// KEYS[1] = the user's connection counts; ARGV[1] = this instance, ARGV[2] = its count with the new one,
// ARGV[3] = the cap, ARGV[4] = the alive-key prefix, ARGV[5] = the key's lifetime (ms).
const CLAIM = `
local fields = redis.call('HGETALL', KEYS[1])
local total = tonumber(ARGV[2])
for i = 1, #fields, 2 do
  if fields[i] ~= ARGV[1] then
    if redis.call('EXISTS', ARGV[4] .. fields[i]) == 1 then total = total + tonumber(fields[i + 1])
    else redis.call('HDEL', KEYS[1], fields[i]) end
  end
end
if total > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`;

type RoutedRedis = Redis & {
  route(key: string, message: string, prefix: string): Promise<number>;
  register(...args: (string | number)[]): Promise<number>;
  claim(
    key: string,
    instance: string,
    count: number,
    cap: number,
    alive: string,
    ttl: number,
  ): Promise<number>;
};

export async function createRedisBus(
  options: RedisBusOptions,
): Promise<Bus & { readonly instanceId: string }> {
  const instanceId = randomUUID();
  const pub = new Redis(options.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false }) as RoutedRedis;
  // This bus subscribes again itself after a reconnect: ioredis's own resubscription sends SUBSCRIBE without
  // handling its promise, so a connection closed before the reply (a shutdown right after Redis came back)
  // rejected it unhandled.
  const sub = new Redis(options.url, { maxRetriesPerRequest: null, autoResubscribe: false });
  const channels = [INSTANCE_CHANNEL + instanceId, BROADCAST_CHANNEL];
  pub.defineCommand('route', { numberOfKeys: 1, lua: ROUTE });
  pub.defineCommand('register', { lua: REGISTER });
  pub.defineCommand('claim', { numberOfKeys: 1, lua: CLAIM });
  pub.on('error', options.onError);
  sub.on('error', options.onError);

  const users = new Map<string, Set<(event: BusEvent) => void>>();
  // Events that could not be published while Redis was away, the latest per user and kind, sent when it is
  // back (a subscriber that reconnected before this instance would otherwise miss them).
  const pending = new Map<string, BusEvent>();
  const everyone = new Set<(event: SystemEvent) => void>();
  const connections = new ConnectionCounts();
  let connectedOnce = false;
  /** The subscriber connection is up and listening on this instance's channels. */
  let subscribed = false;
  let closing = false;

  /** This instance is alive, and its share of each user's connections is what it holds. */
  // Batches are pipelines, not MULTI: nothing here needs them atomic, and a MULTI whose connection closes
  // leaves ioredis with a rejection no caller can handle.
  async function refreshConnections(): Promise<void> {
    const batch = pub.pipeline();
    batch.set(ALIVE_KEY + instanceId, '1', 'PX', options.registryTtlMs);
    for (const [userId, n] of connections.entries()) {
      batch.hset(CONNECTIONS_KEY + userId, instanceId, n);
      batch.pexpire(CONNECTIONS_KEY + userId, options.registryTtlMs * 2);
    }
    await batch.exec();
  }

  async function register(userIds: readonly string[]): Promise<void> {
    for (let i = 0; i < userIds.length; i += REGISTER_CHUNK) {
      const keys = userIds.slice(i, i + REGISTER_CHUNK).map((userId) => USER_KEY + userId);
      await pub.register(keys.length, ...keys, instanceId, options.registryTtlMs);
    }
  }

  sub.on('message', (channel: string, message: string) => {
    if (channel === BROADCAST_CHANNEL) {
      const event = JSON.parse(message) as SystemEvent;
      for (const listener of everyone) listener(event);
      return;
    }
    const event = JSON.parse(message) as BusEvent;
    for (const listener of users.get(event.userId) ?? []) listener(event);
  });
  // After an outage, once both connections are back: re-register every local user, then make every local
  // session re-read Postgres. In that order, a Send committed after the registration reaches the session
  // through the bus, and one committed before it is found by the re-read.
  let outage = false;
  function recover(): void {
    if (!outage || pub.status !== 'ready' || !subscribed) return;
    outage = false;
    register([...users.keys()]).then(
      () => {
        for (const [userId, listeners] of users) {
          for (const listener of listeners) listener({ kind: 'resync', userId });
        }
      },
      (error: unknown) => {
        outage = true; // the next 'ready' tries again
        options.onError(error);
      },
    );
  }
  for (const connection of [pub, sub]) {
    connection.on('close', () => {
      if (connectedOnce) outage = true;
    });
  }
  pub.on('ready', recover);
  // After a reconnect (and on every refresh until it took): listen on this instance's channels again.
  let subscribing = false;
  function resubscribe(): void {
    if (!connectedOnce || closing || subscribed || subscribing || sub.status !== 'ready') return;
    subscribing = true;
    sub.subscribe(...channels).then(
      () => {
        subscribing = false;
        subscribed = sub.status === 'ready';
        recover();
      },
      (error: unknown) => {
        // The connection went again before the reply: its next 'ready' subscribes again.
        subscribing = false;
        if (!closing) options.onError(error);
      },
    );
  }
  sub.on('close', () => {
    subscribed = false;
  });
  sub.on('ready', resubscribe);

  async function route(event: BusEvent): Promise<void> {
    await pub.route(USER_KEY + event.userId, JSON.stringify(event), INSTANCE_CHANNEL);
  }
  pub.on('ready', () => {
    const held = [...pending.values()];
    pending.clear();
    for (const event of held) route(event).catch(() => pending.set(`${event.userId}\n${event.kind}`, event));
  });

  await sub.subscribe(...channels);
  subscribed = true;
  // Alive (and this instance's counts written) as soon as the publishing connection is: it may still be
  // connecting here, and it queues nothing while it is not.
  const announceAlive = () => refreshConnections().catch(options.onError);
  pub.on('ready', announceAlive);
  if (pub.status === 'ready') announceAlive();
  connectedOnce = true;
  const refresher = setInterval(
    () => {
      register([...users.keys()]).catch(options.onError);
      refreshConnections().catch(options.onError);
      resubscribe();
      recover();
    },
    Math.max(50, Math.floor(options.registryTtlMs / 3)),
  );
  refresher.unref();

  return {
    instanceId,
    async publish(event) {
      try {
        await route(event);
      } catch (error) {
        pending.set(`${event.userId}\n${event.kind}`, event);
        throw error;
      }
    },
    async subscribe(userId, listener) {
      let set = users.get(userId);
      if (!set) {
        set = new Set();
        users.set(userId, set);
        // Registered before the session replays, so nothing committed after the replay is routed past it.
        await register([userId]).catch(options.onError);
      }
      set.add(listener);
      return () => {
        set.delete(listener);
        if (set.size > 0 || users.get(userId) !== set) return;
        users.delete(userId);
        pub.zrem(USER_KEY + userId, instanceId).catch(options.onError);
      };
    },
    async broadcast(event) {
      await pub.publish(BROADCAST_CHANNEL, JSON.stringify(event));
    },
    onBroadcast(listener) {
      everyone.add(listener);
      return () => everyone.delete(listener);
    },
    async claimConnection(userId, cap) {
      // Reserved first, so concurrent claims on this instance see each other.
      const mine = connections.add(userId, 1);
      let granted: boolean;
      try {
        const ttl = options.registryTtlMs * 2;
        granted = (await pub.claim(CONNECTIONS_KEY + userId, instanceId, mine, cap, ALIVE_KEY, ttl)) === 1;
      } catch (error) {
        options.onError(error);
        granted = mine <= cap;
      }
      if (!granted) connections.add(userId, -1);
      return granted;
    },
    releaseConnection(userId) {
      const left = connections.add(userId, -1);
      const key = CONNECTIONS_KEY + userId;
      (left > 0 ? pub.hset(key, instanceId, left) : pub.hdel(key, instanceId)).catch(() => {
        // Redis away: the next refresh writes the exact count again.
      });
    },
    // Away until both connections are back and this instance has re-registered its users (recover()).
    degraded: () => outage || pub.status !== 'ready' || !subscribed,
    async close() {
      closing = true;
      clearInterval(refresher);
      const held = [...users.keys()];
      users.clear();
      everyone.clear();
      if (pub.status === 'ready') {
        const batch = pub.pipeline();
        for (const userId of held) batch.zrem(USER_KEY + userId, instanceId);
        for (const [userId] of connections.entries()) batch.hdel(CONNECTIONS_KEY + userId, instanceId);
        batch.del(ALIVE_KEY + instanceId);
        await batch.exec().catch(options.onError);
      }
      sub.disconnect();
      pub.disconnect();
    },
  };
}
