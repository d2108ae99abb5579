// The preferences page behind the link in every non-critical e-mail: `/preferences/<token>`. `GET` shows the
// token's user their switches — each channel, and each notification type on the channels its routing uses —
// as they apply now, and changes nothing. `POST` (the page's own form, urlencoded) saves only the boxes the
// user changed from what the page showed (the form carries what it showed), so an old tab cannot undo a change
// made since (an unsubscribe, a complaint), and a box left as it was keeps following its channel switch:
// turning a whole channel off is one click. Only switches the page would show now are saved. Critical types
// are not listed: opt-outs do not apply to them. A forged, altered or expired token is 400 and changes
// nothing; the token only ever reaches its own user's preferences.
import type { ChannelName } from '../core/channels.js';
import { escapeHtml } from '../core/html.js';
import { verifyPreferencesLink } from '../core/link-tokens.js';
import { checkId } from '../core/rules.js';
import {
  type Db,
  getPreferences,
  listRoutingRules,
  type StoredPreferences,
  updatePreferences,
} from '../store/index.js';
import { answerPage as answer, linkPage as page, withLinkPage } from './link-page.js';
import type { RequestHandler } from './listener.js';
import { readSmallBody } from './request-body.js';

export interface PreferencesPageDeps {
  db: Db;
  linkSecret: Buffer;
  now: () => Date;
  onError: (error: unknown) => void;
}

const PREFIX = '/preferences/';
const MAX_BODY_BYTES = 64 * 1024;
/** The channels a person switches (webhooks go to systems), in the page's order. */
const CHANNELS: readonly ChannelName[] = ['email', 'push', 'sms', 'in_app'];
const LABELS: Record<string, string> = { email: 'E-mail', push: 'Push', sms: 'SMS', in_app: 'In-app' };

/** One switch on the page: a channel, or a type on a channel. */
type Switch = { channel: ChannelName; type: string | null };

export function withPreferencesPage(deps: PreferencesPageDeps, next: RequestHandler): RequestHandler {
  const verify = (token: string) => verifyPreferencesLink(deps.linkSecret, token, deps.now());
  return withLinkPage(
    PREFIX,
    verify,
    (req, res, link) => {
      const work =
        req.method === 'GET'
          ? showPage(deps.db, link.userId, 'Choose what you hear about, and where.')
          : readSmallBody(req, MAX_BODY_BYTES).then(async (body) => {
              const form = body === null ? null : parseForm(body);
              if (form === null)
                return { status: 400, html: page('Not a preferences form', 'Nothing was changed.') };
              await save(deps.db, link.userId, form);
              return showPage(deps.db, link.userId, 'Saved.');
            });
      work
        .then(({ status, html }) => answer(res, status, html))
        .catch((error) => {
          deps.onError(error);
          answer(res, 503, page('Try again', 'The page could not be loaded or saved. Nothing was changed.'));
        });
    },
    next,
  );
}

/** The switches the page shows: every channel, then each non-critical type on the channels it routes to. */
async function switchesFor(db: Db, prefs: StoredPreferences): Promise<Switch[]> {
  const rules = await listRoutingRules(db);
  const critical = new Set(rules.filter((r) => r.critical).map((r) => r.type));
  const byType = new Map<string, Set<ChannelName>>();
  for (const rule of rules) {
    if (rule.critical) continue;
    const channels = rule.steps.flatMap((s) => s.channels as ChannelName[]);
    byType.set(rule.type, new Set(channels.filter((c) => CHANNELS.includes(c))));
  }
  // Types the user has switches for but no rule routes (any more) stay visible, so they can be undone.
  for (const [type, channels] of Object.entries(prefs.types)) {
    if (critical.has(type)) continue;
    const set = byType.get(type) ?? new Set<ChannelName>();
    for (const c of Object.keys(channels)) if (CHANNELS.includes(c as ChannelName)) set.add(c as ChannelName);
    byType.set(type, set);
  }
  const switches: Switch[] = CHANNELS.map((channel) => ({ channel, type: null }));
  for (const type of [...byType.keys()].sort()) {
    for (const channel of CHANNELS) if (byType.get(type)!.has(channel)) switches.push({ channel, type });
  }
  return switches;
}

