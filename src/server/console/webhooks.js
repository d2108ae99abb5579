// Webhook endpoints (AdminService.ListWebhookEndpoints, UpdateWebhookEndpoint, RotateWebhookSecret): enable or
// disable one, issue a new signing secret (shown once, here), and see its recent deliveries: those of the
// newest notifications with a webhook delivery to it (SearchNotifications with endpoint_id). Such a
// notification may also have deliveries elsewhere (other endpoints, other channels); only the endpoint's own
// are shown, by their destination ("endpoint <id>").

import { deliveryChips } from './activity.js';
import { adminCall } from './api.js';
import { byId, chip, el, row, statusName, time, viewSession } from './dom.js';

/** Recent deliveries: those of at most this many notifications, found in at most RECENT_CALLS searches. */
const RECENT_NOTIFICATIONS = 50;
const RECENT_CALLS = 3;

/**
 * The newest notifications with a delivery to the endpoint. A search examines a bounded number of
 * notifications per call, so a page can come back short with next_cursor set: that is followed, a few calls at
 * most. `complete`: nothing older has one.
 */
async function recentNotifications(endpointId) {
  const notifications = [];
  let cursor = '';
  for (let calls = 0; calls < RECENT_CALLS && notifications.length < RECENT_NOTIFICATIONS; calls++) {
    const page = await adminCall('SearchNotifications', {
      endpointId,
      limit: RECENT_NOTIFICATIONS - notifications.length,
      cursor: cursor || undefined,
    });
    notifications.push(...(page.notifications ?? []));
    cursor = page.nextCursor ?? '';
    if (!cursor) break;
  }
  return { notifications, complete: !cursor };
}

