// Phone numbers as Herald keeps them: E.164 (`+4915112345678`), so the same number always matches — on a
// recipient, in the suppression list, in a provider's callback. `libphonenumber-js` (Google's libphonenumber
// metadata, the full set) parses what people type in international form (`+49 (0)151 1234-5678`), checks the
// number is a real one for its country and formats it. Numbers without a country code are refused rather
// than guessed.
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';

const PROBLEM = 'must be a valid phone number in international form, such as +4915112345678';
/** Longer than any number written with spaces and punctuation: not worth parsing. */
const MAX_INPUT = 40;

const E164 = /^\+[1-9]\d{1,14}$/;

/**
 * A number a provider reports (Twilio's From and To): normalised as ours are, but taken as it is when it is
 * E.164 though the bundled metadata does not know its range yet: an opt-out must never be lost to that.
 */
export function providerNumber(value: string): string | null {
  const phone = normalisePhone(value);
  if ('number' in phone) return phone.number;
  return E164.test(value) ? value : null;
}

/** The number in E.164, or a problem for the caller to name its field with. */
export function normalisePhone(value: string): { number: string } | { problem: string } {
  if (value.length > MAX_INPUT || !value.trimStart().startsWith('+')) return { problem: PROBLEM };
  const parsed = parsePhoneNumberFromString(value);
  if (!parsed?.isValid()) return { problem: PROBLEM };
  return { number: parsed.number };
}
