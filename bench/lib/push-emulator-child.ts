// The emulator process (see push-emulators.ts): test/emulators' APNs and Web Push emulators, unchanged, with
// an observer on each that stamps every request the moment the emulator records it, keys it by the delivery
// it carried and tells the parent when a phase's deliveries are all in. Each arrival is checked against what
// the phase sends (push-workload.ts) only when the parent collects, so checking never delays an answer.
import { type ApnsEmulator, type ApnsRequest, startApnsEmulator } from '../../test/emulators/apns.js';
import {
  startWebPushEmulator,
  type WebPushEmulator,
  type WebPushRequest,
} from '../../test/emulators/webpush.js';
import { epochNow, isObject } from './dispatch-child.js';
import {
  type ArrivalsMessage,
  type ExpectMessage,
  isEmulatorCommand,
  type PushPlatform,
  type StartMessage,
} from './push-emulators.js';
import { APNS_EXPIRY_S, PUSH_BODY, PUSH_TITLE, PUSH_TYPE, WEB_PUSH_TTL_S } from './push-workload.js';

// The observers live as long as the process; setTimeout's largest delay.
const FOREVER_MS = 2 ** 31 - 1;
const CLOSE_TIMEOUT_MS = 5_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Emulators {
  start: StartMessage;
  apns: ApnsEmulator;
  webPush: WebPushEmulator;
}

interface Phase {
  expectation: ExpectMessage;
  /** Distinct delivery keys seen so far. */
  keys: Set<string>;
  completed: boolean;
}

let emulators: Emulators | undefined;
let phase: Phase | undefined;
/** Arrival stamps, index for index with each emulator's `received`. */
const stamps: Record<PushPlatform, number[]> = { apns: [], webpush: [] };

function send(message: object): void {
  if (process.connected) process.send?.(message);
}

function apnsKey(request: ApnsRequest): string {
  return request.headers['apns-id'] ?? '';
}

function webPushPayload(request: WebPushRequest): Record<string, unknown> | null {
  if (request.plaintext === null) return null;
  try {
    const parsed: unknown = JSON.parse(request.plaintext);
    return isObject(parsed) ? parsed : null;
  } catch {
    return null;
  }
}

function webPushKey(request: WebPushRequest): string {
  const id = webPushPayload(request)?.notification_id;
  return typeof id === 'string' ? id : '';
}

/** Stamps what arrived since the last call and, once the phase has all it expects, says so. */
function observe(platform: PushPlatform, received: readonly unknown[], key: (i: number) => string): void {
  const times = stamps[platform];
  const now = epochNow();
  while (times.length < received.length) {
    times.push(now);
    const current = phase;
    if (!current || current.expectation.platform !== platform) continue;
    const k = key(times.length - 1);
    if (k !== '') current.keys.add(k);
    if (!current.completed && current.keys.size >= current.expectation.count) {
      current.completed = true;
      send({ kind: 'complete', phase: current.expectation.phase });
    }
  }
}

function isAlertPayload(payload: unknown): string | null {
  if (!isObject(payload)) return 'body is not a JSON object';
  const aps = payload.aps;
  if (!isObject(aps) || !isObject(aps.alert)) return 'no aps.alert';
  if (aps.alert.title !== PUSH_TITLE || aps.alert.body !== PUSH_BODY) return 'aps.alert title/body differ';
  if (aps.badge !== 0) return `aps.badge ${JSON.stringify(aps.badge)}, expected 0`;
  return null;
}

function heraldFields(payload: Record<string, unknown>): string | null {
  if (typeof payload.notification_id !== 'string' || !UUID.test(payload.notification_id)) {
    return 'notification_id missing';
  }
  if (typeof payload.seq !== 'number') return 'seq is not a number';
  if (payload.type !== PUSH_TYPE) return `type ${JSON.stringify(payload.type)}`;
  const data = payload.data;
  if (!isObject(data) || typeof data.orderId !== 'string' || typeof data.n !== 'number')
    return 'data differs';
  return null;
}

/** The first way an APNs request differs from what every phase sends, or ''. */
function apnsProblem(start: StartMessage, request: ApnsRequest, at: number): string {
  if (request.status !== 200) return `status ${request.status} ${request.reason ?? ''}`.trim();
  if (request.jwt?.kid !== start.keyId || request.jwt.iss !== start.teamId) return 'JWT kid/iss differ';
  const h = request.headers;
  if (h['apns-topic'] !== start.topic) return `apns-topic ${h['apns-topic']}`;
  if (h['apns-push-type'] !== 'alert') return `apns-push-type ${h['apns-push-type']}`;
  if (h['apns-priority'] !== '10') return `apns-priority ${h['apns-priority']}`;
  if (h['apns-collapse-id'] !== PUSH_TYPE) return `apns-collapse-id ${h['apns-collapse-id']}`;
  if (!UUID.test(h['apns-id'] ?? '')) return 'apns-id is not a UUID';
  const expiry = Number(h['apns-expiration']) - at / 1000;
  if (!(expiry > APNS_EXPIRY_S - 300 && expiry <= APNS_EXPIRY_S + 1)) return 'apns-expiration not ~1 h ahead';
  const alert = isAlertPayload(request.payload);
  if (alert) return alert;
  return heraldFields(request.payload as Record<string, unknown>) ?? '';
}

