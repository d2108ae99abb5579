// Notification templates, rendered with LiquidJS. Templates are written by tenant admins, so the engine is
// configured as a sandbox: no file system, no prototype walks, strict variables and filters, and limits on
// template size, render time, allocations and rendered size. Rendering never throws; failures become a
// reason string.
import {
  type Context,
  type Emitter,
  type FilterImplOptions,
  Liquid,
  type Template,
  toValue,
  UndefinedVariableError,
} from 'liquidjs';

/**
 * The most a template part (title or body) may render to: 256 KiB of UTF-8. Every byte the part writes
 * counts, text captured with `{% capture %}` included, and no filter may build a longer value; the bound
 * is enforced while rendering, so an exploding template stops early instead of building a huge string.
 * A part that passes it fails with `template: <part> renders to more than 262144 bytes` (`… builds a value of
 * more than 262144 bytes` when a filter result does).
 */
export const MAX_RENDERED_PART_BYTES = 256 * 1024;

export interface TemplateSource {
  /** Doubles as the e-mail subject; null when the template has no title. */
  title: string | null;
  body: string;
  /** E-mail only: the plain-text part; absent or null when the template has none. */
  text?: string | null;
}

export interface RenderContext {
  data: Record<string, unknown>;
  recipient: {
    userId: string;
    email: string | null;
    phone: string | null;
    locale: string | null;
    timezone: string | null;
  };
  notification: { id: string; type: string; title: string | null; body: string | null };
}

export type TemplateField = 'title' | 'body' | 'text';

export type RenderResult =
  | { ok: true; title: string | null; body: string; text?: string | undefined }
  | {
      ok: false;
      reason: string;
      /** Set when the failure is this part passing MAX_RENDERED_PART_BYTES: a problem of the template itself. */
      oversized?: TemplateField;
    };

export interface TemplateRenderer {
  /** null when every part parses; otherwise a message naming the part ("title", "body", "text") and the problem. */
  check(source: TemplateSource): { field: TemplateField; message: string } | null;
  /**
   * Renders; a missing variable or a broken template is { ok: false, reason } — never a throw.
   * html: escape every output (for HTML channels), otherwise no escaping.
   */
  render(source: TemplateSource, context: RenderContext, options: RenderOptions): Promise<RenderResult>;
}

const templateLimits = {
  /** Characters per parsed part; far above any real e-mail body, far below what would stall parsing. */
  parseChars: 256 * 1024,
  /** Wall-clock budget per rendered part. */
  renderMs: 100,
  /** LiquidJS allocation units (array elements, string characters) per rendered part. */
  memoryUnits: 1_000_000,
  /** Parsed templates kept per renderer. */
  cachedTemplates: 1_000,
} as const;

// LiquidJS's memoryLimit charges what filters allocate, but not what a part writes: `{{ a }}{{ a }}` inside a
// `{% capture %}` doubles a string per loop turn for free, so a 300-byte template could build hundreds of
// megabytes. Two guards close that, both acting before the big string exists:
// - every emitter (the part's output and each capture's) shares one byte budget per rendered part, and
//   refuses a write that would pass MAX_RENDERED_PART_BYTES;
// - every filter's result is measured, so no value (the only other way text reaches a variable, through
//   {% assign %}) is longer than the bound; an array counts as the text it would render to, which keeps
//   implicit conversions (`arr > 1`, `arr | upcase`) from joining a huge string.

/** Thrown when a part passes MAX_RENDERED_PART_BYTES; LiquidJS wraps it, describeFailure finds it again. */
class RenderedSizeError extends Error {
  constructor(readonly what: 'output' | 'value') {
    super(`rendered size limit exceeded (${what})`);
    this.name = 'RenderedSizeError';
  }
}

/** One rendered part's bookkeeping: the bytes written so far over all its emitters, and measured arrays. */
interface OutputBudget {
  used: number;
  /** renderedLength of each array met so far; LiquidJS never changes an array in place. */
  measured: WeakMap<object, number>;
}

// One budget per render: keyed by the render's memory Limiter, which LiquidJS creates per render and shares
// with every Context spawned from it.
const outputBudgets = new WeakMap<object, OutputBudget>();

function budgetOf(ctx: Context): OutputBudget {
  let budget = outputBudgets.get(ctx.memoryLimit);
  if (budget === undefined) {
    budget = { used: 0, measured: new WeakMap() };
    outputBudgets.set(ctx.memoryLimit, budget);
  }
  return budget;
}

/**
 * The length (UTF-16 units, never more than its UTF-8 bytes) of the text LiquidJS would render `value` to,
 * or MAX_RENDERED_PART_BYTES + 1 once it is longer — computed without building that text, and each array
 * only once per render.
 */
