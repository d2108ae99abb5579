// A notification's timeline (NotificationService.GetNotification with the admin key, which includes every
// attempt): its content, then its deliveries by escalation step, each with destination (masked), provider and
// every attempt (outcome, status code, latency, error, the start of the provider's answer), then the webhook
// status events about them. Cancel (NotificationService.CancelNotification) and Replay of a FAILED or
// EXPIRED delivery (AdminService.ReplayDelivery) ask first. While an attempt is under way or due within a
// minute, the view refreshes itself (an in-app delivery waits for a client, so it does not count).
import { adminCall, notificationCall } from './api.js';
import { byId, channelName, chip, el, facts, row, show, statusName, time, viewSession } from './dom.js';

const REFRESH_MS = 3_000;
const DUE_SOON_MS = 60_000;
const PENDING = new Set(['queued', 'sending']);
const REPLAYABLE = new Set(['failed', 'expired']);
const PRIORITIES = {
  PRIORITY_LOW: 'low',
  PRIORITY_NORMAL: 'normal',
  PRIORITY_HIGH: 'high',
  PRIORITY_CRITICAL: 'critical',
};

/** Whether the delivery may change within a minute: worth refreshing for. */
function changingSoon(d) {
  const status = statusName(d.status);
  if (status === 'sending') return true;
  if (status !== 'queued' || channelName(d.channel) === 'in_app') return false;
  return !d.nextAttemptAt || Date.parse(d.nextAttemptAt) - Date.now() < DUE_SOON_MS;
}

function attemptsTable(attempts) {
  if (attempts.length === 0) return el('p', { className: 'muted', textContent: 'No attempts.' });
  const head = [
    'Started',
    'Provider',
    'Destination',
    'Outcome',
    'Status code',
    'Latency',
    'Error',
    'Response',
  ];
  return el('div', { className: 'scroll' }, [
    el('table', { className: 'attempts' }, [
      el('caption', { className: 'sr-only', textContent: 'Attempts, oldest first' }),
      el('thead', {}, [
        el(
          'tr',
          {},
          head.map((h) => el('th', { scope: 'col', textContent: h })),
        ),
      ]),
      el(
        'tbody',
        {},
        attempts.map((a) =>
          row(
            [
              time(a.startedAt),
              a.provider ?? '',
              a.destination ?? '',
              chip(a.outcome ?? ''),
              a.statusCode ? String(a.statusCode) : '',
              `${a.latencyMs ?? 0} ms`,
              a.error ?? '',
              a.response ? el('pre', { className: 'response', textContent: a.response }) : '',
            ],
            { className: 'attempt' },
          ),
        ),
      ),
    ]),
  ]);
}

