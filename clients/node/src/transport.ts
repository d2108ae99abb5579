// The Connect transport to a Herald server: gRPC over HTTP/2 by default, or the Connect or gRPC-Web protocol,
// with the credential attached to every call. The generated clients run on it as they are:
//
//   const raw = createClient(NotificationService, createHeraldTransport({ baseUrl, apiKey }));
import type { Interceptor, Transport } from '@connectrpc/connect';
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from '@connectrpc/connect-node';

export interface HeraldTransportOptions {
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
  /** Deadline applied to every call unless the call sets its own (none by default). */
  defaultTimeoutMs?: number;
  /** Run on every call (every attempt, with the Herald client's retries), after the credential is set. */
  interceptors?: Interceptor[];
}

export function createHeraldTransport(options: HeraldTransportOptions): Transport {
  if (options.apiKey && options.token) throw new Error('pass either apiKey or token, not both');
  const credential = options.apiKey ?? options.token;
  const authorize: Interceptor = (next) => (req) => {
    if (credential) req.header.set('authorization', `Bearer ${credential}`);
    return next(req);
  };
  const common = {
    baseUrl: options.baseUrl,
    interceptors: [authorize, ...(options.interceptors ?? [])],
    defaultTimeoutMs: options.defaultTimeoutMs,
  };
  switch (options.protocol ?? 'grpc') {
    case 'grpc':
      return createGrpcTransport(common);
    case 'connect':
      return createConnectTransport({ ...common, httpVersion: options.httpVersion ?? '1.1' });
    case 'grpc-web':
      return createGrpcWebTransport({ ...common, httpVersion: options.httpVersion ?? '1.1' });
  }
}