function renderedLength(value: unknown, measured: WeakMap<object, number>): number {
  const v: unknown = toValue(value);
  if (typeof v === 'string') return v.length;
  if (v === null || v === undefined) return 0;
  if (Array.isArray(v)) {
    const known = measured.get(v);
    if (known !== undefined) return known;
    let total = 0;
    for (const item of v) {
      total += renderedLength(item, measured);
      if (total > MAX_RENDERED_PART_BYTES) {
        total = MAX_RENDERED_PART_BYTES + 1;
        break;
      }
    }
    measured.set(v, total);
    return total;
  }
  try {
    return String(v).length;
  } catch {
    return 0; // an object LiquidJS cannot print either; it fails there, not here
  }
}

/** LiquidJS's own stringify (not exported): what an output of `value` writes. */
function renderedText(value: unknown): string {
  const v: unknown = toValue(value);
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.map(renderedText).join('');
  return String(v);
}

/** An emitter that charges every write to the part's budget and refuses the one that would pass the bound. */
class BoundedEmitter implements Emitter {
  buffer = '';

  constructor(private readonly budget: OutputBudget) {}

  write(html: unknown): void {
    const budget = this.budget;
    // Characters never outnumber UTF-8 bytes: a cheap refusal before any text is built.
    if (budget.used + renderedLength(html, budget.measured) > MAX_RENDERED_PART_BYTES) {
      throw new RenderedSizeError('output');
    }
    const text = renderedText(html);
    const bytes = Buffer.byteLength(text, 'utf8');
    if (budget.used + bytes > MAX_RENDERED_PART_BYTES) throw new RenderedSizeError('output');
    budget.used += bytes;
    this.buffer += text;
  }
}

type FilterHandler = Extract<FilterImplOptions, (...args: never[]) => unknown>;

/** The filter, refusing a result longer than MAX_RENDERED_PART_BYTES (LiquidJS resolves a yielded generator). */
function boundedFilter(filter: FilterImplOptions): FilterImplOptions {
  const handler: FilterHandler = typeof filter === 'function' ? filter : filter.handler;
  function* bounded(this: ThisParameterType<FilterHandler>, ...args: unknown[]): Generator<unknown, unknown> {
    const result: unknown = yield handler.apply(this, args as Parameters<FilterHandler>);
    if (renderedLength(result, budgetOf(this.context).measured) > MAX_RENDERED_PART_BYTES) {
      throw new RenderedSizeError('value');
    }
    return result;
  }
  return typeof filter === 'function' ? bounded : { handler: bounded, raw: filter.raw };
}

/** html: outputs escaped for HTML; markdown (wins over html): for Markdown, see escapeMarkdown. */
export interface RenderOptions {
  html: boolean;
  markdown?: boolean | undefined;
}

function escapeOf(options: RenderOptions): OutputEscape {
  return options.markdown ? 'markdown' : options.html ? 'html' : 'none';
}

/** How outputs are escaped: for HTML, for Markdown (HTML and Markdown punctuation), or not at all. */
export type OutputEscape = 'html' | 'markdown' | 'none';

/**
 * An output inside Markdown: HTML-escaped, and every Markdown punctuation character backslash-escaped (":" and
 * "@" too, so a URL or an address in the data is not turned into a link), so data can never add markup, links
 * or structure to the message; the template's own Markdown is untouched.
 */
