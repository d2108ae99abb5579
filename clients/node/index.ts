// The typed clients for internal services: the generated NotificationService and AdminService clients over
// gRPC (HTTP/2), with the credential attached to every call.
//
//   const herald = createHeraldClient({ baseUrl: 'http://herald:8080', apiKey: process.env.HERALD_API_KEY });
//   const { notificationId } = await herald.send({ userId: 'u1', type: 'order.shipped', title: 'Shipped' });
import { type Client, createClient, type Interceptor, type Transport } from '@connectrpc/connect';
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from '@connectrpc/connect-node';
import { AdminService } from '../../gen/herald/v1/admin_service_pb.js';
import { NotificationService } from '../../gen/herald/v1/notification_service_pb.js';

export * from '../../gen/herald/v1/admin_service_pb.js';
export * from '../../gen/herald/v1/notification_service_pb.js';
export * from '../../gen/herald/v1/types_pb.js';

export type HeraldClient = Client<typeof NotificationService>;
export type HeraldAdminClient = Client<typeof AdminService>;

export interface HeraldClientOptions {
  /** e.g. http://localhost:8080 */
  baseUrl: string;
  /** An API key (hk_...) for services. */
  apiKey?: string;
  /** A user JWT, for acting as one end user. */
  token?: string;
  /** Wire protocol; gRPC by default. */
  protocol?: 'grpc' | 'connect' | 'grpc-web';
  /** For connect and grpc-web: HTTP/1.1 (default) or HTTP/2. gRPC always uses HTTP/2. */
  httpVersion?: '1.1' | '2';
  /** Deadline applied to every call unless the call sets its own. */
  defaultTimeoutMs?: number;
}

export function createHeraldTransport(options: HeraldClientOptions): Transport {
  const credential = options.apiKey ?? options.token;
  const interceptors: Interceptor[] = credential
    ? [
        (next) => (req) => {
          req.header.set('authorization', `Bearer ${credential}`);
          return next(req);
        },
      ]
    : [];
  const common = { baseUrl: options.baseUrl, interceptors, defaultTimeoutMs: options.defaultTimeoutMs };
  switch (options.protocol ?? 'grpc') {
    case 'grpc':
      return createGrpcTransport(common);
    case 'connect':
      return createConnectTransport({ ...common, httpVersion: options.httpVersion ?? '1.1' });
    case 'grpc-web':
      return createGrpcWebTransport({ ...common, httpVersion: options.httpVersion ?? '1.1' });
  }
}

export function createHeraldClient(options: HeraldClientOptions): HeraldClient {
  if (options.apiKey && options.token) throw new Error('pass either apiKey or token, not both');
  return createClient(NotificationService, createHeraldTransport(options));
}

/** AdminService (routing rules, templates, webhook endpoints, replay); needs an API key with the admin scope. */
export function createHeraldAdminClient(options: HeraldClientOptions): HeraldAdminClient {
  if (options.apiKey && options.token) throw new Error('pass either apiKey or token, not both');
  return createClient(AdminService, createHeraldTransport(options));
}
