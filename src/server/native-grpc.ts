// Native gRPC served by @grpc/grpc-js, from the same service implementations and the same interceptors as
// the Connect handler on the main port (authentication and scopes, error mapping, metrics, tracing). connect-node
// spends several times a bare HTTP/2 handler's CPU per call; grpc-js close to it. What Connect does around a
// handler is redone here, lean:
//
// - the methods come from the same `routes` function, run against a router that only records them;
// - grpc-js hands over the request bytes (an identity deserializer), so a message that cannot be parsed is
//   answered INVALID_ARGUMENT naming the request type, as on the main port, not grpc-js's INTERNAL;
// - each call is one object that is at once the interceptors' request and the handler's context; what few
//   calls need (an abort signal, the request headers as `Headers`, response headers) is made on first use;
// - errors leave as gRPC status: the ConnectError's code and raw message, its metadata and details as trailers;
// - limits are grpc-js's own settings (request size, concurrent streams, idle connections, keepalive); deadlines
//   are grpc-js's (DEADLINE_EXCEEDED, then the call is cancelled); a cancelled call aborts its handler's signal.
//
// The connections come from the listener (its caps per server and per address apply to this port too), which
// hands each accepted socket to grpc-js's connection injector: grpc-js owns every stream of a connection, so
// this port speaks only native gRPC.
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  isMessage,
  toBinary,
} from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextKey,
  type ContextValues,
  createMethodImplSpec,
  createServiceImplSpec,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from '@connectrpc/connect';
import { setTrailerStatus } from '@connectrpc/connect/protocol-grpc';
import * as grpc from '@grpc/grpc-js';
import { methodName } from '../observability/metrics.js';
import { unparsableRequest } from './rpc-handler.js';

export interface NativeGrpcOptions {
  routes: (router: ConnectRouter) => void;
  /** Connect interceptors, outermost first (as `createConnectRouter` takes them). */
  interceptors: readonly Interceptor[];
  /** Largest request message, in bytes (RESOURCE_EXHAUSTED beyond). */
  maxRequestBytes: number;
  /** HTTP/2 streams open at once on one connection. */
  maxConcurrentStreams: number;
  /** A connection without calls for this long is closed (GOAWAY). */
  idleTimeoutMs: number;
  /** A unary or server-streaming request must have ended (half-closed) this long after its headers. */
  requestTimeoutMs: number;
  /** A handler that failed other than by the call ending (a response that could not be written): logged. */
  onHandlerError: (method: string, error: unknown) => void;
}

export interface NativeGrpc {
  /** Every method served, as its gRPC path. */
  readonly paths: readonly string[];
  /** Takes a connection whose first bytes are an HTTP/2 preface (still unread on the socket). */
  accept(socket: Socket): void;
  /** Calls being handled right now. */
  inFlight(): number;
  /**
   * Graceful stop: GOAWAY to every connection, calls in flight finish within `deadlineMs`; at the deadline
   * `onDeadline` runs, what is left is answered `reason` and the connections are closed.
   */
  close(deadlineMs: number, reason: ConnectError, onDeadline: () => void): Promise<void>;
}

/** After the deadline, cancelled calls get this long to send their status before the connections go. */
const CANCEL_GRACE_MS = 500;
/** Keepalive pings on idle connections, so dead peers are noticed (grpc-js closes after the ping timeout). */
const KEEPALIVE_MS = 60_000;
const KEEPALIVE_TIMEOUT_MS = 20_000;

