// The WebSocket bridge's two per-notification frames, written as JSON text directly: a live session writes
// them for every notification it delivers, and going through the protobuf message (create, then reflection to
// protobuf JSON with zero values) cost more CPU per delivery than the rest of the bridge together. The text is
// the protobuf JSON the generic path (clients/web/src/frames.ts over sessionEventToProto) gives, field for
// field in the same order: test/unit/websocket-frames.test.ts holds the two to each other on generated rows.
import { PrioritySchema } from '../../gen/herald/v1/types_pb.js';
import type { InboxRow } from '../store/inbox.js';

/** Priority numbers as protobuf JSON names them (an unknown number stays a number, as protobuf-es writes it). */
const priorityNames = new Map(PrioritySchema.values.map((v) => [v.number, JSON.stringify(v.name)]));

/**
 * A Timestamp in protobuf JSON, from a date or its `toISOString()`: RFC 3339 in UTC, with the fraction only
 * when there is one.
 */
function timestamp(date: Date | string): string {
  const iso = typeof date === 'string' ? date : date.toISOString();
  return iso.endsWith('.000Z') ? `"${iso.slice(0, -5)}Z"` : `"${iso}"`;
}

function optionalTimestamp(key: string, date: Date | string | null): string {
  return date ? `,"${key}":${timestamp(date)}` : '';
}

type FrameRow = Pick<InboxRow, 'id' | 'userId' | 'seq' | 'type' | 'priority' | 'data' | 'title' | 'body'> & {
  createdAt: Date | string;
  sendAt: Date | string;
  expiresAt: Date | string | null;
  readAt?: Date | null;
  seenAt?: Date | null;
  archivedAt?: Date | null;
};

/**
 * `{"type":"notification","notification":{...}}` for an inbox notification (no deliveries: the inbox has none),
 * from its row, or from the row as the bus carries it (dates as `toISOString()` strings, never read or seen).
 */
export function notificationFrame(row: FrameRow): string {
  return (
    `{"type":"notification","notification":{"id":${JSON.stringify(row.id)},"userId":${JSON.stringify(row.userId)}` +
    `,"seq":"${row.seq}","type":${JSON.stringify(row.type)}` +
    `,"priority":${priorityNames.get(row.priority) ?? row.priority},"data":${JSON.stringify(row.data)}` +
    `,"title":${JSON.stringify(row.title ?? '')},"body":${JSON.stringify(row.body ?? '')}` +
    `,"createdAt":${timestamp(row.createdAt)},"sendAt":${timestamp(row.sendAt)}` +
    optionalTimestamp('expiresAt', row.expiresAt) +
    optionalTimestamp('readAt', row.readAt ?? null) +
    optionalTimestamp('seenAt', row.seenAt ?? null) +
    optionalTimestamp('archivedAt', row.archivedAt ?? null) +
    ',"deliveries":[]}}'
  );
}

/** `{"type":"unread_count","unread_count":{"count":"N"}}` */
export function unreadCountFrame(count: number): string {
  return `{"type":"unread_count","unread_count":{"count":"${count}"}}`;
}
