// The `herald` command: serve, migrate, keys, send, providers check, outbox.
import { parseArgs } from 'node:util';
import { create, toJson } from '@bufbuild/protobuf';
import { ConnectError } from '@connectrpc/connect';
import webPush from 'web-push';
import {
  Channel,
  createHeraldAdminClient,
  createHeraldClient,
  type DateShape,
  type OutboxMessage,
  SendRequestSchema,
  SendResponseSchema,
} from '../clients/node/index.js';
import { createAddressGuard } from './channels/webhook/address-guard.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { apiKeyScopes, isApiKeyScope } from './core/api-key.js';
import { createLogger, type Logger } from './observability/logger.js';
import { isClusterWorker, leaveCluster, runClusterPrimary } from './server/cluster.js';
import { ProvidersFileError, startHerald } from './server/index.js';
import { checkProvidersFile, closeProviders, loadProviders } from './server/providers.js';
import {
  createApiKey,
  type Database,
  listApiKeys,
  openDatabase,
  revokeApiKey,
  type SqlRunner,
} from './store/index.js';

const usage = `herald — notification service

usage:
  herald serve                                   start the server (see README for settings)
  herald migrate                                 apply database migrations and exit
  herald keys create --name NAME --scope SCOPE   create an API key (scopes: ${apiKeyScopes.join(', ')}; repeat or comma-separate)
  herald keys list                               list API keys (never the keys themselves)
  herald keys revoke ID|PREFIX                   revoke an API key
  herald keys vapid                              generate a VAPID key pair for Web Push (JSON on stdout)
  herald send --user ID --type TYPE --title T [--body B] [--channel in_app ...]
              [--url http://127.0.0.1:50051] [--api-key KEY]  send one notification over gRPC
                                                 (the key may also come from HERALD_API_KEY)
  herald providers check FILE                    validate a providers file without starting (exit 2 if bad)
  herald outbox [--follow] [--channel email] [--limit 20] [--url ...] [--api-key KEY]
                                                 print what the outbox captured, newest last; --follow
                                                 keeps printing new messages (admin key)
`;

class UsageError extends Error {}

/** Where the CLI's RPCs go without --url: this machine's native gRPC port (else its main port). */
function defaultUrl(config: Config): string {
  return `http://127.0.0.1:${config.grpcPort || config.port}`;
}

async function withDatabase<T>(config: Config, logger: Logger, fn: (db: Database) => Promise<T>): Promise<T> {
  const database = await openDatabase({
    url: config.databaseUrl,
    dataDir: config.dataDir,
    poolMax: 2,
    onNotice: (message) => logger.debug({ message }, 'database notice'),
  });
  try {
    await database.migrate();
    return await fn(database);
  } finally {
    await database.close();
  }
}

function announceBootstrapKey(key: string | undefined): void {
  if (!key) return;
  // Printed once, to the terminal only (logs never carry keys). It is not stored anywhere in clear.
  process.stdout.write(
    `\nCreated the first admin API key (shown only this once; store it now):\n\n  ${key}\n\n` +
      `Try: HERALD_API_KEY=${key} npm run herald -- send --user alice --type welcome --title "Hello"\n\n`,
  );
}

async function serve(config: Config, logger: Logger): Promise<void> {
  if (config.workers > 1 && !isClusterWorker()) {
    await runClusterPrimary(config, logger, announceBootstrapKey);
    return;
  }
  // SIGHUP reloads the providers file (a bad file is refused and logged; the providers stay). Installed first:
  // Node's default for SIGHUP is to exit, and a reload asked for while starting or stopping is not one to die of.
  let herald: Awaited<ReturnType<typeof startHerald>> | undefined;
  let stopping = false;
  process.on('SIGHUP', () => {
    if (!herald || stopping) {
      logger.warn({ signal: 'SIGHUP' }, 'providers file not reloaded: the server is starting or stopping');
      return;
    }
    logger.info({ signal: 'SIGHUP' }, 'reloading the providers file');
    herald.reloadProviders().catch((error) => logger.error({ err: error }, 'providers reload failed'));
  });
  const started = await startHerald({ config, logger });
  herald = started;
  announceBootstrapKey(started.bootstrapKey);
  process.stdout.write(
    `Herald is listening on ${started.url} (${started.database.engine})` +
      (started.grpcUrl ? `; native gRPC on ${started.grpcUrl}` : '; native gRPC off') +
      '\n',
  );
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      stopping = true;
      logger.info({ signal }, 'signal received');
      started.close().then(resolve, (error) => {
        logger.error({ err: String(error) }, 'shutdown failed');
        process.exitCode = 1;
        resolve();
      });
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  leaveCluster();
}

