// The emulator process (see email-emulator.ts): test/emulators' SMTP emulator, unchanged, with an observer
// that stamps every message the moment the emulator records it (after DATA, parsed, before the 250 answer),
// keys it by its Message-ID and tells the parent when a phase's messages are all in. Each arrival is checked
// against what the phase sends (email-workload.ts) only when the parent collects, so checking never delays
// an answer.

import { verifyPreferencesLink, verifyUnsubscribeLink } from '../../src/core/link-tokens.js';
import { type ReceivedEmail, type SmtpEmulator, startSmtpEmulator } from '../../test/emulators/smtp.js';
import { epochNow } from './dispatch-child.js';
import {
  type EmailArrivalsMessage,
  type ExpectMessage,
  isEmulatorCommand,
  type StartMessage,
} from './email-emulator.js';
import {
  EMAIL_SUBJECT,
  EMAIL_TYPE,
  emailHtml,
  emailText,
  FROM_ADDRESS,
  FROM_NAME,
  linkSecretBytes,
  PUBLIC_URL,
  REPLY_TO,
  userOfAddress,
} from './email-workload.js';

// The observer lives as long as the process; setTimeout's largest delay.
const FOREVER_MS = 2 ** 31 - 1;
const CLOSE_TIMEOUT_MS = 5_000;
const MESSAGE_ID = /^<[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}@herald>$/i;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const UNSUBSCRIBE_PREFIX = `${PUBLIC_URL}/unsubscribe/`;
const PREFERENCES_PREFIX = `${PUBLIC_URL}/preferences/`;
/** An accepted message: the emulator records only those, after answering DATA with this code. */
const ACCEPTED = 250;

interface Emulator {
  start: StartMessage;
  smtp: SmtpEmulator;
}

interface Phase {
  expectation: ExpectMessage;
  /** Distinct Message-IDs seen so far. */
  keys: Set<string>;
  completed: boolean;
  /** The emulator's connection count when the phase began. */
  sessionsBefore: number;
}

let emulator: Emulator | undefined;
let phase: Phase | undefined;
/** Arrival stamps, index for index with the emulator's `received`. */
const stamps: number[] = [];

function send(message: object): void {
  if (process.connected) process.send?.(message);
}

function key(message: ReceivedEmail): string {
  return message.messageId ?? '';
}

/** Stamps what arrived since the last call and, once the phase has all it expects, says so. */
function observe(received: readonly ReceivedEmail[]): void {
  const now = epochNow();
  while (stamps.length < received.length) {
    stamps.push(now);
    const current = phase;
    if (!current) continue;
    const k = key(received[stamps.length - 1]!);
    if (k !== '') current.keys.add(k);
    if (!current.completed && current.keys.size >= current.expectation.count) {
      current.completed = true;
      send({ kind: 'complete', phase: current.expectation.phase });
    }
  }
}

function header(message: ReceivedEmail, name: string): string | undefined {
  const value = message.headers[name];
  return typeof value === 'string' ? value : undefined;
}

/** The unsubscribe URL of List-Unsubscribe, or a problem. */
function unsubscribeLink(message: ReceivedEmail, user: string): { url: string } | { problem: string } {
  const value = header(message, 'list-unsubscribe') ?? '';
  const url = /^<([^<>]+)>$/.exec(value)?.[1];
  if (!url?.startsWith(UNSUBSCRIBE_PREFIX)) return { problem: `List-Unsubscribe ${JSON.stringify(value)}` };
  const link = verifyUnsubscribeLink(linkSecretBytes(), url.slice(UNSUBSCRIBE_PREFIX.length), new Date());
  if (!link) return { problem: 'List-Unsubscribe link does not verify' };
  if (link.userId !== user || link.type !== EMAIL_TYPE) {
    return {
      problem: `List-Unsubscribe link for ${link.userId}/${link.type}, expected ${user}/${EMAIL_TYPE}`,
    };
  }
  return { url };
}

/** The preferences page URL of the text part's footer, or a problem. */
function preferencesLink(message: ReceivedEmail, user: string): { url: string } | { problem: string } {
  const url = /^Preferences: (\S+)$/m.exec(message.text ?? '')?.[1];
  if (!url?.startsWith(PREFERENCES_PREFIX)) return { problem: 'no preferences link in the text part' };
  const link = verifyPreferencesLink(linkSecretBytes(), url.slice(PREFERENCES_PREFIX.length), new Date());
  if (link?.userId !== user) return { problem: 'preferences link does not verify for the recipient' };
  return { url };
}

