// Validates and translates one SendRequest into a NewNotification. Every rule names the field as the
// client spells it (with a prefix such as `requests[3].` inside a batch); nothing is written before all
// items pass.
import type { JsonObject } from '@bufbuild/protobuf';
import type { Timestamp } from '@bufbuild/protobuf/wkt';
import type { SendRequest } from '../../gen/herald/v1/notification_service_pb.js';
import { Priority } from '../../gen/herald/v1/types_pb.js';
import type { ChannelName } from '../core/channels.js';
import { invalidArgument } from '../core/errors.js';
import { fingerprint } from '../core/fingerprint.js';
import { normalisePhone } from '../core/phone.js';
import { checkPushOptions, type PushOptions } from '../core/push-options.js';
import {
  checkEmail,
  checkId,
  checkLocale,
  checkTextLength,
  checkTimezone,
  findUnstorableText,
  limits,
} from '../core/rules.js';
import type { NewNotification, RecipientProfile } from '../store/index.js';
import { channelFromProto } from './convert.js';

function check(field: string, problem: string | undefined): void {
  if (problem) throw invalidArgument(field, problem);
}

export function timestampToDate(field: string, value: Timestamp): Date {
  const seconds = Number(value.seconds);
  if (!Number.isSafeInteger(seconds) || value.nanos < 0 || value.nanos > 999_999_999) {
    throw invalidArgument(field, 'must be a valid timestamp');
  }
  const date = new Date(seconds * 1000 + Math.floor(value.nanos / 1_000_000));
  if (Number.isNaN(date.getTime())) throw invalidArgument(field, 'must be a valid timestamp');
  return date;
}

function recipientProfile(prefix: string, req: SendRequest): RecipientProfile {
  const r = req.recipient;
  if (!r) return {};
  if (r.email !== undefined) check(`${prefix}recipient.email`, checkEmail(r.email));
  const phone = r.phone === undefined ? undefined : normalisePhone(r.phone);
  if (phone && 'problem' in phone) check(`${prefix}recipient.phone`, phone.problem);
  if (r.locale !== undefined) check(`${prefix}recipient.locale`, checkLocale(r.locale));
  if (r.timezone !== undefined) check(`${prefix}recipient.timezone`, checkTimezone(r.timezone));
  return {
    email: r.email?.toLowerCase(),
    phone: phone && 'number' in phone ? phone.number : undefined,
    locale: r.locale === undefined ? undefined : Intl.getCanonicalLocales(r.locale)[0],
    timezone: r.timezone,
  };
}

function channels(prefix: string, values: readonly number[]): ChannelName[] {
  const out: ChannelName[] = [];
  values.forEach((value, i) => {
    const channel = channelFromProto(value);
    if (!channel)
      throw invalidArgument(`${prefix}channels[${i}]`, 'must be IN_APP, PUSH, EMAIL, SMS or WEBHOOK');
    if (out.includes(channel)) throw invalidArgument(`${prefix}channels[${i}]`, 'names a channel twice');
    out.push(channel);
  });
  return out;
}

function priority(prefix: string, value: Priority): number {
  if (value === Priority.UNSPECIFIED) return Priority.NORMAL;
  if (!(value in Priority) || value < Priority.LOW || value > Priority.CRITICAL) {
    throw invalidArgument(`${prefix}priority`, 'must be LOW, NORMAL, HIGH or CRITICAL');
  }
  return value;
}

function data(prefix: string, value: JsonObject | undefined): Record<string, unknown> {
  if (!value) return {};
  // Depth first: it bounds the recursion of everything that walks the value after it.
  const unstorable = findUnstorableText(value, `${prefix}data`, limits.dataDepth);
  if (unstorable?.tooDeep) {
    throw invalidArgument(`${prefix}data`, `must be nested at most ${limits.dataDepth} levels deep`);
  }
  if (Buffer.byteLength(JSON.stringify(value)) > limits.dataBytes) {
    throw invalidArgument(`${prefix}data`, `must be at most ${limits.dataBytes} bytes as JSON`);
  }
  if (unstorable) throw invalidArgument(unstorable.field, unstorable.problem);
  return value;
}

