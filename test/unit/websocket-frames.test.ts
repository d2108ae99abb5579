// The WebSocket bridge writes its per-notification frames directly (src/server/websocket-frames.ts); they must
// be exactly the frames the generic path makes from the protobuf message (clients/web/src/frames.ts over
// sessionEventToProto), which the browser client parses. Checked on generated rows, to the byte.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { eventJson, frameOf } from '../../clients/web/src/frames.js';
import { StreamNotificationsResponseSchema } from '../../gen/herald/v1/notification_service_pb.js';
import { sessionEventToProto } from '../../src/api/inbox.js';
import type { SessionEvent } from '../../src/realtime/index.js';
import { notificationFrame, unreadCountFrame } from '../../src/server/websocket-frames.js';
import type { InboxRow } from '../../src/store/inbox.js';

const generic = (event: SessionEvent) =>
  JSON.stringify(frameOf(eventJson(StreamNotificationsResponseSchema, sessionEventToProto(event))));

// Whole milliseconds in years 1..9999 (what a Timestamp can hold), some exactly on a second.
const date = fc.oneof(
  fc.integer({ min: -62_135_596_800, max: 253_402_300_799 }).map((s) => new Date(s * 1000)),
  fc.date({
    min: new Date('0001-01-01T00:00:00Z'),
    max: new Date('9999-12-31T23:59:59.999Z'),
    noInvalidDate: true,
  }),
);
// "__proto__" never reaches storage as a key: the Send's Struct becomes a plain object by assignment, which
// makes it the prototype (protobuf-es's JSON writer drops it the same way).
const key = fc.string().filter((k) => k !== '__proto__');
const json: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Object.is(n, -0)),
    fc.integer(),
    fc.string({ unit: 'binary' }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 4 }),
  ),
})).value;

const row: fc.Arbitrary<InboxRow> = fc
  .record({
    id: fc.uuid(),
    userId: fc.string({ minLength: 1, unit: 'binary' }),
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    type: fc.string({ minLength: 1 }),
    priority: fc.integer({ min: 0, max: 5 }),
    critical: fc.boolean(),
    data: fc.dictionary(key, json, { maxKeys: 5 }) as fc.Arbitrary<Record<string, unknown>>,
    title: fc.option(fc.string({ unit: 'binary' })),
    body: fc.option(fc.string({ unit: 'binary' })),
    createdAt: date,
    sendAt: date,
    expiresAt: fc.option(date),
    readAt: fc.option(date),
    seenAt: fc.option(date),
    archivedAt: fc.option(date),
  })
  .map((r) => r as unknown as InboxRow);

describe('WebSocket frames written directly', () => {
  it('are byte for byte the generic protobuf JSON frames, for any inbox row', () => {
    fc.assert(
      fc.property(row, (r) => {
        expect(notificationFrame(r)).toBe(generic({ kind: 'notification', row: r }));
      }),
      { numRuns: 2_000 },
    );
  });

  it('are the same from the row as the bus carries it (dates as ISO strings)', () => {
    fc.assert(
      fc.property(row, (r) => {
        const wire = {
          ...r,
          readAt: null,
          seenAt: null,
          archivedAt: null,
          createdAt: r.createdAt.toISOString(),
          sendAt: r.sendAt.toISOString(),
          expiresAt: r.expiresAt?.toISOString() ?? null,
        };
        const stored = { ...r, readAt: null, seenAt: null, archivedAt: null };
        expect(notificationFrame(wire)).toBe(generic({ kind: 'notification', row: stored }));
      }),
      { numRuns: 1_000 },
    );
  });

  it('write unread counts as the generic path does', () => {
    for (const count of [0, 1, 42, 2 ** 31, Number.MAX_SAFE_INTEGER]) {
      expect(unreadCountFrame(count)).toBe(generic({ kind: 'unread_count', count }));
    }
  });
});