type AnyFn = (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;
type GrpcStatus = Partial<grpc.StatusObject> & { code: grpc.status };
/** What every kind of grpc-js server call has, and this adapter uses. */
interface GrpcCall {
  readonly cancelled: boolean;
  readonly metadata: grpc.Metadata;
  getDeadline(): grpc.Deadline;
  getHost(): string;
  getPath(): string;
  sendMetadata(metadata: grpc.Metadata): void;
  once(event: 'cancelled', listener: () => void): unknown;
}
type WritableCall = grpc.ServerWritableStream<Buffer, unknown> | grpc.ServerDuplexStream<Buffer, unknown>;

/** The methods `routes` registers, in order, as Connect's router would see them. */
export function collectMethods(routes: (router: ConnectRouter) => void): MethodImplSpec[] {
  const methods: MethodImplSpec[] = [];
  const router: ConnectRouter = {
    handlers: [],
    service(service, implementation) {
      methods.push(...Object.values(createServiceImplSpec(service, implementation).methods));
      return router;
    },
    rpc(method, implementation) {
      methods.push(createMethodImplSpec(method, implementation));
      return router;
    },
  };
  routes(router);
  return methods;
}

/** Connect's interceptor chain around `inner`: the first interceptor is the outermost. */
function chain(inner: AnyFn, interceptors: readonly Interceptor[]): AnyFn {
  let next = inner;
  for (let i = interceptors.length - 1; i >= 0; i--) next = interceptors[i]!(next) as AnyFn;
  return next;
}

/**
 * Request headers over grpc-js's metadata, read in place by `get` and `has` (all the interceptors ask for);
 * anything else works on a `Headers` copy made on first use. Binary (`-bin`) values read as base64, as on the
 * wire. Handed to Connect code as `Headers` (which it only calls methods of).
 */
class MetadataHeaders {
  #metadata: grpc.Metadata;
  #copy: Headers | undefined;

  constructor(metadata: grpc.Metadata) {
    this.#metadata = metadata;
  }

  #headers(): Headers {
    if (!this.#copy) {
      this.#copy = new Headers();
      for (const [key, values] of Object.entries(this.#metadata.toJSON())) {
        for (const value of values) this.#copy.append(key, metadataText(value));
      }
    }
    return this.#copy;
  }

  get(name: string): string | null {
    if (this.#copy) return this.#copy.get(name);
    const values = this.#metadata.get(name);
    if (values.length === 0) return null;
    return values.length === 1 ? metadataText(values[0]!) : values.map(metadataText).join(', ');
  }
  has(name: string): boolean {
    return this.#copy ? this.#copy.has(name) : this.#metadata.get(name).length > 0;
  }
  append(name: string, value: string): void {
    this.#headers().append(name, value);
  }
  set(name: string, value: string): void {
    this.#headers().set(name, value);
  }
  delete(name: string): void {
    this.#headers().delete(name);
  }
  getSetCookie(): string[] {
    return this.#headers().getSetCookie();
  }
  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    this.#headers().forEach(callback, thisArg);
  }
  keys(): ReturnType<Headers['keys']> {
    return this.#headers().keys();
  }
  values(): ReturnType<Headers['values']> {
    return this.#headers().values();
  }
  entries(): ReturnType<Headers['entries']> {
    return this.#headers().entries();
  }
  [Symbol.iterator](): ReturnType<Headers['entries']> {
    return this.#headers().entries();
  }
}

function metadataText(value: grpc.MetadataValue): string {
  return typeof value === 'string' ? value : value.toString('base64');
}

/** Headers (response headers, or an error's metadata with its status) as grpc-js metadata. */
function toMetadata(headers: Headers, skipStatus: boolean): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [key, value] of headers) {
    if (skipStatus && (key === 'grpc-status' || key === 'grpc-message')) continue;
    if (key.endsWith('-bin')) {
      for (const part of value.split(',')) metadata.add(key, Buffer.from(part.trim(), 'base64'));
    } else metadata.add(key, value);
  }
  return metadata;
}

function statusOf(error: unknown): GrpcStatus {
  const connectError = ConnectError.from(error);
  const status: GrpcStatus = { code: connectError.code as number, details: connectError.rawMessage };
  if (connectError.details.length > 0 || !isEmpty(connectError.metadata)) {
    const trailer = new Headers(connectError.metadata);
    setTrailerStatus(trailer, connectError);
    status.metadata = toMetadata(trailer, true);
  }
  return status;
}

function isEmpty(headers: Headers): boolean {
  for (const _ of headers.keys()) return false;
  return true;
}

/** Connect's ContextValues with its methods on a prototype (connect's own makes three closures per call). */
class CallValues implements ContextValues {
  get<T>(key: ContextKey<T>): T {
    const values = this as unknown as Record<symbol, T>;
    return key.id in values ? values[key.id]! : key.defaultValue;
  }
  set<T>(key: ContextKey<T>, value: T): this {
    (this as unknown as Record<symbol, T>)[key.id] = value;
    return this;
  }
  delete(key: ContextKey<unknown>): this {
    delete (this as unknown as Record<symbol, unknown>)[key.id];
    return this;
  }
}

/** A handler's answer as the interceptors see it (UnaryResponse or StreamResponse). */
class NativeResponse {
  constructor(
    readonly stream: boolean,
    readonly service: DescService,
    readonly method: DescMethod,
    readonly message: unknown,
    private readonly call: NativeCall,
  ) {}
  get header(): Headers {
    return this.call.responseHeader;
  }
  get trailer(): Headers {
    return this.call.responseTrailer;
  }
}

