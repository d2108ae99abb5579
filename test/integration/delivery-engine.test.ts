// The dispatcher's provider handling and planning rules, end to end through Send: failover between two
// providers, circuits opening and half-opening, rate limits, preferences (at planning and again before each
// attempt), critical bypass, quiet hours with an injected clock far from the process's and the database's,
// bounded claims with the service clock skewed from the database's, escalation cancelled by a read, scheduling,
// expiry. The providers are webhook-like test providers that really POST to a local receiver emulator.
// Runs on every available engine.
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  Channel,
  DeliveryStatus,
  EscalationCondition,
  type Notification,
  Priority,
} from '../../clients/node/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { type ClaimCounter, countClaims } from '../support/claims.js';
import { engines } from '../support/engines.js';
import { httpTestProvider } from '../support/http-provider.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const FAST_RETRIES = 'attempts=4,base_ms=50,max_delay_ms=100,max_age_ms=60000,retry_after_cap_ms=5000';
const BASE_SETTINGS = {
  HERALD_RETRY_EMAIL: FAST_RETRIES,
  HERALD_RETRY_SMS: FAST_RETRIES,
  HERALD_DISPATCH_POLL_MS: '100',
};
const FINAL = new Set([
  DeliveryStatus.SENT,
  DeliveryStatus.FAILED,
  DeliveryStatus.EXPIRED,
  DeliveryStatus.SKIPPED,
  DeliveryStatus.CANCELLED,
]);

async function settled(server: TestServer, notificationId: string, channel: Channel, timeoutMs = 10_000) {
  return until(`${notificationId} settled`, timeoutMs, async () => {
    const n = (await server.admin().getNotification({ notificationId })).notification!;
    const d = n.deliveries.find((x) => x.channel === channel)!;
    return FINAL.has(d.status) ? d : undefined;
  });
}

const YEAR_MS = 365 * 24 * 3600 * 1000;
/** 23:30 in Vienna. */
const VIENNA_NIGHT = Date.parse('2026-11-28T22:30:00Z');

const recipient = { email: 'ada@example.com', phone: '+4915112345678' };

