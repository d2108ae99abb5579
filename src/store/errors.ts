// Classifies driver errors, so that an unreachable database is reported as UNAVAILABLE (retryable) and a
// violated constraint as what it means, never as INTERNAL.

const connectionErrorCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
]);

/** SQLSTATE classes and codes that mean "the connection or the server is gone". */
function isConnectionSqlState(code: string): boolean {
  return (
    code.startsWith('08') || // connection exception
    code === '57P01' || // admin_shutdown
    code === '57P02' || // crash_shutdown
    code === '57P03' || // cannot_connect_now
    code === '53300' // too_many_connections
  );
}

/** SQLSTATEs that say "try the same statement again": nothing is wrong with it. */
function isRetryableSqlState(code: string): boolean {
  return (
    code === '40001' || // serialization_failure
    code === '40P01' // deadlock_detected
  );
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** The database could not be reached or went away, so every statement would have failed. */
export function isConnectionFailure(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    const code = errorCode(e);
    if (code && (connectionErrorCodes.has(code) || isConnectionSqlState(code))) return true;
    if (e instanceof Error && /database did not answer|PGlite is closed/i.test(e.message)) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

/**
 * Whether one item of a statement could be the cause: data exceptions (22), integrity constraints (23),
 * program limits such as a too-long value (54), conflicts a statement of its own would avoid (40), or an
 * error that is not the database's at all. Connection failures, timeouts and resource shortages are not.
 */
export function mayBeOneItemsFault(error: unknown): boolean {
  if (isConnectionFailure(error)) return false;
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    const code = errorCode(e);
    if (code && /^[0-9A-Z]{5}$/.test(code)) return /^(22|23|54|40)/.test(code);
    e = e instanceof Error ? e.cause : undefined;
  }
  return true;
}

/** Not available right now (UNAVAILABLE to clients, who may retry): no connection, or a retryable conflict. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (isConnectionFailure(error)) return true;
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    const code = errorCode(e);
    if (code && isRetryableSqlState(code)) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

export function isUniqueViolation(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    if (errorCode(e) === '23505') return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}
