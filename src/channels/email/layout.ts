// The e-mail's HTML and text from one Markdown source. `marked` (a maintained CommonMark/GFM renderer)
// turns the Markdown into HTML inside a responsive single-column layout that mail clients render: a
// 600-pixel table that narrows on small screens, every style inline (clients drop <style> blocks; styling
// the few elements Herald writes needs no CSS inliner). The text alternative comes from the same Markdown:
// paragraphs, lists and headings as plain lines, links as "text (url)". Links are kept as links only for
// http(s) and mailto; anything else becomes its text.
import { Marked, type Token, type Tokens } from 'marked';
import { escapeHtml } from '../../core/html.js';

export interface EmailLayout {
  subject: string;
  /** The body, Markdown (data in it already escaped by the template renderer). */
  markdown: string;
  /** A footer line and its links (unsubscribe, preferences); none for critical e-mails. */
  footer?: EmailFooter | undefined;
}

export interface EmailFooter {
  text: string;
  links: readonly { text: string; url: string }[];
}

const FONT = "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif";
const STYLES: Record<string, string> = {
  p: `margin:0 0 16px;font-size:16px;line-height:24px;color:#1f2328;${FONT}`,
  h1: `margin:0 0 16px;font-size:24px;line-height:32px;color:#1f2328;${FONT}`,
  h2: `margin:0 0 12px;font-size:20px;line-height:28px;color:#1f2328;${FONT}`,
  h3: `margin:0 0 8px;font-size:17px;line-height:24px;color:#1f2328;${FONT}`,
  a: 'color:#0969da;text-decoration:underline',
  ul: `margin:0 0 16px;padding-left:24px;font-size:16px;line-height:24px;color:#1f2328;${FONT}`,
  code: 'font-family:Menlo,Consolas,monospace;font-size:14px;background:#f6f8fa;padding:1px 4px',
};
const SAFE_LINK = /^(https?:|mailto:)/i;

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    paragraph({ tokens }) {
      return `<p style="${STYLES.p}">${this.parser.parseInline(tokens)}</p>\n`;
    },
    heading({ tokens, depth }) {
      const tag = `h${Math.min(depth, 3)}`;
      return `<${tag} style="${STYLES[tag]}">${this.parser.parseInline(tokens)}</${tag}>\n`;
    },
    link({ href, tokens }) {
      const text = this.parser.parseInline(tokens);
      return SAFE_LINK.test(href) ? `<a href="${attribute(href)}" style="${STYLES.a}">${text}</a>` : text;
    },
    list(token) {
      const tag = token.ordered ? 'ol' : 'ul';
      const items = token.items.map((item) => `<li>${this.parser.parse(item.tokens)}</li>`).join('');
      return `<${tag} style="${STYLES.ul}">${items}</${tag}>\n`;
    },
    codespan({ text }) {
      return `<code style="${STYLES.code}">${text}</code>`;
    },
  },
});

export function emailHtml(layout: EmailLayout): string {
  const body = marked.parse(layout.markdown, { async: false });
  const links = (layout.footer?.links ?? [])
    .map(
      (link) =>
        `<a href="${attribute(link.url)}" style="color:#59636e;text-decoration:underline">${escapeHtml(link.text)}</a>`,
    )
    .join(' &middot; ');
  const footer = layout.footer
    ? `<tr><td style="padding:16px 24px;font-size:12px;line-height:18px;color:#59636e;${FONT}">${escapeHtml(layout.footer.text)} ${links}</td></tr>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="color-scheme" content="light"><title>${escapeHtml(layout.subject)}</title></head>
<body style="margin:0;padding:0;background:#f6f8fa">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background:#f6f8fa"><tr><td align="center" style="padding:24px 12px">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="max-width:600px;width:100%;background:#ffffff;border:1px solid #d1d9e0;border-radius:6px">
<tr><td style="padding:24px">
${body}</td></tr>
${footer}
</table>
</td></tr></table>
</body></html>`;
}

/** The same Markdown as plain text: what a text-only client shows. */
export function emailText(layout: EmailLayout): string {
  // What scripts and styles in a template's own HTML hold is no text.
  const source = layout.markdown.replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, '');
  const text = marked
    .lexer(source)
    .map((token) => blockText(token))
    .filter((block) => block !== '')
    .join('\n\n');
  return layout.footer ? `${text}\n\n--\n${footerText(layout.footer)}` : text;
}

/** The footer's links as text lines ("Unsubscribe: <url>"), for a text part. */
export function footerText(footer: EmailFooter): string {
  return footer.links.map((link) => `${link.text}: ${link.url}`).join('\n');
}

function blockText(token: Token): string {
  switch (token.type) {
    case 'heading':
    case 'paragraph':
      return inlineText((token as Tokens.Paragraph).tokens ?? []);
    case 'list':
      return (token as Tokens.List).items
        .map(
          (item, i) =>
            `${(token as Tokens.List).ordered ? `${i + 1}.` : '-'} ${item.tokens.map(blockText).join(' ')}`,
        )
        .join('\n');
    case 'text':
      return (token as Tokens.Text).tokens ? inlineText((token as Tokens.Text).tokens!) : decode(token.raw);
    case 'space':
    case 'hr':
      return '';
    case 'html':
      return htmlText(token.raw);
    default:
      return decode('text' in token && typeof token.text === 'string' ? token.text : token.raw);
  }
}

function inlineText(tokens: Token[]): string {
  return tokens
    .map((t) => {
      if (t.type === 'link') {
        const link = t as Tokens.Link;
        const text = inlineText(link.tokens);
        return SAFE_LINK.test(link.href) && text !== link.href ? `${text} (${link.href})` : text;
      }
      if (t.type === 'br') return '\n';
      if (t.type === 'html') return htmlText(t.raw);
      if ('tokens' in t && Array.isArray(t.tokens)) return inlineText(t.tokens as Token[]);
      return decode('text' in t && typeof t.text === 'string' ? t.text : t.raw);
    })
    .join('');
}

/** A template's own HTML as text: what scripts and styles hold is no text; tags go, their text stays. */
function htmlText(html: string): string {
  return decode(
    html
      .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, '')
      .replace(/<br\s*\/?>/gi, '\n')
      .replace(/<[^>]*>/g, ''),
  ).trim();
}

/** The entities the template renderer's escaping (and Markdown) produce, back to characters. */
function decode(text: string): string {
  return text
    .replace(/\\([\\`*_{}[\]()#+\-.!|~:@])/g, '$1')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');
}

function attribute(url: string): string {
  return url.replace(/"/g, '%22').replace(/</g, '%3C').replace(/>/g, '%3E');
}
