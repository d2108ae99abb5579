// The WebSocket bridge's frame shape for a stream event, shared by the server and the browser client:
// `{type: "unread_count", unread_count: {...}}` from the protobuf JSON of a StreamNotificationsResponse
// (`{"unreadCount": {...}}`).
export function frameOf(json: unknown): { type: string; [key: string]: unknown } {
  const [key, value] = Object.entries((json ?? {}) as Record<string, unknown>)[0] ?? ['heartbeat', {}];
  const type = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return { type, [type]: value };
}
