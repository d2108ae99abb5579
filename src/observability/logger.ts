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

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'herald' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: redactedPaths, censor: '[redacted]' },
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
