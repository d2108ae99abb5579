// The rule for an e-mail sender (`from`, `reply_to`) wherever one is configured — the providers file, a
// type's routing rule: exactly one mailbox, an address or `Name <address>`, parsed the way nodemailer will
// write it. A list or a group would put several addresses into From (and make the first the envelope
// sender); control characters have no place in a header.
import addressparser from 'nodemailer/lib/addressparser/index.js';

export const SENDER_RULE = 'must be one address or "Name <address>" on one line';
const ADDRESS = /^[^\s@<>]+@[^\s@<>]+$/;

/** C0 and C1 controls, DEL, and the Unicode line and paragraph separators. */
function hasControl(value: string): boolean {
  for (const char of value) {
    const code = char.codePointAt(0)!;
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029) return true;
  }
  return false;
}

export function senderProblem(value: string): string | undefined {
  if (value.length > 320 || hasControl(value)) return SENDER_RULE;
  const parsed = addressparser(value);
  const only = parsed.length === 1 ? parsed[0] : undefined;
  if (!only || 'group' in only || !ADDRESS.test(only.address)) return SENDER_RULE;
  return undefined;
}
