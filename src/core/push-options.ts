// Push presentation options of a notification (SendRequest.push), and the rules a valid one obeys. Kept with
// the notification and applied by every push provider in its own form.

export interface PushOptions {
  collapseKey?: string;
  sound?: string;
  badge?: number;
  imageUrl?: string;
  clickUrl?: string;
  threadId?: string;
  category?: string;
  dataOnly?: boolean;
}

const PRINTABLE = /^[\x21-\x7e]{1,64}$/;
const SOUND = /^[A-Za-z0-9._ -]{1,64}$/;
const CATEGORY = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_URL_CHARS = 2048;
const MAX_BADGE = 99_999;
/** Schemes a tap must never open: script, inline data, local files, or plain-text transport. */
const REFUSED_SCHEMES = new Set(['javascript:', 'data:', 'file:', 'vbscript:', 'blob:', 'http:', 'about:']);

type Field = keyof PushOptions;

/** The first problem, as [field, rule], or null when the options are valid. */
export function checkPushOptions(options: PushOptions): [Field, string] | null {
  const { collapseKey, sound, badge, imageUrl, clickUrl, threadId, category } = options;
  if (collapseKey !== undefined && !PRINTABLE.test(collapseKey)) {
    return ['collapseKey', 'must be 1-64 printable ASCII characters without spaces'];
  }
  if (sound !== undefined && !SOUND.test(sound)) {
    return ['sound', 'must be 1-64 letters, digits, ".", "_", "-" or spaces'];
  }
  if (badge !== undefined && (!Number.isInteger(badge) || badge < 0 || badge > MAX_BADGE)) {
    return ['badge', `must be 0..${MAX_BADGE}`];
  }
  if (imageUrl !== undefined && !isUrl(imageUrl, (u) => u.protocol === 'https:')) {
    return ['imageUrl', `must be an https URL of at most ${MAX_URL_CHARS} characters`];
  }
  if (clickUrl !== undefined && !isUrl(clickUrl, (u) => !REFUSED_SCHEMES.has(u.protocol))) {
    return [
      'clickUrl',
      `must be an https URL or an app deep link (myapp://...) of at most ${MAX_URL_CHARS} characters`,
    ];
  }
  if (threadId !== undefined && !PRINTABLE.test(threadId)) {
    return ['threadId', 'must be 1-64 printable ASCII characters without spaces'];
  }
  if (category !== undefined && !CATEGORY.test(category)) {
    return ['category', 'must be 1-64 letters, digits, ".", "_" or "-"'];
  }
  return null;
}

function isUrl(value: string, allowed: (url: URL) => boolean): boolean {
  if (value.length === 0 || value.length > MAX_URL_CHARS) return false;
  try {
    const url = new URL(value);
    return allowed(url) && (url.protocol !== 'https:' || url.hostname !== '');
  } catch {
    return false;
  }
}

/** Web Push's Topic: the collapse key when it is at most 32 URL-safe characters, else a digest of it. */
export function webPushTopic(collapseKey: string, digest: (text: string) => string): string {
  return /^[A-Za-z0-9_-]{1,32}$/.test(collapseKey) ? collapseKey : digest(collapseKey).slice(0, 32);
}
