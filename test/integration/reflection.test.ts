// gRPC server reflection, checked with a tool nobody here wrote: the real `buf curl` (a dev dependency) lists
// and calls Herald's services with no copy of proto/. The protocol's edges (dependencies, error_response,
// v1alpha) are checked with a Connect-ES client of the generated reflection services.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { fromBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as v1 from '../../gen/grpc/reflection/v1/reflection_pb.js';
import * as v1alpha from '../../gen/grpc/reflection/v1alpha/reflection_pb.js';
import { MAX_QUESTIONS_PER_STREAM } from '../../src/api/reflection.js';
import { pgliteEngine } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';

const buf = path.resolve(import.meta.dirname, '../../node_modules/.bin/buf');
const run = promisify(execFile);

const SERVICES = [
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
  'herald.v1.AdminService',
  'herald.v1.NotificationService',
];

/** `buf curl` against the server, bounded in time; its stdout, or its exit code and stderr when it fails. */
async function bufCurl(url: string, args: string[]): Promise<string> {
  const { stdout } = await run(
    buf,
    ['curl', '--http2-prior-knowledge', '--connect-timeout', '5', ...args, url],
    {
      timeout: 30_000,
      killSignal: 'SIGKILL',
    },
  );
  return stdout;
}

function lines(text: string): string[] {
  return text.split('\n').filter(Boolean).sort();
}

type Protocol = 'grpc' | 'grpcweb' | 'connect';
function transport(baseUrl: string, protocol: Protocol): Transport {
  if (protocol === 'grpc') return createGrpcTransport({ baseUrl });
  if (protocol === 'grpcweb') return createGrpcWebTransport({ baseUrl, httpVersion: '2' });
  return createConnectTransport({ baseUrl, httpVersion: '2' });
}

/** One reflection stream: each question asked in turn, the answers in order. */
async function ask(
  baseUrl: string,
  questions: MessageInitShape<typeof v1.ServerReflectionRequestSchema>['messageRequest'][],
  protocol: Protocol = 'grpc',
): Promise<v1.ServerReflectionResponse['messageResponse'][]> {
  const client = createClient(v1.ServerReflection, transport(baseUrl, protocol));
  async function* requests() {
    for (const messageRequest of questions) yield { host: '', messageRequest };
  }
  const answers: v1.ServerReflectionResponse['messageResponse'][] = [];
  for await (const res of client.serverReflectionInfo(requests(), { timeoutMs: 10_000 })) {
    answers.push(res.messageResponse);
  }
  return answers;
}

function fileNames(answer: v1.ServerReflectionResponse['messageResponse'] | undefined): string[] {
  if (answer?.case !== 'fileDescriptorResponse') throw new Error(`expected files, got ${answer?.case}`);
  return answer.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name);
}