async function keys(config: Config, logger: Logger, args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    options: { name: { type: 'string' }, scope: { type: 'string', multiple: true } },
    allowPositionals: true,
  });
  // Arguments are checked before the database is opened: a typo is a usage error, not a connection error.
  const scopes = (values.scope ?? []).flatMap((s) => s.split(',')).map((s) => s.trim());
  if (sub === 'vapid') {
    // No database: the pair goes into the providers file (the private key as a secret reference).
    const { publicKey, privateKey } = webPush.generateVAPIDKeys();
    process.stdout.write(`${JSON.stringify({ public_key: publicKey, private_key: privateKey }, null, 2)}\n`);
    process.stderr.write(
      "Put public_key in the webpush provider's settings and in your web app (applicationServerKey);\n" +
        'keep private_key secret: reference it from the providers file with {"env": ...} or {"file": ...}.\n',
    );
    return;
  }
  if (sub === 'create') {
    if (!values.name || scopes.length === 0) throw new UsageError('keys create needs --name and --scope');
    const bad = scopes.find((s) => !isApiKeyScope(s));
    if (bad) throw new UsageError(`unknown scope "${bad}" (use ${apiKeyScopes.join(', ')})`);
  } else if (sub === 'revoke') {
    if (!positionals[0]) throw new UsageError('keys revoke needs an id or prefix');
  } else if (sub !== 'list') {
    throw new UsageError('keys needs create, list, revoke or vapid');
  }
  await withDatabase(config, logger, async ({ db }) => {
    if (sub === 'create') {
      const { row, key } = await createApiKey(db, values.name!, [...new Set(scopes.filter(isApiKeyScope))]);
      process.stdout.write(`${key}\n`);
      process.stderr.write(
        `created key ${row.prefix} (${row.id}) "${row.name}" with scopes ${row.scopes.join(',')}\n`,
      );
    } else if (sub === 'list') {
      for (const k of await listApiKeys(db)) {
        const state = k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'active';
        process.stdout.write(
          `${k.id}  ${k.prefix}  ${k.scopes.join(',').padEnd(16)}  ${state.padEnd(32)}  ${k.name}\n`,
        );
      }
    } else {
      const target = positionals[0]!;
      const revoked = await revokeApiKey(db, target);
      if (revoked.length === 0) throw new UsageError(`no active key matches "${target}"`);
      for (const k of revoked) process.stdout.write(`revoked ${k.prefix} (${k.id}) "${k.name}"\n`);
    }
  });
}

const channelByName: Record<string, Channel> = {
  in_app: Channel.IN_APP,
  push: Channel.PUSH,
  email: Channel.EMAIL,
  sms: Channel.SMS,
  webhook: Channel.WEBHOOK,
};

async function send(config: Config, args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      user: { type: 'string' },
      type: { type: 'string' },
      title: { type: 'string' },
      body: { type: 'string' },
      channel: { type: 'string', multiple: true },
      url: { type: 'string' },
      'api-key': { type: 'string' },
    },
  });
  const apiKey = values['api-key'] ?? process.env.HERALD_API_KEY;
  if (!apiKey) throw new UsageError('send needs --api-key or HERALD_API_KEY');
  if (!values.user || !values.type || !values.title)
    throw new UsageError('send needs --user, --type and --title');
  const channels = (values.channel ?? []).map((name) => {
    const channel = channelByName[name.toLowerCase()];
    if (channel === undefined) throw new UsageError(`unknown channel "${name}"`);
    return channel;
  });
  const client = createHeraldClient({ baseUrl: values.url ?? defaultUrl(config), apiKey });
  const response = await client.send(
    create(SendRequestSchema, {
      userId: values.user,
      type: values.type,
      title: values.title,
      ...(values.body === undefined ? {} : { body: values.body }),
      channels,
    }),
    { timeoutMs: 10_000 },
  );
  process.stdout.write(`${JSON.stringify(toJson(SendResponseSchema, response), null, 2)}\n`);
}

