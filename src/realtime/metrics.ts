// In-app delivery's metrics: live sessions on this instance (WebSocket connections, StreamNotifications
// streams), notifications written to them by transport, and notifications users acknowledged by marking them
// read, seen or archived (MarkNotifications or a WebSocket `mark` frame). No label carries a user or a
// connection: the values stay few whatever the traffic.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { MarkAction } from '../store/inbox.js';
import type { AdmissionControl } from './admission.js';

export type InAppTransport = 'stream' | 'websocket';

export interface InAppMetrics {
  /** A StreamNotifications stream opened; call the answer once when it ends. */
  streamOpened(): () => void;
  /** Where the WebSocket bridge's live connections are counted when scraped. */
  countWebSockets(connections: () => number): void;
  /**
   * A notification was written to a live session: new ones and the catch-up a session replays when it opens
   * (a reconnect's after_seq onwards), so not the in-app deliveries that became sent.
   */
  written(transport: InAppTransport): void;
  /** A mark changed the state of `count` notifications. */
  marked(action: MarkAction, count: number): void;
  /** Where session starts in progress and waiting are counted when scraped. */
  countSessionStarts(admission: AdmissionControl): void;
  /** A session was refused its start (too many starting): the client was told when to come back. */
  sessionStartRefused(transport: InAppTransport): void;
  /** A session went live (its replay written) this long after the client asked for it. */
  sessionStarted(transport: InAppTransport, seconds: number): void;
}

/** The marks that acknowledge a notification; undoing one (unread, unarchived) is not an acknowledgement. */
const ACKNOWLEDGING = new Set<MarkAction>(['read', 'seen', 'archived']);

export function createInAppMetrics(registry: Registry): InAppMetrics {
  let webSockets: () => number = () => 0;
  new Gauge({
    name: 'herald_websocket_connections',
    help: 'WebSocket connections open on this instance (/ws), authenticated or not yet.',
    registers: [registry],
    collect() {
      this.set(webSockets());
    },
  });
  const streams = new Gauge({
    name: 'herald_inbox_streams_open',
    help: 'StreamNotifications streams open on this instance (gRPC, gRPC-Web and Connect).',
    registers: [registry],
  });
  const written = new Counter({
    name: 'herald_inapp_written_total',
    help: 'In-app notifications written to live sessions, by transport (stream, websocket): once per session, replays after a (re)connect included.',
    labelNames: ['transport'] as const,
    registers: [registry],
  });
  const acknowledged = new Counter({
    name: 'herald_inapp_acknowledged_total',
    help: 'In-app notifications users marked, by the state the mark set (read, seen, archived); only those it changed.',
    labelNames: ['state'] as const,
    registers: [registry],
  });
  let admission: AdmissionControl | undefined;
  new Gauge({
    name: 'herald_session_starts_in_progress',
    help: 'Live sessions starting on this instance (WebSocket handshakes to the end of the replay, StreamNotifications calls to the end of theirs).',
    registers: [registry],
    collect() {
      this.set(admission?.inProgress() ?? 0);
    },
  });
  new Gauge({
    name: 'herald_session_starts_waiting',
    help: 'Session starts waiting for their turn (HERALD_SESSION_STARTS_MAX are in progress).',
    registers: [registry],
    collect() {
      this.set(admission?.waiting() ?? 0);
    },
  });
  const refused = new Counter({
    name: 'herald_session_starts_refused_total',
    help: 'Session starts refused because too many were starting (WebSocket close 1013, stream UNAVAILABLE), with a suggested delay, by transport.',
    labelNames: ['transport'] as const,
    registers: [registry],
  });
  const startSeconds = new Histogram({
    name: 'herald_session_start_seconds',
    help: 'From a client asking for a live session (WebSocket upgrade, StreamNotifications call) to the end of its replay, waiting included, by transport.',
    labelNames: ['transport'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  // Both transports start at 0, so a rate over them exists before the first notification.
  // Bound once: a label lookup per written notification is measurable under a burst.
  const writtenBy = { stream: written.labels('stream'), websocket: written.labels('websocket') };
  for (const child of Object.values(writtenBy)) child.inc(0);
  for (const state of ACKNOWLEDGING) acknowledged.inc({ state }, 0);
  for (const transport of ['stream', 'websocket'] as const) refused.inc({ transport }, 0);
  return {
    streamOpened() {
      streams.inc();
      let open = true;
      return () => {
        if (open) streams.dec();
        open = false;
      };
    },
    countWebSockets(connections) {
      webSockets = connections;
    },
    written: (transport) => writtenBy[transport].inc(),
    countSessionStarts(control) {
      admission = control;
    },
    sessionStartRefused: (transport) => refused.inc({ transport }),
    sessionStarted: (transport, seconds) => startSeconds.observe({ transport }, seconds),
    marked(action, count) {
      if (ACKNOWLEDGING.has(action) && count > 0) acknowledged.inc({ state: action }, count);
    },
  };
}
