// Activity: notifications across every user, newest first (AdminService.SearchNotifications), filtered by
// user, type, channel, status and creation time, a page at a time. With Live on, the last 30 seconds before the
// newest notification shown are read again every two seconds, and whatever is not shown yet is put at its
// place. A notification's time is when its Send's transaction began, so it can become visible after a later
// one was already shown (a batch still committing, another instance): asking only for what is newer than the
// newest shown would skip it for good.
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
import { pager } from './loading.js';

const PAGE = 50;
const LIVE_MS = 2_000;
/** How far before the newest notification shown each Live check looks again. */
const LIVE_OVERLAP_MS = 30_000;
/** Each Live check asks for pages of this many, and follows next_cursor at most twice. */
const LIVE_PAGE = 100;
const LIVE_CALLS = 3;

/**
 * A Timestamp (RFC 3339 in proto3 JSON, always UTC, with 0, 3, 6 or 9 fractional digits) as a string that
 * sorts as the instants do: nine fractional digits, so `…:05Z` and `…:05.000001Z` compare rightly. Empty
 * when unset or unreadable.
 */
export function instantKey(value) {
  const exact = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(value ?? '');
  if (exact) return `${exact[1]}.${(exact[2] ?? '').padEnd(9, '0')}Z`;
  const ms = Date.parse(value ?? '');
  const iso = Number.isNaN(ms) ? '' : new Date(ms).toISOString();
  return /^\d{4}-/.test(iso) ? `${iso.slice(0, -1)}000000Z` : '';
}

/** Milliseconds since the epoch of an instantKey (JavaScript dates stop at milliseconds). */
const msOf = (key) => Date.parse(`${key.slice(0, 23)}Z`);

/** Whether row or notification `a` comes before `b` in the view's order: newer first, then the greater id. */
const precedes = (a, b) => a.created > b.created || (a.created === b.created && a.id > b.id);

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
    dataset: { id: n.id, created: instantKey(n.createdAt) },
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
  const pages = pager({
    button: more,
    tbody,
    session,
    shell,
    load: (cursor) => adminCall('SearchNotifications', { ...filters(), limit: PAGE, cursor }),
    // Live may already have put one of them in (it arrived late, just above where the page goes on).
    rows: (page) => {
      const shown = shownIds();
      return (page.notifications ?? []).filter((n) => !shown.has(n.id)).map(notificationRow);
    },
    describe,
  });
  /**
   * The last Live check read as much as it may without reaching anything shown before: more arrived since the
   * check before than one check reads, and what lies between is not shown.
   */
  let behind = false;
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
    const shown = `${count} notification${count === 1 ? '' : 's'} shown${pages.more ? '; Load more looks further back' : ''}`;
    if (!live.checked) state.textContent = shown;
    else if (behind) {
      state.textContent = `${shown}; live, but more arrived than one check reads: Apply shows them all`;
    } else state.textContent = `${shown}; live, checking every 2 seconds`;
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
      behind = false;
      pages.from(page);
      describe();
      shell.clearError();
    } catch (error) {
      if (!fresh()) return;
      state.textContent = '';
      shell.fail(error);
    }
    if (fresh()) follow();
  }

  const shownIds = () => new Set([...tbody.rows].map((tr) => tr.dataset.id));

  /**
   * The filters, narrowed to LIVE_OVERLAP_MS before the newest notification shown (its key); undefined when
   * the filters' own range ends before that.
   */
  function liveRequest(newest) {
    const asked = filters();
    const since = msOf(newest) - LIVE_OVERLAP_MS;
    if (Number.isNaN(since)) return asked;
    const from =
      asked.createdAfter && Date.parse(asked.createdAfter) > since ? asked.createdAfter : undefined;
    const createdAfter = from ?? new Date(since).toISOString();
    if (asked.createdBefore && Date.parse(asked.createdBefore) <= Date.parse(createdAfter)) return undefined;
    return { ...asked, createdAfter };
  }

  /**
   * Puts each notification not shown yet at its place; answers whether any was shown already. One older than
   * the last row is left to Load more while there is more to load: it is further back than the page goes on
   * from.
   */
  function place(found) {
    const shown = shownIds();
    let known = false;
    for (const n of found) {
      if (shown.has(n.id)) {
        known = true;
        continue;
      }
      const at = { created: instantKey(n.createdAt), id: n.id };
      const next = [...tbody.rows].find((tr) => precedes(at, tr.dataset));
      if (next) next.before(notificationRow(n));
      else if (!pages.more) tbody.append(notificationRow(n));
      else continue;
      shown.add(n.id);
    }
    return known;
  }

  /**
   * A Live check: the filters' notifications from LIVE_OVERLAP_MS before the newest shown, newest first,
   * LIVE_PAGE at a time and at most LIVE_CALLS calls (a filtered search examines a bounded number of
   * notifications per call, and next_cursor then says where it goes on); what is shown already is skipped.
   */
  async function tail() {
    const fresh = session.current();
    try {
      const newest = tbody.rows[0]?.dataset.created;
      if (!newest) {
        await firstPage();
        return;
      }
      const request = liveRequest(newest);
      let cursor;
      let reached = false;
      for (let calls = 0; request && calls < LIVE_CALLS; calls++) {
        const page = await adminCall('SearchNotifications', { ...request, limit: LIVE_PAGE, cursor });
        if (!fresh()) return;
        if (place(page.notifications ?? [])) reached = true;
        cursor = page.nextCursor || undefined;
        if (!cursor) break;
      }
      behind = cursor !== undefined && !reached;
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
      pages.clear();
      behind = false;
    },
  };
}
