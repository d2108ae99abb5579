// The Python path of docs/clients.md, run as a user would: stubs generated with the checked-in template
// (clients/templates/buf.gen.python.yaml: protoc and grpcio's plugin), from proto/ and from the schema that
// server reflection gives (as `grpcurl -protoset-out` saves it), then a grpcio client that Sends and streams
// against a live server. It needs Debian's protobuf-compiler, protobuf-compiler-grpc,
// python3-grpcio and python3-protobuf (HERALD_PYTHON overrides the interpreter); without them it is left
// out, except with CI=true, where their absence fails.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServerReflection } from '../../gen/grpc/reflection/v1/reflection_pb.js';
import { pgliteEngine } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';

const root = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
const ci = process.env.CI === 'true' || process.env.CI === '1';
const python = process.env.HERALD_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

/** What this machine lacks for the Python path, by the Debian package that brings it. */
function missingForPython(): string[] {
  const works = (command: string, args: string[]) =>
    spawnSync(command, args, { timeout: 10_000, stdio: 'ignore' }).status === 0;
  return [
    works(python, ['-c', 'import grpc, google.protobuf'])
      ? ''
      : `python3-grpcio python3-protobuf (for ${python})`,
    works('protoc', ['--version']) ? '' : 'protobuf-compiler',
    works('sh', ['-c', 'command -v grpc_python_plugin']) ? '' : 'protobuf-compiler-grpc',
  ].filter(Boolean);
}

const missing = missingForPython();

describe.runIf(missing.length > 0 && ci)('the Python client path under CI=true', () => {
  it('has protoc, grpcio and its plugin installed', () => {
    throw new Error(`CI=true but missing: ${missing.join(', ')} (apt-get install them; see .ci/run)`);
  });
});

/** The schema of both Herald services as server reflection gives it: a FileDescriptorSet, dependencies included. */
async function schemaFromReflection(baseUrl: string): Promise<Uint8Array> {
  const client = createClient(ServerReflection, createGrpcTransport({ baseUrl }));
  async function* questions() {
    for (const value of ['herald.v1.NotificationService', 'herald.v1.AdminService']) {
      yield { messageRequest: { case: 'fileContainingSymbol' as const, value } };
    }
  }
  const files = [];
  for await (const res of client.serverReflectionInfo(questions(), { timeoutMs: 10_000 })) {
    if (res.messageResponse.case !== 'fileDescriptorResponse') throw new Error(res.messageResponse.case);
    for (const bytes of res.messageResponse.value.fileDescriptorProto) {
      files.push(fromBinary(FileDescriptorProtoSchema, bytes));
    }
  }
  return toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files }));
}

const buf = (args: string[]) =>
  run(path.join(root, 'node_modules/.bin/buf'), args, { cwd: root, timeout: 60_000, killSignal: 'SIGKILL' });

describe.runIf(missing.length === 0)('a Python client generated with the checked-in buf template', () => {
  let server: TestServer;
  let work: string;
  beforeAll(async () => {
    server = await startTestServer(pgliteEngine);
    work = await mkdtemp(path.join(tmpdir(), 'herald-python-'));
    const template = ['--template', 'clients/templates/buf.gen.python.yaml'];
    await buf(['generate', ...template, '--output', path.join(work, 'proto')]);
    await writeFile(path.join(work, 'herald.binpb'), await schemaFromReflection(server.grpcUrl));
    await buf([
      'generate',
      path.join(work, 'herald.binpb'),
      ...template,
      '--path',
      'herald/v1',
      '--output',
      path.join(work, 'reflection'),
    ]);
  });
  afterAll(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it.each([
    { source: 'proto', port: 'native gRPC port' },
    { source: 'reflection', port: 'native gRPC port' },
    { source: 'proto', port: 'main port' },
  ])(
    'from $source, on the $port: Sends, replays on StreamNotifications and receives a live notification',
    async ({ source, port }) => {
      const user = `python-${source}-${port.split(' ')[0]}`;
      const { stdout } = await run(
        python,
        [
          path.join(root, 'test/clients/python/send_and_stream.py'),
          '--stubs',
          path.join(work, source),
          '--target',
          `127.0.0.1:${port === 'main port' ? server.herald.port : server.herald.grpcPort}`,
          '--user',
          user,
        ],
        { env: { ...process.env, HERALD_API_KEY: server.adminKey }, timeout: 60_000, killSignal: 'SIGKILL' },
      );
      const seen = JSON.parse(stdout) as {
        sent: string[];
        streamed: {
          id: string;
          seq: string;
          title: string;
          data: Record<string, unknown>;
          createdAt: string;
        }[];
      };
      expect(seen.sent).toHaveLength(2);
      expect(seen.streamed.map((n) => n.id)).toEqual(seen.sent);
      expect(seen.streamed.map((n) => n.title)).toEqual(['first', 'second']);
      expect(seen.streamed.map((n) => Number(n.seq))).toEqual([1, 2]);
      expect(seen.streamed[0]?.data).toEqual({ source: 'python', title: 'first' });
      expect(Date.parse(seen.streamed[0]!.createdAt)).not.toBeNaN();
      for (const notificationId of seen.sent) {
        const { notification } = await server.admin().getNotification({ notificationId });
        expect(notification?.userId).toBe(user);
      }
    },
  );
});
