// Rendering: the template of the notification's type and channel in the recipient's best locale, or the
// notification's own title and body when there is none. Channels that send HTML get the body rendered a
// second time with every output escaped. Status events are not rendered (their data is the message).
import { createTemplateRenderer, selectTemplateLocale } from '../core/templates.js';
import type { ClaimedDelivery } from '../store/deliveries.js';
import type { ChannelDriver, RenderedParts } from './channel.js';
import type { ConfigCache } from './config-cache.js';

export type RenderOutcome = { ok: true; parts: RenderedParts } | { ok: false; reason: string };

export function createPartsRenderer(config: ConfigCache) {
  const renderer = createTemplateRenderer();
  return async function renderParts(claim: ClaimedDelivery, driver: ChannelDriver): Promise<RenderOutcome> {
    if (claim.event !== 'notification') {
      return { ok: true, parts: { title: null, body: null, html: null, text: null } };
    }
    const templates = config.templates(claim.type, claim.channel);
    const locale = selectTemplateLocale(
      templates.map((t) => t.locale),
      claim.locale,
    );
    const template = templates.find((t) => t.locale === locale);
    if (!template)
      return { ok: true, parts: { title: claim.title, body: claim.body, html: null, text: null } };
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
    const plain = await renderer.render(
      { title: template.title, body: template.body, text: driver.html ? template.text : null },
      context,
      { html: false },
    );
    if (!plain.ok) return plain;
    const parts = { title: plain.title, body: plain.body, html: null, text: plain.text ?? null };
    if (!driver.html) return { ok: true, parts };
    const html = await renderer.render({ title: null, body: template.body }, context, { html: true });
    if (!html.ok) return html;
    return { ok: true, parts: { ...parts, html: html.body } };
  };
}
