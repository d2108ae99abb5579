// Suppressions (AdminService.ListSuppressions, AddSuppression, RemoveSuppression): the e-mail addresses and
// phone numbers never contacted again, newest first, by channel and address; add one, or let one be
// contacted again.
import { adminCall } from './api.js';
import { byId, channelName, el, fillSelect, row, time, viewSession } from './dom.js';
import { pager } from './loading.js';

const PAGE = 50;
const SUPPRESSIBLE = [
  ['CHANNEL_EMAIL', 'email'],
  ['CHANNEL_SMS', 'sms'],
];

export function createSuppressionsView(shell) {
  const section = byId('view-suppressions');
  const tbody = byId('suppressions-table').tBodies[0];
  const state = byId('suppressions-state');
  const filter = { channel: byId('suppression-channel'), address: byId('suppression-address') };
  const add = {
    form: byId('suppression-add'),
    channel: byId('suppression-add-channel'),
    address: byId('suppression-add-address'),
    reason: byId('suppression-add-reason'),
  };
  fillSelect(filter.channel, [['', 'any'], ...SUPPRESSIBLE]);
  fillSelect(add.channel, SUPPRESSIBLE);
  const session = viewSession();
  let note = '';
  const rows = (page) => (page.suppressions ?? []).map(suppressionRow);
  const pages = pager({
    button: byId('suppressions-more'),
    tbody,
    session,
    shell,
    load: (cursor) => adminCall('ListSuppressions', request({ cursor })),
    rows,
    describe,
  });

  function request(extra) {
    const address = filter.address.value.trim();
    return {
      channel: filter.channel.value || undefined,
      address: address && filter.channel.value ? address : undefined,
      limit: PAGE,
      ...extra,
    };
  }

  function describe() {
    const count = tbody.rows.length;
    state.textContent = `${note}${count} suppression${count === 1 ? '' : 's'} shown.`;
  }

  function suppressionRow(s) {
    const remove = el('button', { type: 'button', className: 'remove', textContent: 'Remove' });
    remove.setAttribute('aria-label', `Remove the suppression of ${s.address}`);
    remove.addEventListener('click', () => removeSuppression(s, remove));
    const delivery = s.deliveryId ? el('code', { textContent: s.deliveryId }) : 'added by an operator';
    return row([channelName(s.channel), s.address, s.reason ?? '', time(s.createdAt), delivery, remove], {
      dataset: { channel: channelName(s.channel), address: s.address },
    });
  }

  async function firstPage() {
    const fresh = session.renew();
    try {
      const page = await adminCall('ListSuppressions', request({}));
      if (!fresh()) return;
      tbody.replaceChildren(...rows(page));
      pages.from(page);
      describe();
      shell.clearError();
    } catch (error) {
      if (fresh()) shell.fail(error);
    }
  }

  async function removeSuppression(s, button) {
    const channel = channelName(s.channel);
    if (!(await shell.confirm(`Let ${s.address} be contacted by ${channel} again?`, 'Remove'))) return;
    button.disabled = true;
    try {
      const answer = await adminCall('RemoveSuppression', { channel: s.channel, address: s.address });
      note = answer.removed ? `Removed ${s.address} (${channel}). ` : `${s.address} was not suppressed. `;
      await firstPage();
    } catch (error) {
      button.disabled = false;
      shell.fail(error);
    }
  }

  add.form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = add.form.querySelector('button');
    button.disabled = true;
    try {
      const answer = await adminCall('AddSuppression', {
        channel: add.channel.value,
        address: add.address.value.trim(),
        reason: add.reason.value.trim() || undefined,
      });
      const address = answer.suppression?.address ?? add.address.value.trim();
      note = answer.created
        ? `Added ${address}. `
        : `${address} was already suppressed; the original entry is kept. `;
      add.address.value = '';
      add.reason.value = '';
      await firstPage();
    } catch (error) {
      shell.fail(error);
    } finally {
      button.disabled = false;
    }
  });
  byId('suppression-filters').addEventListener('submit', (event) => {
    event.preventDefault();
    note = '';
    firstPage();
  });

  return {
    name: 'suppressions',
    section,
    enter() {
      note = '';
      firstPage();
    },
    leave: () => session.renew(),
    clear() {
      tbody.replaceChildren();
      state.textContent = '';
      pages.clear();
      note = '';
    },
  };
}
