// The providers file (HERALD_PROVIDERS_FILE): per channel, the providers Herald delivers through, in failover
// order. The whole file is checked and every problem reported at once, each as `<path>: <rule>` and in file
// order, so an operator fixes a file in one pass. Problems never quote input values (type, channel and key names
// aside): a secret pasted into the wrong field must not end up in a log.
//
// Nothing here reads the environment or the file system; the caller passes both in, so tests need neither.
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import type { RetryPolicy } from '../core/retry-policy.js';
import type { RateLimit } from '../delivery/rate-limiter.js';

export const providerChannels = ['push', 'email', 'sms', 'webhook'] as const;
export type ProviderChannel = (typeof providerChannels)[number];

export interface ProviderTypeSpec {
  /** The channels this type delivers on. */
  channels: readonly ProviderChannel[];
  /** Checks a provider's `settings` object; declare secrets with {@link secret}. */
  settings: z.ZodType;
}

/** Provider types by the name a providers file gives as `type`. */
export type ProviderTypes = Readonly<Record<string, ProviderTypeSpec>>;

/** Which destinations a provider takes; an absent list does not narrow. */
export interface ProviderMatch {
  platforms?: string[];
  apps?: string[];
  domains?: string[];
  numberPrefixes?: string[];
}

export interface ProviderEntry {
  channel: ProviderChannel;
  /** Position in the channel's failover order. */
  index: number;
  /** Where the provider sits in the file, e.g. `channels.email[1]`. */
  path: string;
  type: string;
  /** Unique across the file: it keys rate limits and circuit breakers. */
  name: string;
  timeoutMs: number | null;
  rateLimit: RateLimit | null;
  retry: Partial<RetryPolicy> | null;
  match: ProviderMatch | null;
  /** The settings as the type's schema produced them, secrets replaced by their resolved values. */
  settings: Record<string, unknown>;
  /** The settings that hold secrets, e.g. `password`, `auth.key`, `keys[0]`; see {@link redactedSettings}. */
  secretPaths: string[];
}

export interface ProvidersFile {
  channels: Partial<Record<ProviderChannel, ProviderEntry[]>>;
}

export type ProvidersFileResult = { ok: true; file: ProvidersFile } | { ok: false; problems: string[] };

export interface ProvidersFileOptions {
  types: ProviderTypes;
  /** Where `{ "env": NAME }` secrets are looked up. */
  env: Record<string, string | undefined>;
  /** Reads a file as text; throws like fs.readFileSync (an error with a `code`) when it cannot. */
  readFile: (path: string) => string;
}

const MAX_PROVIDERS_PER_CHANNEL = 10;
const MAX_MATCH_ENTRIES = 1000;
const PROVIDER_KEYS = ['type', 'name', 'timeout_ms', 'rate_limit', 'retry', 'match', 'settings'];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const REDACTED = '[secret]';

// ---------------------------------------------------------------------------------------------------------
// Problems: a path into the file and a rule, rendered as `channels.email[1].settings.port: must be 1..65535`.

type PathSegment = string | number;

interface Problem {
  path: PathSegment[];
  rule: string;
  /** Where the problem sorts when that is not `path`: an unknown key sorts where the key is written. */
  at?: PathSegment[];
}

function formatPath(path: readonly PathSegment[]): string {
  return path
    .map((segment, i) => (typeof segment === 'number' ? `[${segment}]` : i === 0 ? segment : `.${segment}`))
    .join('');
}

function render(problem: Problem): string {
  return `${formatPath(problem.path) || 'providers file'}: ${problem.rule}`;
}

function unknownKey(objectPath: PathSegment[], key: string): Problem {
  return { path: objectPath, rule: `unknown key ${JSON.stringify(key)}`, at: [...objectPath, key] };
}

/**
 * Problems are collected in whatever order the checks run (a provider's type is read before its other fields);
 * sorting them by where their paths point in the parsed document gives file order. A path the document lacks
 * (a required key that is missing) sorts after everything its parent does contain.
 */
function inFileOrder(problems: Problem[], document: unknown): Problem[] {
  const positioned = problems.map((problem) => ({
    problem,
    position: positionIn(document, problem.at ?? problem.path),
  }));
  positioned.sort((a, b) => comparePositions(a.position, b.position));
  return positioned.map(({ problem }) => problem);
}

