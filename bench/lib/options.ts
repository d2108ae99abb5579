// Command-line option rules every benchmark shares, and where its PostgreSQL server is.

export function positiveNumber(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`${name} must be a positive number (got "${raw}")`);
  }
  return value;
}

export function positiveInteger(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive whole number (got "${raw}")`);
  }
  return value;
}

/** BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the local server. */
export function benchServerUrl(): string {
  return (
    process.env.BENCH_DATABASE_URL ??
    process.env.TEST_DATABASE_URL ??
    'postgres://postgres@127.0.0.1:5432/test'
  );
}

/** A comma-separated list of known names (all of them when not given). */
export function listOption<T extends string>(
  name: string,
  raw: string | undefined,
  known: readonly T[],
): T[] {
  const values = (raw ?? known.join(',')).split(',').map((s) => s.trim());
  const unknown = values.filter((v) => !known.includes(v as T));
  if (unknown.length > 0)
    throw new Error(`${name}: unknown ${unknown.join(', ')} (known: ${known.join(', ')})`);
  return values as T[];
}
