// SMS encoding and segmentation, as carriers count them. A message whose every character is in the GSM 03.38
// alphabet (basic set, or the extension set at two septets each) is sent as GSM-7: 160 septets in one
// segment, 153 per segment when concatenated. Anything else is UCS-2: 70 UTF-16 code units in one segment,
// 67 per segment when concatenated.

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

export function smsShape(text: string): SmsShape {
  let septets = 0;
  for (const char of text) {
    if (basic.has(char)) septets += 1;
    else if (extension.has(char)) septets += 2;
    else return shape('UCS-2', text.length, 70, 67);
  }
  return shape('GSM-7', septets, 160, 153);
}

function shape(encoding: SmsEncoding, units: number, single: number, perPart: number): SmsShape {
  return { encoding, units, segments: units === 0 ? 1 : units <= single ? 1 : Math.ceil(units / perPart) };
}