/** snake_case, as the client spells the fields. */
const pushFieldNames: Record<keyof PushOptions, string> = {
  collapseKey: 'collapse_key',
  sound: 'sound',
  badge: 'badge',
  imageUrl: 'image_url',
  clickUrl: 'click_url',
  threadId: 'thread_id',
  category: 'category',
  dataOnly: 'data_only',
};

function pushOptions(prefix: string, req: SendRequest): PushOptions | null {
  const p = req.push;
  if (!p) return null;
  const options: PushOptions = {};
  if (p.collapseKey !== undefined) options.collapseKey = p.collapseKey;
  if (p.sound !== undefined) options.sound = p.sound;
  if (p.badge !== undefined) options.badge = p.badge;
  if (p.imageUrl !== undefined) options.imageUrl = p.imageUrl;
  if (p.clickUrl !== undefined) options.clickUrl = p.clickUrl;
  if (p.threadId !== undefined) options.threadId = p.threadId;
  if (p.category !== undefined) options.category = p.category;
  if (p.dataOnly) options.dataOnly = true;
  const problem = checkPushOptions(options);
  if (problem) throw invalidArgument(`${prefix}push.${pushFieldNames[problem[0]]}`, problem[1]);
  return Object.keys(options).length === 0 ? null : options;
}

function schedule(
  prefix: string,
  req: SendRequest,
  now: Date,
): { sendAt: Date | null; expiresAt: Date | null } {
  const horizon = now.getTime() + limits.scheduleHorizonMs;
  let sendAt: Date | null = null;
  if (req.sendAt) {
    sendAt = timestampToDate(`${prefix}send_at`, req.sendAt);
    if (sendAt.getTime() > horizon)
      throw invalidArgument(`${prefix}send_at`, 'must be within 366 days from now');
    if (sendAt.getTime() < now.getTime() - limits.sendAtPastToleranceMs) {
      throw invalidArgument(`${prefix}send_at`, 'must not be more than 24 hours in the past');
    }
  }
  let expiresAt: Date | null = null;
  if (req.expiresAt) {
    expiresAt = timestampToDate(`${prefix}expires_at`, req.expiresAt);
    const earliest = Math.max(now.getTime(), sendAt?.getTime() ?? 0);
    if (expiresAt.getTime() <= earliest) {
      throw invalidArgument(
        `${prefix}expires_at`,
        sendAt ? 'must be after send_at' : 'must be in the future',
      );
    }
    if (expiresAt.getTime() > horizon + limits.scheduleHorizonMs) {
      throw invalidArgument(`${prefix}expires_at`, 'must be within 732 days from now');
    }
  }
  return { sendAt, expiresAt };
}

/** `prefix` is '' for Send and `requests[i].` inside SendBatch. */
export function toNewNotification(req: SendRequest, prefix: string, now: Date): NewNotification {
  check(`${prefix}user_id`, checkId(req.userId));
  const recipient = recipientProfile(prefix, req);
  check(`${prefix}type`, checkId(req.type));
  const payload = data(prefix, req.data);
  if (req.title !== undefined) check(`${prefix}title`, checkTextLength(req.title, 1, limits.titleLength));
  if (req.body !== undefined) check(`${prefix}body`, checkTextLength(req.body, 0, limits.bodyLength));
  const chosen = channels(prefix, req.channels);
  const prio = priority(prefix, req.priority);
  if (req.idempotencyKey !== '') check(`${prefix}idempotency_key`, checkId(req.idempotencyKey));
  const { sendAt, expiresAt } = schedule(prefix, req, now);
  const push = pushOptions(prefix, req);

  const item = {
    userId: req.userId,
    recipient,
    type: req.type,
    priority: prio,
    data: payload,
    title: req.title ?? null,
    body: req.body ?? null,
    channels: chosen,
    idempotencyKey: req.idempotencyKey === '' ? null : req.idempotencyKey,
    sendAt,
    expiresAt,
    // Absent, not null, in the digest: a Send without push options digests as it did before they existed.
    push: push ?? undefined,
  };
  // The digest is only needed to tell a retry from a different request reusing the key.
  return {
    ...item,
    push,
    acceptedAt: now,
    requestHash: item.idempotencyKey === null ? null : fingerprint(item),
  };
}
