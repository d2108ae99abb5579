// Activity: notifications across every user, newest first (AdminService.SearchNotifications), filtered by
// user, type, channel, status and creation time, a page at a time; with Live on, notifications created after
// the newest one shown are asked for every two seconds (after_id, oldest first) and put on top.
import { adminCall } from './api.js';
import {
  byId,
  CHANNELS,
  channelName,
  chip,
  el,
  fillSelect,
  instantOf,
  row,
  STATUSES,
  statusName,
  time,
  viewSession,
} from './dom.js';

const PAGE = 50;
const LIVE_MS = 2_000;

/** A notification's deliveries as chips: channel (and status event, for a webhook) and status. */
export function deliveryChips(deliveries = []) {
  return el(
    'ul',
    { className: 'chips' },
    deliveries.map((d) => {
      const channel = channelName(d.channel);
      const status = statusName(d.status);
      const event = d.event && d.event !== 'notification' ? ` ${d.event}` : '';
      return el('li', { dataset: { channel, status } }, [
        el('span', { className: 'chip-channel', textContent: `${channel}${event}` }),
        chip(status),
      ]);
    }),
  );
}

function notificationRow(n) {
  const link = el('a', { href: `#/notification/${n.id}` }, [el('code', { textContent: n.id })]);
  return row([time(n.createdAt), link, n.userId, n.type, n.title ?? '', deliveryChips(n.deliveries)], {
    dataset: { id: n.id },
  });
}

export function createActivityView(shell) {
  const section = byId('view-activity');
  const form = byId('activity-filters');
  const tbody = byId('activity-table').tBodies[0];
  const state = byId('activity-state');
  const more = byId('activity-more');
  const live = byId('activity-live');
  const inputs = {
    user: byId('activity-user'),
    type: byId('activity-type'),
    channel: byId('activity-channel'),
    status: byId('activity-status'),
    from: byId('activity-from'),
    to: byId('activity-to'),
  };
  fillSelect(inputs.channel, [['', 'any'], ...CHANNELS.map((c) => [`CHANNEL_${c}`, c.toLowerCase()])]);
  fillSelect(inputs.status, [['', 'any'], ...STATUSES.map((s) => [`DELIVERY_STATUS_${s}`, s.toLowerCase()])]);
  const session = viewSession();
  let cursor = '';
  /** The live tail's position: the newest notification shown, or where the last tail call stopped. */
  let after = '';
  let timer;

  function filters() {
    return {
      userId: inputs.user.value.trim() || undefined,
      type: inputs.type.value.trim() || undefined,
      channel: inputs.channel.value || undefined,
      status: inputs.status.value || undefined,
      createdAfter: instantOf(inputs.from),
      createdBefore: instantOf(inputs.to),
    };
  }

  function describe() {
    const count = tbody.rows.length;
    const shown = `${count} notification${count === 1 ? '' : 's'} shown${cursor ? '; Load more looks further back' : ''}`;
    state.textContent = live.checked ? `${shown}; live, checking every 2 seconds` : shown;
  }

  async function firstPage() {
    const fresh = session.renew();
    clearTimeout(timer);
    state.textContent = 'loading…';
    try {
      const page = await adminCall('SearchNotifications', { ...filters(), limit: PAGE });
      if (!fresh()) return;
      const found = page.notifications ?? [];
      tbody.replaceChildren(...found.map(notificationRow));
      after = found[0]?.id ?? '';
      cursor = page.nextCursor ?? '';
      more.hidden = !cursor;
      describe();
      shell.clearError();
    } catch (error) {
      if (!fresh()) return;
      state.textContent = '';
      shell.fail(error);
    }
    if (fresh()) follow();
  }

  /**
   * Puts what was created after the tail position on top, while Live is on. A filtered search examines a
   * bounded number of notifications per call; next_cursor then says where the tail goes on.
   */
  async function tail() {
    const fresh = session.current();
    try {
      if (!after) {
        await firstPage();
        return;
      }
      for (;;) {
        const page = await adminCall('SearchNotifications', { ...filters(), afterId: after, limit: PAGE });
        if (!fresh()) return;
        const found = page.notifications ?? [];
        for (const n of found) tbody.prepend(notificationRow(n));
        after = page.nextCursor || found.at(-1)?.id || after;
        if (!page.nextCursor) break;
      }
      describe();
    } catch (error) {
      if (!fresh()) return;
      shell.fail(error);
    }
    if (fresh()) follow();
  }

  function follow() {
    clearTimeout(timer);
    if (live.checked) timer = setTimeout(tail, LIVE_MS);
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    firstPage();
  });
  byId('activity-clear').addEventListener('click', () => {
    for (const input of [inputs.user, inputs.type, inputs.from, inputs.to]) input.value = '';
    inputs.channel.value = '';
    inputs.status.value = '';
    firstPage();
  });
  live.addEventListener('change', () => {
    describe();
    follow();
  });
  more.addEventListener('click', async () => {
    const fresh = session.current();
    more.disabled = true;
    try {
      const page = await adminCall('SearchNotifications', { ...filters(), limit: PAGE, cursor });
      if (!fresh()) return;
      tbody.append(...(page.notifications ?? []).map(notificationRow));
      cursor = page.nextCursor ?? '';
      more.hidden = !cursor;
      describe();
    } catch (error) {
      if (fresh()) shell.fail(error);
    } finally {
      more.disabled = false;
    }
  });

  return {
    name: 'activity',
    section,
    enter: firstPage,
    leave() {
      session.renew();
      clearTimeout(timer);
    },
    clear() {
      tbody.replaceChildren();
      state.textContent = '';
      more.hidden = true;
      after = '';
      cursor = '';
    },
  };
}