/**
 * One call: the interceptors' request (UnaryRequest or StreamRequest) and the handler's context in one object.
 * What most calls never touch is made when first read.
 */
class NativeCall {
  readonly requestMethod = 'POST';
  readonly protocolName = 'grpc';
  readonly contextValues: ContextValues = new CallValues();
  /** Set once the call is answered (or cancelled): later answers are dropped. */
  done = false;
  /** Answers the call with an error status now, however it is answered (shutdown's deadline). */
  fail: (status: GrpcStatus) => void = () => {};
  #controller: AbortController | undefined;
  #header: Headers | undefined;
  #responseHeader: Headers | undefined;
  #responseTrailer: Headers | undefined;

  constructor(
    readonly stream: boolean,
    readonly service: DescService,
    readonly method: DescMethod,
    readonly message: unknown,
    readonly call: GrpcCall,
  ) {}

  get values(): ContextValues {
    return this.contextValues;
  }
  get url(): string {
    return `http://${this.call.getHost()}${this.call.getPath()}`;
  }
  get header(): Headers {
    this.#header ??= new MetadataHeaders(this.call.metadata) as unknown as Headers;
    return this.#header;
  }
  get requestHeader(): Headers {
    return this.header;
  }
  get responseHeader(): Headers {
    this.#responseHeader ??= new Headers();
    return this.#responseHeader;
  }
  get responseTrailer(): Headers {
    this.#responseTrailer ??= new Headers();
    return this.#responseTrailer;
  }
  /** Aborted when the call is cancelled (by the client, its deadline, or shutdown). */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      // grpc-js emits 'cancelled' when the call ends, whichever way.
      if (this.call.cancelled) this.abort(cancelled());
      else this.call.once('cancelled', () => this.abort(cancelled()));
    }
    return this.#controller.signal;
  }
  timeoutMs(): number | undefined {
    const deadline = this.call.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
  }

  abort(reason: ConnectError): void {
    this.#controller?.abort(reason);
  }

  /** Response headers a handler or interceptor set: sent before the first message. */
  sendHeaders(): void {
    if (this.#responseHeader && !isEmpty(this.#responseHeader)) {
      this.call.sendMetadata(toMetadata(this.#responseHeader, false));
    }
  }
  trailers(): grpc.Metadata | undefined {
    return this.#responseTrailer && !isEmpty(this.#responseTrailer)
      ? toMetadata(this.#responseTrailer, true)
      : undefined;
  }
}

function cancelled(): ConnectError {
  return new ConnectError('the call was cancelled', Code.Canceled);
}

/** A Buffer viewing the same bytes (grpc-js copies serialized messages with Buffer#copy). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function parse(schema: DescMessage, bytes: Buffer): unknown {
  try {
    return fromBinary(schema, bytes);
  } catch (error) {
    throw new ConnectError(
      unparsableRequest(schema.typeName, (error as Error).message),
      Code.InvalidArgument,
    );
  }
}

/**
 * A client stream's messages, parsed. Read without destroying the call when the messages end (a Readable's
 * default iterator does), which would take its writable side, the responses, down with it.
 */
async function* parsedMessages(schema: DescMessage, call: Readable): AsyncIterable<unknown> {
  for await (const bytes of call.iterator({ destroyOnReturn: false })) yield parse(schema, bytes as Buffer);
}

async function* one<T>(value: T): AsyncIterable<T> {
  yield value;
}

async function single<T>(messages: AsyncIterable<T>): Promise<T> {
  for await (const message of messages) return message;
  throw new ConnectError('the request has no message', Code.InvalidArgument);
}

async function* asMessages(schema: DescMessage, outputs: AsyncIterable<unknown>): AsyncIterable<unknown> {
  for await (const output of outputs) yield asMessage(schema, output);
}

function asMessage(schema: DescMessage, output: unknown): unknown {
  return isMessage(output, schema) ? output : create(schema, output as never);
}

/**
 * What grpc-js leaves to the application, done where grpc-js lets it be done: in a server interceptor, on the
 * innermost call object it hands over (the call itself, not a wrapper: statuses grpc-js sends on its own go
 * through `this.sendStatus` of that object, past any wrapper).
 *
 * - Two client mistakes grpc-js answers INTERNAL before any handler runs, a compressed message that does not
 *   decompress and a `grpc-timeout` it cannot read, are answered INVALID_ARGUMENT, worded as on the main port.
 * - A request that has not ended (half-closed) within the request timeout is answered DEADLINE_EXCEEDED, as
 *   the main port resets an HTTP/2 request whose body has not ended by then (streams of requests, reflection,
 *   included: one stream cannot hold a call open for longer).
 * - A request with no complete message, or with two for a method that takes one, is INVALID_ARGUMENT, not
 *   grpc-js's UNIMPLEMENTED (the method exists; the request is malformed).
 *
 * Both replace a method of grpc-js's public call interface on that instance (`sendStatus`, `start`); the
 * tests send each case to every method.
 */
function callGuards(requestTimeoutMs: number): { interceptor: grpc.ServerInterceptor; stop(): void } {
  type Call = grpc.ServerInterceptingCallInterface;
  /** Calls whose request has not ended, in start order, with when they started. */
  const pending = new Map<Call, number>();
  const sweep = setInterval(
    () => {
      const deadline = performance.now() - requestTimeoutMs;
      for (const [call, started] of pending) {
        if (started > deadline) break;
        pending.delete(call);
        call.sendStatus({
          code: grpc.status.DEADLINE_EXCEEDED,
          details: `request: not complete within ${requestTimeoutMs} ms`,
        });
      }
    },
    Math.max(10, Math.min(1_000, Math.floor(requestTimeoutMs / 4))),
  ).unref();

  // Per call, only two assignments and a map entry: the replacements are shared functions of `this` (the call)
  // calling the class's own methods, and the listener wrapper is a class, so no closure is made per call.
  let sendStatusOf: Call['sendStatus'] | undefined;
  let startOf: Call['start'] | undefined;
  function sendStatus(this: Call, status: SentStatus) {
    pending.delete(this);
    const mistake =
      status.code === grpc.status.INTERNAL || status.code === grpc.status.UNIMPLEMENTED
        ? asClientMistake(status)
        : status;
    sendStatusOf!.call(this, mistake);
  }
  function start(this: Call, listener: ServerCallListener) {
    startOf!.call(this, new RequestEndListener(this, listener, pending));
  }

  const interceptor: grpc.ServerInterceptor = (_method, call) => {
    sendStatusOf ??= call.sendStatus;
    startOf ??= call.start;
    if (call.sendStatus !== sendStatusOf || call.start !== startOf) {
      throw new Error('grpc-js call objects no longer share their methods; the call guards need updating');
    }
    call.sendStatus = sendStatus;
    pending.set(call, performance.now());
    call.start = start;
    // The interface grpc-js hands over is all it asks back; its type names the wrapper class instead.
    return call as grpc.ServerInterceptingCall;
  };
  return { interceptor, stop: () => clearInterval(sweep) };
}

/** Passes everything on, and notes when the request has ended (or the call was cancelled). */
class RequestEndListener implements ServerCallListener {
  constructor(
    private readonly call: grpc.ServerInterceptingCallInterface,
    private readonly listener: ServerCallListener,
    private readonly pending: Map<grpc.ServerInterceptingCallInterface, number>,
  ) {}
  onReceiveMetadata(metadata: grpc.Metadata): void {
    this.listener.onReceiveMetadata(metadata);
  }
  onReceiveMessage(message: unknown): void {
    this.listener.onReceiveMessage(message);
  }
  onReceiveHalfClose(): void {
    this.pending.delete(this.call);
    this.listener.onReceiveHalfClose();
  }
  onCancel(): void {
    this.pending.delete(this.call);
    this.listener.onCancel();
  }
}

/** What grpc-js's call reports to its listener (its type is not exported by name). */
type ServerCallListener = Parameters<grpc.ServerInterceptingCallInterface['start']>[0];

type SentStatus = Parameters<grpc.ServerInterceptingCallInterface['sendStatus']>[0];

function asClientMistake(status: SentStatus): SentStatus {
  if (status.details === 'Failed to decompress message') {
    return {
      ...status,
      code: grpc.status.INVALID_ARGUMENT,
      details: 'request: the compressed message could not be decompressed',
    };
  }
  if (status.details?.startsWith('Received no request message')) {
    return { ...status, code: grpc.status.INVALID_ARGUMENT, details: 'request: no complete request message' };
  }
  if (status.details?.startsWith('Received a second request message')) {
    return {
      ...status,
      code: grpc.status.INVALID_ARGUMENT,
      details: 'request: more than one request message for a method that takes one',
    };
  }
  if (status.code !== grpc.status.INTERNAL) return status;
  if (status.details?.startsWith('Invalid grpc-timeout value')) {
    return { ...status, code: grpc.status.INVALID_ARGUMENT, details: `request: ${status.details}` };
  }
  return status;
}

export function createNativeGrpc(options: NativeGrpcOptions): NativeGrpc {
  const guards = callGuards(options.requestTimeoutMs);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxRequestBytes,
    'grpc.max_concurrent_streams': options.maxConcurrentStreams,
    'grpc.max_connection_idle_ms': options.idleTimeoutMs,
    'grpc.keepalive_time_ms': KEEPALIVE_MS,
    'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
    // channelz keeps per-call statistics nobody here reads.
    'grpc.enable_channelz': 0,
    interceptors: [guards.interceptor],
  });
  const live = new Set<NativeCall>();
  const paths: string[] = [];

  for (const spec of collectMethods(options.routes)) {
    const { method } = spec;
    const service = method.parent;
    const name = methodName(method);
    const path = `/${name}`;
    const serialize = (message: unknown) => asBuffer(toBinary(method.output, message as never));
    const deserialize = (bytes: Buffer) => bytes;
    paths.push(path);

    if (spec.kind === 'unary') {
      const invoke = chain(async (req) => {
        const call = req as unknown as NativeCall;
        const output = await spec.impl(req.message as never, call as unknown as HandlerContext);
        return new NativeResponse(
          false,
          service,
          method,
          asMessage(method.output, output),
          call,
        ) as unknown as UnaryResponse;
      }, options.interceptors);
      const handle: grpc.handleUnaryCall<Buffer, unknown> = (grpcCall, callback) => {
        let request: unknown;
        try {
          request = parse(method.input, grpcCall.request);
        } catch (error) {
          callback(statusOf(error));
          return;
        }
        const call = new NativeCall(false, service, method, request, grpcCall);
        call.fail = callback;
        live.add(call);
        invoke(call as unknown as UnaryRequest)
          .then(
            (response) => {
              if (call.done) return;
              end(call);
              call.sendHeaders();
              callback(null, response.message, call.trailers());
            },
            (error: unknown) => {
              if (call.done) return;
              end(call);
              callback(statusOf(error));
            },
          )
          .catch((error: unknown) => options.onHandlerError(name, error));
      };
      server.register(path, handle, serialize, deserialize, 'unary');
      continue;
    }

    // Streaming: the interceptors see a StreamRequest (one message for server streaming) and a StreamResponse.
    const invoke = chain(async (req) => {
      const call = req as unknown as NativeCall;
      const context = call as unknown as HandlerContext;
      const messages = req.message as AsyncIterable<never>;
      let outputs: AsyncIterable<unknown>;
      switch (spec.kind) {
        case 'server_streaming':
          outputs = spec.impl(await single(messages), context);
          break;
        case 'bidi_streaming':
          outputs = spec.impl(messages, context);
          break;
        default:
          outputs = one(await spec.impl(messages, context));
      }
      return new NativeResponse(
        true,
        service,
        method,
        asMessages(method.output, outputs),
        call,
      ) as unknown as StreamResponse;
    }, options.interceptors);

    const run = (grpcCall: GrpcCall, requests: AsyncIterable<unknown>, respond: Responder) => {
      const call = new NativeCall(true, service, method, requests, grpcCall);
      call.fail = (status) => respond.fail(call, status);
      live.add(call);
      grpcCall.once('cancelled', () => end(call));
      invoke(call as unknown as StreamRequest)
        .then((response) => respond(call, response.message as AsyncIterable<unknown>))
        .then(
          () => {
            if (call.done) return;
            end(call);
            respond.finish(call);
          },
          (error: unknown) => {
            if (call.done) return;
            end(call);
            respond.fail(call, statusOf(error));
          },
        )
        .catch((error: unknown) => options.onHandlerError(name, error));
    };

    switch (spec.kind) {
      case 'server_streaming':
        server.register(
          path,
          (grpcCall: grpc.ServerWritableStream<Buffer, unknown>) => {
            let request: unknown;
            try {
              request = parse(method.input, grpcCall.request);
            } catch (error) {
              grpcCall.emit('error', statusOf(error));
              return;
            }
            run(grpcCall, one(request), writeStream(grpcCall));
          },
          serialize,
          deserialize,
          'serverStream',
        );
        break;
      case 'bidi_streaming':
        server.register(
          path,
          (grpcCall: grpc.ServerDuplexStream<Buffer, unknown>) =>
            run(grpcCall, parsedMessages(method.input, grpcCall), writeStream(grpcCall)),
          serialize,
          deserialize,
          'bidi',
        );
        break;
      case 'client_streaming':
        server.register(
          path,
          (grpcCall: grpc.ServerReadableStream<Buffer, unknown>, callback: grpc.sendUnaryData<unknown>) =>
            run(grpcCall, parsedMessages(method.input, grpcCall), answerOnce(callback)),
          serialize,
          deserialize,
          'clientStream',
        );
        break;
    }
  }

  function end(call: NativeCall) {
    call.done = true;
    live.delete(call);
    if (live.size === 0) for (const wake of idleWaiters.splice(0)) wake();
  }
  const idleWaiters: (() => void)[] = [];
  const connections = new Set<Socket>();
  let closing = false;
  const closeWaiters: (() => void)[] = [];
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());

  return {
    paths,
    accept(socket) {
      // Draining: a connection whose preface arrives now would miss the GOAWAY; its client retries elsewhere.
      if (closing) {
        socket.destroy();
        return;
      }
      connections.add(socket);
      socket.once('close', () => {
        connections.delete(socket);
        if (connections.size === 0) for (const wake of closeWaiters.splice(0)) wake();
      });
      injector.injectConnection(socket);
    },
    inFlight: () => live.size,
    async close(deadlineMs, reason, onDeadline) {
      closing = true;
      // GOAWAY now; grpc-js destroys the sessions left after the grace period itself.
      injector.drain(deadlineMs + CANCEL_GRACE_MS);
      const idle = live.size === 0 ? Promise.resolve() : new Promise<void>((r) => idleWaiters.push(r));
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'deadline'>((resolve) => {
        timer = setTimeout(() => resolve('deadline'), deadlineMs);
      });
      if ((await Promise.race([idle, deadline])) === 'deadline') {
        onDeadline();
        const status = statusOf(reason);
        for (const call of [...live]) {
          call.abort(reason);
          end(call);
          call.fail(status);
        }
      }
      clearTimeout(timer);
      // The last answers are still being written: each connection closes by itself once its streams have
      // ended (it was sent GOAWAY); what is left after a short grace is cut.
      const closed =
        connections.size === 0 ? Promise.resolve() : new Promise<void>((r) => closeWaiters.push(r));
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise((resolve) => (grace = setTimeout(resolve, CANCEL_GRACE_MS)))]);
      clearTimeout(grace);
      injector.destroy();
      server.forceShutdown();
      guards.stop();
    },
  };
}