describe.each(engines())('delivery engine on $name', (engine) => {
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
  });
  afterAll(async () => {
    await receiver?.close();
  });

  it("refuses to start with a lease shorter than its slowest provider's attempt", async () => {
    const slow = { ...httpTestProvider('slow', 'email', `${receiver.url}/slow`), timeoutMs: 10_000 };
    const db = await engine.open();
    try {
      const overrides = { HERALD_DELIVERY_LEASE_MS: '8000', HERALD_WEBHOOK_TIMEOUT_MS: '2000' };
      await expect(startTestServer(engine, { db, overrides, providers: { email: [slow] } })).rejects.toThrow(
        "HERALD_DELIVERY_LEASE_MS (8000) must be at least the slowest provider's timeout + 2000 (12000)",
      );
    } finally {
      await db.destroy();
    }
  });

  describe('failover and circuits', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer(engine, {
        overrides: { ...BASE_SETTINGS, HERALD_CIRCUIT_FAILURES: '3', HERALD_CIRCUIT_OPEN_MS: '1500' },
        providers: {
          email: [
            httpTestProvider('primary', 'email', `${receiver.url}/primary`),
            httpTestProvider('secondary', 'email', `${receiver.url}/secondary`),
          ],
          sms: [httpTestProvider('solo', 'sms', `${receiver.url}/solo`)],
        },
      });
    });
    afterAll(() => server?.stop());

    const sendEmail = (userId: string) =>
      server
        .admin()
        .send({ userId, type: 'account.notice', title: 'Hello', channels: [Channel.EMAIL], recipient });

    it('moves to the next provider after a retry-class outcome', async () => {
      receiver.script('/primary', [{ status: 503 }]);
      const sent = await sendEmail('failover-1');
      const d = await settled(server, sent.notificationId, Channel.EMAIL);
      expect(d.status).toBe(DeliveryStatus.SENT);
      expect(d.provider).toBe('secondary');
      expect(d.attempts.map((a) => [a.provider, a.outcome])).toEqual([
        ['primary', 'retry'],
        ['secondary', 'sent'],
      ]);
    });

    it('opens the circuit after repeated failures, skips the provider without using attempts, and half-opens', async () => {
      receiver.script(
        '/primary',
        Array.from({ length: 10 }, () => ({ status: 503 })),
      );
      // Failing sends trip primary's circuit (threshold 3); once open, deliveries go to secondary directly.
      const firstAttempts: string[] = [];
      await until('primary circuit open', 15_000, async () => {
        const d = await settled(
          server,
          (await sendEmail(`trip-${firstAttempts.length}`)).notificationId,
          Channel.EMAIL,
        );
        expect(d.status).toBe(DeliveryStatus.SENT);
        firstAttempts.push(d.attempts[0]!.provider);
        return d.attempts.map((a) => a.provider).join() === 'secondary' ? true : undefined;
      });
      expect(firstAttempts.slice(0, -1).every((p) => p === 'primary')).toBe(true);
      expect(firstAttempts.length).toBeLessThanOrEqual(3);

      receiver.script('/primary', []); // primary recovers
      await new Promise((resolve) => setTimeout(resolve, 1600));
      const probe = await settled(server, (await sendEmail('probe')).notificationId, Channel.EMAIL);
      expect(probe.attempts.map((a) => [a.provider, a.outcome])).toEqual([['primary', 'sent']]);
      const closed = await settled(server, (await sendEmail('closed')).notificationId, Channel.EMAIL);
      expect(closed.attempts.map((a) => a.provider)).toEqual(['primary']);
    });

    it('waits out an open circuit with no other provider, without burning attempts', async () => {
      receiver.script('/solo', [{ status: 503 }, { status: 503 }, { status: 503 }]);
      const sent = await server.admin().send({
        userId: 'solo-1',
        type: 'account.notice',
        title: 'Hi',
        channels: [Channel.SMS],
        recipient,
      });
      const reasons = new Set<string>();
      const d = await until('sms settled', 15_000, async () => {
        const n = (await server.admin().getNotification({ notificationId: sent.notificationId }))
          .notification!;
        const sms = n.deliveries[0]!;
        reasons.add(sms.reason.split(':')[0]!);
        return FINAL.has(sms.status) ? sms : undefined;
      });
      // 3 trips open the circuit; the delivery then waits (circuit_open) and the half-open probe succeeds.
      expect(d.status).toBe(DeliveryStatus.SENT);
      expect(d.attempts.map((a) => a.outcome)).toEqual(['retry', 'retry', 'retry', 'sent']);
      expect(reasons).toContain('circuit_open');
      const arrivals = receiver.received.filter((r) => r.path === '/solo').map((r) => r.receivedAt);
      expect(arrivals.at(-1)! - arrivals.at(-2)!).toBeGreaterThanOrEqual(1400);
    });
  });

  const buckets = [
    { name: 'in process', redisUrl: undefined },
    ...(process.env.REDIS_URL ? [{ name: 'in Redis', redisUrl: process.env.REDIS_URL }] : []),
  ];
  describe.each(buckets)('rate limits with buckets $name', ({ redisUrl }) => {
    let server: TestServer;
    let path = '';
    let provider = '';
    beforeAll(async () => {
      // A fresh provider name per run, so a bucket left in Redis by an earlier run cannot interfere.
      provider = `limited${Date.now()}`;
      path = `/limited-${provider}`;
      server = await startTestServer(engine, {
        overrides: {
          ...BASE_SETTINGS,
          HERALD_RATE_LIMITS: `${provider}=20:5`,
          ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
        },
        providers: { sms: [httpTestProvider(provider, 'sms', `${receiver.url}${path}`)] },
      });
    });
    afterAll(() => server?.stop());

    it('sends no faster than the configured rate, and waiting is not an attempt', async () => {
      const count = 40;
      const batch = await server.admin().sendBatch({
        requests: Array.from({ length: count }, (_, i) => ({
          userId: `rl-${i}`,
          type: 'account.notice',
          title: 'Hi',
          channels: [Channel.SMS],
          recipient,
        })),
      });
      await receiver.waitFor((all) => all.filter((r) => r.path === path).length >= count, 15_000);
      // When the dispatcher started each attempt, i.e. took its token (arrivals at the receiver would add
      // network jitter). Burst of 5, then one token every 50 ms: the 40th attempt can start no earlier than
      // 35 / 20 s after the first.
      const starts = await until('every attempt logged', 10_000, async () => {
        const rows = await server.db.database.sql.query<{ ms: number }>(
          `select (extract(epoch from started_at) * 1000)::float8 as ms from delivery_attempts
           where provider = $1 order by started_at`,
          [provider],
        );
        return rows.length === count ? rows.map((r) => Number(r.ms)) : undefined;
      });
      const elapsed = starts.at(-1)! - starts[0]!;
      // 10% slack: a start time is taken after the token, so event-loop lag on a loaded machine (and, with
      // Redis, the tokens being counted on Redis's clock) shifts it; without the limit all 40 would start
      // within a few tens of milliseconds.
      expect(elapsed).toBeGreaterThanOrEqual(((count - 5) / 20) * 1000 * 0.9);
      // ...and not much slower either: the limiter does not starve the channel.
      expect(elapsed).toBeLessThan(((count - 5) / 20) * 1000 + 1500);
      const last = batch.results.at(-1)!;
      const d = await settled(server, last.notificationId, Channel.SMS);
      expect(d.attempts).toHaveLength(1);
    });
  });

  describe('preferences, scheduling, escalation, expiry', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer(engine, {
        overrides: BASE_SETTINGS,
        providers: {
          email: [httpTestProvider('mailer', 'email', `${receiver.url}/mailer`)],
          sms: [httpTestProvider('texter', 'sms', `${receiver.url}/texter`)],
        },
      });
    });
    afterAll(() => server?.stop());

    it('skips opted-out channels at planning, per channel and per type; CRITICAL bypasses opt-outs', async () => {
      await server.admin().updatePreferences({
        userId: 'prefs-1',
        channels: [{ channel: Channel.EMAIL, enabled: false }],
        types: [{ type: 'promo.weekly', channel: Channel.SMS, enabled: false }],
      });
      const plain = await server.admin().send({
        userId: 'prefs-1',
        type: 'promo.weekly',
        title: 'Deals',
        channels: [Channel.EMAIL, Channel.SMS],
        recipient,
      });
      expect(plain.deliveries.map((d) => [d.status, d.reason])).toEqual([
        [DeliveryStatus.SKIPPED, 'preference: email is turned off'],
        [DeliveryStatus.SKIPPED, 'preference: sms is turned off for promo.weekly'],
      ]);
      const critical = await server.admin().send({
        userId: 'prefs-1',
        type: 'promo.weekly',
        title: 'Security alert',
        priority: Priority.CRITICAL,
        channels: [Channel.EMAIL],
      });
      expect(critical.deliveries[0]?.status).toBe(DeliveryStatus.QUEUED);
      expect((await settled(server, critical.notificationId, Channel.EMAIL)).status).toBe(
        DeliveryStatus.SENT,
      );
    });

    it('schedules send_at, and re-checks preferences before the attempt: an opt-out while queued skips it', async () => {
      const sendAt = Date.now() + 1500;
      const kept = await server.admin().send({
        userId: 'sched-1',
        type: 'reminder',
        title: 'Later',
        channels: [Channel.SMS],
        recipient,
        sendAt: timestampFromDate(new Date(sendAt)),
      });
      const stopped = await server.admin().send({
        userId: 'sched-2',
        type: 'reminder',
        title: 'Later',
        channels: [Channel.SMS],
        recipient,
        sendAt: timestampFromDate(new Date(sendAt)),
      });
      await server
        .admin()
        .updatePreferences({ userId: 'sched-2', channels: [{ channel: Channel.SMS, enabled: false }] });
      const sent = await settled(server, kept.notificationId, Channel.SMS);
      expect(sent.status).toBe(DeliveryStatus.SENT);
      expect(sent.attempts[0]!.startedAt!.seconds * 1000n).toBeGreaterThanOrEqual(BigInt(sendAt - 1000));
      const skipped = await settled(server, stopped.notificationId, Channel.SMS);
      expect([skipped.status, skipped.reason]).toEqual([
        DeliveryStatus.SKIPPED,
        'preference: sms is turned off',
      ]);
      expect(skipped.attempts).toHaveLength(0);
    });

    it('lets a type marked critical through opt-outs, but never through a suppression', async () => {
      await server.adminService().putRoutingRule({
        rule: {
          type: 'security.login',
          critical: true,
          steps: [{ channels: [Channel.EMAIL], delaySeconds: 0 }],
        },
      });
      await server.admin().updatePreferences({
        userId: 'crit-1',
        channels: [{ channel: Channel.EMAIL, enabled: false }],
      });
      const allowed = await server
        .admin()
        .send({ userId: 'crit-1', type: 'security.login', title: 'New login', recipient });
      expect((await settled(server, allowed.notificationId, Channel.EMAIL)).status).toBe(DeliveryStatus.SENT);

      await server
        .adminService()
        .addSuppression({ channel: Channel.EMAIL, address: 'bounced@example.com', reason: 'hard bounce' });
      const suppressed = await server.admin().send({
        userId: 'crit-2',
        type: 'security.login',
        title: 'New login',
        priority: Priority.CRITICAL,
        recipient: { email: 'bounced@example.com' },
      });
      const d = await settled(server, suppressed.notificationId, Channel.EMAIL);
      expect([d.status, d.reason]).toEqual([
        DeliveryStatus.SKIPPED,
        'suppressed: email address is on the suppression list',
      ]);
      expect(d.attempts).toHaveLength(0);
    });

    it('cancels an escalation step when the notification was read first, and sends it otherwise', async () => {
      await server.adminService().putRoutingRule({
        rule: {
          type: 'incident.opened',
          steps: [
            { channels: [Channel.IN_APP], delaySeconds: 0 },
            { channels: [Channel.EMAIL], delaySeconds: 1, cancelUnless: EscalationCondition.READ },
          ],
        },
      });
      const read = await server
        .admin()
        .send({ userId: 'esc-1', type: 'incident.opened', title: 'Down', recipient });
      const unread = await server
        .admin()
        .send({ userId: 'esc-2', type: 'incident.opened', title: 'Down', recipient });
      expect(read.deliveries.map((d) => d.channel)).toEqual([Channel.IN_APP, Channel.EMAIL]);
      await server.db.database.sql.query('update notifications set read_at = now() where id = $1::uuid', [
        read.notificationId,
      ]);
      const cancelled = await settled(server, read.notificationId, Channel.EMAIL);
      expect([cancelled.status, cancelled.reason, cancelled.step]).toEqual([
        DeliveryStatus.CANCELLED,
        'escalation: the notification was read first',
        1,
      ]);
      expect(cancelled.attempts).toHaveLength(0);
      const escalated = await settled(server, unread.notificationId, Channel.EMAIL);
      expect(escalated.status).toBe(DeliveryStatus.SENT);
    });

    it('marks a delivery expired instead of retrying past expires_at', async () => {
      receiver.script('/mailer', [{ status: 503, headers: { 'retry-after': '3' } }]);
      const sent = await server.admin().send({
        userId: 'exp-1',
        type: 'otp.code',
        title: 'Your code',
        channels: [Channel.EMAIL],
        recipient,
        expiresAt: timestampFromDate(new Date(Date.now() + 1500)),
      });
      const d = await settled(server, sent.notificationId, Channel.EMAIL);
      expect(d.status).toBe(DeliveryStatus.EXPIRED);
      expect(d.reason).toBe('expired: mailer answered 503');
      expect(d.attempts).toHaveLength(1);
    });
  });

  // Herald decides when work is due by its own clock (`now`), never by the database's. These tests inject a
  // clock fixed on given nights and run with the process's own clock (and so PGlite's) a year before and a
  // year after it, so they pass whatever today's date is: a deferral the database thinks is past must not be
  // claimed again until the injected clock reaches it.
  describe.each([
    { when: 'a year before', shiftMs: -YEAR_MS },
    { when: 'a year after', shiftMs: YEAR_MS },
  ])('quiet hours with an injected clock, the process clock $when it', ({ shiftMs }) => {
    let server: TestServer;
    let claims: ClaimCounter;
    let clock = new Date(VIENNA_NIGHT);
    beforeAll(async () => {
      // Only Date is faked, and it keeps running; timers stay real.
      vi.useFakeTimers({ toFake: ['Date'], now: VIENNA_NIGHT + shiftMs, shouldAdvanceTime: true });
      server = await startTestServer(engine, {
        overrides: BASE_SETTINGS,
        now: () => clock,
        providers: { email: [httpTestProvider('night-mailer', 'email', `${receiver.url}/night`)] },
      });
      claims = await countClaims(server.db.database);
    });
    afterAll(async () => {
      await server?.stop();
      vi.useRealTimers();
    });

    async function deferredUntil(userId: string, priority = Priority.NORMAL): Promise<Notification> {
      const sent = await server.admin().send({
        userId,
        type: 'digest.daily',
        title: 'Digest',
        priority,
        channels: [Channel.EMAIL],
        recipient,
      });
      return until('deferred or sent', 10_000, async () => {
        const n = (await server.admin().getNotification({ notificationId: sent.notificationId }))
          .notification!;
        const d = n.deliveries[0]!;
        return d.reason.startsWith('quiet_hours') || FINAL.has(d.status) ? n : undefined;
      });
    }

    it('defers EMAIL to the end of a window that crosses midnight, in the recipient time zone, and sends it then', async () => {
      clock = new Date(VIENNA_NIGHT);
      await server.admin().updatePreferences({
        userId: 'quiet-1',
        quietHours: { start: '22:00', end: '07:00', timezone: 'Europe/Vienna' },
      });
      const n = await deferredUntil('quiet-1');
      const d = n.deliveries[0]!;
      expect(d.status).toBe(DeliveryStatus.QUEUED);
      expect(d.reason).toBe('quiet_hours: deferred until 2026-11-29T06:00:00.000Z');
      expect(d.nextAttemptAt?.seconds).toBe(BigInt(Date.parse('2026-11-29T06:00:00Z') / 1000));
      expect(d.attempts).toHaveLength(0);
      // The dispatcher polls every 100 ms: while the injected clock stands still, nobody claims it again.
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(await claims.claimsOf(d.id)).toBe(1);

      clock = new Date('2026-11-29T06:00:00Z');
      const sent = await settled(server, n.id, Channel.EMAIL);
      expect(sent.status).toBe(DeliveryStatus.SENT);
      expect(sent.attempts).toHaveLength(1);
      expect(await claims.claimsOf(d.id)).toBe(2);
    });

    it('ends the window at the first instant after a spring-forward gap (DST)', async () => {
      clock = new Date('2027-03-28T00:30:00Z'); // 01:30 CET, the night Berlin moves to CEST at 02:00
      await server.admin().updatePreferences({
        userId: 'quiet-2',
        quietHours: { start: '01:00', end: '02:30', timezone: 'Europe/Berlin' },
      });
      const d = (await deferredUntil('quiet-2')).deliveries[0]!;
      // 02:30 does not exist that night: the window ends when the clocks jump, 03:00 CEST = 01:00Z.
      expect(d.reason).toBe('quiet_hours: deferred until 2027-03-28T01:00:00.000Z');
      expect(await claims.claimsOf(d.id)).toBe(1);
    });

    it('lets CRITICAL notifications through quiet hours', async () => {
      clock = new Date(VIENNA_NIGHT);
      await server.admin().updatePreferences({
        userId: 'quiet-3',
        quietHours: { start: '22:00', end: '07:00', timezone: 'Europe/Vienna' },
      });
      const d = (await deferredUntil('quiet-3', Priority.CRITICAL)).deliveries[0]!;
      expect(d.status).toBe(DeliveryStatus.SENT);
      expect(await claims.claimsOf(d.id)).toBe(1);
    });
  });

  // Hosts' clocks drift from the database's. Each wait the engine computes (rate-limit tokens, an open
  // circuit, send_at) is due on the service's clock, so skew either way neither loops nor sends early.
  describe.each([
    { when: '5 s behind', skewMs: -5_000 },
    { when: '5 s ahead of', skewMs: 5_000 },
  ])('the service clock $when the database', ({ skewMs }) => {
    let server: TestServer;
    let claims: ClaimCounter;
    const now = () => new Date(Date.now() + skewMs);
    beforeAll(async () => {
      server = await startTestServer(engine, {
        overrides: {
          ...BASE_SETTINGS,
          // One token every 2 s: longer than an attempt waits in process (1 s), so waiting means a requeue.
          HERALD_RATE_LIMITS: 'trickle=0.5:1',
          HERALD_CIRCUIT_FAILURES: '1',
          HERALD_CIRCUIT_OPEN_MS: '1000',
        },
        now,
        providers: {
          email: [httpTestProvider('trickle', 'email', `${receiver.url}/trickle`)],
          sms: [httpTestProvider('broken', 'sms', `${receiver.url}/broken`)],
        },
      });
      claims = await countClaims(server.db.database);
    });
    afterAll(() => server?.stop());

    it('claims a delivery waiting for rate-limit tokens once per wait, not in a loop', async () => {
      const batch = await server.admin().sendBatch({
        requests: ['a', 'b', 'c'].map((u) => ({
          userId: `skew-rl-${u}`,
          type: 'account.notice',
          title: 'Hi',
          channels: [Channel.EMAIL],
          recipient,
        })),
      });
      const ids = batch.results.map((r) => r.deliveries[0]!.deliveryId);
      for (const result of batch.results) {
        const d = await settled(server, result.notificationId, Channel.EMAIL, 20_000);
        expect(d.status).toBe(DeliveryStatus.SENT);
        expect(d.attempts).toHaveLength(1);
      }
      // The first takes the only token; the others wait 2 s per token they lose to a sibling.
      const counts = await Promise.all(ids.map((id) => claims.claimsOf(id)));
      expect(counts.reduce((a, b) => a + b)).toBeLessThanOrEqual(8);
      for (const n of counts) expect(n).toBeLessThanOrEqual(4);
    });

    it('claims a delivery behind an open circuit once per half-open, not in a loop', async () => {
      receiver.script(
        '/broken',
        Array.from({ length: 4 }, () => ({ status: 503 })),
      );
      const sent = await server.admin().send({
        userId: 'skew-circuit',
        type: 'account.notice',
        title: 'Hi',
        channels: [Channel.SMS],
        recipient,
      });
      const d = await settled(server, sent.notificationId, Channel.SMS, 20_000);
      // Four attempts (the retry policy's limit), each after the circuit half-opened again.
      expect(d.status).toBe(DeliveryStatus.FAILED);
      expect(d.attempts).toHaveLength(4);
      // Each attempt's claim, plus at most one claim deferred by the open circuit before each retry.
      expect(await claims.claimsOf(d.id)).toBeLessThanOrEqual(4 + 3);
    });

    it('sends a scheduled notification at send_at by the service clock, neither early nor in a loop', async () => {
      const sendAt = now().getTime() + 1_500;
      const sent = await server.admin().send({
        userId: 'skew-sched',
        type: 'reminder',
        title: 'Later',
        channels: [Channel.EMAIL],
        recipient,
        sendAt: timestampFromDate(new Date(sendAt)),
      });
      const d = await settled(server, sent.notificationId, Channel.EMAIL, 20_000);
      expect(d.status).toBe(DeliveryStatus.SENT);
      const started = timestampDate(d.attempts[0]!.startedAt!).getTime();
      expect(started).toBeGreaterThanOrEqual(sendAt);
      expect(await claims.claimsOf(d.id)).toBe(1);
    });
  });
});
