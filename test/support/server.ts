// Starts a real Herald server on 127.0.0.1:0 against a test database, with an admin key and a JWT secret.
import { Writable } from 'node:stream';
import { SignJWT } from 'jose';
import {
  AdminService,
  type AdminServiceClient,
  createClient,
  createHeraldTransport,
  type HeraldTransportOptions,
  NotificationService,
  type NotificationServiceClient,
} from '../../clients/node/index.js';
import { type Config, loadConfig } from '../../src/config.js';
import type { ApiKeyScope } from '../../src/core/api-key.js';
import { createLogger } from '../../src/observability/logger.js';
import { type Herald, type StartOptions, startHerald } from '../../src/server/index.js';
import { createApiKey } from '../../src/store/index.js';
import type { Engine, TestDatabase } from './engines.js';

export const JWT_SECRET = 'test-secret-that-is-at-least-32-bytes-long!';

/** Log lines the server wrote, for asserting what it never logs. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
  text(): string {
    return this.lines.join('\n');
  }
}

/**
 * How a test's client reaches the server: gRPC goes to the native gRPC port (the fast path clients use by
 * default); 'grpc-main-port' is gRPC to the main port, served by connect-node with Connect and gRPC-Web.
 */
export type TestProtocol = NonNullable<HeraldTransportOptions['protocol']> | 'grpc-main-port';

export interface TestServer {
  herald: Herald;
  db: TestDatabase;
  /** The main port: Connect, gRPC-Web and gRPC (connect-node), plain HTTP and WebSockets. */
  url: string;
  /** The native gRPC port (@grpc/grpc-js). */
  grpcUrl: string;
  adminKey: string;
  logs: LogCapture;
  /** The generated client (protobuf messages as they are, one attempt per call) over the Node client's transport,
   * speaking gRPC (default, to the native gRPC port), Connect or gRPC-Web. */
  client(credential: { apiKey?: string; token?: string }, protocol?: TestProtocol): NotificationServiceClient;
  admin(protocol?: TestProtocol): NotificationServiceClient;
  /** AdminService with the admin key (or another key). */
  adminService(apiKey?: string): AdminServiceClient;
  keyWith(...scopes: ApiKeyScope[]): Promise<string>;
  userToken(userId: string, options?: { expiresIn?: string; secret?: string }): Promise<string>;
  stop(): Promise<void>;
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    HERALD_HOST: '127.0.0.1',
    HERALD_PORT: '0',
    HERALD_GRPC_PORT: '0',
    HERALD_JWT_SECRET: JWT_SECRET,
    HERALD_LOG_LEVEL: 'info',
    HERALD_SHUTDOWN_TIMEOUT_MS: '2000',
    ...overrides,
  });
}

export async function signUserToken(
  userId: string,
  { expiresIn = '5m', secret = JWT_SECRET }: { expiresIn?: string; secret?: string } = {},
): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}

export async function startTestServer(
  engine: Engine,
  options: {
    overrides?: Record<string, string>;
    db?: TestDatabase;
    now?: () => Date;
    providers?: StartOptions['deliveryProviders'];
  } = {},
): Promise<TestServer> {
  const db = options.db ?? (await engine.open());
  const logs = new LogCapture();
  const config = testConfig({ ...(db.url ? { DATABASE_URL: db.url } : {}), ...options.overrides });
  const herald = await startHerald({
    config,
    logger: createLogger('info', logs),
    database: db.database,
    now: options.now,
    deliveryProviders: options.providers,
  });
  const adminKey = herald.bootstrapKey ?? (await createApiKey(db.database.db, 'test-admin', ['admin'])).key;
  const url = `http://127.0.0.1:${herald.port}`;
  const grpcUrl = `http://127.0.0.1:${herald.grpcPort}`;
  const client: TestServer['client'] = (credential, protocol = 'grpc') =>
    createClient(NotificationService, createHeraldTransport({ ...transportTo(protocol), ...credential }));
  const transportTo = (protocol: TestProtocol): HeraldTransportOptions =>
    protocol === 'grpc'
      ? { baseUrl: grpcUrl, protocol }
      : protocol === 'grpc-main-port'
        ? { baseUrl: url, protocol: 'grpc' }
        : { baseUrl: url, protocol };
  return {
    herald,
    db,
    url,
    grpcUrl,
    adminKey,
    logs,
    client,
    admin: (protocol) => client({ apiKey: adminKey }, protocol),
    adminService: (apiKey = adminKey) =>
      createClient(AdminService, createHeraldTransport({ baseUrl: grpcUrl, apiKey })),
    async keyWith(...scopes) {
      return (await createApiKey(db.database.db, `test-${scopes.join('-')}`, scopes)).key;
    },
    userToken: signUserToken,
    async stop() {
      await herald.close();
      if (!options.db) await db.destroy();
    },
  };
}
