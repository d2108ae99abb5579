// Maps every error leaving a handler to the gRPC code it means. A client's mistake is never INTERNAL; an
// unreachable database is UNAVAILABLE (retryable); anything unexpected is logged and answered INTERNAL
// without details.
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { type ErrorKind, HeraldError } from '../core/errors.js';
import type { Logger } from '../observability/logger.js';
import { methodName } from '../observability/metrics.js';
import { isDatabaseUnavailable } from '../store/index.js';

const codeOf: Record<ErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  permission_denied: Code.PermissionDenied,
  unauthenticated: Code.Unauthenticated,
  failed_precondition: Code.FailedPrecondition,
};

export function toConnectError(error: unknown, logger: Logger, method: string): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof HeraldError) return new ConnectError(error.message, codeOf[error.kind]);
  if (isDatabaseUnavailable(error)) {
    logger.warn({ method, err: error }, 'database unavailable');
    return new ConnectError('database unavailable, retry later', Code.Unavailable);
  }
  logger.error({ method, err: error }, 'unexpected error');
  return new ConnectError('internal error', Code.Internal);
}

export function errorMappingInterceptor(logger: Logger): Interceptor {
  return (next) => (req) => {
    let res: ReturnType<typeof next>;
    try {
      res = next(req);
    } catch (error) {
      return Promise.reject(toConnectError(error, logger, methodName(req.method)));
    }
    return res.then(
      (res) =>
        // A streaming handler's errors surface while its messages are read.
        res.stream ? { ...res, message: mapStreamErrors(res.message, logger, methodName(req.method)) } : res,
      (error: unknown) => {
        throw toConnectError(error, logger, methodName(req.method));
      },
    );
  };
}

async function* mapStreamErrors<T>(
  messages: AsyncIterable<T>,
  logger: Logger,
  method: string,
): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw toConnectError(error, logger, method);
  }
}
