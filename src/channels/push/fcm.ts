// FCM through `firebase-admin` (the HTTP v1 API): one Firebase app per project (its service account), each
// serving the app ids registered with its tokens. firebase-admin retries 503s itself for up to 7 s (0, 1, 2,
// 4 s) inside one attempt; that is turned off, so the dispatcher's backoff and the provider's circuit see
// every failure. firebase-admin exposes no option for it: the private handle is used when it is there, and
// its absence is logged (the attempt then simply takes longer).
// Classification (firebase-admin's error codes): registration-token-not-registered, a SENDER_ID_MISMATCH and
// an invalid-argument about the registration token: the token is gone; third-party-auth-error,
// invalid-credential and a permission error of the project: credentials (trip the circuit); rate exceeded,
// unavailable and internal: retried; other invalid arguments and payloads: failed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type App, cert, deleteApp, initializeApp } from 'firebase-admin/app';
import { getMessaging, type Messaging } from 'firebase-admin/messaging';
import type { Logger } from 'pino';
import type { DeliveryTask, Outcome, ProviderAdapter } from '../../delivery/provider.js';
import { withinBudget } from '../budget.js';
import { fcmMessage, isTooLarge } from './payloads.js';

export interface FcmProject {
  /** The service account key (JSON text). */
  serviceAccount: string;
  /** The app ids whose tokens belong to this project; absent: every FCM token no other project claims. */
  apps?: readonly string[] | undefined;
}

export interface FcmAdapterOptions {
  name?: string;
  timeoutMs: number;
  projects: readonly FcmProject[];
  /** Every Google connection (OAuth and FCM) to this plain-TCP host instead (a test emulator or a proxy). */
  endpoint?: { address: string; port: number } | undefined;
  logger?: Logger | undefined;
  now?: () => Date;
}

interface Project {
  projectId: string;
  app: App;
  messaging: Messaging;
}

let appCount = 0;

export function createFcmAdapter(options: FcmAdapterOptions): ProviderAdapter {
  const name = options.name ?? 'fcm';
  const now = options.now ?? (() => new Date());
  // Every key is checked (cert() parses it) before anything is made, so a bad one leaves nothing behind.
  const accounts = options.projects.map((project, i) => serviceAccount(project.serviceAccount, i));
  const credentials = accounts.map((account, i) => {
    try {
      return cert(account as Parameters<typeof cert>[0]);
    } catch {
      throw new Error(`projects[${i}].service_account: its private_key is not a PEM private key`);
    }
  });
  const agent = options.endpoint
    ? new RedirectingAgent(options.endpoint.address, options.endpoint.port)
    : undefined;
  // cert() with an account object ignores the agent for the OAuth token request (firebase-admin-node#2960):
  // with an agent, the account is handed over as a private file instead, removed at close.
  const keyDir = agent ? mkdtempSync(path.join(tmpdir(), 'herald-fcm-')) : undefined;
  const projects: Project[] = [];
  try {
    options.projects.forEach((project, i) => {
      projects.push(initialise(project, accounts[i]!, credentials[i]!, i));
    });
  } catch (error) {
    void release();
    throw error;
  }
  const byApp = new Map<string, Project>();
  options.projects.forEach((p, i) => {
    for (const app of p.apps ?? []) byApp.set(app, projects[i]!);
  });
  const fallback = projects.find((_, i) => options.projects[i]!.apps === undefined);

  /** Deletes the Firebase apps made so far and the key files, whatever fails. */
  async function release(): Promise<void> {
    try {
      await Promise.allSettled(projects.map((p) => deleteApp(p.app)));
    } finally {
      agent?.destroy();
      if (keyDir) rmSync(keyDir, { recursive: true, force: true });
    }
  }

  function initialise(
    project: FcmProject,
    account: ServiceAccount,
    parsed: ReturnType<typeof cert>,
    index: number,
  ): Project {
    const projectId = account.project_id;
    let credential = parsed;
    if (agent && keyDir) {
      const file = path.join(keyDir, `account-${index}.json`);
      writeFileSync(file, project.serviceAccount, { mode: 0o600 });
      credential = cert(file, agent);
    }
    const app = initializeApp(
      { credential, projectId, ...(agent ? { httpAgent: agent } : {}) },
      `herald-fcm-${++appCount}`,
    );
    const messaging = getMessaging(app);
    if (!turnOffSendRetries(messaging)) {
      options.logger?.warn(
        { provider: name },
        'firebase-admin internals changed: its own 503 retries stay on',
      );
    }
    return { projectId, app, messaging };
  }

  function projectOf(task: DeliveryTask): Project | undefined {
    if (task.destination.channel !== 'push') return undefined;
    return (task.destination.appId === null ? undefined : byApp.get(task.destination.appId)) ?? fallback;
  }

  async function send(task: DeliveryTask, signal: AbortSignal): Promise<Outcome> {
    const project = projectOf(task);
    if (!project || task.destination.channel !== 'push') {
      return { kind: 'failed', reason: 'FCM delivery for an app this provider does not serve' };
    }
    const wire = fcmMessage(task, task.destination.token, now());
    if (isTooLarge(wire)) return { kind: 'failed', reason: wire.tooLarge };
    const message = adminMessage(wire);
    const attempt = (async (): Promise<Outcome> => {
      try {
        const id = await project.messaging.send(message);
        return { kind: 'sent', providerMessageId: id, statusCode: 200 };
      } catch (error) {
        return classify(error);
      }
    })();
    return withinBudget(attempt, options.timeoutMs, signal);
  }

  return {
    name,
    channel: 'push',
    timeoutMs: options.timeoutMs,
    accepts: (task) =>
      task.destination.channel === 'push' &&
      task.destination.platform === 'fcm' &&
      task.content.channel === 'push' &&
      projectOf(task) !== undefined,
    circuitKey: (task) => `${name}:${projectOf(task)?.projectId ?? 'unknown'}`,
    send,
    close: release,
  };
}

