// The Herald side of the workload: Send and SendBatch over real gRPC. The requests are built with the
// generated schemas and every response is decoded and checked; the transport is the lean raw client, so
// the load generator stays cheap next to the server it measures.
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  NotificationService,
  SendBatchRequestSchema,
  SendBatchResponseSchema,
  SendRequestSchema,
  SendResponseSchema,
} from '../../clients/node/index.js';
import type { Call } from './load.js';
import { RawGrpcClient } from './raw-grpc.js';
import type { NotificationSpec, Workload } from './workload.js';

// Far above any healthy latency; a call that hangs fails the phase instead of stalling it.
const CALL_TIMEOUT_MS = 30_000;
const SEND = `/${NotificationService.typeName}/${NotificationService.method.send.name}`;
const SEND_BATCH = `/${NotificationService.typeName}/${NotificationService.method.sendBatch.name}`;

/**
 * One client per worker by default, each with its own HTTP/2 connection, as a fleet of sending services would
 * have; with fewer `connections`, workers share them round-robin, as callers in one service share a channel.
 */
export function createClients(
  workers: number,
  connections: number,
  baseUrl: string,
  apiKey: string,
): RawGrpcClient[] {
  const pool = Array.from(
    { length: Math.min(workers, connections) },
    () => new RawGrpcClient(baseUrl, `Bearer ${apiKey}`),
  );
  return Array.from({ length: workers }, (_, i) => pool[i % pool.length]!);
}

function toRequest(spec: NotificationSpec) {
  // No channels: Herald's default is IN_APP only, so each notification stores exactly one delivery.
  return create(SendRequestSchema, {
    userId: spec.userId,
    type: spec.type,
    title: spec.title,
    body: spec.body,
    data: spec.data,
  });
}

export function heraldSend(clients: RawGrpcClient[], workload: Workload): Call {
  return async (worker) => {
    const request = toBinary(SendRequestSchema, toRequest(workload.one()));
    const response = fromBinary(
      SendResponseSchema,
      await clients[worker]!.unary(SEND, request, CALL_TIMEOUT_MS),
    );
    if (response.deliveries.length !== 1) {
      throw new Error(`expected 1 delivery, got ${response.deliveries.length}`);
    }
    return 1;
  };
}

export function heraldSendBatch(clients: RawGrpcClient[], workload: Workload, batchSize: number): Call {
  return async (worker) => {
    const request = create(SendBatchRequestSchema, { requests: workload.batch(batchSize).map(toRequest) });
    const bytes = await clients[worker]!.unary(
      SEND_BATCH,
      toBinary(SendBatchRequestSchema, request),
      CALL_TIMEOUT_MS,
    );
    const response = fromBinary(SendBatchResponseSchema, bytes);
    if (response.results.length !== batchSize) {
      throw new Error(`expected ${batchSize} results, got ${response.results.length}`);
    }
    return batchSize;
  };
}
