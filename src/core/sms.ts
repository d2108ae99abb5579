// SMS encoding and segmentation, as carriers count them. A message whose every character is in the GSM 03.38
// alphabet (basic set, or the extension set at two septets each) is sent as GSM-7: 160 septets in one
// segment, 153 per segment when concatenated. Anything else is UCS-2 for the whole message: 70 UTF-16 code
// units in one segment, 67 per segment when concatenated, a character outside the BMP (most emoji) taking
// two. A concatenated message never splits a character across segments (an extension character's escape
// and its code, or a surrogate pair), so a segment may hold one unit less than its size.

const GSM_BASIC =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM_EXTENSION = '\f^{}\\[~]|€';

const basic = new Set(GSM_BASIC);
const extension = new Set(GSM_EXTENSION);

export type SmsEncoding = 'GSM-7' | 'UCS-2';

export interface SmsShape {
  encoding: SmsEncoding;
  /** Septets (GSM-7) or UTF-16 code units (UCS-2). */
  units: number;
  segments: number;
}

const LIMITS = {
  'GSM-7': { single: 160, perPart: 153 },
  'UCS-2': { single: 70, perPart: 67 },
} as const;

/** The most segments a message may have (Twilio refuses more than 1,600 characters: about ten). */
export const MAX_SMS_SEGMENTS = 10;

export function smsShape(text: string): SmsShape {
  const encoding = isGsm7(text) ? 'GSM-7' : 'UCS-2';
  const sizes: number[] = [];
  for (const char of text) {
    sizes.push(encoding === 'GSM-7' ? (extension.has(char) ? 2 : 1) : char.length);
  }
  const units = sizes.reduce((sum, n) => sum + n, 0);
  const { single, perPart } = LIMITS[encoding];
  if (units <= single) return { encoding, units, segments: 1 };
  let segments = 1;
  let used = 0;
  for (const size of sizes) {
    if (used + size > perPart) {
      segments += 1;
      used = 0;
    }
    used += size;
  }
  return { encoding, units, segments };
}

function isGsm7(text: string): boolean {
  for (const char of text) if (!basic.has(char) && !extension.has(char)) return false;
  return true;
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * The text as sent when it may take at most `maxSegments`: unchanged when it fits, else cut at a grapheme
 * boundary (never inside a surrogate pair, a combining sequence or an emoji sequence) with an ellipsis —
 * "..." when the rest is GSM-7 (the single-character ellipsis would turn the message into UCS-2), "…"
 * otherwise. Cutting can drop the characters that needed UCS-2, so the longest prefix is searched for by its
 * own shape.
 */
export function fitSms(text: string, maxSegments: number): { text: string; truncated: boolean } {
  if (smsShape(text).segments <= maxSegments) return { text, truncated: false };
  const cut = longestFitting(
    text,
    [...graphemes.segment(text)].map((g) => g.index + g.segment.length),
    maxSegments,
  );
  // Not even the first grapheme fits (a character under hundreds of combining marks): code points, then.
  if (cut.trimEnd() !== '') return { text: withEllipsis(cut), truncated: true };
  const ends: number[] = [];
  let end = 0;
  for (const char of text) {
    end += char.length;
    ends.push(end);
  }
  return { text: withEllipsis(longestFitting(text, ends, maxSegments)), truncated: true };
}

/** The longest prefix of `text` ending at one of `ends` that fits with its ellipsis (maybe empty). */
function longestFitting(text: string, ends: readonly number[], maxSegments: number): string {
  const prefix = (count: number) => text.slice(0, count === 0 ? 0 : ends[count - 1]).trimEnd();
  // Segments only grow with the prefix, so the longest one that fits is found by bisection.
  let low = 0;
  let high = ends.length - 1;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (smsShape(withEllipsis(prefix(mid))).segments <= maxSegments) low = mid;
    else high = mid - 1;
  }
  return prefix(low);
}

function withEllipsis(prefix: string): string {
  return `${prefix.trimEnd()}${isGsm7(prefix) ? '...' : '…'}`;
}
