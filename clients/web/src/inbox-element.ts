/// <reference lib="dom" />
// <herald-inbox>: a notification bell and inbox panel any page can embed with a user token, built on the browser
// client. Importing this module (`@herald-notify/web/inbox`, or the bundled `herald-inbox.js`) registers it:
//
//   <herald-inbox base-url="https://herald.example.com"></herald-inbox>
//   <script type="module">document.querySelector('herald-inbox').token = userJwt;</script>
//
// It loads the newest page with ListNotifications, then follows the live stream from that page's highest seq
// (so nothing is missed or shown twice, across reconnects too), loads older pages as the list scrolls, and keeps
// the badge at the exact unread count the server sends. Marks made anywhere (another tab, another device) arrive
// as `state` events. Notification text only ever enters the DOM as text nodes, never as markup.

import { inboxStyles } from './inbox-styles.js';
import {
  type ChannelJson,
  createHeraldWebClient,
  type HeraldEvent,
  type HeraldWebClient,
  type HeraldWebClientOptions,
  type ListNotificationsResponseJson,
  type NotificationJson,
  type PreferencesJson,
  type PreferencesUpdate,
  type StateChangeJson,
  type SystemMessageJson,
  type Transport,
} from './index.js';

export type InboxConnectionState = 'idle' | 'connecting' | 'live' | 'reconnecting';

/** The DOM events the element dispatches (they bubble and cross shadow boundaries), by name and `detail`. */
export interface HeraldInboxEventMap {
  /** A notification arrived live (not one loaded from a page). */
  'herald-notification': { notification: NotificationJson };
  'herald-unread-count': { count: number };
  /** The user marked these read in this element (one, or every one shown with "mark all read"). */
  'herald-read': { ids: string[] };
  'herald-archive': { ids: string[] };
  /** The user opened a notification; `url` is its `data.url` if that is http(s). Cancel to stop the navigation. */
  'herald-click': { notification: NotificationJson; url: string | null };
  'herald-connection': { state: InboxConnectionState; transport?: 'connect' | 'websocket'; error?: string };
  'herald-preferences': { preferences: PreferencesJson };
  /** A broadcast system message (maintenance notices and the like). */
  'herald-system': { system: SystemMessageJson };
  /** A call failed; the element shows a short note and stays usable. */
  'herald-error': { action: InboxAction; message: string };
  'herald-toggle': { open: boolean };
}

type InboxAction = 'load' | 'read' | 'archived' | 'preferences' | 'stream';

declare global {
  interface HTMLElementTagNameMap {
    'herald-inbox': HeraldInboxElement;
  }
  interface HTMLElementEventMap {
    'herald-notification': CustomEvent<HeraldInboxEventMap['herald-notification']>;
    'herald-unread-count': CustomEvent<HeraldInboxEventMap['herald-unread-count']>;
    'herald-read': CustomEvent<HeraldInboxEventMap['herald-read']>;
    'herald-archive': CustomEvent<HeraldInboxEventMap['herald-archive']>;
    'herald-click': CustomEvent<HeraldInboxEventMap['herald-click']>;
    'herald-connection': CustomEvent<HeraldInboxEventMap['herald-connection']>;
    'herald-preferences': CustomEvent<HeraldInboxEventMap['herald-preferences']>;
    'herald-system': CustomEvent<HeraldInboxEventMap['herald-system']>;
    'herald-error': CustomEvent<HeraldInboxEventMap['herald-error']>;
    'herald-toggle': CustomEvent<HeraldInboxEventMap['herald-toggle']>;
  }
}

/** The channels a person switches (webhooks go to systems, not people). */
const CHANNELS: [ChannelJson, string][] = [
  ['CHANNEL_IN_APP', 'In-app'],
  ['CHANNEL_PUSH', 'Push'],
  ['CHANNEL_EMAIL', 'Email'],
  ['CHANNEL_SMS', 'SMS'],
];

const FAILED: Record<InboxAction, string> = {
  load: 'Could not load notifications.',
  read: 'Could not mark read.',
  archived: 'Could not archive.',
  preferences: 'Could not load or save preferences.',
  stream: 'Connection error.',
};