/**
 * The FCM v1 message (as payloads.ts builds it, and as FCM receives it) in the form firebase-admin takes:
 * the same, except that it wants android.ttl in milliseconds (it writes it back as "<seconds>s").
 */
function adminMessage(wire: Record<string, unknown>): Parameters<Messaging['send']>[0] {
  const android = wire.android as Record<string, unknown> | undefined;
  const ttl = typeof android?.ttl === 'string' ? Number(android.ttl.replace(/s$/, '')) * 1000 : undefined;
  const message = ttl === undefined ? wire : { ...wire, android: { ...android, ttl } };
  return message as unknown as Parameters<Messaging['send']>[0];
}

interface ServiceAccount {
  project_id: string;
  client_email: string;
  private_key: string;
}

/** The key's JSON, checked for what FCM needs; the message never quotes the key. */
function serviceAccount(text: string, index: number): ServiceAccount {
  const problem = `projects[${index}].service_account: must be a service account key (JSON with project_id, client_email and private_key)`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(problem);
  }
  const account = parsed as Partial<ServiceAccount> | null;
  if (
    typeof account?.project_id !== 'string' ||
    typeof account.client_email !== 'string' ||
    typeof account.private_key !== 'string'
  ) {
    throw new Error(problem);
  }
  return account as ServiceAccount;
}

function classify(error: unknown): Outcome {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  const said = `FCM: ${typeof code === 'string' ? code : 'error'}: ${message}`.slice(0, 500);
  switch (code) {
    case 'messaging/registration-token-not-registered':
      return { kind: 'invalid_destination', reason: said, code: 'UNREGISTERED' };
    case 'messaging/invalid-argument':
    case 'messaging/invalid-registration-token':
      return /registration token/i.test(message) || code === 'messaging/invalid-registration-token'
        ? { kind: 'invalid_destination', reason: said, code: 'INVALID_ARGUMENT' }
        : { kind: 'failed', reason: said };
    case 'messaging/mismatched-credential':
      // The token belongs to another sender; otherwise it is this project's own permissions.
      return /sender ?id mismatch/i.test(message)
        ? { kind: 'invalid_destination', reason: said, code: 'SENDER_ID_MISMATCH' }
        : { kind: 'failed', reason: said, credentials: true };
    case 'messaging/third-party-auth-error':
      return { kind: 'failed', reason: said, credentials: true };
    case 'app/invalid-credential':
      // firebase-admin wraps every failure to get an access token so: only Google refusing the account is
      // about credentials; a network error or an OAuth outage is transient.
      return /invalid_grant|invalid_client|unauthorized_client/.test(message)
        ? { kind: 'failed', reason: said, credentials: true }
        : { kind: 'retry', reason: said };
    case 'messaging/message-rate-exceeded':
    case 'messaging/device-message-rate-exceeded':
    case 'messaging/topics-message-rate-exceeded':
    case 'messaging/server-unavailable':
    case 'messaging/internal-error':
    case 'messaging/unknown-error':
      return { kind: 'retry', reason: said };
    case 'messaging/invalid-payload':
    case 'messaging/payload-size-limit-exceeded':
      return { kind: 'failed', reason: said };
    default:
      return { kind: 'retry', reason: said };
  }
}

/** Turns off firebase-admin's retries of send() (a private handle); false when it is not where it was. */
function turnOffSendRetries(messaging: Messaging): boolean {
  const handler: unknown = Reflect.get(messaging, 'messagingRequestHandler');
  const client: unknown = typeof handler === 'object' && handler ? Reflect.get(handler, 'httpClient') : null;
  if (typeof client !== 'object' || client === null || !('retry' in client)) return false;
  Reflect.set(client, 'retry', null);
  return true;
}

/** Every connection, whatever host it is for, to one plain-TCP address. */
class RedirectingAgent extends Agent {
  constructor(
    private readonly address: string,
    private readonly port: number,
  ) {
    super({ keepAlive: true });
  }
  override createConnection(): Socket {
    return connect(this.port, this.address);
  }
}
