// Building the console's DOM. Everything the API answers is untrusted (titles, errors, provider replies are
// whatever a caller or a receiver put there), so it reaches the page as text only: textContent and attribute
// values, never markup. The page's Trusted Types policy refuses any HTML string anyway.

export const CHANNELS = ['IN_APP', 'PUSH', 'EMAIL', 'SMS', 'WEBHOOK'];
export const STATUSES = [
  'QUEUED',
  'SENDING',
  'SENT',
  'DELIVERED',
  'FAILED',
  'EXPIRED',
  'SKIPPED',
  'CANCELLED',
];

/** `CHANNEL_EMAIL` -> `email`; an unset enum (left out of the JSON) is `unspecified`. */
export const channelName = (value) => (value ?? 'CHANNEL_UNSPECIFIED').replace(/^CHANNEL_/, '').toLowerCase();
export const statusName = (value) =>
  (value ?? 'DELIVERY_STATUS_UNSPECIFIED').replace(/^DELIVERY_STATUS_/, '').toLowerCase();

/**
 * An element: `props` are properties (`className`, `textContent`, `href`, `type`, `disabled`, ...), except
 * `dataset` (an object) and names with a dash (`aria-label`), which are set as attributes.
 */
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.includes('-')) node.setAttribute(name, String(value));
    else node[name] = value;
  }
  node.append(...children.filter((c) => c !== undefined && c !== null && c !== false));
  return node;
}

export const byId = (id) => document.getElementById(id);

/** Replaces a node's children, leaving out the parts that are not there (undefined, null, false). */
export function show(node, parts) {
  node.replaceChildren(...parts.filter((part) => part !== undefined && part !== null && part !== false));
}

/** A <time> showing a Timestamp (RFC 3339 in JSON) in the browser's time zone; empty when unset. */
export function time(value) {
  if (!value) return el('span', { className: 'muted', textContent: '—' });
  return el('time', { dateTime: value, textContent: new Date(value).toLocaleString() });
}

/** A status chip: `sent`, `failed`, ... coloured by its class. */
export function chip(text, kind = text) {
  return el('span', { className: `chip chip-${kind}`, textContent: text });
}

/** A table row of cells; a string or number becomes a text cell. */
export function row(cells, props = {}) {
  return el(
    'tr',
    props,
    cells.map((cell) =>
      cell instanceof Node
        ? el('td', {}, [cell])
        : el('td', { textContent: cell === undefined ? '' : String(cell) }),
    ),
  );
}

/** A definition list of [term, value, data-fact] triples; a pair without a value is left out. */
export function facts(pairs, className = 'facts') {
  const list = el('dl', { className });
  for (const [term, value, key] of pairs) {
    if (value === undefined || value === null || value === '' || value === false) continue;
    const dd = value instanceof Node ? el('dd', {}, [value]) : el('dd', { textContent: String(value) });
    if (key) dd.dataset.fact = key;
    list.append(el('dt', { textContent: term }), dd);
  }
  return list;
}

/** Fills a <select> with its options: [value, label] pairs. */
export function fillSelect(select, options) {
  select.replaceChildren(...options.map(([value, label]) => el('option', { value, textContent: label })));
}

/** `datetime-local` input value -> RFC 3339 (the browser's time zone); undefined when empty. */
export function instantOf(input) {
  if (!input.value) return undefined;
  const date = new Date(input.value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/**
 * What a view is showing: async answers are dropped once the view has moved on (left, re-entered, or asked a
 * different question). `renew()` starts over; both answer a check that stays true until the next renewal.
 */
export function viewSession() {
  let generation = 0;
  return {
    renew() {
      const mine = ++generation;
      return () => mine === generation;
    },
    current() {
      const mine = generation;
      return () => mine === generation;
    },
  };
}
