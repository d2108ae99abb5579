// How a delivery's destination is shown: enough to tell destinations apart, never the whole address. API
// answers and the attempt log carry only these forms.
import type { ChannelName } from './channels.js';

/** `b***@example.com`: the first character of the local part and the whole domain. */
export function maskEmail(address: string): string {
  const at = address.lastIndexOf('@');
  if (at <= 0) return '***';
  return `${address.slice(0, 1)}***${address.slice(at)}`;
}

/** `+49*******678`: the country prefix (first three characters) and the last three digits. */
export function maskPhone(number: string): string {
  if (number.length <= 6) return '*'.repeat(number.length);
  return `${number.slice(0, 3)}${'*'.repeat(number.length - 6)}${number.slice(-3)}`;
}

/** Every E.164 number in a provider's message masked, so reasons and attempt logs never hold one whole. */
export function maskNumbersIn(text: string): string {
  return text.replace(/\+[1-9]\d{6,14}/g, (number) => maskPhone(number));
}

/** A push token (or Web Push endpoint) by its last 8 characters. */
export function maskToken(token: string): string {
  return `…${token.slice(-8)}`;
}

/**
 * A delivery's destination as shown: `value` is the e-mail address, the number, the push token or the
 * webhook endpoint's id; null when the delivery has none (in-app, or skipped before one was found).
 */
export function maskDestination(channel: ChannelName, value: string | null): string {
  if (value === null || value === '') return '';
  switch (channel) {
    case 'email':
      return maskEmail(value);
    case 'sms':
      return maskPhone(value);
    case 'push':
      return maskToken(value);
    case 'webhook':
      return `endpoint ${value}`;
    case 'in_app':
      return '';
  }
}