describe('gRPC server reflection (HERALD_REFLECTION default)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(pgliteEngine);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it.each(['grpc', 'grpcweb', 'connect'] as const)(
    'buf curl --list-services over %s lists every service without credentials',
    async (protocol) => {
      const out = await bufCurl(server.url, ['--protocol', protocol, '--list-services']);
      expect(lines(out)).toEqual(SERVICES);
    },
  );

  it('buf curl --list-services on the native gRPC port lists every service without credentials', async () => {
    const out = await bufCurl(server.grpcUrl, ['--protocol', 'grpc', '--list-services']);
    expect(lines(out)).toEqual(SERVICES);
    const [answer] = await ask(server.grpcUrl, [
      { case: 'fileContainingSymbol', value: 'herald.v1.AdminService' },
    ]);
    expect(fileNames(answer)).toContain('herald/v1/admin_service.proto');
  });

  it('answers clients that only speak grpc.reflection.v1alpha', async () => {
    const out = await bufCurl(server.url, [
      '--protocol',
      'grpc',
      '--reflect-protocol',
      'grpc-v1alpha',
      '--list-methods',
    ]);
    expect(lines(out)).toContain('herald.v1.NotificationService/Send');
    expect(lines(out)).toContain('herald.v1.AdminService/PutRoutingRule');

    const client = createClient(v1alpha.ServerReflection, createGrpcTransport({ baseUrl: server.grpcUrl }));
    async function* one() {
      yield { host: '', messageRequest: { case: 'listServices' as const, value: '' } };
    }
    const answers = [];
    for await (const res of client.serverReflectionInfo(one(), { timeoutMs: 10_000 })) answers.push(res);
    expect(answers).toHaveLength(1);
    const first = answers[0]!.messageResponse;
    expect(first.case).toBe('listServicesResponse');
    if (first.case === 'listServicesResponse') {
      expect(first.value.service.map((s) => s.name).sort()).toEqual(SERVICES);
    }
  });

  it('a Send made by buf curl with the schema from reflection alone is stored', async () => {
    const out = await bufCurl(`${server.grpcUrl}/herald.v1.NotificationService/Send`, [
      '--protocol',
      'grpc',
      '-H',
      `authorization: Bearer ${server.adminKey}`,
      '-d',
      JSON.stringify({
        userId: 'reflection-user',
        type: 'reflection.checked',
        title: 'Found by reflection',
        data: { orderId: 'o-1' },
        channels: ['CHANNEL_IN_APP'],
        idempotencyKey: 'reflection-1',
        sendAt: new Date(Date.now() + 86_400_000).toISOString(),
      }),
    ]);
    const sent = JSON.parse(out) as { notificationId: string };
    const { notification } = await server.admin().getNotification({ notificationId: sent.notificationId });
    expect(notification?.userId).toBe('reflection-user');
    expect(notification?.title).toBe('Found by reflection');
    expect(notification?.data).toEqual({ orderId: 'o-1' });
  });

  it('still asks for credentials on the described services', async () => {
    const failure = await bufCurl(`${server.url}/herald.v1.NotificationService/GetNotification`, [
      '--protocol',
      'grpc',
      '-d',
      '{"notificationId":"none"}',
    ]).then(
      () => undefined,
      (error: { stdout: string; stderr: string }) => error,
    );
    expect(failure?.stderr ?? '').toMatch(/unauthenticated/);
  });

  it.each(['grpc', 'grpcweb', 'connect'] as const)(
    'sends a file with its dependencies, and leaves out what the stream already has (%s)',
    async (protocol) => {
      const [service, types] = await ask(
        server.url,
        [
          { case: 'fileContainingSymbol', value: 'herald.v1.NotificationService.Send' },
          { case: 'fileByFilename', value: 'herald/v1/types.proto' },
        ],
        protocol,
      );
      expect(fileNames(service).sort()).toEqual([
        'google/protobuf/struct.proto',
        'google/protobuf/timestamp.proto',
        'herald/v1/notification_service.proto',
        'herald/v1/types.proto',
      ]);
      expect(fileNames(service)[0]).toBe('herald/v1/notification_service.proto');
      // The file asked for is always sent; its dependencies went with the first answer.
      expect(fileNames(types)).toEqual(['herald/v1/types.proto']);
    },
  );

  it('finds messages, nested names and fields by symbol, and the well-known types by file name', async () => {
    const answers = await ask(server.url, [
      { case: 'fileContainingSymbol', value: 'herald.v1.SendRequest' },
      { case: 'fileContainingSymbol', value: 'herald.v1.SendRequest.user_id' },
      { case: 'fileContainingSymbol', value: 'grpc.health.v1.HealthCheckResponse.ServingStatus' },
      { case: 'fileByFilename', value: 'google/protobuf/timestamp.proto' },
    ]);
    expect(answers.map((a) => fileNames(a)[0])).toEqual([
      'herald/v1/notification_service.proto',
      'herald/v1/notification_service.proto',
      'grpc/health/v1/health.proto',
      'google/protobuf/timestamp.proto',
    ]);
  });

  it('describes the files with their language options', async () => {
    const [answer] = await ask(server.url, [{ case: 'fileByFilename', value: 'herald/v1/types.proto' }]);
    if (answer?.case !== 'fileDescriptorResponse') throw new Error(`expected files, got ${answer?.case}`);
    const file = fromBinary(FileDescriptorProtoSchema, answer.value.fileDescriptorProto[0]!);
    expect(file.options?.goPackage).toBe('github.com/herald-notify/herald/gen/go/herald/v1;heraldv1');
    expect(file.options?.javaPackage).toBe('dev.herald.v1');
  });

  it('answers what it does not know with error_response NOT_FOUND, and the stream goes on', async () => {
    const answers = await ask(server.url, [
      { case: 'fileContainingSymbol', value: 'herald.v1.NoSuchThing' },
      { case: 'fileByFilename', value: 'herald/v1/missing.proto' },
      {
        case: 'fileContainingExtension',
        value: { containingType: 'herald.v1.SendRequest', extensionNumber: 100 },
      },
      { case: 'allExtensionNumbersOfType', value: 'herald.v1.NoSuchMessage' },
      { case: 'allExtensionNumbersOfType', value: 'herald.v1.SendRequest' },
      { case: 'listServices', value: '' },
    ]);
    expect(answers.slice(0, 4).map((a) => a?.case === 'errorResponse' && a.value.errorCode)).toEqual([
      Code.NotFound,
      Code.NotFound,
      Code.NotFound,
      Code.NotFound,
    ]);
    expect(answers[4]).toEqual(
      expect.objectContaining({
        case: 'allExtensionNumbersResponse',
        value: expect.objectContaining({ baseTypeName: 'herald.v1.SendRequest', extensionNumber: [] }),
      }),
    );
    expect(answers[5]?.case).toBe('listServicesResponse');
  });

  it('ends the stream with INVALID_ARGUMENT for a request that asks nothing', async () => {
    const error = await ask(server.url, [{ case: undefined }]).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.InvalidArgument);
  });

  it('answers at most MAX_QUESTIONS_PER_STREAM questions on one stream, then RESOURCE_EXHAUSTED', async () => {
    const list = { case: 'listServices' as const, value: '' };
    const fine = await ask(
      server.url,
      Array.from({ length: MAX_QUESTIONS_PER_STREAM }, () => list),
    );
    expect(fine).toHaveLength(MAX_QUESTIONS_PER_STREAM);
    const error = await ask(
      server.url,
      Array.from({ length: MAX_QUESTIONS_PER_STREAM + 1 }, () => list),
    ).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.ResourceExhausted);
  });
});

describe('gRPC server reflection with HERALD_REFLECTION=false', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(pgliteEngine, { overrides: { HERALD_REFLECTION: 'false' } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('is not served: buf curl --list-services fails and the services answer UNIMPLEMENTED', async () => {
    const failure = await bufCurl(server.url, ['--protocol', 'grpc', '--list-services']).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure?.code).not.toBe(0);
    expect(failure?.stderr).toMatch(/unimplemented/i);
    const error = await ask(server.url, [{ case: 'listServices', value: '' }]).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.Unimplemented);
  });
});
