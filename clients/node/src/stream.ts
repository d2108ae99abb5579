// StreamNotifications that resumes by itself. Herald replays every inbox notification after `after_seq`, then
// streams live events with no gap at the seam; so when a connection ends (cut, server restarting, UNAVAILABLE,
// the server asking the client to reconnect) this opens a new one after the last seq it yielded, spaced by the
// client's jittered backoff, on top of the delay the server suggested when it refused the stream (too many
// sessions starting there: UNAVAILABLE with `retry-after-ms`). No notification is lost, and none is yielded twice: one at or below the last seq is
// dropped. State changes made while no connection was open are not replayed; the notifications replayed carry
// their current read/seen/archived times, and the first unread_count after a reconnect is exact.
//
// It ends when the caller's signal aborts or the caller stops iterating (quietly), or with the error when the
// server refuses the stream for good (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, ...).
import { Code, ConnectError } from '@connectrpc/connect';
import type { StreamNotificationsResponse } from './gen/herald/v1/notification_service_pb.js';
import { type Backoff, backoffDelay, sleep } from './retry.js';

/** Codes after which the stream reconnects: the connection or the server went away, or the server asked. A cut
 * connection surfaces as CANCELED over HTTP/2 and as ABORTED over HTTP/1.1; our own cancellation never gets here
 * (the caller's abort ends the stream first). */
const RECONNECT_ON = new Set([
  Code.Unavailable,
  Code.Canceled,
  Code.Aborted,
  Code.ResourceExhausted, // the client fell behind: the server says "reconnect and resume"
  Code.DeadlineExceeded,
  Code.Internal,
  Code.Unknown,
]);

/** Response metadata in which a refusing server says when to come back, in milliseconds. */
export const RETRY_AFTER_MS = 'retry-after-ms';
/** A suggested delay past this is taken as this. */
const MAX_SUGGESTED_DELAY_MS = 60_000;

/** How long the server asked the client to wait before it comes back (0 when it did not say). */
export function suggestedDelayMs(failure: unknown): number {
  if (failure === null) return 0;
  // A trailers-only answer carries it in its headers and its trailers: the first value counts.
  const value = ConnectError.from(failure).metadata.get(RETRY_AFTER_MS)?.split(',')[0]?.trim();
  const ms = value ? Number(value) : 0;
  return Number.isSafeInteger(ms) && ms > 0 ? Math.min(ms, MAX_SUGGESTED_DELAY_MS) : 0;
}

export type OpenStream = (
  afterSeq: bigint,
  signal: AbortSignal,
) => AsyncIterable<StreamNotificationsResponse>;

export async function* resumableStream(
  open: OpenStream,
  afterSeq: bigint,
  backoff: Backoff,
  signal: AbortSignal | undefined,
): AsyncGenerator<StreamNotificationsResponse, void, undefined> {
  let lastSeq = afterSeq;
  let failures = 0;
  for (;;) {
    if (signal?.aborted) return;
    const connection = new AbortController();
    // The backoff starts over only once a connection brought something new (a notification past the last
    // seq): a server that accepts the stream and drops it at once is not reconnected to at full speed.
    const seqAtOpen = lastSeq;
    const stop = () => connection.abort(signal?.reason);
    signal?.addEventListener('abort', stop, { once: true });
    let failure: unknown = null;
    try {
      for await (const message of open(lastSeq, connection.signal)) {
        if (message.event.case === 'notification') {
          const { seq } = message.event.value;
          if (seq <= lastSeq) continue;
          lastSeq = seq;
        }
        yield message;
      }
    } catch (error) {
      failure = error;
    } finally {
      signal?.removeEventListener('abort', stop);
      connection.abort(); // the caller stopped iterating, or this connection is over: let it go
    }
    if (signal?.aborted) return;
    if (failure !== null && !RECONNECT_ON.has(ConnectError.from(failure).code)) throw failure;
    failures = lastSeq > seqAtOpen ? 1 : failures + 1;
    try {
      // The server's suggested delay (too many sessions starting there), then the jittered backoff on top.
      await sleep(suggestedDelayMs(failure) + backoffDelay(failures, backoff), signal);
    } catch {
      return; // aborted while waiting
    }
  }
}
