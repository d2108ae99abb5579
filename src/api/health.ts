// The standard grpc.health.v1 service, so gRPC-aware load balancers and Kubernetes gRPC probes work. It
// reports SERVING while the database answers.
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';
import {
  type HealthCheckRequest,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '../../gen/grpc/health/v1/health_pb.js';
import { NotificationService } from '../../gen/herald/v1/notification_service_pb.js';

const WATCH_INTERVAL_MS = 5_000;
const knownServices = new Set(['', NotificationService.typeName]);

export function healthHandlers(isReady: () => Promise<boolean>) {
  async function status(req: HealthCheckRequest): Promise<HealthCheckResponse> {
    if (!knownServices.has(req.service))
      throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
    return create(HealthCheckResponseSchema, {
      status: (await isReady()) ? ServingStatus.SERVING : ServingStatus.NOT_SERVING,
    });
  }
  return {
    check: (req: HealthCheckRequest) => status(req),
    async *watch(req: HealthCheckRequest, ctx: HandlerContext): AsyncGenerator<HealthCheckResponse> {
      let last: ServingStatus | undefined;
      while (!ctx.signal.aborted) {
        const current = await status(req);
        if (current.status !== last) yield current;
        last = current.status;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, WATCH_INTERVAL_MS);
          ctx.signal.addEventListener(
            'abort',
            () => {
              clearTimeout(timer);
              resolve();
            },
            { once: true },
          );
        });
      }
    },
  };
}
