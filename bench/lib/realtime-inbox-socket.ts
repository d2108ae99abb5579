// One end user's WebSocket to the bridge, as a browser would hold it: authenticate with the subprotocols
// `herald.v1` + `bearer.<JWT>`, wait for `connection_ack`, send `resume {after_seq: 0}`, and count the
// session as live at its first `unread_count` (sent once the replay is done). The bare `ws` baseline server
// speaks the same handshake, so the same client measures both.
import { WebSocket } from 'ws';
import { epochNow } from './dispatch-child.js';
import { type InboxFrame, parseInboxFrame } from './realtime-frames.js';

export interface InboxSocketOptions {
  /** ws://host:port/ws */
  url: string;
  userId: string;
  token: string;
  /** Source address of the TCP connection (127.0.0.2, ...), or undefined for the kernel's choice. */
  localAddress: string | undefined;
  timeoutMs: number;
  /** Every frame after the session went live, with its arrival time (epoch ms, taken before parsing). */
  onFrame: (frame: InboxFrame, arrivedAt: number) => void;
  /** The connection closed after it went live. */
  onClose: (code: number, reason: string) => void;
  /** Once live: milliseconds from opening the socket to `connection_ack`, and to the end of the replay. */
  onTimings?: (ackMs: number, liveMs: number) => void;
}

/** Resolves with the socket once the inbox session is live; rejects (and terminates it) otherwise. */
export function openInboxSocket(options: InboxSocketOptions): Promise<WebSocket> {
  const url = `${options.url}?user_id=${encodeURIComponent(options.userId)}`;
  const openedAt = performance.now();
  let ackMs = Number.NaN;
  const ws = new WebSocket(url, ['herald.v1', `bearer.${options.token}`], {
    perMessageDeflate: false,
    handshakeTimeout: options.timeoutMs,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
  return new Promise((resolve, reject) => {
    let state: 'handshake' | 'resuming' | 'live' | 'failed' = 'handshake';
    const fail = (reason: string) => {
      if (state === 'live' || state === 'failed') return;
      clearTimeout(timer);
      state = 'failed';
      ws.terminate();
      reject(new Error(`${options.userId}: ${reason}`));
    };
    const timer = setTimeout(() => fail(`not live within ${options.timeoutMs} ms`), options.timeoutMs);
    ws.on('error', (error) => fail(error.message));
    ws.on('close', (code, reason) => {
      if (state === 'live') options.onClose(code, reason.toString());
      else fail(`closed with ${code} ${reason.toString()}`);
    });
    ws.on('message', (data, isBinary) => {
      const arrivedAt = epochNow();
      const frame: InboxFrame = isBinary ? { type: 'malformed' } : parseInboxFrame(data.toString());
      if (state === 'live') {
        options.onFrame(frame, arrivedAt);
        return;
      }
      if (state === 'failed') return;
      if (frame.type === 'error') fail(`error frame: ${frame.message}`);
      else if (state === 'handshake' && frame.type === 'other' && frame.name === 'connection_ack') {
        state = 'resuming';
        ackMs = performance.now() - openedAt;
        ws.send(JSON.stringify({ type: 'resume', after_seq: 0 }));
      } else if (state === 'resuming' && frame.type === 'unread_count') {
        state = 'live';
        clearTimeout(timer);
        options.onTimings?.(ackMs, performance.now() - openedAt);
        resolve(ws);
      }
    });
  });
}

/** Opens `count` things with at most `concurrency` in flight; resolves when all settled. */
export async function openAll<T>(
  count: number,
  concurrency: number,
  open: (index: number) => Promise<T>,
): Promise<{ opened: Map<number, T>; failed: number; firstError: string | null }> {
  const opened = new Map<number, T>();
  let failed = 0;
  let firstError: string | null = null;
  let next = 0;
  async function worker(): Promise<void> {
    while (next < count) {
      const index = next++;
      try {
        opened.set(index, await open(index));
      } catch (error) {
        failed++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { opened, failed, firstError };
}
