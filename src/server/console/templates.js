// Templates (AdminService.ListTemplates, PreviewTemplate): every type x channel x locale, and a preview of one
// rendered with sample data, exactly as a delivery would render it. An e-mail's HTML part is shown as its
// source: the console renders no markup from the API (the sent e-mail, styled, is on the /outbox page).
import { adminCall } from './api.js';
import { byId, channelName, el, facts, row, show, time, viewSession } from './dom.js';

const EXCERPT = 80;

const excerpt = (text = '') => (text.length > EXCERPT ? `${text.slice(0, EXCERPT)}…` : text);

export function createTemplatesView(shell) {
  const section = byId('view-templates');
  const tbody = byId('templates-table').tBodies[0];
  const state = byId('templates-state');
  const typeFilter = byId('templates-type');
  const preview = {
    box: byId('template-preview'),
    form: byId('template-preview-form'),
    which: byId('template-preview-which'),
    locale: byId('template-preview-locale'),
    data: byId('template-preview-data'),
    output: byId('template-preview-output'),
  };
  const session = viewSession();
  let chosen;

  function templateRow(t) {
    const button = el('button', {
      type: 'button',
      className: 'preview',
      textContent: 'Preview',
      'aria-label': `Preview ${t.type} ${channelName(t.channel)} ${t.locale}`,
    });
    button.addEventListener('click', () => choose(t));
    return row(
      [t.type, channelName(t.channel), t.locale, t.title ?? '', excerpt(t.body), time(t.updatedAt), button],
      { dataset: { type: t.type, channel: channelName(t.channel), locale: t.locale } },
    );
  }

  function hidePreview() {
    chosen = undefined;
    preview.box.hidden = true;
    preview.output.replaceChildren();
  }

  function choose(t) {
    chosen = t;
    preview.which.textContent = `${t.type}, ${channelName(t.channel)}, ${t.locale}`;
    preview.locale.value = t.locale === 'default' ? '' : t.locale;
    preview.output.replaceChildren();
    preview.box.hidden = false;
    preview.data.focus();
  }

  async function load() {
    const fresh = session.renew();
    hidePreview();
    try {
      const { templates = [] } = await adminCall('ListTemplates', {
        type: typeFilter.value.trim() || undefined,
      });
      if (!fresh()) return;
      tbody.replaceChildren(...templates.map(templateRow));
      state.textContent = `${templates.length} template${templates.length === 1 ? '' : 's'}.`;
      shell.clearError();
    } catch (error) {
      if (fresh()) shell.fail(error);
    }
  }

  preview.form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!chosen) return;
    let data;
    try {
      data = JSON.parse(preview.data.value || '{}');
    } catch (error) {
      shell.showError(`data: not valid JSON (${error.message})`);
      return;
    }
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      shell.showError('data: must be a JSON object');
      return;
    }
    const fresh = session.current();
    try {
      const answer = await adminCall('PreviewTemplate', {
        type: chosen.type,
        channel: chosen.channel,
        locale: preview.locale.value.trim() || undefined,
        data,
      });
      if (!fresh()) return;
      const email = channelName(chosen.channel) === 'email';
      show(preview.output, [
        facts(
          [
            ['Template locale used', answer.locale, 'locale'],
            [email ? 'Subject' : 'Title', answer.title, 'title'],
          ],
          'facts preview-facts',
        ),
        el('h4', { textContent: email ? 'Body (Markdown)' : 'Body' }),
        el('pre', { className: 'rendered-body', textContent: answer.body ?? '' }),
        email ? el('h4', { textContent: 'Text part' }) : undefined,
        email ? el('pre', { className: 'rendered-text', textContent: answer.text ?? '' }) : undefined,
        email
          ? el('details', {}, [
              el('summary', { textContent: 'HTML part (source)' }),
              el('pre', { className: 'rendered-html', textContent: answer.html ?? '' }),
            ])
          : undefined,
      ]);
      shell.clearError();
    } catch (error) {
      if (fresh()) shell.fail(error);
    }
  });
  byId('templates-filters').addEventListener('submit', (event) => {
    event.preventDefault();
    load();
  });

  return {
    name: 'templates',
    section,
    enter: load,
    leave: () => session.renew(),
    clear() {
      tbody.replaceChildren();
      state.textContent = '';
      hidePreview();
    },
  };
}