async function providers(config: Config, args: string[]): Promise<void> {
  const [sub, file, ...rest] = args;
  if (sub !== 'check' || !file || rest.length > 0) throw new UsageError('providers check needs one FILE');
  const result = checkProvidersFile(file);
  if (!result.ok) throw new ProvidersFileError(file, result.problems);
  // Every adapter is built too (keys parsed, clients made; nothing connects), then closed: what only
  // building can find is found here, not at the next start.
  const built = loadProviders({
    delivery: { ...config.delivery, providersFile: file },
    sql: notConnected,
    webhookGuard: createAddressGuard(config.delivery.webhookAllowNetworks),
  });
  if (!built.ok) throw new ProvidersFileError(file, built.problems);
  await closeProviders(built.providers);
  const lines = Object.entries(result.file.channels).flatMap(([channel, entries]) =>
    entries.map((e, i) => `  ${channel}[${i}]: ${e.name} (${e.type})`),
  );
  process.stdout.write(`${file}: ok\n${lines.join('\n')}\n`);
}

/** `providers check` builds adapters without a database: none of them queries while being built. */
const notConnected: SqlRunner = {
  query: () => Promise.reject(new Error('providers check has no database')),
};

const outboxChannels: Record<string, Channel> = {
  push: Channel.PUSH,
  email: Channel.EMAIL,
  sms: Channel.SMS,
  webhook: Channel.WEBHOOK,
};

/** How often `outbox --follow` asks for new messages. */
const OUTBOX_FOLLOW_MS = 1_000;

async function outbox(config: Config, args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      follow: { type: 'boolean' },
      channel: { type: 'string' },
      limit: { type: 'string' },
      url: { type: 'string' },
      'api-key': { type: 'string' },
    },
  });
  const apiKey = values['api-key'] ?? process.env.HERALD_API_KEY;
  if (!apiKey) throw new UsageError('outbox needs --api-key or HERALD_API_KEY (an admin key)');
  const channel = values.channel === undefined ? Channel.UNSPECIFIED : outboxChannels[values.channel];
  if (channel === undefined)
    throw new UsageError(`unknown channel "${values.channel}" (push, email, sms, webhook)`);
  const limit = values.limit === undefined ? 20 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new UsageError('--limit must be 1..500');
  const admin = createHeraldAdminClient({ baseUrl: values.url ?? defaultUrl(config), apiKey });
  const page = await admin.listOutboxMessages({ channel, limit }, { timeoutMs: 10_000 });
  const shown = page.messages.toReversed();
  for (const message of shown) printOutboxMessage(message);
  if (!values.follow) return;
  let last = shown.at(-1)?.id ?? '';
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  for (;;) {
    const wait = new Promise<'tick'>((resolve) => setTimeout(resolve, OUTBOX_FOLLOW_MS, 'tick'));
    if ((await Promise.race([wait, stopped])) !== 'tick') return;
    // Until there is a first message, "newer" means newer than nothing: the newest page is taken as seen.
    const next = last
      ? await admin.listOutboxMessages({ channel, afterId: last, limit: 500 }, { timeoutMs: 10_000 })
      : {
          messages: (
            await admin.listOutboxMessages({ channel, limit }, { timeoutMs: 10_000 })
          ).messages.toReversed(),
        };
    for (const message of next.messages) printOutboxMessage(message);
    last = next.messages.at(-1)?.id ?? last;
  }
}

function printOutboxMessage(m: DateShape<OutboxMessage>): void {
  const at = m.createdAt?.toISOString() ?? '';
  const channel = Channel[m.channel].toLowerCase();
  process.stdout.write(
    `${at}  ${channel}  ${m.provider}  ${m.destination}  (notification ${m.notificationId})\n` +
      `${JSON.stringify(m.message, null, 2).replace(/^/gm, '  ')}\n`,
  );
}

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(usage);
    return;
  }
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  switch (command) {
    case 'serve':
      return serve(config, logger);
    case 'migrate':
      await withDatabase(config, logger, async () => {});
      process.stdout.write('migrations applied\n');
      return;
    case 'keys':
      return keys(config, logger, args);
    case 'send':
      return send(config, args);
    case 'providers':
      return providers(config, args);
    case 'outbox':
      return outbox(config, args);
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) process.stderr.write(`herald: ${error.message}\n\n${usage}`);
  else if (error instanceof ConfigError || error instanceof ProvidersFileError)
    process.stderr.write(`herald: ${error.message}\n`);
  else if (error instanceof ConnectError)
    process.stderr.write(`herald: ${error.rawMessage} (${error.code})\n`);
  else process.stderr.write(`herald: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode =
    error instanceof UsageError || error instanceof ConfigError || error instanceof ProvidersFileError
      ? 2
      : 1;
});
