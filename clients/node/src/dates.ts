// Dates in and out: the client takes a `Date` wherever a request has a google.protobuf.Timestamp field and
// hands back a `Date` wherever a response has one, at any depth (nested messages, repeated fields, maps and
// oneofs). Nothing is written per message: the types below map every Timestamp in a generated message type,
// and the two functions walk the message descriptors (protobuf-es reflection), so a field added to the
// protos is converted without a change here.
//
// A response keeps its `$typeName`, so it can still be told apart by type; where it holds a Date it is no
// longer a protobuf message, so it is not for toBinary() or toJson() (use the generated client for that).
import {
  type DescField,
  type DescMessage,
  isMessage,
  type JsonValue,
  type Message,
  type MessageInitShape,
  type MessageShape,
} from '@bufbuild/protobuf';
import { type Timestamp, TimestampSchema, timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';

/** T as the client returns it: every Timestamp in it is a Date. */
export type DateShape<T> = T extends Timestamp
  ? Date
  : T extends Message
    ? { [K in keyof T]: K extends '$typeName' | '$unknown' ? T[K] : DateShape<T[K]> }
    : T extends Uint8Array | JsonValue
      ? T
      : T extends readonly (infer E)[]
        ? DateShape<E>[]
        : T extends { case: infer C extends string; value: infer V }
          ? { case: C; value: DateShape<V> }
          : T extends object
            ? { [K in keyof T]: DateShape<T[K]> }
            : T;

/** What the client takes for a message of type T: the message itself, or an object with any of its fields (as
 * create() takes), where a Date (or a Timestamp) may stand for every Timestamp. */
export type DateInit<T> = T extends Timestamp
  ? Date | MessageInitShape<typeof TimestampSchema>
  : T extends Message
    ? T | { [K in keyof T as K extends '$typeName' | '$unknown' ? never : K]?: DateInit<T[K]> }
    : T extends Uint8Array | JsonValue
      ? T
      : T extends readonly (infer E)[]
        ? readonly DateInit<E>[]
        : T extends { case: infer C extends string; value: infer V }
          ? { case: C; value: DateInit<V> }
          : T extends object
            ? { [K in keyof T]: DateInit<T[K]> }
            : T;

type Plain = Record<string, unknown>;

function isPlain(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

const holdsTimestamp = new Map<DescMessage, boolean>();

/** Whether a message of this type can hold a Timestamp anywhere; the walks skip every other field. `path` holds
 * the types being looked at, so a recursive type ends the search there; only complete answers are kept. */
function canHoldTimestamp(desc: DescMessage, path = new Set<DescMessage>()): boolean {
  const known = holdsTimestamp.get(desc);
  if (known !== undefined) return known;
  if (desc.typeName === TimestampSchema.typeName) return true;
  if (path.has(desc)) return false;
  path.add(desc);
  const answer = desc.fields.some((field) => {
    const message = messageOf(field);
    return message !== undefined && canHoldTimestamp(message, path);
  });
  path.delete(desc);
  if (path.size === 0) holdsTimestamp.set(desc, answer);
  return answer;
}

function messageOf(field: DescField): DescMessage | undefined {
  switch (field.fieldKind) {
    case 'message':
      return field.message;
    case 'list':
      return field.listKind === 'message' ? field.message : undefined;
    case 'map':
      return field.mapKind === 'message' ? field.message : undefined;
    default:
      return undefined;
  }
}

type Convert = (desc: DescMessage, value: unknown, path: string) => unknown;

/** A copy of `message` with `convert` applied to every value of a field that can hold a Timestamp. */
function mapTimestampFields(desc: DescMessage, message: Plain, path: string, convert: Convert): Plain {
  let copy: Plain | null = null;
  const set = (key: string, value: unknown) => {
    copy ??= { ...message };
    copy[key] = value;
  };
  for (const member of desc.members) {
    const current = message[member.localName];
    if (current === undefined || current === null) continue;
    if (member.kind === 'oneof') {
      if (!isPlain(current)) continue;
      const field = member.fields.find((f) => f.localName === current.case);
      const inner = field && messageOf(field);
      if (field && inner && canHoldTimestamp(inner)) {
        set(member.localName, { ...current, value: convert(inner, current.value, `${path}${field.name}`) });
      }
      continue;
    }
    const inner = messageOf(member);
    if (!inner || !canHoldTimestamp(inner)) continue;
    const at = `${path}${member.name}`;
    if (member.fieldKind === 'list' && Array.isArray(current)) {
      set(
        member.localName,
        current.map((item, i) => convert(inner, item, `${at}[${i}]`)),
      );
    } else if (member.fieldKind === 'map' && isPlain(current)) {
      set(
        member.localName,
        Object.fromEntries(Object.entries(current).map(([k, v]) => [k, convert(inner, v, `${at}[${k}]`)])),
      );
    } else {
      set(member.localName, convert(inner, current, at));
    }
  }
  return copy ?? message;
}

function timestampsIn(desc: DescMessage, value: unknown, path: string): unknown {
  if (desc.typeName === TimestampSchema.typeName) {
    if (!(value instanceof Date)) return value;
    if (Number.isNaN(value.getTime())) {
      throw new ConnectError(`${path}: must be a valid Date`, Code.InvalidArgument);
    }
    return timestampFromDate(value);
  }
  return isPlain(value) ? mapTimestampFields(desc, value, `${path}.`, timestampsIn) : value;
}

function datesOut(desc: DescMessage, value: unknown): unknown {
  if (desc.typeName === TimestampSchema.typeName) {
    return isMessage(value, TimestampSchema) ? timestampDate(value) : value;
  }
  return isPlain(value) ? mapTimestampFields(desc, value, '', (inner, v) => datesOut(inner, v)) : value;
}

/** The request as the generated client takes it: each Date turned into a Timestamp. An invalid Date is
 * INVALID_ARGUMENT naming the field (`send_at: must be a valid Date`), before anything is sent. */
export function withTimestamps<Desc extends DescMessage>(
  desc: Desc,
  request: DateInit<MessageShape<Desc>>,
): MessageInitShape<Desc> {
  const init: Plain = isPlain(request) ? request : {};
  // The walk replaces exactly the values DateInit widened to Date: what is left is the init type.
  return mapTimestampFields(desc, init, '', timestampsIn) as MessageInitShape<Desc>;
}

/** The response as the client returns it: each Timestamp turned into a Date. */
export function withDates<Desc extends DescMessage>(
  desc: Desc,
  response: MessageShape<Desc>,
): DateShape<MessageShape<Desc>> {
  // The walk replaces exactly the values DateShape maps to Date.
  return datesOut(desc, response) as DateShape<MessageShape<Desc>>;
}