export function createNotificationView(shell) {
  const section = byId('view-notification');
  const body = byId('notification-body');
  const state = byId('notification-state');
  const cancel = byId('notification-cancel');
  const title = byId('notification-title');
  const session = viewSession();
  let id = '';
  let shown = '';
  let timer;

  function deliveryCard(d) {
    const status = statusName(d.status);
    const channel = channelName(d.channel);
    const event = d.event && d.event !== 'notification' ? d.event : '';
    const attempts = d.attempts ?? [];
    const replay =
      REPLAYABLE.has(status) &&
      el('button', { type: 'button', className: 'replay', textContent: 'Replay' }, []);
    if (replay) replay.addEventListener('click', () => replayDelivery(d, replay));
    return el(
      'article',
      { className: 'delivery', dataset: { id: d.id, channel, status, step: d.step ?? 0 } },
      [
        el('h4', {}, [
          el('span', { textContent: event ? `${channel}: ${event}` : channel }),
          ' ',
          chip(status),
        ]),
        facts([
          ['Delivery', d.id, 'id'],
          ['Destination', d.destination, 'destination'],
          ['Provider', d.provider, 'provider'],
          ['Reason', d.reason, 'reason'],
          ['Attempts', String(d.attemptCount ?? 0), 'attempt-count'],
          ['Next attempt', PENDING.has(status) && d.nextAttemptAt && time(d.nextAttemptAt), 'next-attempt'],
          ['Last error', d.lastError, 'last-error'],
          ['Provider message id', d.providerMessageId, 'provider-message-id'],
          ['SMS segments', d.smsSegments, 'sms-segments'],
          ['Created', time(d.createdAt), 'created'],
          ['Updated', d.updatedAt && time(d.updatedAt), 'updated'],
        ]),
        attemptsTable(attempts),
        replay || undefined,
      ],
    );
  }

  function render(n) {
    const deliveries = n.deliveries ?? [];
    const byStep = new Map();
    const events = [];
    for (const d of deliveries) {
      if (d.event && d.event !== 'notification') {
        events.push(d);
        continue;
      }
      const step = d.step ?? 0;
      if (!byStep.has(step)) byStep.set(step, []);
      byStep.get(step).push(d);
    }
    const steps = [...byStep.entries()].sort(([a], [b]) => a - b);
    title.textContent = `Notification ${n.id}`;
    const parts = [
      facts(
        [
          ['User', n.userId, 'user'],
          ['Type', n.type, 'type'],
          ['Priority', PRIORITIES[n.priority] ?? 'normal', 'priority'],
          ['Created', time(n.createdAt), 'created'],
          ['Send at', n.sendAt && time(n.sendAt), 'send-at'],
          ['Expires', n.expiresAt && time(n.expiresAt), 'expires'],
          ['Seen', n.seenAt && time(n.seenAt), 'seen'],
          ['Read', n.readAt && time(n.readAt), 'read'],
          ['Title', n.title, 'title'],
          ['Body', n.body, 'body'],
          ['Data', n.data && Object.keys(n.data).length > 0 ? JSON.stringify(n.data, null, 2) : '', 'data'],
        ],
        'facts notification-facts',
      ),
      el('h3', { textContent: 'Deliveries' }),
      deliveries.length === 0 ? el('p', { className: 'muted', textContent: 'No deliveries.' }) : undefined,
      ...steps.map(([step, list]) =>
        el('section', { className: 'step', dataset: { step }, 'aria-label': `Escalation step ${step}` }, [
          el('h4', {
            className: 'step-title',
            textContent: step === 0 ? 'Step 0 (at once)' : `Step ${step}`,
          }),
          ...list.map(deliveryCard),
        ]),
      ),
      events.length > 0
        ? el('section', { className: 'status-events', 'aria-label': 'Status events' }, [
            el('h3', { textContent: 'Status events' }),
            ...events.map(deliveryCard),
          ])
        : undefined,
    ];
    show(body, parts);
    cancel.hidden = !deliveries.some((d) => PENDING.has(statusName(d.status)));
  }

  async function load() {
    const fresh = session.current();
    clearTimeout(timer);
    try {
      const { notification } = await notificationCall('GetNotification', { notificationId: id });
      if (!fresh()) return;
      const answer = JSON.stringify(notification);
      // Re-rendered only when something changed, so a refresh keeps focus and scroll.
      if (answer !== shown) {
        shown = answer;
        render(notification);
      }
      if ((notification.deliveries ?? []).some(changingSoon)) timer = setTimeout(load, REFRESH_MS);
    } catch (error) {
      if (fresh()) shell.fail(error);
    }
  }

  async function replayDelivery(d, button) {
    const what = `Replay the ${statusName(d.status)} ${channelName(d.channel)} delivery ${d.id}?`;
    if (!(await shell.confirm(what, 'Replay'))) return;
    button.disabled = true;
    try {
      const { delivery } = await adminCall('ReplayDelivery', { deliveryId: d.id });
      state.textContent = `Delivery ${d.id} replayed: ${statusName(delivery?.status)}.`;
      shell.clearError();
    } catch (error) {
      button.disabled = false;
      shell.fail(error);
      return;
    }
    await load();
  }

  cancel.addEventListener('click', async () => {
    if (
      !(await shell.confirm(
        `Cancel notification ${id}? Its pending deliveries will not be sent.`,
        'Cancel it',
      ))
    ) {
      return;
    }
    cancel.disabled = true;
    try {
      const answer = await notificationCall('CancelNotification', { notificationId: id });
      const n = answer.cancelled ?? 0;
      state.textContent = `${n} ${n === 1 ? 'delivery' : 'deliveries'} cancelled.`;
      shell.clearError();
      await load();
    } catch (error) {
      shell.fail(error);
    } finally {
      cancel.disabled = false;
    }
  });
  byId('notification-refresh').addEventListener('click', load);

  function clear() {
    clearTimeout(timer);
    body.replaceChildren();
    state.textContent = '';
    title.textContent = 'Notification';
    cancel.hidden = true;
    shown = '';
  }

  return {
    name: 'notification',
    section,
    enter(notificationId) {
      session.renew();
      clear();
      id = notificationId;
      load();
    },
    leave() {
      session.renew();
      clearTimeout(timer);
    },
    clear,
  };
}