/** Which timestamp a `state` event's action sets or clears. */
const STATE_FIELDS = {
  MARK_ACTION_READ: 'readAt',
  MARK_ACTION_UNREAD: 'readAt',
  MARK_ACTION_SEEN: 'seenAt',
  MARK_ACTION_ARCHIVED: 'archivedAt',
  MARK_ACTION_UNARCHIVED: 'archivedAt',
} as const;

const ICONS = {
  bell: 'M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9M10.3 21a1.9 1.9 0 0 0 3.4 0',
  archive: 'M21 8v13H3V8M1 3h22v5H1zM10 12h4',
  settings: 'M4 21v-7M4 10V3M12 21v-9M12 8V3M20 21v-5M20 12V3M1 14h6M9 8h6M17 16h6',
};

const seqOf = (n: NotificationJson): number => Number(n.seq ?? 0);

/** An element with attributes and children; strings become text nodes (never parsed as HTML). */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function icon(name: keyof typeof ICONS): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}

/** `data.url` when it is an http(s) URL (relative ones resolve against the page); null otherwise. */
function followableUrl(notification: NotificationJson): string | null {
  const url = notification.data?.url;
  if (typeof url !== 'string') return null;
  try {
    const parsed = new URL(url, document.baseURI);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? parsed.href : null;
  } catch {
    return null;
  }
}

/** "5 minutes ago", "yesterday", "now": the largest whole unit. */
function relativeTime(iso: string, format: Intl.RelativeTimeFormat, now = Date.now()): string {
  const seconds = (Date.parse(iso) - now) / 1000;
  const units: [Intl.RelativeTimeFormatUnit, number][] = [
    ['year', 31_536_000],
    ['month', 2_592_000],
    ['week', 604_800],
    ['day', 86_400],
    ['hour', 3_600],
    ['minute', 60],
  ];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return format.format(Math.trunc(seconds / size), unit);
  }
  return format.format(0, 'second');
}

let sharedSheet: CSSStyleSheet | null = null;

export class HeraldInboxElement extends HTMLElement {
  static readonly observedAttributes = [
    'base-url',
    'token',
    'user-id',
    'transport',
    'page-size',
    'locale',
    'open',
  ];

  #token: string | null = null;
  /** Every call goes through this client; after the first page, it is the one that streams. */
  #client: HeraldWebClient | null = null;
  #stopLive: (() => void) | null = null;
  /** Bumped on every (re)start and stop: answers that belong to an older one are dropped. */
  #session = 0;
  /** base-url, user-id and transport of the inbox shown: a new token for the same one resumes it. */
  #inboxKey = '';
  #items = new Map<string, NotificationJson>();
  #rows = new Map<string, HTMLLIElement>();
  #cursor = '';
  #loaded = false;
  #loading = false;
  #unread = 0;
  #state: InboxConnectionState = 'idle';
  #failures = 0;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #clock: ReturnType<typeof setInterval> | undefined;
  #restartQueued = false;
  #observer: IntersectionObserver | null = null;

