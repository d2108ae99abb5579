// The Herald clients: NotificationService and AdminService with Dates for Timestamps (dates.ts), retries of
// UNAVAILABLE where a repeat is harmless (retry.ts), a deadline on every call, and a notification stream that
// resumes by itself (stream.ts). Built over the generated service descriptors, so each RPC is here as soon as
// it is in the protos.
import { randomUUID } from 'node:crypto';
import type {
  DescMethod,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageShape,
} from '@bufbuild/protobuf';
import { type CallOptions, createClient, type Transport } from '@connectrpc/connect';
import { type DateInit, type DateShape, withDates, withTimestamps } from './dates.js';
import { AdminService } from './gen/herald/v1/admin_service_pb.js';
import { NotificationService, type SendRequest } from './gen/herald/v1/notification_service_pb.js';
import { type Backoff, defaultBackoff, isSafeToRepeat, type RetryOptions, withRetries } from './retry.js';
import { resumableStream } from './stream.js';
import { createHeraldTransport, type HeraldTransportOptions } from './transport.js';

export interface HeraldClientOptions extends HeraldTransportOptions {
  /** Deadline of every call that sets no `timeoutMs` of its own, retries included (default 30 s; `Infinity`:
   * none). Streams have none. */
  defaultTimeoutMs?: number;
  /** Retries of UNAVAILABLE (see RetryOptions for the defaults); `false`: every call is tried once. */
  retry?: RetryOptions | false;
}

/** Options of `streamNotifications`: a stream has no deadline; abort `signal` (or stop iterating) to end it. */
export type StreamOptions = Omit<CallOptions, 'timeoutMs'>;

/** A service's methods with Dates in and out: unary calls return a promise, streams an async iterable. */
export type DateClient<S extends DescService> = {
  [P in keyof S['method']]: S['method'][P] extends DescMethodUnary<infer I, infer O>
    ? (request: DateInit<MessageShape<I>>, options?: CallOptions) => Promise<DateShape<MessageShape<O>>>
    : S['method'][P] extends DescMethodServerStreaming<infer I, infer O>
      ? (
          request: DateInit<MessageShape<I>>,
          options?: StreamOptions,
        ) => AsyncIterable<DateShape<MessageShape<O>>>
      : never;
};

export type HeraldClient = DateClient<typeof NotificationService>;
export type HeraldAdminClient = DateClient<typeof AdminService>;

const DEFAULT_TIMEOUT_MS = 30_000;

interface Settings {
  transport: Transport;
  backoff: Backoff | null;
  defaultTimeoutMs: number;
}

function settingsOf(options: HeraldClientOptions): Settings {
  // The transport gets no default deadline: it would cut streams too. Unary calls get theirs here.
  const transport = createHeraldTransport({ ...options, defaultTimeoutMs: undefined });
  const backoff = options.retry === false ? null : { ...defaultBackoff, ...options.retry };
  return { transport, backoff, defaultTimeoutMs: options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS };
}

function isUnary(method: DescMethod): method is DescMethodUnary {
  return method.methodKind === 'unary';
}

/** Every unary method of `service`, with Dates, its retry policy and the deadline. */
function unaryMethods<S extends DescService>(service: S, settings: Settings): DateClient<S> {
  const methods: Record<string, unknown> = {};
  for (const method of service.methods.filter(isUnary)) {
    const backoff = isSafeToRepeat(method) ? settings.backoff : null;
    methods[method.localName] = async (
      request: DateInit<MessageShape<DescMethodUnary['input']>>,
      options: CallOptions = {},
    ) => {
      const input = withTimestamps(method.input, request);
      const timeoutMs = options.timeoutMs ?? settings.defaultTimeoutMs;
      const response = await withRetries(
        async (timeLeft) => {
          const answer = await settings.transport.unary(
            method,
            options.signal,
            timeLeft,
            options.headers,
            input,
            options.contextValues,
          );
          options.onHeader?.(answer.header);
          options.onTrailer?.(answer.trailer);
          return answer.message;
        },
        {
          backoff,
          deadline: Number.isFinite(timeoutMs) ? Date.now() + timeoutMs : undefined,
          signal: options.signal,
          now: Date.now,
        },
      );
      return withDates(method.output, response);
    };
  }
  // Built by name from the same descriptors DateClient<S> is computed from.
  return methods as DateClient<S>;
}

function withIdempotencyKey<T extends { idempotencyKey?: string }>(request: T): T {
  return request.idempotencyKey ? request : { ...request, idempotencyKey: randomUUID() };
}

/**
 * NotificationService for a service (an API key) or one end user (a JWT).
 * - `send` and each item of `sendBatch` carry an idempotency key (a random UUID where none is given), so a
 *   retry after a lost answer returns the first notification (`idempotentReplay: true`) instead of a second.
 * - `streamNotifications` reconnects by itself and resumes after the last seq it yielded.
 */
export function createHeraldClient(options: HeraldClientOptions): HeraldClient {
  const settings = settingsOf(options);
  const unary = unaryMethods(NotificationService, settings);
  const generated = createClient(NotificationService, settings.transport);
  return {
    ...unary,
    send: (request, callOptions) =>
      unary.send(withIdempotencyKey<DateInit<SendRequest>>(request), callOptions),
    sendBatch: (request, callOptions) =>
      unary.sendBatch(
        {
          ...request,
          requests: request.requests?.map((item) => withIdempotencyKey<DateInit<SendRequest>>(item)),
        },
        callOptions,
      ),
    async *streamNotifications(request, streamOptions = {}) {
      const { signal, ...callOptions } = streamOptions;
      const userId = request.userId ?? '';
      const events = resumableStream(
        (afterSeq, connection) =>
          generated.streamNotifications({ userId, afterSeq }, { ...callOptions, signal: connection }),
        request.afterSeq ?? 0n,
        settings.backoff ?? defaultBackoff,
        signal,
      );
      for await (const event of events) {
        yield withDates(NotificationService.method.streamNotifications.output, event);
      }
    },
  };
}

/** AdminService (routing rules, templates, webhook endpoints, suppressions, the outbox); needs an API key with
 * the admin scope. */
export function createHeraldAdminClient(options: HeraldClientOptions): HeraldAdminClient {
  return unaryMethods(AdminService, settingsOf(options));
}