function positionIn(document: unknown, path: PathSegment[]): number[] {
  const position: number[] = [];
  let node = document;
  for (const segment of path) {
    const index = childIndex(node, segment);
    if (index < 0) {
      position.push(Number.POSITIVE_INFINITY);
      break;
    }
    position.push(index);
    node = (node as Record<PathSegment, unknown>)[segment];
  }
  return position;
}

function childIndex(node: unknown, segment: PathSegment): number {
  if (Array.isArray(node)) return typeof segment === 'number' && segment < node.length ? segment : -1;
  return isPlainObject(node) ? Object.keys(node).indexOf(String(segment)) : -1;
}

function comparePositions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    // Compared rather than subtracted: Infinity - Infinity is NaN.
    if (a[i]! < b[i]!) return -1;
    if (a[i]! > b[i]!) return 1;
  }
  return a.length - b.length;
}

// ---------------------------------------------------------------------------------------------------------
// zod issues as rules. Schemas may carry their own messages (`must be 1..65535`); every issue without one is
// phrased here. Nothing here reads the issue's input beyond "was it there", so no value leaks into a rule.

const typeNames: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'an object',
  record: 'an object',
  array: 'a list',
  tuple: 'a list',
  null: 'null',
};

function describeIssue(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined
        ? 'required'
        : `must be ${typeNames[issue.expected] ?? issue.expected}`;
    case 'too_small':
      return describeMinimum(issue.origin, Number(issue.minimum), issue.inclusive !== false);
    case 'too_big':
      return describeMaximum(issue.origin, Number(issue.maximum), issue.inclusive !== false);
    case 'invalid_format':
      return issue.format === 'regex' ? 'has the wrong format' : `must be a valid ${issue.format}`;
    case 'invalid_value':
      return issue.values.length === 1
        ? `must be ${String(issue.values[0])}`
        : `must be one of ${issue.values.map(String).join(', ')}`;
    case 'not_multiple_of':
      return `must be a multiple of ${issue.divisor}`;
    case 'unrecognized_keys':
      // Replaced by one problem per key in issueProblems.
      return 'has unknown keys';
    case 'invalid_union':
      return 'is none of the accepted forms';
    case 'invalid_key':
      return 'has an invalid key';
    case 'invalid_element':
      return 'has an invalid entry';
    default:
      return 'is not valid';
  }
}

function describeMinimum(origin: string, minimum: number, inclusive: boolean): string {
  if (origin === 'string' || origin === 'array' || origin === 'set') {
    if (minimum <= 1) return 'must not be empty';
    return origin === 'string'
      ? `must be at least ${minimum} characters`
      : `must have at least ${minimum} entries`;
  }
  return inclusive ? `must be at least ${minimum}` : `must be more than ${minimum}`;
}

function describeMaximum(origin: string, maximum: number, inclusive: boolean): string {
  if (origin === 'string') return `must be at most ${maximum} characters`;
  if (origin === 'array' || origin === 'set') return `must have at most ${maximum} entries`;
  return inclusive ? `must be at most ${maximum}` : `must be less than ${maximum}`;
}

function issueProblems(issue: z.core.$ZodIssue, base: PathSegment[]): Problem[] {
  const path = [...base, ...issue.path.map((s) => (typeof s === 'number' ? s : String(s)))];
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => unknownKey(path, key));
  return [{ path, rule: issue.message }];
}

/** Runs a schema over one part of the file; on failure, its issues become problems under `path`. */
function check<T extends z.ZodType>(
  schema: T,
  value: unknown,
  path: PathSegment[],
  problems: Problem[],
): { value: z.output<T> } | undefined {
  const result = schema.safeParse(value, { error: describeIssue });
  if (result.success) return { value: result.data };
  for (const issue of result.error.issues) problems.push(...issueProblems(issue, path));
  return undefined;
}

/** An integer with its range in the message the way the file's rules read: `must be 1..65535`. */
export function intBetween(min: number, max: number) {
  const range = `must be ${min}..${max}`;
  return z
    .int({ error: (issue) => (issue.input === undefined ? 'required' : 'must be an integer') })
    .min(min, range)
    .max(max, range);
}

// ---------------------------------------------------------------------------------------------------------
// Secrets. secret() accepts an inline string, { "env": NAME } or { "file": "/abs/path" } and parses to a
// SecretReference; once a type's settings pass their schema, a second pass finds the references, resolves each
// through the injected env and readFile (so a failure names the setting's path) and records where they were.