export function escapeMarkdown(value: unknown): string {
  const text = String(value ?? '');
  // Markdown first: the entities the HTML escape writes contain "#", which must stay as written.
  return text
    .replace(/[\\`*_{}[\]()#+\-.!|~:@]/g, '\\$&')
    .replace(
      /[&<>"']/g,
      (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
    );
}

function createLiquid(mode: OutputEscape): Liquid {
  const liquid = new Liquid({
    strictVariables: true,
    strictFilters: true,
    ownPropertyOnly: true,
    // An empty in-memory template map replaces the file system, so {% include %}, {% render %} and
    // {% layout %} cannot read files from the server.
    templates: {},
    outputEscape: mode === 'html' ? 'escape' : mode === 'markdown' ? escapeMarkdown : undefined,
    parseLimit: templateLimits.parseChars,
    renderLimit: templateLimits.renderMs,
    memoryLimit: templateLimits.memoryUnits,
  });
  for (const [name, filter] of Object.entries(liquid.filters)) {
    liquid.registerFilter(name, boundedFilter(filter));
  }
  // A render, a {% capture %} and a layout's stored blocks each get a fresh emitter from renderTemplates when
  // the caller passes none; make that emitter a bounded one.
  const renderer = liquid.renderer;
  const renderTemplates = renderer.renderTemplates;
  renderer.renderTemplates = (templates, ctx, emitter) =>
    renderTemplates.call(renderer, templates, ctx, emitter ?? new BoundedEmitter(budgetOf(ctx)));
  return liquid;
}

/** Insertion-ordered Map that forgets its oldest entry once it is full. */
class ParsedTemplateCache {
  private readonly entries = new Map<string, Template[]>();

  constructor(private readonly capacity: number) {}

  get(key: string): Template[] | undefined {
    return this.entries.get(key);
  }

  set(key: string, value: Template[]): void {
    if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, value);
  }
}

const UNDEFINED_VARIABLE_MESSAGE = /^undefined variable: ([^,]+)/;

function findSizeError(error: unknown): RenderedSizeError | undefined {
  let current = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    if (current instanceof RenderedSizeError) return current;
    current = (current as { originalError?: unknown }).originalError;
  }
  return undefined;
}

function describeFailure(error: unknown, field: TemplateField): string {
  const sizeError = findSizeError(error);
  if (sizeError?.what === 'output') {
    return `template: ${field} renders to more than ${MAX_RENDERED_PART_BYTES} bytes`;
  }
  if (sizeError?.what === 'value') {
    return `template: ${field} builds a value of more than ${MAX_RENDERED_PART_BYTES} bytes`;
  }
  if (error instanceof UndefinedVariableError) {
    const name = UNDEFINED_VARIABLE_MESSAGE.exec(error.message)?.[1];
    if (name !== undefined) return `template: missing variable "${name}" in ${field}`;
  }
  const message = error instanceof Error ? error.message : String(error);
  return `template: ${message} in ${field}`;
}

class LiquidTemplateRenderer implements TemplateRenderer {
  private readonly engines: Record<OutputEscape, Liquid> = {
    html: createLiquid('html'),
    markdown: createLiquid('markdown'),
    none: createLiquid('none'),
  };
  private readonly cache = new ParsedTemplateCache(templateLimits.cachedTemplates);

  check(source: TemplateSource): { field: TemplateField; message: string } | null {
    for (const [field, text] of this.parts(source)) {
      try {
        this.parse(text, 'none');
      } catch (error) {
        return { field, message: describeFailure(error, field) };
      }
    }
    return null;
  }

  async render(
    source: TemplateSource,
    context: RenderContext,
    options: RenderOptions,
  ): Promise<RenderResult> {
    // Only the three documented roots are visible to a template.
    const scope = { data: context.data, recipient: context.recipient, notification: context.notification };
    const title = source.title === null ? null : await this.renderPart('title', source.title, scope, options);
    if (title !== null && !title.ok) return title;
    const body = await this.renderPart('body', source.body, scope, options);
    if (!body.ok) return body;
    const text = source.text ? await this.renderPart('text', source.text, scope, options) : null;
    if (text !== null && !text.ok) return text;
    return { ok: true, title: title === null ? null : title.text, body: body.text, text: text?.text };
  }

  private async renderPart(
    field: TemplateField,
    text: string,
    scope: object,
    options: RenderOptions,
  ): Promise<{ ok: true; text: string } | { ok: false; reason: string; oversized?: TemplateField }> {
    try {
      const mode = escapeOf(options);
      const rendered: unknown = await this.engines[mode].render(this.parse(text, mode), scope);
      return { ok: true, text: String(rendered) };
    } catch (error) {
      const reason = describeFailure(error, field);
      return findSizeError(error) ? { ok: false, reason, oversized: field } : { ok: false, reason };
    }
  }

  private parse(text: string, mode: OutputEscape): Template[] {
    const key = `${mode}:${text}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    const parsed = this.engines[mode].parse(text);
    this.cache.set(key, parsed);
    return parsed;
  }

  private parts(source: TemplateSource): Array<[TemplateField, string]> {
    const parts: Array<[TemplateField, string]> = [];
    if (source.title !== null) parts.push(['title', source.title]);
    parts.push(['body', source.body]);
    if (source.text) parts.push(['text', source.text]);
    return parts;
  }
}

export function createTemplateRenderer(): TemplateRenderer {
  return new LiquidTemplateRenderer();
}

/** The stored locale a template keyed as `key` would be found under, or undefined. */
function findLocale(available: readonly string[], key: string): string | undefined {
  const wanted = key.toLowerCase();
  return available.find((locale) => locale.toLowerCase() === wanted);
}

/**
 * Locale fallback: given the stored locales of a template (strings like 'de-AT', 'de', 'default') and the
 * recipient's locale (BCP 47 or null), pick 'de-AT' -> 'de' -> 'default' (case-insensitive match, return the
 * stored spelling); null when nothing fits.
 */
export function selectTemplateLocale(available: readonly string[], requested: string | null): string | null {
  if (requested !== null) {
    // Drop subtags from the right: zh-Hant-TW -> zh-Hant -> zh.
    const subtags = requested.split('-');
    for (let length = subtags.length; length > 0; length--) {
      const candidate = subtags.slice(0, length).join('-');
      if (candidate === '') continue;
      const found = findLocale(available, candidate);
      if (found !== undefined) return found;
    }
  }
  return findLocale(available, 'default') ?? null;
}