/** Whether the switch lets messages through now: a type's own switch, else its channel's, else on. */
function isOn(prefs: StoredPreferences, s: Switch): boolean {
  const own = s.type !== null && Object.hasOwn(prefs.types, s.type) ? prefs.types[s.type] : undefined;
  const typeSwitch = own && Object.hasOwn(own, s.channel) ? own[s.channel] : undefined;
  if (typeSwitch !== undefined) return typeSwitch;
  return prefs.channels[s.channel] !== false;
}

function key(s: Switch): string {
  return s.type === null ? `c:${s.channel}` : `t:${s.channel}:${s.type}`;
}

async function showPage(db: Db, userId: string, message: string): Promise<{ status: number; html: string }> {
  const prefs = await getPreferences(db, userId);
  const switches = await switchesFor(db, prefs);
  const box = (s: Switch) => {
    const value = escapeHtml(key(s));
    const on = isOn(prefs, s);
    const label = escapeHtml(`${s.type ?? 'All'} by ${LABELS[s.channel]}`);
    return `<input type="hidden" name="${on ? 'was_on' : 'was_off'}" value="${value}"><input type="checkbox" name="on" value="${value}" aria-label="${label}"${on ? ' checked' : ''}>`;
  };
  const channelRows = switches
    .filter((s) => s.type === null)
    .map((s) => `<tr><td>${LABELS[s.channel]}</td><td class="c">${box(s)}</td></tr>`)
    .join('');
  const typeSwitches = switches.filter((s) => s.type !== null);
  const types = [...new Set(typeSwitches.map((s) => s.type!))];
  const typeRows = types
    .map((type) => {
      const cells = CHANNELS.map((channel) => {
        const s = typeSwitches.find((t) => t.type === type && t.channel === channel);
        return `<td class="c">${s ? box(s) : ''}</td>`;
      }).join('');
      return `<tr><td>${escapeHtml(type)}</td>${cells}</tr>`;
    })
    .join('');
  const typeTable = types.length
    ? `<h2>By notification type</h2><table><tr><th>Type</th>${CHANNELS.map((c) => `<th>${LABELS[c]}</th>`).join('')}</tr>${typeRows}</table>`
    : '';
  const form = `<form method="post"><h2>Channels</h2><table>${channelRows}</table>${typeTable}<button type="submit">Save</button></form>`;
  return { status: 200, html: page('Notification preferences', escapeHtml(message), form) };
}

interface PreferencesForm {
  /** Every switch the page showed, with whether it showed it on. */
  shown: { switch: Switch; wasOn: boolean }[];
  on: Set<string>;
}

/** The form's switches, or null for a body that is not this page's form. */
function parseForm(body: string): PreferencesForm | null {
  const params = new URLSearchParams(body);
  const shown: PreferencesForm['shown'] = [];
  for (const [name, wasOn] of [
    ['was_on', true],
    ['was_off', false],
  ] as const) {
    for (const value of params.getAll(name)) {
      const s = parseKey(value);
      if (!s) return null;
      shown.push({ switch: s, wasOn });
    }
  }
  if (shown.length === 0 || shown.length > 5_000) return null;
  return { shown, on: new Set(params.getAll('on')) };
}

function parseKey(value: string): Switch | null {
  const [kind, channel, ...rest] = value.split(':');
  if (!CHANNELS.includes(channel as ChannelName)) return null;
  if (kind === 'c' && rest.length === 0) return { channel: channel as ChannelName, type: null };
  const type = rest.join(':');
  if (kind === 't' && checkId(type) === undefined) return { channel: channel as ChannelName, type };
  return null;
}

/**
 * Writes the switches the user changed from what the page showed, among those the page would show now (not a
 * critical type, not one no rule routes); an untouched box keeps following its channel.
 */
async function save(db: Db, userId: string, form: PreferencesForm): Promise<void> {
  const showable = new Set((await switchesFor(db, await getPreferences(db, userId))).map(key));
  const changed = form.shown
    .filter((s) => showable.has(key(s.switch)) && form.on.has(key(s.switch)) !== s.wasOn)
    .map((s) => s.switch);
  if (changed.length === 0) return;
  await updatePreferences(db, userId, {
    channels: changed
      .filter((s) => s.type === null)
      .map((s) => ({ channel: s.channel, enabled: form.on.has(key(s)) })),
    types: changed
      .filter((s) => s.type !== null)
      .map((s) => ({ type: s.type!, channel: s.channel, enabled: form.on.has(key(s)) })),
    quietHours: undefined,
  });
}
