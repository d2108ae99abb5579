// Structured logs: one JSON object per line (pino). Secrets, tokens and message bodies are never logged;
// the redact list is a second line of defence for fields that could carry them by accident.
import pino from 'pino';

export type Logger = pino.Logger;

export const redactedPaths = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'token',
  '*.token',
  'key',
  '*.key',
  'secret',
  '*.secret',
  'body',
  '*.body',
  'title',
  '*.title',
  'data',
  '*.data',
  'password',
  '*.password',
  'databaseUrl',
];

/** What a logged error may show: never a query's parameters or a row's values. */
export interface LoggedError {
  type: string;
  message: string;
  /** SQLSTATE or a system error code (ECONNREFUSED, ...). */
  code?: string;
  /** The statement, from its first words: SQL text with placeholders only, never the values bound to them. */
  statement?: string;
  cause?: LoggedError;
}

const STATEMENT_CHARS = 80;
// drizzle puts the SQL and every parameter into its error message: "Failed query: <sql>\nparams: <values>".
const DRIZZLE_FAILED_QUERY = /^Failed query: ([\s\S]*?)\nparams: /;

/**
 * The `err` serializer for every log line. Database errors carry the statement's parameters (drizzle's
 * message; postgres.js's `parameters`, `args` and `query`; `detail`, which quotes row values), and those are
 * message bodies and addresses: only the type, the code, the statement's first words and a message free of
 * values are kept.
 */
export function serializeError(error: unknown, depth = 0): LoggedError {
  if (!(error instanceof Error)) return { type: typeof error, message: String(error).slice(0, 200) };
  const code = (error as { code?: unknown }).code;
  const query = (error as { query?: unknown }).query;
  const drizzle = DRIZZLE_FAILED_QUERY.exec(error.message);
  const statement = drizzle?.[1] ?? (typeof query === 'string' ? query : undefined);
  const sqlState = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
  const logged: LoggedError = {
    type: error.name,
    // PostgreSQL quotes the offending value in some messages (invalid input syntax for type uuid: "…").
    message: drizzle
      ? 'database query failed'
      : sqlState
        ? withoutQuotedValues(error.message)
        : error.message,
  };
  if (typeof code === 'string' || typeof code === 'number') logged.code = String(code);
  if (statement !== undefined)
    logged.statement = statement.replace(/\s+/g, ' ').trim().slice(0, STATEMENT_CHARS);
  if (error.cause !== undefined && depth < 3) logged.cause = serializeError(error.cause, depth + 1);
  return logged;
}

/** Everything from the first quote on: a quoted value may itself hold quotes, so nothing after one is kept. */
function withoutQuotedValues(message: string): string {
  const quote = message.indexOf('"');
  return quote < 0 ? message : `${message.slice(0, quote)}"…"`;
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'herald' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: redactedPaths, censor: '[redacted]' },
      serializers: { err: (error: unknown) => serializeError(error) },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 2, sync: false }),
  );
}

/** A database URL with its password replaced, for logging where the service connects to. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}