/** Sends a stream's messages, and its end. */
interface Responder {
  (call: NativeCall, messages: AsyncIterable<unknown>): Promise<void>;
  finish(call: NativeCall): void;
  fail(call: NativeCall, status: GrpcStatus): void;
}

function writeStream(grpcCall: WritableCall): Responder {
  const respond = async (call: NativeCall, messages: AsyncIterable<unknown>) => {
    let first = true;
    for await (const message of messages) {
      if (call.done) return;
      if (first) {
        call.sendHeaders();
        first = false;
      }
      if (!grpcCall.write(message)) await drained(grpcCall, call);
    }
  };
  respond.finish = (call: NativeCall) => grpcCall.end(call.trailers());
  respond.fail = (_call: NativeCall, status: GrpcStatus) => grpcCall.emit('error', status);
  return respond;
}

function answerOnce(callback: grpc.sendUnaryData<unknown>): Responder {
  let answer: unknown;
  const respond = async (_call: NativeCall, messages: AsyncIterable<unknown>) => {
    answer = await single(messages);
  };
  respond.finish = (call: NativeCall) => {
    call.sendHeaders();
    callback(null, answer, call.trailers());
  };
  respond.fail = (_call: NativeCall, status: GrpcStatus) => callback(status);
  return respond;
}

/** Resolves once the stream takes writes again, or the call has ended. */
function drained(stream: NodeJS.EventEmitter, call: NativeCall): Promise<void> {
  if (call.done) return Promise.resolve();
  return new Promise((resolve) => {
    const wake = () => {
      stream.off('drain', wake);
      stream.off('cancelled', wake);
      resolve();
    };
    stream.on('drain', wake);
    stream.on('cancelled', wake);
  });
}