export function createWebhooksView(shell) {
  const section = byId('view-webhooks');
  const tbody = byId('webhooks-table').tBodies[0];
  const state = byId('webhooks-state');
  const secret = {
    box: byId('webhook-secret'),
    url: byId('webhook-secret-url'),
    value: byId('webhook-secret-value'),
    until: byId('webhook-secret-until'),
  };
  const recent = {
    box: byId('webhook-recent'),
    title: byId('webhook-recent-title'),
    note: byId('webhook-recent-note'),
    tbody: byId('webhook-recent-table').tBodies[0],
  };
  const session = viewSession();
  /** Recent deliveries have their own: asking for another endpoint's, or leaving, drops an answer on its way. */
  const recentSession = viewSession();

  function hideSecret() {
    secret.box.hidden = true;
    secret.value.textContent = '';
    secret.url.textContent = '';
    secret.until.textContent = '';
  }

  function hideRecent() {
    recentSession.renew();
    recent.box.hidden = true;
    recent.tbody.replaceChildren();
    recent.note.textContent = '';
  }

  function endpointRow(e) {
    const toggle = el('button', {
      type: 'button',
      className: 'toggle-enabled',
      textContent: e.enabled ? 'Disable' : 'Enable',
      'aria-label': `${e.enabled ? 'Disable' : 'Enable'} ${e.url}`,
    });
    toggle.addEventListener('click', () => setEnabled(e, !e.enabled, toggle));
    const rotate = el('button', {
      type: 'button',
      className: 'rotate',
      textContent: 'Rotate secret',
      'aria-label': `Rotate the signing secret of ${e.url}`,
    });
    rotate.addEventListener('click', () => rotateSecret(e, rotate));
    const deliveries = el('button', {
      type: 'button',
      className: 'recent',
      textContent: 'Recent deliveries',
      'aria-label': `Recent deliveries to ${e.url}`,
    });
    deliveries.addEventListener('click', () => showRecent(e));
    const stateCell = el('div', {}, [
      chip(e.enabled ? 'enabled' : 'disabled'),
      e.disabledReason ? el('p', { className: 'muted', textContent: e.disabledReason }) : undefined,
      e.failingSince ? el('p', { className: 'muted' }, ['failing since ', time(e.failingSince)]) : undefined,
    ]);
    const events = (e.eventTypes ?? []).length > 0 ? e.eventTypes.join(', ') : 'every notification type';
    return row(
      [
        el('code', { textContent: e.url }),
        e.description ?? '',
        events,
        stateCell,
        el('div', { className: 'actions' }, [toggle, rotate, deliveries]),
      ],
      { dataset: { id: e.id, enabled: String(Boolean(e.enabled)) } },
    );
  }

  async function load() {
    const fresh = session.current();
    try {
      const { endpoints = [] } = await adminCall('ListWebhookEndpoints', {});
      if (!fresh()) return;
      tbody.replaceChildren(...endpoints.map(endpointRow));
      state.textContent = `${endpoints.length} endpoint${endpoints.length === 1 ? '' : 's'}.`;
      shell.clearError();
    } catch (error) {
      if (fresh()) shell.fail(error);
    }
  }

  async function setEnabled(e, enabled, button) {
    if (
      !enabled &&
      !(await shell.confirm(`Disable ${e.url}? It receives nothing until enabled.`, 'Disable'))
    ) {
      return;
    }
    button.disabled = true;
    try {
      await adminCall('UpdateWebhookEndpoint', { id: e.id, enabled });
      await load();
    } catch (error) {
      button.disabled = false;
      shell.fail(error);
    }
  }

  async function rotateSecret(e, button) {
    const question = `Issue a new signing secret for ${e.url}? The current one keeps signing for 24 hours.`;
    if (!(await shell.confirm(question, 'Rotate'))) return;
    button.disabled = true;
    try {
      const answer = await adminCall('RotateWebhookSecret', { id: e.id });
      secret.url.textContent = e.url;
      secret.value.textContent = answer.secret ?? '';
      secret.until.replaceChildren(time(answer.previousSecretExpiresAt));
      secret.box.hidden = false;
      secret.box.dataset.endpoint = e.id;
      shell.clearError();
    } catch (error) {
      shell.fail(error);
    } finally {
      button.disabled = false;
    }
  }

  async function showRecent(e) {
    const fresh = recentSession.renew();
    try {
      const { notifications, complete } = await recentNotifications(e.id);
      if (!fresh()) return;
      const destination = `endpoint ${e.id}`;
      const rows = notifications.flatMap((n) =>
        (n.deliveries ?? [])
          .filter((d) => d.destination === destination)
          .map((d) =>
            row(
              [
                time(d.createdAt ?? n.createdAt),
                el('a', { href: `#/notification/${n.id}` }, [el('code', { textContent: n.id })]),
                n.type,
                d.event || 'notification',
                deliveryChips([d]),
                String(d.attemptCount ?? 0),
              ],
              { dataset: { id: d.id, status: statusName(d.status) } },
            ),
          ),
      );
      const count =
        `${rows.length} deliver${rows.length === 1 ? 'y' : 'ies'} in ` +
        `${notifications.length} notification${notifications.length === 1 ? '' : 's'}`;
      recent.title.textContent = `Recent deliveries to ${e.url}`;
      const reach = complete
        ? 'every notification with a delivery to this endpoint'
        : 'the newest with a delivery to this endpoint; older ones are not shown';
      recent.note.textContent = `${count}: ${reach}. Open a notification for its attempts.`;
      recent.tbody.replaceChildren(...rows);
      recent.box.hidden = false;
      recent.box.dataset.endpoint = e.id;
      shell.clearError();
    } catch (error) {
      if (fresh()) shell.fail(error);
    }
  }

  byId('webhook-secret-hide').addEventListener('click', hideSecret);

  return {
    name: 'webhooks',
    section,
    enter() {
      session.renew();
      hideSecret();
      hideRecent();
      load();
    },
    leave() {
      session.renew();
      recentSession.renew();
      // A secret is shown once: leaving the view forgets it.
      hideSecret();
    },
    clear() {
      tbody.replaceChildren();
      state.textContent = '';
      hideSecret();
      hideRecent();
    },
  };
}
