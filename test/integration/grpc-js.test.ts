// An independent client: @grpc/grpc-js with the .proto files loaded at run time by @grpc/proto-loader. It
// shares no code with the server's generated types, so it checks the wire contract itself.
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgliteEngine } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';

// protobufjs bundles google/protobuf/struct.proto with camelCase field names, even with keepCase.
const protoRoot = path.resolve(import.meta.dirname, '../../proto');

type Unary = (
  request: object,
  metadata: grpc.Metadata,
  callback: (error: grpc.ServiceError | null, response: Record<string, unknown>) => void,
) => void;

function loadClient(address: string): { herald: Record<string, Unary>; health: Record<string, Unary> } {
  const definition = protoLoader.loadSync(
    ['herald/v1/notification_service.proto', 'grpc/health/v1/health.proto'],
    {
      includeDirs: [protoRoot],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    },
  );
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    herald: { v1: { NotificationService: grpc.ServiceClientConstructor } };
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  const credentials = grpc.credentials.createInsecure();
  return {
    herald: new loaded.herald.v1.NotificationService(address, credentials) as unknown as Record<
      string,
      Unary
    >,
    health: new loaded.grpc.health.v1.Health(address, credentials) as unknown as Record<string, Unary>,
  };
}

function call(client: Record<string, Unary>, method: string, request: object, key?: string) {
  const metadata = new grpc.Metadata();
  if (key) metadata.set('authorization', `Bearer ${key}`);
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    client[method]!.call(client, request, metadata, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

describe('@grpc/grpc-js client with proto-loader', () => {
  let server: TestServer;
  let clients: ReturnType<typeof loadClient>;
  beforeAll(async () => {
    server = await startTestServer(pgliteEngine);
    clients = loadClient(`127.0.0.1:${server.herald.port}`);
  });
  afterAll(async () => {
    for (const c of Object.values(clients)) (c as unknown as grpc.Client).close();
    await server?.stop();
  });

  it('calls every implemented RPC and reads the answers', async () => {
    const { herald } = clients;
    const key = server.adminKey;
    const request = {
      user_id: 'grpcjs-user',
      type: 'order.shipped',
      title: 'Shipped',
      data: { fields: { orderId: { stringValue: 'o-9' } } },
      channels: ['CHANNEL_IN_APP'],
      idempotency_key: 'grpcjs-1',
    };
    const sent = await call(herald, 'Send', request, key);
    expect(sent.seq).toBe('1');
    expect(sent.deliveries).toEqual([
      expect.objectContaining({ channel: 'CHANNEL_IN_APP', status: 'DELIVERY_STATUS_QUEUED' }),
    ]);

    const again = await call(herald, 'Send', request, key);
    expect(again).toMatchObject({ notification_id: sent.notification_id, idempotent_replay: true });

    const batch = await call(
      herald,
      'SendBatch',
      { requests: [{ user_id: 'grpcjs-user', type: 't', title: 'b' }] },
      key,
    );
    expect((batch.results as { seq: string }[])[0]?.seq).toBe('2');

    const got = await call(herald, 'GetNotification', { notification_id: sent.notification_id }, key);
    expect(got.notification).toMatchObject({
      id: sent.notification_id,
      user_id: 'grpcjs-user',
      data: { fields: { orderId: { stringValue: 'o-9', kind: 'stringValue' } } },
    });

    const token = await call(
      herald,
      'RegisterToken',
      { user_id: 'grpcjs-user', platform: 'PLATFORM_FCM', token: 'fcm-token-123:abc' },
      key,
    );
    expect(token.token).toMatchObject({ user_id: 'grpcjs-user', platform: 'PLATFORM_FCM', active: true });
    await call(herald, 'UnregisterToken', { platform: 'PLATFORM_FCM', token: 'fcm-token-123:abc' }, key);

    await call(
      herald,
      'UpdatePreferences',
      { user_id: 'grpcjs-user', channels: [{ channel: 'CHANNEL_EMAIL', enabled: false }] },
      key,
    );
    const prefs = await call(herald, 'GetPreferences', { user_id: 'grpcjs-user' }, key);
    expect(prefs.preferences).toMatchObject({ channels: [{ channel: 'CHANNEL_EMAIL', enabled: false }] });
  });

  it('gets INVALID_ARGUMENT naming the field, and UNAUTHENTICATED without a key', async () => {
    const invalid = await call(
      clients.herald,
      'Send',
      { user_id: 'u', type: 'bad type!' },
      server.adminKey,
    ).catch((e: grpc.ServiceError) => e);
    expect(invalid).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    // grpc-js decodes grpc-message with decodeURI, which leaves reserved characters such as ':' encoded.
    expect(decodeURIComponent((invalid as grpc.ServiceError).details)).toContain('type: must be');

    const anonymous = await call(clients.herald, 'Send', { user_id: 'u', type: 't' }).catch(
      (e: grpc.ServiceError) => e,
    );
    expect(anonymous).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
  });

  it('answers the standard health check without credentials', async () => {
    expect(await call(clients.health, 'Check', { service: '' })).toEqual({ status: 'SERVING' });
    const unknown = await call(clients.health, 'Check', { service: 'nope.Service' }).catch(
      (e: grpc.ServiceError) => e,
    );
    expect(unknown).toMatchObject({ code: grpc.status.NOT_FOUND });
  });
});