/** The first way a Web Push request differs from what the Herald phase sends, or ''. */
function webPushProblem(request: WebPushRequest): string {
  if (request.status !== 201) return `status ${request.status} ${request.rejectedBecause ?? ''}`.trim();
  if (request.vapid === null) return 'VAPID not verified';
  if (request.plaintext === null) return 'no plaintext (not decrypted)';
  const payload = webPushPayload(request);
  if (!payload) return 'plaintext is not a JSON object';
  if (payload.title !== PUSH_TITLE || payload.body !== PUSH_BODY) return 'title/body differ';
  if (request.urgency !== 'high') return `Urgency ${request.urgency}`;
  if (request.ttl !== WEB_PUSH_TTL_S) return `TTL ${request.ttl}`;
  return heraldFields(payload) ?? '';
}

function arrivals(): ArrivalsMessage {
  const out: ArrivalsMessage = {
    kind: 'arrivals',
    keys: [],
    times: [],
    statuses: [],
    destinations: [],
    problems: [],
  };
  if (!emulators || !phase) return out;
  const { start, apns, webPush } = emulators;
  const times = stamps[phase.expectation.platform];
  if (phase.expectation.platform === 'apns') {
    apns.received.forEach((request, i) => {
      out.keys.push(apnsKey(request));
      out.times.push(times[i]!);
      out.statuses.push(request.status);
      out.destinations.push(request.token);
      out.problems.push(apnsProblem(start, request, times[i]!));
    });
  } else {
    webPush.received.forEach((request, i) => {
      out.keys.push(webPushKey(request));
      out.times.push(times[i]!);
      out.statuses.push(request.status);
      out.destinations.push(request.subscriptionId);
      out.problems.push(webPushProblem(request));
    });
  }
  return out;
}

async function startEmulators(start: StartMessage): Promise<void> {
  const apns = await startApnsEmulator({
    keyId: start.keyId,
    teamId: start.teamId,
    publicKey: start.publicKey,
    topics: [start.topic],
  });
  const webPush = await startWebPushEmulator();
  emulators = { start, apns, webPush };
  // Predicates that never hold: called synchronously after each request is recorded, they only stamp it.
  apns
    .waitFor((received) => {
      observe('apns', received, (i) => apnsKey(received[i]!));
      return false;
    }, FOREVER_MS)
    .catch(() => {});
  webPush
    .waitFor((received) => {
      observe('webpush', received, (i) => webPushKey(received[i]!));
      return false;
    }, FOREVER_MS)
    .catch(() => {});
  send({
    kind: 'ready',
    apnsPort: apns.port,
    apnsCaFile: apns.caFile,
    webPushOrigin: webPush.origin,
    webPushCaFile: webPush.caFile,
  });
}

function expect(message: ExpectMessage): void {
  if (!emulators) return;
  // Forget the previous phase, then start counting this one's.
  emulators.apns.received.length = 0;
  emulators.webPush.received.length = 0;
  stamps.apns.length = 0;
  stamps.webpush.length = 0;
  phase = { expectation: message, keys: new Set(), completed: message.count === 0 };
}

let closing: Promise<void> | undefined;

/** Closes both emulators (which removes their certificate folders) and exits; bounded. */
function shutdown(): Promise<void> {
  closing ??= (async () => {
    const closed = Promise.allSettled([emulators?.apns.close(), emulators?.webPush.close()]);
    const timer = new Promise((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS).unref());
    await Promise.race([closed, timer]);
    process.exit(0);
  })();
  return closing;
}

process.on('message', (message: unknown) => {
  if (!isEmulatorCommand(message)) return;
  switch (message.kind) {
    case 'start':
      startEmulators(message).catch((error: unknown) => {
        process.stderr.write(`push emulators: ${error instanceof Error ? error.stack : String(error)}\n`);
        process.exit(1);
      });
      return;
    case 'subscribe': {
      const webPush = emulators?.webPush;
      send({
        kind: 'subscriptions',
        subscriptions: webPush ? Array.from({ length: message.count }, () => webPush.subscribe()) : [],
      });
      return;
    }
    case 'expect':
      expect(message);
      return;
    case 'collect':
      send(arrivals());
      return;
  }
});

// The parent gone (even killed) means the benchmark is over. Ctrl-C reaches this process too, but the
// parent decides when it ends (SIGTERM), so the phase in progress is not cut from under it.
process.on('disconnect', () => void shutdown());
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => {});

send({ kind: 'alive' });
