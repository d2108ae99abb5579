// Every setting Herald reads, from the environment, validated once at start. The README's configuration
// table lists the same settings; keep the two in step.

export interface Config {
  host: string;
  port: number;
  /** PostgreSQL URL; undefined selects the embedded PGlite engine. */
  databaseUrl: string | undefined;
  dataDir: string;
  dbPoolMax: number;
  /** Send statements run at once; Sends beyond that are grouped into one statement (group commit). */
  sendMaxStatements: number;
  migrateOnStart: boolean;
  jwt: JwtConfig;
  bootstrapAdminKey: boolean;
  apiKeyCacheTtlMs: number;
  maxRequestBytes: number;
  shutdownTimeoutMs: number;
  logLevel: string;
  /** Server processes sharing the port (node:cluster); more than one needs DATABASE_URL. */
  workers: number;
}

export interface JwtConfig {
  secret: string | undefined;
  publicKeyFile: string | undefined;
  jwksFile: string | undefined;
  jwksUrl: string | undefined;
  issuer: string | undefined;
  audience: string | undefined;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const str = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v ? v : undefined;
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = str(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return n;
  };
  const bool = (name: string, fallback: boolean): boolean => {
    const raw = str(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
    if (['0', 'false', 'no', 'off'].includes(raw)) return false;
    problems.push(`${name} must be true or false (got "${raw}")`);
    return fallback;
  };

  const databaseUrl = str('DATABASE_URL');
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push('DATABASE_URL must be a postgres:// or postgresql:// URL');
  }
  const jwt: JwtConfig = {
    secret: str('HERALD_JWT_SECRET'),
    publicKeyFile: str('HERALD_JWT_PUBLIC_KEY_FILE'),
    jwksFile: str('HERALD_JWT_JWKS_FILE'),
    jwksUrl: str('HERALD_JWT_JWKS_URL'),
    issuer: str('HERALD_JWT_ISSUER'),
    audience: str('HERALD_JWT_AUDIENCE'),
  };
  const keySources = [jwt.secret, jwt.publicKeyFile, jwt.jwksFile, jwt.jwksUrl].filter(Boolean).length;
  if (keySources > 1) {
    problems.push(
      'set at most one of HERALD_JWT_SECRET, HERALD_JWT_PUBLIC_KEY_FILE, HERALD_JWT_JWKS_FILE, HERALD_JWT_JWKS_URL',
    );
  }
  if (jwt.secret && Buffer.byteLength(jwt.secret) < 32) {
    problems.push('HERALD_JWT_SECRET must be at least 32 bytes (HS256 keys shorter than the hash are weak)');
  }
  if (jwt.jwksUrl && !/^https?:\/\//.test(jwt.jwksUrl))
    problems.push('HERALD_JWT_JWKS_URL must be an http(s) URL');
  const logLevel = str('HERALD_LOG_LEVEL') ?? 'info';
  if (!logLevels.includes(logLevel)) problems.push(`HERALD_LOG_LEVEL must be one of ${logLevels.join(', ')}`);

  const config: Config = {
    host: str('HERALD_HOST') ?? '0.0.0.0',
    port: int('HERALD_PORT', 8080, 0, 65535),
    databaseUrl,
    dataDir: str('HERALD_DATA_DIR') ?? './.herald/data',
    dbPoolMax: int('HERALD_DB_POOL_MAX', 10, 1, 1000),
    sendMaxStatements: int('HERALD_SEND_MAX_STATEMENTS', 4, 1, 1000),
    migrateOnStart: bool('HERALD_MIGRATE_ON_START', true),
    jwt,
    bootstrapAdminKey: bool('HERALD_BOOTSTRAP_ADMIN_KEY', true),
    apiKeyCacheTtlMs: int('HERALD_API_KEY_CACHE_TTL_MS', 5_000, 0, 3_600_000),
    maxRequestBytes: int('HERALD_MAX_REQUEST_BYTES', 16 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    shutdownTimeoutMs: int('HERALD_SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    logLevel,
    workers: int('HERALD_WORKERS', 1, 1, 64),
  };
  if (config.workers > 1 && !databaseUrl) {
    problems.push('HERALD_WORKERS above 1 needs DATABASE_URL: the embedded database belongs to one process');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
