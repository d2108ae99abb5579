// The API's public face: one function that wires every RPC onto a Connect router.
import type { ConnectRouter } from '@connectrpc/connect';
import { Health } from '../../gen/grpc/health/v1/health_pb.js';
import { AdminService } from '../../gen/herald/v1/admin_service_pb.js';
import { NotificationService } from '../../gen/herald/v1/notification_service_pb.js';
import type { AddressGuard } from '../channels/webhook/address-guard.js';
import type { ConfigCache } from '../delivery/config-cache.js';
import type { ProviderHealthSource } from '../delivery/provider-health.js';
import type { Realtime } from '../realtime/index.js';
import type { InAppMetrics } from '../realtime/metrics.js';
import type { Database, SendWriter } from '../store/index.js';
import { adminHandlers } from './admin.js';
import type { CredentialWatch } from './credential-watch.js';
import { healthHandlers } from './health.js';
import { inboxHandlers } from './inbox.js';
import { notificationHandlers } from './notifications.js';
import { operationsHandlers } from './operations.js';
import { outboxHandlers } from './outbox.js';
import { preferenceHandlers } from './preferences.js';
import { pushTokenHandlers } from './push-tokens.js';
import { registerReflection } from './reflection.js';
import { suppressionHandlers } from './suppressions.js';

export {
  type Authenticator,
  actingUserOf,
  authInterceptor,
  createAuthenticator,
  hasScope,
  INBOX_SCOPES,
  mayAct,
  type Principal,
} from './auth.js';
export { type CredentialEnd, type CredentialWatch, createCredentialWatch } from './credential-watch.js';
export { errorMappingInterceptor } from './errors.js';
export { sessionEventToProto } from './inbox.js';
export { createUserTokenVerifier } from './user-tokens.js';

export interface ApiDeps {
  database: Database;
  writeSends: SendWriter;
  deliveryConfig: ConfigCache;
  /** Each provider's rate limit and circuits, for AdminService.GetProviderHealth. */
  providerHealth: ProviderHealthSource;
  webhookGuard: AddressGuard;
  now: () => Date;
  isReady: () => Promise<boolean>;
  realtime: Realtime;
  streamHeartbeatMs: number;
  /** Aborted when shutdown starts. */
  closing: AbortSignal;
  credentials: CredentialWatch;
  inAppMetrics: InAppMetrics;
  /** Serve gRPC server reflection (v1 and v1alpha), describing the services registered here. */
  reflection: boolean;
}

export function createRoutes(deps: ApiDeps): (router: ConnectRouter) => void {
  return (router) => {
    router.service(NotificationService, {
      ...notificationHandlers(deps),
      ...pushTokenHandlers(deps.database),
      ...preferenceHandlers(deps.database),
      ...inboxHandlers({ ...deps, heartbeatMs: deps.streamHeartbeatMs }),
    });
    router.service(AdminService, {
      ...adminHandlers(deps),
      ...suppressionHandlers(deps),
      ...outboxHandlers(deps),
      ...operationsHandlers(deps),
    });
    router.service(Health, healthHandlers(deps.isReady));
    if (deps.reflection) registerReflection(router, [NotificationService, AdminService, Health]);
  };
}
