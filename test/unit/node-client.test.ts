// The Node client's pure parts: the Date mapping over message descriptors (types and values), the backoff, and
// the resuming stream's pacing (on fake timers).
import { create } from '@bufbuild/protobuf';
import { type Timestamp, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import { describe, expect, expectTypeOf, it, vi } from 'vitest';
import { type DateInit, type DateShape, withDates, withTimestamps } from '../../clients/node/src/dates.js';
import {
  type Notification,
  NotificationSchema,
  SendBatchRequestSchema,
  type SendRequest,
  StreamNotificationsResponseSchema,
  UnreadCountSchema,
} from '../../clients/node/src/index.js';
import { backoffDelay, defaultBackoff } from '../../clients/node/src/retry.js';
import { type OpenStream, resumableStream, suggestedDelayMs } from '../../clients/node/src/stream.js';

const at = new Date('2026-03-01T12:34:56.789Z');

describe('Date mapping', () => {
  it('maps every Timestamp in a message type to Date, at any depth, and leaves every other field alone', () => {
    type Shape = DateShape<Notification>;
    expectTypeOf<Shape['createdAt']>().toEqualTypeOf<Date | undefined>();
    expectTypeOf<Shape['deliveries'][number]['attempts'][number]['startedAt']>().toEqualTypeOf<
      Date | undefined
    >();
    expectTypeOf<Shape['seq']>().toEqualTypeOf<bigint>();
    expectTypeOf<Shape['data']>().toEqualTypeOf<Notification['data']>();
    expectTypeOf<Shape['$typeName']>().toEqualTypeOf<'herald.v1.Notification'>();
  });

  it('turns Timestamps into Dates in nested messages, repeated fields and oneofs', () => {
    const notification = create(NotificationSchema, {
      id: 'n1',
      createdAt: timestampFromDate(at),
      data: { nested: { createdAt: 'stays a string' } },
      deliveries: [{ id: 'd1', attempts: [{ startedAt: timestampFromDate(at) }] }],
    });
    const out = withDates(NotificationSchema, notification);
    expect(out.createdAt).toEqual(at);
    expect(out.deliveries[0]!.attempts[0]!.startedAt).toEqual(at);
    expect(out.data).toEqual({ nested: { createdAt: 'stays a string' } });
    expect(out.$typeName).toBe('herald.v1.Notification');
    expect(notification.createdAt?.$typeName).toBe('google.protobuf.Timestamp'); // the input is not changed

    const event = create(StreamNotificationsResponseSchema, {
      event: { case: 'state', value: { notificationIds: ['n1'], readAt: timestampFromDate(at) } },
    });
    const state = withDates(StreamNotificationsResponseSchema, event).event;
    expect(state.case === 'state' && state.value.readAt).toEqual(at);
  });

  it('returns a message that can hold no Timestamp as it is', () => {
    const count = create(UnreadCountSchema, { count: 3n });
    expect(withDates(UnreadCountSchema, count)).toBe(count);
  });

  it('turns Dates into Timestamps in a request, in every item of a list', () => {
    const init = withTimestamps(SendBatchRequestSchema, {
      requests: [{ userId: 'u', sendAt: at }, { userId: 'v' }],
    });
    const request = create(SendBatchRequestSchema, init);
    expect(request.requests[0]!.sendAt).toEqual(timestampFromDate(at));
    expect(request.requests[1]!.sendAt).toBeUndefined();
  });

  it('takes a Timestamp where a Date may stand, and a whole message', () => {
    expectTypeOf<{ sendAt: Date }>().toExtend<DateInit<SendRequest>>();
    expectTypeOf<{ sendAt: Timestamp }>().toExtend<DateInit<SendRequest>>();
    expectTypeOf<SendRequest>().toExtend<DateInit<SendRequest>>();
    expectTypeOf<{ sendAt: string }>().not.toExtend<DateInit<SendRequest>>();
    const init = withTimestamps(SendBatchRequestSchema, { requests: [{ sendAt: timestampFromDate(at) }] });
    expect(create(SendBatchRequestSchema, init).requests[0]!.sendAt).toEqual(timestampFromDate(at));
  });
});

describe('backoff', () => {
  it('waits up to an exponential ceiling with full jitter, capped at maxDelayMs', () => {
    const ceilings = [1, 2, 3, 4, 5, 6, 10].map((retry) =>
      backoffDelay(retry, defaultBackoff, () => 0.999_999),
    );
    expect(ceilings).toEqual([199, 399, 799, 1599, 3199, 4999, 4999]);
    expect(backoffDelay(3, defaultBackoff, () => 0)).toBe(0);
    expect(backoffDelay(2, defaultBackoff, () => 0.5)).toBe(200);
  });
});

describe('the resuming stream', () => {
  const unavailable = () => new ConnectError('gone', Code.Unavailable);
  const count = create(StreamNotificationsResponseSchema, {
    event: { case: 'unreadCount', value: create(UnreadCountSchema, { count: 3n }) },
  });

  /** Runs the stream against `open` for `ms` of fake time; answers how many connections it opened. */
  async function opensWithin(ms: number, open: OpenStream, signal?: AbortSignal): Promise<number> {
    vi.useFakeTimers();
    vi.spyOn(Math, 'random').mockReturnValue(0.999_999);
    try {
      let opens = 0;
      const counting: OpenStream = (afterSeq, connection) => {
        opens++;
        return open(afterSeq, connection);
      };
      const stop = new AbortController();
      const events = resumableStream(
        counting,
        0n,
        { maxAttempts: 5, baseDelayMs: 20, maxDelayMs: 10_000 },
        signal ?? stop.signal,
      );
      const drained = (async () => {
        for await (const _ of events) {
          // every message is consumed
        }
      })();
      await vi.advanceTimersByTimeAsync(ms);
      stop.abort();
      await vi.advanceTimersByTimeAsync(20_000);
      await drained;
      return opens;
    } finally {
      vi.restoreAllMocks();
      vi.useRealTimers();
    }
  }

  it('backs off from a server that takes the stream and drops it at once, though it sent a message first', async () => {
    // Delays 20, 40, 80, 160, 320, 640 ms: opens at 0, 20, 60, 140, 300 and 620 ms within the first second.
    const opens = await opensWithin(1_000, async function* () {
      yield count;
      throw unavailable();
    });
    expect(opens).toBe(6);
  });

  it('waits the delay a refusing server suggests, on top of its own backoff', async () => {
    // Refused with 2,000 ms suggested, then taken: opens at 0 and 2,000 + 20 ms; none before.
    let refused = false;
    const refusing: OpenStream = async function* (_afterSeq, signal) {
      if (!refused) {
        refused = true;
        throw new ConnectError('too many sessions starting', Code.Unavailable, {
          'retry-after-ms': '2000, 2000',
        });
      }
      yield count;
      await new Promise((resolve) => signal.addEventListener('abort', resolve));
    };
    expect(await opensWithin(2_000, refusing)).toBe(1);
    refused = false;
    expect(await opensWithin(2_100, refusing)).toBe(2);
  });

  it('reads no delay where the server suggested none, or nonsense', () => {
    expect(suggestedDelayMs(null)).toBe(0);
    expect(suggestedDelayMs(new ConnectError('gone', Code.Unavailable))).toBe(0);
    const suggesting = (value: string) =>
      suggestedDelayMs(new ConnectError('busy', Code.Unavailable, { 'retry-after-ms': value }));
    expect(suggesting('-5')).toBe(0);
    expect(suggesting('soon')).toBe(0);
    expect(suggesting('1500')).toBe(1500);
    expect(suggesting('9999999')).toBe(60_000);
  });

  it('opens nothing for a signal that is already aborted', async () => {
    const opens = await opensWithin(
      100,
      async function* () {
        yield count;
      },
      AbortSignal.abort(),
    );
    expect(opens).toBe(0);
  });
});
