// Outbox (AdminService.ListOutboxMessages): what the outbox provider captured, newest first, by channel, a
// page at a time. Each row summarises the message; the whole message is one click away, as JSON text.
import { adminCall } from './api.js';
import { byId, CHANNELS, channelName, el, fillSelect, row, time, viewSession } from './dom.js';
import { pager } from './loading.js';

const PAGE = 50;

function summary(channel, message = {}) {
  if (channel === 'email') return message.subject ?? '';
  if (channel === 'sms') return message.text ?? '';
  if (channel === 'push') {
    const payload = JSON.stringify(message.message ?? message.payload ?? message);
    return payload.length > 120 ? `${payload.slice(0, 120)}…` : payload;
  }
  const body = typeof message.body === 'string' ? message.body : JSON.stringify(message.body ?? message);
  return body.length > 120 ? `${body.slice(0, 120)}…` : body;
}

function messageRow(m) {
  const channel = channelName(m.channel);
  const details = el('details', {}, [
    el('summary', { textContent: summary(channel, m.message) || '(empty)' }),
    el('pre', { className: 'payload', textContent: JSON.stringify(m.message ?? {}, null, 2) }),
  ]);
  const notification = m.notificationId
    ? el('a', { href: `#/notification/${m.notificationId}` }, [el('code', { textContent: m.notificationId })])
    : '';
  return row([time(m.createdAt), channel, m.provider ?? '', m.destination ?? '', details, notification], {
    dataset: { id: m.id, channel, notification: m.notificationId ?? '' },
  });
}

export function createOutboxView(shell) {
  const section = byId('view-outbox');
  const tbody = byId('outbox-table').tBodies[0];
  const state = byId('outbox-state');
  const channelSelect = byId('outbox-channel');
  fillSelect(channelSelect, [
    ['', 'any'],
    ...CHANNELS.filter((c) => c !== 'IN_APP').map((c) => [`CHANNEL_${c}`, c.toLowerCase()]),
  ]);
  const session = viewSession();

  const request = (extra) => ({ channel: channelSelect.value || undefined, limit: PAGE, ...extra });
  const rows = (page) => (page.messages ?? []).map(messageRow);
  const describe = () => {
    state.textContent = `${tbody.rows.length} message${tbody.rows.length === 1 ? '' : 's'} shown.`;
  };
  const pages = pager({
    button: byId('outbox-more'),
    tbody,
    session,
    shell,
    load: (cursor) => adminCall('ListOutboxMessages', request({ cursor })),
    rows,
    describe,
  });

  async function firstPage() {
    const fresh = session.renew();
    state.textContent = 'loading…';
    try {
      const page = await adminCall('ListOutboxMessages', request({}));
      if (!fresh()) return;
      tbody.replaceChildren(...rows(page));
      pages.from(page);
      describe();
      shell.clearError();
    } catch (error) {
      if (!fresh()) return;
      state.textContent = '';
      shell.fail(error);
    }
  }

  byId('outbox-filters').addEventListener('submit', (event) => {
    event.preventDefault();
    firstPage();
  });
  channelSelect.addEventListener('change', firstPage);

  return {
    name: 'outbox',
    section,
    enter: firstPage,
    leave: () => session.renew(),
    clear() {
      tbody.replaceChildren();
      state.textContent = '';
      pages.clear();
    },
  };
}
