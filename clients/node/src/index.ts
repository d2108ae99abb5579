// @herald-notify/client: Herald's client for Node services.
//
//   const herald = createHeraldClient({ baseUrl: 'http://herald:8080', apiKey: process.env.HERALD_API_KEY });
//   const { notificationId } = await herald.send({ userId: 'u1', type: 'order.shipped', title: 'Shipped',
//     sendAt: new Date(Date.now() + 60_000) });
//   for await (const event of herald.streamNotifications({ userId: 'u1' })) { ... }
//
// The generated clients (protobuf messages as they are, no retries) run on the same transport:
//
//   const raw = createClient(NotificationService, createHeraldTransport({ baseUrl, apiKey }));
export {
  type CallOptions,
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from '@connectrpc/connect';
export {
  createHeraldAdminClient,
  createHeraldClient,
  type DateClient,
  type HeraldAdminClient,
  type HeraldClient,
  type HeraldClientOptions,
  type StreamOptions,
} from './client.js';
export type { DateInit, DateShape } from './dates.js';
export * from './gen/herald/v1/admin_service_pb.js';
export * from './gen/herald/v1/notification_service_pb.js';
export * from './gen/herald/v1/types_pb.js';
export type { RetryOptions } from './retry.js';
export { createHeraldTransport, type HeraldTransportOptions } from './transport.js';

import type { Client } from '@connectrpc/connect';
import type { AdminService } from './gen/herald/v1/admin_service_pb.js';
import type { NotificationService } from './gen/herald/v1/notification_service_pb.js';

/** The generated NotificationService client: protobuf messages (Timestamps, not Dates), one attempt per call. */
export type NotificationServiceClient = Client<typeof NotificationService>;
/** The generated AdminService client. */
export type AdminServiceClient = Client<typeof AdminService>;
