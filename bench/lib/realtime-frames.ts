// What a benchmark client needs from the WebSocket bridge's JSON frames (README, "WebSocket bridge"): which
// frame it is, and for notifications and system messages the fields the benchmarks put in `data`. Frames are
// validated, not cast: a malformed frame is reported as such.

export type InboxFrame =
  | { type: 'notification'; id: string; userId: string; data: Record<string, unknown> }
  | { type: 'system'; systemType: string; data: Record<string, unknown> }
  | { type: 'unread_count'; count: number }
  | { type: 'error'; message: string }
  /** connection_ack, heartbeat, state: their content does not matter here. */
  | { type: 'other'; name: string }
  | { type: 'malformed' };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseInboxFrame(text: string): InboxFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { type: 'malformed' };
  }
  if (!isRecord(value) || typeof value.type !== 'string') return { type: 'malformed' };
  switch (value.type) {
    case 'notification': {
      const n = value.notification;
      if (!isRecord(n) || typeof n.id !== 'string' || typeof n.userId !== 'string')
        return { type: 'malformed' };
      return { type: 'notification', id: n.id, userId: n.userId, data: isRecord(n.data) ? n.data : {} };
    }
    case 'system': {
      const s = value.system;
      if (!isRecord(s) || typeof s.type !== 'string') return { type: 'malformed' };
      return { type: 'system', systemType: s.type, data: isRecord(s.data) ? s.data : {} };
    }
    case 'unread_count': {
      // int64 in protobuf JSON: a decimal string.
      const u = value.unread_count;
      const count = isRecord(u) && typeof u.count === 'string' ? Number(u.count) : Number.NaN;
      return Number.isSafeInteger(count) ? { type: 'unread_count', count } : { type: 'malformed' };
    }
    case 'error':
      return { type: 'error', message: typeof value.message === 'string' ? value.message : '' };
    default:
      return { type: 'other', name: value.type };
  }
}

/** A whole number the benchmark put in `data` (JSON numbers arrive as numbers on both transports). */
export function dataInteger(data: Record<string, unknown>, key: string): number | undefined {
  const value = data[key];
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : undefined;
}
