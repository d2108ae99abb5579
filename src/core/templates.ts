// Notification templates, rendered with LiquidJS. Templates are written by tenant admins, so the engine is
// configured as a sandbox: no file system, no prototype walks, strict variables and filters, and limits on
// template size, render time and allocations. Rendering never throws; failures become a reason string.
import { Liquid, type Template, UndefinedVariableError } from 'liquidjs';

export interface TemplateSource {
  /** Doubles as the e-mail subject; null when the template has no title. */
  title: string | null;
  body: string;
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

export type RenderResult = { ok: true; title: string | null; body: string } | { ok: false; reason: string };

type TemplateField = 'title' | 'body';

export interface TemplateRenderer {
  /** null when both parts parse; otherwise a message naming the part ("title" or "body") and the problem. */
  check(source: TemplateSource): { field: TemplateField; message: string } | null;
  /**
   * Renders; a missing variable or a broken template is { ok: false, reason } — never a throw.
   * html: escape every output (for HTML channels), otherwise no escaping.
   */
  render(source: TemplateSource, context: RenderContext, options: { html: boolean }): Promise<RenderResult>;
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

function createLiquid(html: boolean): Liquid {
  return new Liquid({
    strictVariables: true,
    strictFilters: true,
    ownPropertyOnly: true,
    // An empty in-memory template map replaces the file system, so {% include %}, {% render %} and
    // {% layout %} cannot read files from the server.
    templates: {},
    outputEscape: html ? 'escape' : undefined,
    parseLimit: templateLimits.parseChars,
    renderLimit: templateLimits.renderMs,
    memoryLimit: templateLimits.memoryUnits,
  });
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

function describeFailure(error: unknown, field: TemplateField): string {
  if (error instanceof UndefinedVariableError) {
    const name = UNDEFINED_VARIABLE_MESSAGE.exec(error.message)?.[1];
    if (name !== undefined) return `template: missing variable "${name}" in ${field}`;
  }
  const message = error instanceof Error ? error.message : String(error);
  return `template: ${message} in ${field}`;
}

class LiquidTemplateRenderer implements TemplateRenderer {
  private readonly htmlEngine = createLiquid(true);
  private readonly textEngine = createLiquid(false);
  private readonly cache = new ParsedTemplateCache(templateLimits.cachedTemplates);

  check(source: TemplateSource): { field: TemplateField; message: string } | null {
    for (const [field, text] of this.parts(source)) {
      try {
        this.parse(text, false);
      } catch (error) {
        return { field, message: describeFailure(error, field) };
      }
    }
    return null;
  }

  async render(
    source: TemplateSource,
    context: RenderContext,
    options: { html: boolean },
  ): Promise<RenderResult> {
    // Only the three documented roots are visible to a template.
    const scope = { data: context.data, recipient: context.recipient, notification: context.notification };
    const title = source.title === null ? null : await this.renderPart('title', source.title, scope, options);
    if (title !== null && !title.ok) return title;
    const body = await this.renderPart('body', source.body, scope, options);
    if (!body.ok) return body;
    return { ok: true, title: title === null ? null : title.text, body: body.text };
  }

  private async renderPart(
    field: TemplateField,
    text: string,
    scope: object,
    options: { html: boolean },
  ): Promise<{ ok: true; text: string } | { ok: false; reason: string }> {
    try {
      const engine = options.html ? this.htmlEngine : this.textEngine;
      const rendered: unknown = await engine.render(this.parse(text, options.html), scope);
      return { ok: true, text: String(rendered) };
    } catch (error) {
      return { ok: false, reason: describeFailure(error, field) };
    }
  }

  private parse(text: string, html: boolean): Template[] {
    const key = `${html ? 'html' : 'text'}:${text}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    const parsed = (html ? this.htmlEngine : this.textEngine).parse(text);
    this.cache.set(key, parsed);
    return parsed;
  }

  private parts(source: TemplateSource): Array<[TemplateField, string]> {
    return source.title === null
      ? [['body', source.body]]
      : [
          ['title', source.title],
          ['body', source.body],
        ];
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
