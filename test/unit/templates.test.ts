import { describe, expect, it } from 'vitest';
import {
  createTemplateRenderer,
  MAX_RENDERED_PART_BYTES,
  type RenderContext,
  type RenderResult,
  selectTemplateLocale,
} from '../../src/core/templates.js';

const context: RenderContext = {
  data: { name: 'Ada', orderId: 'A-17', items: ['tea', 'cake'], html: '<script>alert(1)</script>' },
  recipient: {
    userId: 'user-1',
    email: 'ada@example.com',
    phone: null,
    locale: 'de-AT',
    timezone: 'Europe/Vienna',
  },
  notification: { id: 'n-1', type: 'order.shipped', title: 'Shipped', body: null },
};

const text = { html: false };
const html = { html: true };

function failureReason(result: RenderResult): string {
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result)}`);
  return result.reason;
}

describe('template rendering', () => {
  it('renders data, recipient and notification variables into title and body', async () => {
    const renderer = createTemplateRenderer();
    const result = await renderer.render(
      {
        title: 'Order {{ data.orderId }} shipped',
        body: 'Hi {{ data.name }} ({{ recipient.email }}), {{ notification.type }} for {{ recipient.userId }}',
      },
      context,
      text,
    );
    expect(result).toEqual({
      ok: true,
      title: 'Order A-17 shipped',
      body: 'Hi Ada (ada@example.com), order.shipped for user-1',
    });
  });

  it('renders an e-mail plain-text part of its own, and names it when it does not parse', async () => {
    const renderer = createTemplateRenderer();
    const result = await renderer.render(
      { title: null, body: '<b>{{ data.name }}</b>', text: 'Hi {{ data.name }}' },
      { ...context, data: { name: '<A>' } },
      { html: false },
    );
    expect(result).toEqual({ ok: true, title: null, body: '<b><A></b>', text: 'Hi <A>' });
    expect(renderer.check({ title: null, body: 'ok', text: '{% if %}' })?.field).toBe('text');
  });
  it('renders a null title as null', async () => {
    const result = await createTemplateRenderer().render({ title: null, body: 'Hi' }, context, text);
    expect(result).toEqual({ ok: true, title: null, body: 'Hi' });
  });

  it('renders a null recipient field as empty text, not as a missing variable', async () => {
    const result = await createTemplateRenderer().render(
      { title: null, body: '[{{ recipient.phone }}]' },
      context,
      text,
    );
    expect(result).toEqual({ ok: true, title: null, body: '[]' });
  });

  it('supports loops over data', async () => {
    const result = await createTemplateRenderer().render(
      { title: null, body: '{% for item in data.items %}{{ item }};{% endfor %}' },
      context,
      text,
    );
    expect(result).toEqual({ ok: true, title: null, body: 'tea;cake;' });
  });

  it('escapes every output for HTML channels', async () => {
    const result = await createTemplateRenderer().render(
      { title: '{{ data.html }}', body: '<p>{{ data.html }}</p>' },
      context,
      html,
    );
    expect(result).toEqual({
      ok: true,
      title: '&lt;script&gt;alert(1)&lt;/script&gt;',
      body: '<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>',
    });
  });

  it('leaves output unescaped for text channels', async () => {
    const result = await createTemplateRenderer().render(
      { title: null, body: '{{ data.html }}' },
      context,
      text,
    );
    expect(result).toEqual({ ok: true, title: null, body: '<script>alert(1)</script>' });
  });

  it('keeps the HTML and text renderings of the same template apart', async () => {
    const renderer = createTemplateRenderer();
    const source = { title: null, body: '{{ data.html }}' };
    const escaped = await renderer.render(source, context, html);
    const plain = await renderer.render(source, context, text);
    expect(escaped).toMatchObject({ ok: true, body: '&lt;script&gt;alert(1)&lt;/script&gt;' });
    expect(plain).toMatchObject({ ok: true, body: '<script>alert(1)</script>' });
  });

  it('fails with the variable name when a data variable is missing from the body', async () => {
    const result = await createTemplateRenderer().render(
      { title: null, body: 'Hi {{ data.nickname }}' },
      context,
      text,
    );
    expect(failureReason(result)).toBe('template: missing variable "data.nickname" in body');
  });

  it('fails with the variable name when a variable in the title is missing', async () => {
    const result = await createTemplateRenderer().render(
      { title: '{{ account.plan }}', body: 'Hi' },
      context,
      text,
    );
    expect(failureReason(result)).toBe('template: missing variable "account" in title');
  });

  it('treats a variable missing inside a condition as missing', async () => {
    const result = await createTemplateRenderer().render(
      { title: null, body: '{% if data.vip %}VIP{% endif %}' },
      context,
      text,
    );
    expect(failureReason(result)).toBe('template: missing variable "data.vip" in body');
  });

  it('applies filters', async () => {
    const result = await createTemplateRenderer().render(
      { title: null, body: '{{ data.name | upcase }} {{ data.items | join: ", " }}' },
      context,
      text,
    );
    expect(result).toEqual({ ok: true, title: null, body: 'ADA tea, cake' });
  });

  it('rejects an unknown filter in check and in render', async () => {
    const renderer = createTemplateRenderer();
    const source = { title: null, body: '{{ data.name | shout }}' };
    expect(renderer.check(source)).toEqual({ field: 'body', message: expect.stringContaining('shout') });
    expect(failureReason(await renderer.render(source, context, text))).toMatch(
      /^template: undefined filter: shout.* in body$/,
    );
  });
});

describe('template checking', () => {
  it('accepts a template whose title and body both parse', () => {
    const renderer = createTemplateRenderer();
    expect(
      renderer.check({ title: 'Order {{ data.orderId }}', body: '{% if data.name %}Hi{% endif %}' }),
    ).toBeNull();
    expect(renderer.check({ title: null, body: 'Hi' })).toBeNull();
  });

  it('names the title when the title does not parse', () => {
    const problem = createTemplateRenderer().check({ title: 'Order {{ data.orderId', body: 'ok' });
    expect(problem).toEqual({
      field: 'title',
      message: expect.stringMatching(/^template: .*not closed.* in title$/),
    });
  });

  it('names the body when the body does not parse', () => {
    const problem = createTemplateRenderer().check({ title: 'ok', body: '{% if data.name %}unterminated' });
    expect(problem).toEqual({ field: 'body', message: expect.stringMatching(/^template: .* in body$/) });
  });

  it('does not flag variables that are only known at render time', () => {
    expect(createTemplateRenderer().check({ title: null, body: '{{ data.whatever }}' })).toBeNull();
  });

  it('renders broken syntax as a failure instead of throwing', async () => {
    const result = await createTemplateRenderer().render(
      { title: null, body: '{% for x in %}{% endfor %}' },
      context,
      text,
    );
    expect(failureReason(result)).toMatch(/^template: .* in body$/);
  });
});

describe('template sandbox', () => {
  it('stops a huge loop quickly instead of hanging', async () => {
    const started = performance.now();
    const result = await createTemplateRenderer().render(
      { title: null, body: '{% for i in (1..100000000) %}x{% endfor %}' },
      context,
      text,
    );
    expect(failureReason(result)).toMatch(/limit exceeded/);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('stops nested loops that stay under the memory limit by the render time limit', async () => {
    const started = performance.now();
    const result = await createTemplateRenderer().render(
      { title: null, body: '{% for i in (1..100000) %}{% for j in (1..100000) %}x{% endfor %}{% endfor %}' },
      context,
      text,
    );
    expect(failureReason(result)).toMatch(/render limit exceeded/);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('stops a string that doubles itself by the memory limit', async () => {
    const result = await createTemplateRenderer().render(
      {
        title: null,
        body: '{% assign s = "x" %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s.size }}',
      },
      context,
      text,
    );
    expect(failureReason(result)).toMatch(/memory alloc limit exceeded/);
  });

  it.each([
    '{{ data.constructor }}',
    '{{ data.constructor.name }}',
    '{{ data.__proto__ }}',
    '{{ data.toString }}',
  ])('does not reach the prototype through %s', async (body) => {
    const result = await createTemplateRenderer().render({ title: null, body }, context, text);
    expect(failureReason(result)).toMatch(
      /^template: missing variable "data\.(constructor|__proto__|toString)"/,
    );
  });

  it.each(["{% include 'package.json' %}", "{% render '/etc/passwd' %}", "{% layout 'package.json' %}x"])(
    'cannot read files from the server with %s',
    async (body) => {
      const result = await createTemplateRenderer().render({ title: null, body }, context, text);
      expect(result.ok).toBe(false);
      expect(JSON.stringify(result)).not.toContain('herald');
    },
  );
});

describe('template rendered size bound', () => {
  const LIMIT = MAX_RENDERED_PART_BYTES;
  /** 64 KiB of data: four outputs of it fill a part exactly. */
  const chunk = 'x'.repeat(64 * 1024);
  const big: RenderContext = { ...context, data: { ...context.data, chunk, umlauts: 'ä'.repeat(32 * 1024) } };
  const tooLong = `template: body renders to more than ${LIMIT} bytes`;
  const tooLongValue = `template: body builds a value of more than ${LIMIT} bytes`;
  /** Doubles a captured string 30 times: a gigabyte if nothing stopped it. */
  const exploding =
    '{% capture a %}x{% endcapture %}{% for i in (1..30) %}{% capture a %}{{a}}{{a}}{% endcapture %}{% endfor %}{{a}}';

  function render(body: string, options = text, title: string | null = null) {
    return createTemplateRenderer().render({ title, body }, big, options);
  }

  it('is 256 KiB per part', () => {
    expect(LIMIT).toBe(262_144);
  });

  it('renders a part of exactly the limit', async () => {
    const result = await render('{% for i in (1..4) %}{{ data.chunk }}{% endfor %}');
    expect(result.ok && Buffer.byteLength(result.body)).toBe(LIMIT);
  });

  it('fails a part whose output passes the limit by one byte, naming the part', async () => {
    const result = await render('{% for i in (1..4) %}{{ data.chunk }}{% endfor %}!');
    expect(result).toEqual({ ok: false, reason: tooLong, oversized: 'body' });
  });

  it('counts UTF-8 bytes, not characters', async () => {
    // 32 Ki "ä" are 64 KiB of UTF-8.
    const exact = await render('{% for i in (1..4) %}{{ data.umlauts }}{% endfor %}');
    expect(exact.ok && exact.body.length).toBe(LIMIT / 2);
    expect(failureReason(await render('{% for i in (1..4) %}{{ data.umlauts }}{% endfor %}x'))).toBe(tooLong);
  });

  it('bounds the title on its own and names it', async () => {
    const result = await render('ok', text, '{% for i in (1..5) %}{{ data.chunk }}{% endfor %}');
    expect(result).toEqual({
      ok: false,
      reason: `template: title renders to more than ${LIMIT} bytes`,
      oversized: 'title',
    });
  });

  it('bounds HTML-escaped output the same way', async () => {
    expect(failureReason(await render('{% for i in (1..5) %}{{ data.chunk }}{% endfor %}', html))).toBe(
      tooLong,
    );
  });

  it('stops a capture that doubles itself early, with little memory', async () => {
    const peakBefore = process.resourceUsage().maxRSS * 1024;
    const started = performance.now();
    const results: RenderResult[] = [];
    for (const options of [text, html]) {
      for (const body of [exploding, exploding.replace('(1..30)', '(1..28)')]) {
        const result = await render(body, options);
        // What a sender does with an answer: encode it whole.
        if (result.ok) Buffer.byteLength(result.body);
        results.push(result);
      }
    }
    const elapsed = performance.now() - started;
    const growth = process.resourceUsage().maxRSS * 1024 - peakBefore;
    expect(growth).toBeLessThan(50 * 1024 * 1024);
    expect(elapsed).toBeLessThan(2_000);
    expect(results).toEqual(Array(4).fill({ ok: false, reason: tooLong, oversized: 'body' }));
  });

  it('counts text captured into a variable towards the limit', async () => {
    // 128 KiB captured, then 256 KiB written: 384 KiB rendered in all.
    const body = '{% capture c %}{{ data.chunk }}{{ data.chunk }}{% endcapture %}{{ c }}{{ c }}';
    expect(failureReason(await render(body))).toBe(tooLong);
    const fits = await render('{% capture c %}{{ data.chunk }}{% endcapture %}{{ c }}{{ c }}{{ c }}');
    expect(fits.ok && fits.body.length).toBe(3 * chunk.length);
  });

  it('refuses a value built by append past the limit, even when it is never output', async () => {
    const appended = 'data.chunk | append: data.chunk | append: data.chunk | append: data.chunk';
    const fits = await render(`{% assign s = ${appended} %}{{ s | size }}`);
    expect(fits).toMatchObject({ ok: true, body: String(LIMIT) });
    const result = await render(`{% assign s = ${appended} | append: "x" %}{{ s | size }}`);
    expect(result).toEqual({ ok: false, reason: tooLongValue, oversized: 'body' });
  });

  it.each([
    ['join', '{{ data.chunk | split: "" | join: "xxxxx" | size }}'],
    ['replace', '{{ data.chunk | replace: "x", "xxxxx" | size }}'],
    [
      'prepend',
      '{% assign s = data.chunk %}{% for i in (1..3) %}{% assign s = s | prepend: s %}{% endfor %}',
    ],
  ])('refuses a value built by %s past the limit', async (_filter, body) => {
    expect(failureReason(await render(body))).toBe(tooLongValue);
  });

  it('bounds output sized by times', async () => {
    const body = '{% assign n = 2 | times: 3 %}{% for i in (1..n) %}{{ data.chunk }}{% endfor %}';
    expect(failureReason(await render(body))).toBe(tooLong);
  });

  it('refuses an array that would render past the limit, so no conversion joins a huge string', async () => {
    const grow = (times: number) =>
      `{% assign a = "" | split: "," | push: data.chunk %}{% for i in (1..${times}) %}{% assign a = a | concat: a %}{% endfor %}`;
    expect(failureReason(await render(`${grow(3)}{% if a > 1 %}big{% endif %}`))).toBe(tooLongValue);
    // Four chunks render to exactly the limit.
    expect(await render(`${grow(2)}{{ a | size }}`)).toMatchObject({ ok: true, body: '4' });
    const exact = await render(`${grow(2)}{{ a }}`);
    expect(exact.ok && exact.body.length).toBe(LIMIT);
    expect(failureReason(await render(`${grow(2)}{{ a }}!`))).toBe(tooLong);
  });

  it('leaves ordinary templates alone', async () => {
    const result = await createTemplateRenderer().render(
      {
        title: '{% capture who %}{{ data.name | upcase }}{% endcapture %}Hi {{ who }}',
        body: '{% for item in data.items %}{% cycle "a", "b" %}:{{ item | append: "!" }}{% endfor %} {{ data.items | join: ", " }} {{ data.orderId | replace: "-", "/" }}',
      },
      context,
      html,
    );
    expect(result).toEqual({ ok: true, title: 'Hi ADA', body: 'a:tea!b:cake! tea, cake A/17' });
  });
});

describe('template locale selection', () => {
  it('picks the exact locale when it is stored', () => {
    expect(selectTemplateLocale(['default', 'de', 'de-AT'], 'de-AT')).toBe('de-AT');
  });

  it('falls back from a region to its language', () => {
    expect(selectTemplateLocale(['default', 'de'], 'de-AT')).toBe('de');
  });

  it('falls back through every subtag of a longer tag', () => {
    expect(selectTemplateLocale(['default', 'zh-Hant'], 'zh-Hant-TW')).toBe('zh-Hant');
  });

  it('falls back from a region to default when the language is not stored', () => {
    expect(selectTemplateLocale(['default', 'fr'], 'de-AT')).toBe('default');
  });

  it('falls back from a bare language to default', () => {
    expect(selectTemplateLocale(['default', 'de'], 'en')).toBe('default');
  });

  it('uses default when the recipient has no locale', () => {
    expect(selectTemplateLocale(['de', 'default'], null)).toBe('default');
  });

  it('does not pick a more specific locale than the one requested', () => {
    expect(selectTemplateLocale(['de-AT'], 'de')).toBeNull();
  });

  it('returns null when nothing fits', () => {
    expect(selectTemplateLocale(['fr', 'it'], 'de-AT')).toBeNull();
    expect(selectTemplateLocale([], null)).toBeNull();
  });

  it('matches case-insensitively and returns the stored spelling', () => {
    expect(selectTemplateLocale(['DEFAULT', 'De-at'], 'de-AT')).toBe('De-at');
    expect(selectTemplateLocale(['DE', 'Default'], 'de-at')).toBe('DE');
    expect(selectTemplateLocale(['Default'], 'EN-us')).toBe('Default');
  });
});
