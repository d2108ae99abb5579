import { randomUUID } from 'node:crypto';
import { invalidArgument } from './errors.js';

// UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version 7, a 12-bit counter (rand_a, "method 1": seeded at
// random each millisecond, incremented within it), the variant, and 62 random bits. Ids are time-ordered,
// so new rows land at the end of the primary-key index, and strictly increasing within this process, so
// rows created in one call sort in creation order. The random bits come from crypto.randomUUID(), which
// draws from Node's batched entropy cache instead of making a system call per id.

let lastMs = 0;
let counter = 0;

export function newId(): string {
  let ms = Date.now();
  if (ms > lastMs) {
    lastMs = ms;
    counter = Math.floor(Math.random() * 0x800); // leaves room to count up within the millisecond
  } else {
    ms = lastMs;
    counter++;
    if (counter > 0xfff) {
      lastMs = ++ms; // counter exhausted: borrow the next millisecond, still strictly increasing
      counter = 0;
    }
  }
  const random = randomUUID(); // xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx, V = variant 10xx
  const time = ms.toString(16).padStart(12, '0');
  const randA = counter.toString(16).padStart(3, '0');
  return `${time.slice(0, 8)}-${time.slice(8)}-7${randA}-${random.slice(19)}`;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}

/** An optional id field of a request: undefined when empty, else a UUID in lower case (else INVALID_ARGUMENT). */
export function optionalUuid(field: string, value: string, what: string): string | undefined {
  if (value === '') return undefined;
  if (!isUuid(value)) throw invalidArgument(field, `must be ${what} (a UUID)`);
  return value.toLowerCase();
}
