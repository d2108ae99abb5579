// Rendering: the template of the notification's type and channel in the recipient's best locale, or the
// notification's own title and body when there is none. On Markdown channels (e-mail) the body's outputs are
// escaped for Markdown; the driver makes the HTML and text from it. Status events are not rendered (their
// data is the message).
import { createTemplateRenderer, selectTemplateLocale } from '../core/templates.js';
import type { ClaimedDelivery } from '../store/deliveries.js';
import type { ChannelDriver, RenderedParts } from './channel.js';
import type { ConfigCache } from './config-cache.js';

export type RenderOutcome = { ok: true; parts: RenderedParts } | { ok: false; reason: string };

export function createPartsRenderer(config: ConfigCache) {
  const renderer = createTemplateRenderer();
  return async function renderParts(claim: ClaimedDelivery, driver: ChannelDriver): Promise<RenderOutcome> {
    if (claim.event !== 'notification') {
      return { ok: true, parts: { title: null, body: null, text: null, fromTemplate: false } };
    }
    const templates = config.templates(claim.type, claim.channel);
    const locale = selectTemplateLocale(
      templates.map((t) => t.locale),
      claim.locale,
    );
    const template = templates.find((t) => t.locale === locale);
    if (!template) {
      return { ok: true, parts: { title: claim.title, body: claim.body, text: null, fromTemplate: false } };
    }
    const context = {
      data: claim.data,
      recipient: {
        userId: claim.user_id,
        email: claim.email,
        phone: claim.phone,
        locale: claim.locale,
        timezone: claim.timezone,
      },
      notification: { id: claim.notification_id, type: claim.type, title: claim.title, body: claim.body },
    };
    if (!driver.markdown) {
      const plain = await renderer.render({ title: template.title, body: template.body }, context, {
        html: false,
      });
      if (!plain.ok) return plain;
      return { ok: true, parts: { title: plain.title, body: plain.body, text: null, fromTemplate: true } };
    }
    // On a Markdown channel the title (the subject) and a text part are plain text, and the body is Markdown
    // with every output escaped for it, so data adds no markup: two renders, one per kind of escaping.
    const plain = await renderer.render({ title: template.title, body: '', text: template.text }, context, {
      html: false,
    });
    if (!plain.ok) return plain;
    const body = await renderer.render({ title: null, body: template.body }, context, {
      html: false,
      markdown: true,
    });
    if (!body.ok) return body;
    return {
      ok: true,
      parts: { title: plain.title, body: body.body, text: plain.text ?? null, fromTemplate: true },
    };
  };
}