export type SecretInput = string | { env: string } | { file: string };

type SecretSource =
  | { kind: 'inline'; value: string }
  | { kind: 'env'; name: string }
  | { kind: 'file'; path: string };

type Resolution = { ok: true; value: string } | { ok: false; rule: string };

class SecretReference {
  // Private, so neither util.inspect nor a stray JSON.stringify of parsed settings shows an inline value.
  readonly #source: SecretSource;

  constructor(source: SecretSource) {
    this.#source = source;
  }

  toJSON(): string {
    return REDACTED;
  }

  resolve(options: ProvidersFileOptions): Resolution {
    const source = this.#source;
    if (source.kind === 'inline') return { ok: true, value: source.value };
    if (source.kind === 'env') return resolveEnv(source.name, options.env);
    return resolveFile(source.path, options.readFile);
  }
}

function resolveEnv(name: string, env: ProvidersFileOptions['env']): Resolution {
  const value = env[name];
  return value ? { ok: true, value } : { ok: false, rule: `environment variable ${name} is not set` };
}

function resolveFile(path: string, readFile: ProvidersFileOptions['readFile']): Resolution {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    return { ok: false, rule: `cannot read ${path} (${errorCode(error)})` };
  }
  // Editors end files with a newline that is no part of the secret; only one is dropped, so a value that
  // really ends in whitespace keeps it.
  const value = text.replace(/\r?\n$/, '');
  return value ? { ok: true, value } : { ok: false, rule: `${path} is empty` };
}

function errorCode(error: unknown): string {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : 'unknown error';
}

function toSecretSource(input: SecretInput): SecretSource {
  if (typeof input === 'string') return { kind: 'inline', value: input };
  return 'env' in input ? { kind: 'env', name: input.env } : { kind: 'file', path: input.file };
}

/**
 * A secret setting. Typed as the string it holds once the file is loaded: the SecretReference it parses to
 * is swapped for the resolved value before settings leave this module, so z.infer of a type's settings
 * describes what callers get. (A refinement on the enclosing object would see the reference, not the value.)
 */
export function secret(): z.ZodType<string, SecretInput> {
  const source = z.union(
    [
      z.string().min(1, 'must not be empty'),
      z.strictObject({ env: z.string().regex(ENV_NAME, 'must be an environment variable name') }),
      z.strictObject({ file: z.string().refine(isAbsolute, 'must be an absolute path') }),
    ],
    { error: 'must be a string, {"env": "NAME"} or {"file": "/absolute/path"}' },
  );
  return source.transform((input) => new SecretReference(toSecretSource(input))) as unknown as z.ZodType<
    string,
    SecretInput
  >;
}

/** Rebuilds plain objects and arrays; `replace` may swap any node (returning `{ value }`) instead of descending. */
function rebuild(
  node: unknown,
  at: PathSegment[],
  replace: (node: unknown, at: PathSegment[]) => { value: unknown } | undefined,
): unknown {
  const replaced = replace(node, at);
  if (replaced) return replaced.value;
  if (Array.isArray(node)) return node.map((item, i) => rebuild(item, [...at, i], replace));
  if (!isPlainObject(node)) return node;
  return Object.fromEntries(Object.entries(node).map(([key, v]) => [key, rebuild(v, [...at, key], replace)]));
}

interface ResolvedSettings {
  settings: Record<string, unknown>;
  secretPaths: string[];
}

function resolveSecrets(
  parsed: Record<string, unknown>,
  settingsPath: PathSegment[],
  context: ParseContext,
): ResolvedSettings {
  const secretPaths: string[] = [];
  const settings = rebuild(parsed, [], (node, at) => {
    if (!(node instanceof SecretReference)) return undefined;
    secretPaths.push(formatPath(at));
    const resolution = node.resolve(context.options);
    if (resolution.ok) return { value: resolution.value };
    context.problems.push({ path: [...settingsPath, ...at], rule: resolution.rule });
    return { value: REDACTED };
  });
  return { settings: settings as Record<string, unknown>, secretPaths };
}