/** The first way a message differs from what every phase sends, or ''. */
function problem(start: StartMessage, message: ReceivedEmail): string {
  if (!message.secure) return 'not over TLS';
  if (message.user !== start.user) return `AUTH user ${JSON.stringify(message.user)}`;
  const [rcpt, ...more] = message.envelope.to;
  if (!rcpt || more.length > 0) return `${message.envelope.to.length} recipients`;
  const user = userOfAddress(rcpt);
  if (!user) return `unexpected recipient ${rcpt}`;
  if (message.envelope.from !== FROM_ADDRESS) return `MAIL FROM ${message.envelope.from}`;
  if (message.from?.address !== FROM_ADDRESS || message.from.name !== FROM_NAME) return 'From differs';
  if (message.replyTo?.address !== REPLY_TO) return 'Reply-To differs';
  if (message.to.length !== 1 || message.to[0]!.address !== rcpt) return 'To differs from RCPT TO';
  if (message.subject !== EMAIL_SUBJECT) return `Subject ${JSON.stringify(message.subject)}`;
  if (!MESSAGE_ID.test(message.messageId ?? '')) return `Message-ID ${message.messageId}`;
  if (!UUID.test(header(message, 'x-herald-notification-id') ?? ''))
    return 'X-Herald-Notification-Id missing';
  const post = header(message, 'list-unsubscribe-post');
  if (post !== 'List-Unsubscribe=One-Click') return `List-Unsubscribe-Post ${JSON.stringify(post)}`;
  const link = unsubscribeLink(message, user);
  if ('problem' in link) return link.problem;
  const preferences = preferencesLink(message, user);
  if ('problem' in preferences) return preferences.problem;
  const links = { unsubscribe: link.url, preferences: preferences.url };
  if ((message.text ?? '').trimEnd() !== emailText(links)) return 'text part differs';
  if ((message.html ?? '').trimEnd() !== emailHtml(links)) return 'HTML part differs';
  return '';
}

function arrivals(): EmailArrivalsMessage {
  const out: EmailArrivalsMessage = {
    kind: 'arrivals',
    keys: [],
    times: [],
    statuses: [],
    destinations: [],
    problems: [],
    sessions: 0,
  };
  if (!emulator || !phase) return out;
  const { start, smtp } = emulator;
  out.sessions = smtp.sessions() - phase.sessionsBefore;
  smtp.received.forEach((message, i) => {
    out.keys.push(key(message));
    out.times.push(stamps[i]!);
    out.statuses.push(ACCEPTED);
    out.destinations.push(message.envelope.to.join(','));
    out.problems.push(problem(start, message));
  });
  return out;
}

async function startEmulator(start: StartMessage): Promise<void> {
  const smtp = await startSmtpEmulator({ users: { [start.user]: start.password } });
  emulator = { start, smtp };
  // A predicate that never holds: called synchronously after each message is recorded, it only stamps it.
  smtp
    .waitFor((received) => {
      observe(received);
      return false;
    }, FOREVER_MS)
    .catch(() => {});
  send({ kind: 'ready', port: smtp.port, caFile: smtp.caFile });
}

function expect(message: ExpectMessage): void {
  if (!emulator) return;
  // Forget the previous phase, then start counting this one's.
  emulator.smtp.received.length = 0;
  stamps.length = 0;
  phase = {
    expectation: message,
    keys: new Set(),
    completed: message.count === 0,
    sessionsBefore: emulator.smtp.sessions(),
  };
}

let closing: Promise<void> | undefined;

/** Closes the emulator (which removes its certificate folder) and exits; bounded. */
function shutdown(): Promise<void> {
  closing ??= (async () => {
    const closed = Promise.allSettled([emulator?.smtp.close()]);
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
      startEmulator(message).catch((error: unknown) => {
        process.stderr.write(`SMTP emulator: ${error instanceof Error ? error.stack : String(error)}\n`);
        process.exit(1);
      });
      return;
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
