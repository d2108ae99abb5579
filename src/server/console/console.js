// The console's shell: sign-in and sign-out, the hash routes (#/activity, #/notification/<id>, ...), the error
// line and the confirmation dialog. A key that the API refuses (unknown, revoked, or without the admin
// scope) is forgotten at once and every view is emptied: such a key is shown nothing.
import { createActivityView } from './activity.js';
import { ApiError, call, forgetKey, storedKey, storeKey } from './api.js';
import { createChartsView } from './charts.js';
import { byId } from './dom.js';
import { createNotificationView } from './notification.js';
import { createOutboxView } from './outbox.js';
import { createProvidersView } from './providers.js';
import { createSuppressionsView } from './suppressions.js';
import { createTemplatesView } from './templates.js';
import { createWebhooksView } from './webhooks.js';

const NOT_ADMIN = 'This key is not an admin key.';

const errorLine = byId('error');
const signIn = byId('sign-in');
const signInForm = byId('sign-in-form');
const keyInput = byId('sign-in-key');
const nav = byId('nav');
const signOut = byId('sign-out');
const dialog = byId('confirm');

const shell = {
  showError(text) {
    errorLine.textContent = text;
    errorLine.hidden = false;
  },
  clearError() {
    errorLine.hidden = true;
    errorLine.textContent = '';
  },
  /** A failed call: a refused key signs out; anything else goes to the error line. */
  fail(error) {
    if (error instanceof ApiError && error.refusesKey) {
      lockOut(error);
      return;
    }
    shell.showError(`${error.code ?? 'error'}: ${error.message}`);
  },
  /** Asks before a change; answers true when confirmed. */
  confirm(text, action) {
    return new Promise((resolve) => {
      const done = new AbortController();
      const answer = (yes) => {
        done.abort();
        if (dialog.open) dialog.close();
        resolve(yes);
      };
      byId('confirm-text').textContent = text;
      byId('confirm-ok').textContent = action;
      byId('confirm-ok').addEventListener('click', () => answer(true), { signal: done.signal });
      byId('confirm-back').addEventListener('click', () => answer(false), { signal: done.signal });
      dialog.addEventListener('close', () => answer(false), { signal: done.signal });
      dialog.showModal();
      byId('confirm-back').focus();
    });
  },
};

const views = new Map(
  [
    createActivityView(shell),
    createNotificationView(shell),
    createProvidersView(shell),
    createChartsView(shell),
    createOutboxView(shell),
    createSuppressionsView(shell),
    createWebhooksView(shell),
    createTemplatesView(shell),
  ].map((view) => [view.name, view]),
);
let current;

function leaveCurrent() {
  current?.leave();
  current = undefined;
}

function showSignIn() {
  leaveCurrent();
  for (const view of views.values()) {
    view.section.hidden = true;
    view.clear();
  }
  nav.hidden = true;
  signOut.hidden = true;
  signIn.hidden = false;
  keyInput.focus();
}

/** The key was refused: forget it and show nothing but the message. */
function lockOut(error) {
  forgetKey();
  showSignIn();
  shell.showError(`${NOT_ADMIN} (${error.code}: ${error.message})`);
}

function route() {
  if (!storedKey()) {
    showSignIn();
    return;
  }
  const [name = '', ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  const param = decodeURIComponent(rest.join('/'));
  // A notification needs its id; anything unknown is the activity view.
  const view = (param || name !== 'notification' ? views.get(name) : undefined) ?? views.get('activity');
  leaveCurrent();
  shell.clearError();
  signIn.hidden = true;
  nav.hidden = false;
  signOut.hidden = false;
  for (const other of views.values()) other.section.hidden = other !== view;
  const tab = view.name === 'notification' ? 'activity' : view.name;
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.view === tab) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  current = view;
  view.enter(param);
}

signInForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) return;
  const button = signInForm.querySelector('button');
  button.disabled = true;
  shell.clearError();
  try {
    // Any admin RPC proves the scope; the routing rules are a small answer.
    await call('AdminService', 'ListRoutingRules', {}, key);
    keyInput.value = '';
    storeKey(key);
    route();
  } catch (error) {
    if (error instanceof ApiError && error.refusesKey) {
      keyInput.value = '';
      shell.showError(`${NOT_ADMIN} (${error.code}: ${error.message})`);
    } else {
      shell.fail(error);
    }
  } finally {
    button.disabled = false;
  }
});

signOut.addEventListener('click', () => {
  forgetKey();
  shell.clearError();
  showSignIn();
});

addEventListener('hashchange', route);
route();