/** The entry's settings with every secret replaced by "[secret]", for logs and admin views. */
export function redactedSettings(entry: ProviderEntry): Record<string, unknown> {
  const secrets = new Set(entry.secretPaths);
  return rebuild(entry.settings, [], (_node, at) =>
    at.length > 0 && secrets.has(formatPath(at)) ? { value: REDACTED } : undefined,
  ) as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------------------
// The fixed parts of a provider.

const nameSchema = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_-]{0,62}$/,
    'must be 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit',
  );

const timeoutSchema = intBetween(100, 120_000);

const rateLimitSchema = z
  .strictObject({
    per_second: z
      .number()
      .gt(0, 'must be more than 0 and at most 1000000')
      .max(1_000_000, 'must be more than 0 and at most 1000000'),
    burst: intBetween(1, 1_000_000),
  })
  .transform(({ per_second, burst }): RateLimit => ({ perSecond: per_second, burst }));

// Delays and ages: up to a year.
const retryMs = intBetween(0, 31_536_000_000).optional();

const retrySchema = z
  .strictObject({
    attempts: intBetween(1, 100).optional(),
    base_ms: retryMs,
    max_delay_ms: retryMs,
    max_age_ms: retryMs,
    retry_after_cap_ms: retryMs,
  })
  .transform(
    (retry): Partial<RetryPolicy> =>
      definedOnly({
        maxAttempts: retry.attempts,
        baseDelayMs: retry.base_ms,
        maxDelayMs: retry.max_delay_ms,
        maxAgeMs: retry.max_age_ms,
        retryAfterCapMs: retry.retry_after_cap_ms,
      }),
  );

/** Drops undefined fields, so spreading a partial over defaults never blanks a default. */
function definedOnly<T extends object>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as Partial<T>;
}

function matchList<T extends z.ZodType>(item: T) {
  return z
    .array(item)
    .min(1, 'must not be empty')
    .max(MAX_MATCH_ENTRIES, `must have at most ${MAX_MATCH_ENTRIES} entries`)
    .optional();
}

const hostLabel = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const hostName = new RegExp(`^(?=.{1,253}$)(?:${hostLabel}\\.)*${hostLabel}$`);

// Webhook providers post to the endpoint the webhook names, so there is nothing to choose between.
const matchSchemas: Record<ProviderChannel, z.ZodType<ProviderMatch> | null> = {
  push: z.strictObject({
    platforms: matchList(z.enum(['apns', 'fcm', 'webpush'])),
    apps: matchList(z.string().min(1).max(255)),
  }),
  email: z.strictObject({
    domains: matchList(z.string().regex(hostName, 'must be a lowercase host name')),
  }),
  sms: z
    .strictObject({
      number_prefixes: matchList(
        z.string().regex(/^\+[1-9]\d{0,5}$/, 'must be + and 1 to 6 digits, the first not 0'),
      ),
    })
    .transform(({ number_prefixes }): ProviderMatch => definedOnly({ numberPrefixes: number_prefixes })),
  webhook: null,
};

// ---------------------------------------------------------------------------------------------------------
// Reading the file.

interface NameClaim {
  name: string;
  providerPath: PathSegment[];
  /** False when the name is the type's, by default. */
  explicit: boolean;
}

interface ParseContext {
  options: ProvidersFileOptions;
  problems: Problem[];
  names: NameClaim[];
}

export function parseProvidersFile(text: string, options: ProvidersFileOptions): ProvidersFileResult {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    return { ok: false, problems: [`providers file: not valid JSON (${jsonErrorMessage(error)})`] };
  }
  const context: ParseContext = { options, problems: [], names: [] };
  const file = readDocument(document, context);
  checkNamesUnique(context);
  if (context.problems.length > 0) {
    return { ok: false, problems: inFileOrder(context.problems, document).map(render) };
  }
  return { ok: true, file };
}

/** Reads the providers file through options.readFile, then parses it. */
export function loadProvidersFile(path: string, options: ProvidersFileOptions): ProvidersFileResult {
  let text: string;
  try {
    text = options.readFile(path);
  } catch (error) {
    return { ok: false, problems: [`providers file: cannot read ${path} (${errorCode(error)})`] };
  }
  return parseProvidersFile(text, options);
}

/**
 * V8 quotes the text around a syntax error (`Unexpected token 'h', ..."word": hunter2 }" is not valid JSON`),
 * and that text may be a secret: keep only the kind of error (and its position, where V8 gives one).
 */
function jsonErrorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : '';
  const safe = message
    .replace(/^Unexpected token\b.*$/s, 'Unexpected token')
    .replace(/,?\s*\S*".*" is not valid JSON$/s, '');
  return safe || 'syntax error';
}

function readDocument(document: unknown, context: ParseContext): ProvidersFile {
  const file: ProvidersFile = { channels: {} };
  if (!isPlainObject(document)) {
    context.problems.push({ path: [], rule: 'must be an object' });
    return file;
  }
  for (const key of Object.keys(document)) {
    if (key !== 'channels') context.problems.push(unknownKey([], key));
  }
  const channels = document.channels;
  if (!isPlainObject(channels)) {
    const rule = channels === undefined ? 'required' : 'must be an object';
    context.problems.push({ path: ['channels'], rule });
    return file;
  }
  for (const [key, list] of Object.entries(channels)) {
    const channel = channelOf(key, context);
    if (channel === undefined) continue;
    const entries = readChannel(channel, list, context);
    if (entries) file.channels[channel] = entries;
  }
  return file;
}

function channelOf(key: string, context: ParseContext): ProviderChannel | undefined {
  if ((providerChannels as readonly string[]).includes(key)) return key as ProviderChannel;
  const rule =
    key === 'in_app'
      ? 'in-app notifications are delivered by Herald itself and take no provider'
      : `unknown channel (use ${providerChannels.join(', ')})`;
  context.problems.push({ path: ['channels', key], rule });
  return undefined;
}

function readChannel(
  channel: ProviderChannel,
  list: unknown,
  context: ParseContext,
): ProviderEntry[] | undefined {
  const path = ['channels', channel];
  if (!Array.isArray(list)) {
    context.problems.push({ path, rule: 'must be a list of providers' });
    return undefined;
  }
  if (list.length === 0) context.problems.push({ path, rule: 'must list at least one provider' });
  if (list.length > MAX_PROVIDERS_PER_CHANNEL) {
    context.problems.push({ path, rule: `must list at most ${MAX_PROVIDERS_PER_CHANNEL} providers` });
  }
  // Every provider is read even when the list is too long, so its own problems are reported too.
  const entries = list.map((raw, index) => readProvider(raw, channel, index, context));
  return entries.every((entry) => entry !== undefined) ? entries : undefined;
}

function readProvider(
  raw: unknown,
  channel: ProviderChannel,
  index: number,
  context: ParseContext,
): ProviderEntry | undefined {
  const path: PathSegment[] = ['channels', channel, index];
  if (!isPlainObject(raw)) {
    context.problems.push({ path, rule: 'must be an object' });
    return undefined;
  }
  const problemsBefore = context.problems.length;
  for (const key of Object.keys(raw)) {
    if (!PROVIDER_KEYS.includes(key)) context.problems.push(unknownKey(path, key));
  }
  const type = readType(raw.type, channel, [...path, 'type'], context);
  const name = readName(raw.name, type, path, context);
  const timeoutMs = readOptional(timeoutSchema, raw.timeout_ms, [...path, 'timeout_ms'], context);
  const rateLimit = readOptional(rateLimitSchema, raw.rate_limit, [...path, 'rate_limit'], context);
  const retry = readOptional(retrySchema, raw.retry, [...path, 'retry'], context);
  const match = readMatch(raw.match, channel, [...path, 'match'], context);
  const settings =
    type === undefined ? undefined : readSettings(raw.settings, type, [...path, 'settings'], context);
  if (context.problems.length > problemsBefore || !type || !name || !settings) return undefined;
  return {
    channel,
    index,
    path: formatPath(path),
    type,
    name,
    timeoutMs,
    rateLimit,
    retry,
    match,
    settings: settings.settings,
    secretPaths: settings.secretPaths,
  };
}

/** The type's name when the registry knows it, even if it serves another channel: its settings are checked too. */
function readType(
  raw: unknown,
  channel: ProviderChannel,
  path: PathSegment[],
  context: ParseContext,
): string | undefined {
  const { types } = context.options;
  const rule = typeRule(raw, channel, types);
  if (rule !== undefined) context.problems.push({ path, rule });
  // A type that does not serve the channel is the problem; its settings are not judged as well.
  return rule === undefined && typeof raw === 'string' ? raw : undefined;
}