  readonly #root: ShadowRoot;
  readonly #bell = h('button', {
    type: 'button',
    class: 'bell',
    part: 'bell',
    'aria-haspopup': 'dialog',
    'aria-expanded': 'false',
    'aria-controls': 'panel',
  });
  readonly #badge = h('span', { class: 'badge', part: 'badge', 'aria-hidden': 'true', hidden: '' });
  readonly #heading = h('h2', { id: 'heading' }, 'Notifications');
  readonly #markAll = h('button', { type: 'button', class: 'text', disabled: '' }, 'Mark all read');
  readonly #prefsButton = h('button', {
    type: 'button',
    class: 'icon',
    'aria-label': 'Preferences',
    'aria-pressed': 'false',
  });
  readonly #error = h('p', { class: 'error', role: 'alert', hidden: '' });
  readonly #list = h('ul', { 'aria-labelledby': 'heading' });
  readonly #note = h('p', { class: 'note' }, 'Loading…');
  readonly #more = h('button', { type: 'button', class: 'more', hidden: '' }, 'Load older notifications');
  readonly #scroll = h('div', { class: 'scroll' }, this.#list, this.#note, this.#more);
  readonly #prefs = h('div', { class: 'prefs', hidden: '' });
  readonly #panel: HTMLElement = h(
    'section',
    {
      id: 'panel',
      class: 'panel',
      part: 'panel',
      role: 'dialog',
      'aria-labelledby': 'heading',
      tabindex: '-1',
      hidden: '',
    },
    h('header', {}, this.#heading, this.#markAll, this.#prefsButton),
    this.#error,
    this.#scroll,
    this.#prefs,
  );
  readonly #announcer = h('div', { class: 'sr', 'aria-live': 'polite' });

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: 'open' });
    // A constructed stylesheet (every current browser has them) needs no 'unsafe-inline' in the page's CSP.
    if (!sharedSheet) {
      sharedSheet = new CSSStyleSheet();
      sharedSheet.replaceSync(inboxStyles);
    }
    this.#root.adoptedStyleSheets = [sharedSheet];
    this.#bell.append(icon('bell'), this.#badge);
    this.#prefsButton.append(icon('settings'));
    this.#root.append(this.#bell, this.#panel, this.#announcer);
    this.#renderCount();

    this.#bell.addEventListener('click', () => {
      this.open = !this.open;
      if (this.open) this.#panel.focus();
    });
    this.#markAll.addEventListener('click', () => this.#markAllRead());
    this.#prefsButton.addEventListener('click', () => void this.#showPreferences(this.#prefs.hidden));
    this.#more.addEventListener('click', () => this.#loadOlder());
    this.#root.addEventListener('keydown', (event) => {
      if (event instanceof KeyboardEvent && event.key === 'Escape' && this.open) {
        event.stopPropagation();
        this.open = false;
        this.#bell.focus();
      }
    });
  }

  /** Herald's URL; default: this page's origin. */
  get baseUrl(): string {
    return this.getAttribute('base-url') || location.origin;
  }
  set baseUrl(value: string) {
    this.setAttribute('base-url', value);
  }

  /** The user's JWT. Set the property rather than the attribute to keep it out of the DOM. */
  get token(): string {
    return this.#token ?? this.getAttribute('token') ?? '';
  }
  set token(value: string) {
    this.#token = value;
    this.#restart();
  }

  /** Only with an API key instead of a user token: whose inbox. */
  get userId(): string {
    return this.getAttribute('user-id') ?? '';
  }
  set userId(value: string) {
    this.setAttribute('user-id', value);
  }

  get transport(): Transport {
    const value = this.getAttribute('transport');
    return value === 'connect' || value === 'websocket' ? value : 'auto';
  }
  set transport(value: Transport) {
    this.setAttribute('transport', value);
  }

  /** Notifications per ListNotifications page, 1..100 (default 20). */
  get pageSize(): number {
    const value = Number(this.getAttribute('page-size'));
    return Number.isInteger(value) && value >= 1 && value <= 100 ? value : 20;
  }
  set pageSize(value: number) {
    this.setAttribute('page-size', String(value));
  }

  /** Whether the panel is showing (the `open` attribute). */
  get open(): boolean {
    return this.hasAttribute('open');
  }
  set open(value: boolean) {
    this.toggleAttribute('open', value);
  }

  /** The exact unread count, as the server last told it. */
  get unreadCount(): number {
    return this.#unread;
  }

  get connectionState(): InboxConnectionState {
    return this.#state;
  }

  /** The browser client the element uses (null until it has a token), for calls of the host's own. */
  get client(): HeraldWebClient | null {
    return this.#client;
  }

  connectedCallback(): void {
    // A token set on the element before it was defined sits on the instance, hiding the accessor: move it over.
    const early = Reflect.get(this, 'token');
    if (Object.hasOwn(this, 'token') && Reflect.deleteProperty(this, 'token') && typeof early === 'string') {
      this.token = early;
    }
    document.addEventListener('click', this.#onDocumentClick);
    this.#clock = setInterval(() => this.#refreshTimes(), 30_000);
    this.#observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) this.#loadOlder();
      },
      { root: this.#scroll, rootMargin: '0px 0px 120px 0px' },
    );
    this.#observer.observe(this.#more);
    this.#restart();
  }

  disconnectedCallback(): void {
    document.removeEventListener('click', this.#onDocumentClick);
    clearInterval(this.#clock);
    this.#observer?.disconnect();
    this.#observer = null;
    this.#stop();
    this.#inboxKey = '';
  }

  attributeChangedCallback(name: string, previous: string | null, value: string | null): void {
    if (previous === value) return;
    if (name === 'open') {
      this.#panel.hidden = value === null;
      this.#bell.setAttribute('aria-expanded', String(value !== null));
      if (value === null) this.#error.hidden = true;
      this.#emit('herald-toggle', { open: value !== null });
    } else if (name === 'locale') {
      this.#refreshTimes();
    } else {
      if (name === 'token') this.#token = null;
      this.#restart();
    }
  }

  #onDocumentClick = (event: MouseEvent): void => {
    if (this.open && !event.composedPath().includes(this)) this.open = false;
  };

  #emit<K extends keyof HeraldInboxEventMap>(
    type: K,
    detail: HeraldInboxEventMap[K],
    cancelable = false,
  ): boolean {
    return this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true, cancelable }));
  }

  /** Settings change together (attributes, then the token): restart once, after the current task's changes. */
  #restart(): void {
    if (!this.isConnected || this.#restartQueued) return;
    this.#restartQueued = true;
    queueMicrotask(() => {
      this.#restartQueued = false;
      if (this.isConnected) void this.#start();
    });
  }

  #stop(): void {
    this.#session++;
    clearTimeout(this.#retry);
    this.#stopLive?.();
    this.#stopLive = null;
  }

  async #start(): Promise<void> {
    const inboxKey = [this.baseUrl, this.userId, this.transport].join(' ');
    const resumeAfter = inboxKey === this.#inboxKey && this.#stopLive ? this.#client?.lastSeq() : undefined;
    this.#stop();
    const session = this.#session;
    const options: HeraldWebClientOptions = {
      baseUrl: this.baseUrl,
      token: this.token,
      userId: this.userId || undefined,
      transport: this.transport,
    };
    if (!options.token) {
      this.#client = null;
      this.#setState('idle');
      return;
    }
    if (resumeAfter !== undefined) {
      // Only the credential changed (a refreshed token): same inbox, carry on after the last seq.
      this.#follow(options, resumeAfter);
      return;
    }
    this.#reset();
    this.#inboxKey = inboxKey;
    this.#setState('connecting');
    this.#client = createHeraldWebClient(options);
    let page: ListNotificationsResponseJson;
    try {
      page = await this.#client.list({ limit: this.pageSize });
    } catch (error) {
      if (session !== this.#session) return;
      this.#fail('load', error);
      this.#failures++;
      this.#retry = setTimeout(
        () => void this.#start(),
        Math.random() * Math.min(30_000, 1_000 * 2 ** this.#failures),
      );
      return;
    }
    if (session !== this.#session) return;
    this.#failures = 0;
    this.#loaded = true;
    this.#addPage(page);
    this.#setCount(Number(page.unreadCount ?? 0));
    // The stream replays everything after the newest notification of the page, then goes live.
    this.#follow(options, Math.max(0, ...(page.notifications ?? []).map(seqOf)));
  }

  #follow(options: HeraldWebClientOptions, afterSeq: number): void {
    const session = this.#session;
    const client = createHeraldWebClient({ ...options, afterSeq });
    this.#client = client;
    this.#stopLive = client.subscribe((event) => {
      if (session === this.#session) this.#onEvent(event);
    });
  }

  #onEvent(event: HeraldEvent): void {
    switch (event.type) {
      case 'notification':
        this.#received(event.notification);
        break;
      case 'state':
        this.#applyState(event.state);
        break;
      case 'unread_count':
        this.#setCount(Number(event.unread_count.count ?? 0));
        break;
      case 'connected': {
        const wasDown = this.#state === 'reconnecting';
        this.#setState('live', { transport: event.transport });
        // Marks are not replayed: read the newest page again for what changed while the connection was down.
        if (wasDown) void this.#refreshStates();
        break;
      }
      case 'disconnected':
        this.#setState('reconnecting', { error: event.error });
        break;
      case 'system':
        this.#emit('herald-system', { system: event.system });
        break;
      case 'error':
        this.#emit('herald-error', { action: 'stream', message: event.message });
        break;
    }
  }

  #setState(
    state: InboxConnectionState,
    extra: Omit<HeraldInboxEventMap['herald-connection'], 'state'> = {},
  ): void {
    this.#state = state;
    this.#emit('herald-connection', { state, ...extra });
  }

  #reset(): void {
    this.#items.clear();
    this.#rows.clear();
    this.#list.replaceChildren();
    this.#cursor = '';
    this.#loaded = false;
    this.#more.hidden = true;
    this.#error.hidden = true;
    void this.#showPreferences(false);
    this.#setCount(0);
    this.#renderNote();
  }

  #setCount(count: number): void {
    if (count === this.#unread) return;
    this.#unread = count;
    this.#renderCount();
    this.#emit('herald-unread-count', { count });
  }

  #renderCount(): void {
    const count = this.#unread;
    this.#badge.textContent = String(count);
    this.#badge.hidden = count === 0;
    this.#bell.setAttribute('aria-label', count === 0 ? 'Notifications' : `Notifications, ${count} unread`);
    this.#markAll.disabled = count === 0;
  }

  #renderNote(): void {
    this.#note.textContent = this.#loaded ? 'No notifications yet.' : 'Loading…';
    this.#note.hidden = this.#rows.size > 0;
  }

  #fail(action: InboxAction, error: unknown): void {
    this.#error.textContent = FAILED[action];
    this.#error.hidden = false;
    this.#emit('herald-error', { action, message: error instanceof Error ? error.message : String(error) });
  }

  #addPage(page: ListNotificationsResponseJson): void {
    for (const notification of page.notifications ?? []) {
      if (!notification.id || this.#items.has(notification.id)) continue;
      this.#items.set(notification.id, notification);
      this.#sync(notification);
    }
    this.#cursor = page.nextCursor ?? '';
    this.#more.hidden = this.#cursor === '';
    this.#renderNote();
  }

  #received(notification: NotificationJson): void {
    if (!notification.id || this.#items.has(notification.id)) return;
    this.#items.set(notification.id, notification);
    if (notification.archivedAt) return; // replayed, but archived: not in the inbox view
    this.#sync(notification);
    this.#renderNote();
    this.#announcer.textContent = `New notification: ${notification.title || notification.type || ''}`;
    this.#emit('herald-notification', { notification });
  }

  #applyState(state: StateChangeJson): void {
    const field =
      state.action && state.action !== 'MARK_ACTION_UNSPECIFIED' ? STATE_FIELDS[state.action] : null;
    if (!field) return;
    for (const id of state.notificationIds ?? []) {
      const notification = this.#items.get(id);
      if (!notification) continue;
      notification[field] = state[field];
      this.#sync(notification);
    }
    this.#renderNote();
  }

  /** After a reconnect: the newest page as it is now decides read state and what was archived meanwhile. */
  async #refreshStates(): Promise<void> {
    const session = this.#session;
    const upTo = this.#client?.lastSeq() ?? 0;
    let page: ListNotificationsResponseJson | undefined;
    try {
      page = await this.#client?.list({ limit: this.pageSize });
    } catch {
      return; // the next reconnect tries again
    }
    if (!page || session !== this.#session) return;
    const fresh = new Map((page.notifications ?? []).map((n) => [n.id, n]));
    const oldest = page.nextCursor ? seqOf(page.notifications?.at(-1) ?? {}) : 0;
    for (const notification of this.#items.values()) {
      const seq = seqOf(notification);
      if (seq < oldest || seq > upTo) continue;
      const now = fresh.get(notification.id);
      notification.readAt = now?.readAt;
      notification.archivedAt = now ? undefined : (notification.archivedAt ?? new Date().toISOString());
      this.#sync(notification);
    }
    this.#renderNote();
  }

  /** Brings a notification's row in line with it: added in seq order, restyled, or removed once archived. */
  #sync(notification: NotificationJson): void {
    const id = notification.id ?? '';
    let row = this.#rows.get(id);
    if (notification.archivedAt) {
      row?.remove();
      this.#rows.delete(id);
      return;
    }
    if (!row) {
      row = this.#row(notification);
      this.#rows.set(id, row);
      const seq = seqOf(notification);
      const next = [...this.#list.children].find((li) => Number(li.getAttribute('data-seq')) < seq) ?? null;
      this.#list.insertBefore(row, next);
    }
    row.classList.toggle('unread', !notification.readAt);
  }

  #row(notification: NotificationJson): HTMLLIElement {
    const when = notification.sendAt ?? notification.createdAt ?? '';
    const title = notification.title || notification.type || '';
    const time = h('time', { datetime: when });
    this.#renderTime(time);
    const open = h(
      'button',
      { type: 'button', class: 'open' },
      h('span', { class: 'state sr' }, 'Unread: '),
      h('span', { class: 'title' }, title),
    );
    if (notification.body) open.append(h('span', { class: 'body' }, notification.body));
    open.append(time);
    const archive = h(
      'button',
      { type: 'button', class: 'icon', 'aria-label': `Archive: ${title}` },
      icon('archive'),
    );
    open.addEventListener('click', () => void this.#activate(notification));
    archive.addEventListener('click', () => this.#archive(notification, archive));
    return h('li', { 'data-seq': String(seqOf(notification)), part: 'item' }, open, archive);
  }

  #renderTime(time: HTMLTimeElement): void {
    const locale = this.getAttribute('locale') || document.documentElement.lang || undefined;
    const when = time.dateTime;
    if (!when) return;
    time.textContent = relativeTime(when, new Intl.RelativeTimeFormat(locale, { numeric: 'auto' }));
    time.title = new Date(when).toLocaleString(locale);
  }

  #refreshTimes(): void {
    for (const time of this.#list.querySelectorAll('time')) this.#renderTime(time);
  }

  async #activate(notification: NotificationJson): Promise<void> {
    const read = notification.readAt ? null : this.#mark([notification], 'read');
    const url = followableUrl(notification);
    if (!this.#emit('herald-click', { notification, url }, true) || !url) return;
    await read; // the mark reaches Herald before the page unloads
    location.assign(url);
  }

  #archive(notification: NotificationJson, button: HTMLButtonElement): void {
    if (this.#root.activeElement === button) {
      // Focus moves on to the next item (or back to the panel) rather than being lost with the row.
      const row = button.closest('li');
      const neighbour = row?.nextElementSibling ?? row?.previousElementSibling;
      const target = neighbour?.querySelector('button') ?? this.#panel;
      target.focus();
    }
    void this.#mark([notification], 'archived');
  }

  #markAllRead(): void {
    const shown = [...this.#items.values()];
    const upTo = Math.max(this.#client?.lastSeq() ?? 0, ...shown.map(seqOf));
    if (upTo > 0)
      void this.#mark(
        shown.filter((n) => !n.readAt && !n.archivedAt),
        'read',
        upTo,
      );
  }

  /** Marks at once on screen; the server's answer (and the `state` event every tab gets) confirms it. */
  async #mark(
    notifications: NotificationJson[],
    action: 'read' | 'archived',
    upToSeq?: number,
  ): Promise<void> {
    const client = this.#client;
    if (!client) return;
    const field = action === 'read' ? 'readAt' : 'archivedAt';
    const before = notifications.map((n) => n[field]);
    const at = new Date().toISOString();
    const ids = notifications.map((n) => n.id ?? '');
    for (const n of notifications) {
      n[field] = at;
      this.#sync(n);
    }
    this.#renderNote();
    try {
      const result = upToSeq ? await client.markUpTo(upToSeq, action) : await client.mark(ids, action);
      // While live, the stream's own count follows (and is ordered with new notifications); else take this one.
      if (this.#state !== 'live') this.#setCount(result.unreadCount);
      this.#emit(action === 'read' ? 'herald-read' : 'herald-archive', { ids });
    } catch (error) {
      notifications.forEach((n, i) => {
        n[field] = before[i];
        this.#sync(n);
      });
      this.#renderNote();
      this.#fail(action, error);
    }
  }

  #loadOlder(): void {
    const client = this.#client;
    if (this.#loading || !this.#cursor || !client) return;
    const session = this.#session;
    this.#loading = true;
    this.#scroll.setAttribute('aria-busy', 'true');
    client.list({ limit: this.pageSize, cursor: this.#cursor }).then(
      (page) => {
        if (session !== this.#session) return;
        this.#loading = false;
        this.#scroll.removeAttribute('aria-busy');
        this.#addPage(page);
        // Observing again reports at once whether the button is still in view (then the next page loads).
        this.#observer?.unobserve(this.#more);
        this.#observer?.observe(this.#more);
      },
      (error: unknown) => {
        if (session !== this.#session) return;
        this.#loading = false; // no automatic retry: the button stays for the user to press
        this.#scroll.removeAttribute('aria-busy');
        this.#fail('load', error);
      },
    );
  }

  async #showPreferences(show: boolean): Promise<void> {
    this.#prefs.hidden = !show;
    this.#scroll.hidden = show;
    this.#markAll.hidden = show;
    this.#prefsButton.setAttribute('aria-pressed', String(show));
    this.#heading.textContent = show ? 'Preferences' : 'Notifications';
    const client = this.#client;
    if (!show || !client) return;
    const session = this.#session;
    this.#prefs.replaceChildren(h('p', { class: 'note' }, 'Loading…'));
    try {
      const preferences = await client.preferences();
      if (session === this.#session) this.#renderPreferences(preferences);
    } catch (error) {
      if (session === this.#session) this.#fail('preferences', error);
    }
  }

  #renderPreferences(preferences: PreferencesJson): void {
    const status = h('p', { class: 'note', role: 'status' });
    const channelName = (channel: ChannelJson | undefined) =>
      CHANNELS.find(([c]) => c === channel)?.[1] ?? channel ?? '';
    const channels = h('fieldset', {}, h('legend', {}, 'Channels'));
    for (const [channel, label] of CHANNELS) {
      const enabled = preferences.channels?.find((c) => c.channel === channel)?.enabled ?? true;
      channels.append(
        this.#switch(label, enabled, status, (on) => ({ channels: [{ channel, enabled: on }] })),
      );
    }
    const sections = [channels];
    if (preferences.types?.length) {
      const types = h('fieldset', {}, h('legend', {}, 'Notification types'));
      for (const { type, channel, enabled } of preferences.types) {
        const label = `${type} · ${channelName(channel)}`;
        types.append(
          this.#switch(label, enabled ?? true, status, (on) => ({ types: [{ type, channel, enabled: on }] })),
        );
      }
      sections.push(types);
    }
    this.#prefs.replaceChildren(...sections, status);
  }

  #switch(
    label: string,
    enabled: boolean,
    status: HTMLElement,
    update: (on: boolean) => PreferencesUpdate,
  ): HTMLLabelElement {
    const input = h('input', { type: 'checkbox', role: 'switch' });
    input.checked = enabled;
    input.addEventListener('change', async () => {
      const client = this.#client;
      if (!client) return;
      status.textContent = 'Saving…';
      try {
        const preferences = await client.updatePreferences(update(input.checked));
        status.textContent = 'Saved.';
        this.#emit('herald-preferences', { preferences });
      } catch (error) {
        input.checked = !input.checked;
        status.textContent = '';
        this.#fail('preferences', error);
      }
    });
    return h('label', {}, input, label);
  }
}

if (!customElements.get('herald-inbox')) customElements.define('herald-inbox', HeraldInboxElement);