function typeRule(raw: unknown, channel: ProviderChannel, types: ProviderTypes): string | undefined {
  if (raw === undefined) return 'required';
  if (typeof raw !== 'string') return 'must be a string';
  // hasOwn, not `in`: "constructor" is no provider type.
  if (!Object.hasOwn(types, raw)) {
    return `unknown type ${JSON.stringify(raw)} (known: ${Object.keys(types).sort().join(', ')})`;
  }
  const served = types[raw]!.channels;
  return served.includes(channel)
    ? undefined
    : `${JSON.stringify(raw)} does not serve ${channel} (it serves ${served.join(', ')})`;
}

function readName(
  raw: unknown,
  type: string | undefined,
  providerPath: PathSegment[],
  context: ParseContext,
): string | undefined {
  if (raw === undefined) {
    if (type !== undefined) context.names.push({ name: type, providerPath, explicit: false });
    return type;
  }
  const name = check(nameSchema, raw, [...providerPath, 'name'], context.problems)?.value;
  if (name !== undefined) context.names.push({ name, providerPath, explicit: true });
  return name;
}

/** null when the field is absent (or invalid: the problem is recorded and the entry discarded). */
function readOptional<T extends z.ZodType>(
  schema: T,
  raw: unknown,
  path: PathSegment[],
  context: ParseContext,
): z.output<T> | null {
  if (raw === undefined) return null;
  return check(schema, raw, path, context.problems)?.value ?? null;
}

function readMatch(
  raw: unknown,
  channel: ProviderChannel,
  path: PathSegment[],
  context: ParseContext,
): ProviderMatch | null {
  if (raw === undefined) return null;
  const schema = matchSchemas[channel];
  if (schema === null) {
    context.problems.push({ path, rule: `not allowed for ${channel} providers` });
    return null;
  }
  return check(schema, raw, path, context.problems)?.value ?? null;
}

function readSettings(
  raw: unknown,
  type: string,
  path: PathSegment[],
  context: ParseContext,
): ResolvedSettings | undefined {
  // Absent settings are checked as {}, so a type with required settings names the missing ones.
  const given = raw ?? {};
  if (!isPlainObject(given)) {
    context.problems.push({ path, rule: 'must be an object' });
    return undefined;
  }
  const parsed = check(context.options.types[type]!.settings, given, path, context.problems);
  if (parsed === undefined) return undefined;
  if (!isPlainObject(parsed.value)) {
    throw new TypeError(`the settings schema of provider type "${type}" must produce an object`);
  }
  return resolveSecrets(parsed.value, path, context);
}

/** The second use of a name is the problem; names key rate limits and breakers, so they are unique file-wide. */
function checkNamesUnique(context: ParseContext): void {
  const firstUse = new Map<string, NameClaim>();
  for (const claim of context.names) {
    const first = firstUse.get(claim.name);
    if (first === undefined) {
      firstUse.set(claim.name, claim);
      continue;
    }
    const where = formatPath(first.providerPath);
    context.problems.push(
      claim.explicit
        ? { path: [...claim.providerPath, 'name'], rule: `already used by ${where}` }
        : {
            path: claim.providerPath,
            // Only a type name is quoted: an unnamed provider's name is its type.
            rule: `name defaults to the type ${JSON.stringify(claim.name)}, already used by ${where} (set name)`,
          },
    );
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

// ---------------------------------------------------------------------------------------------------------
// Matching destinations.

export interface MatchDestination {
  platform?: string;
  appId?: string | null;
  address?: string;
  number?: string;
}

/**
 * Whether a provider takes a destination: every list the match has must admit it (a null match takes
 * everything). Email compares the domain after the last '@', lowercased; numbers match by prefix.
 */
export function providerMatches(match: ProviderMatch | null, destination: MatchDestination): boolean {
  if (match === null) return true;
  const { number } = destination;
  return (
    admits(match.platforms, destination.platform) &&
    admits(match.apps, destination.appId ?? undefined) &&
    admits(match.domains, emailDomain(destination.address)) &&
    (match.numberPrefixes === undefined ||
      (number !== undefined && match.numberPrefixes.some((prefix) => number.startsWith(prefix))))
  );
}

function admits(list: string[] | undefined, value: string | undefined): boolean {
  return list === undefined || (value !== undefined && list.includes(value));
}

function emailDomain(address: string | undefined): string | undefined {
  const at = address?.lastIndexOf('@') ?? -1;
  return address !== undefined && at >= 0 ? address.slice(at + 1).toLowerCase() : undefined;
}
