// An Amazon SNS stand-in for SMS sent straight to a phone number (`Publish` with `PhoneNumber`), for tests:
// plain HTTP on 127.0.0.1 reached by `@aws-sdk/client-sns` through its `endpoint` option, on the Query-API
// plumbing of aws-query.ts (SigV4 checked with signing name `sns`: wrong secret → 403 SignatureDoesNotMatch,
// unknown key → 403 InvalidClientTokenId). Not to be confused with sns.ts, which plays SNS *posting
// notifications* to an HTTPS subscriber.
//
// Publish is validated as SNS does it (an empty Message, then a PhoneNumber not in E.164, are 400
// InvalidParameter), then answered from per-number scripts (success, an empty 200, an SNS error document, a
// dropped connection; optionally late), else with success and a fresh MessageId. A number put on the opt-out
// list is still accepted, as SNS accepts it (Publish has no opted-out error; the text is dropped later and
// only the delivery-status log says "Phone number is opted out"): its record says `optedOut`.
// CheckIfPhoneNumberIsOptedOut answers from that list. Every request is recorded: action, form fields, the
// attributes, signature verdict, status, code and the answer's body.
import { randomUUID } from 'node:crypto';
import { arrivals } from './arrivals.js';
import {
  type AwsAccount,
  type AwsQueryError,
  checkSignature,
  errorDocument,
  numbered,
  startQueryServer,
} from './aws-query.js';

export type SnsSmsEmulatorOptions = AwsAccount;

export type SnsSmsReply = (
  | { kind: 'ok' }
  /** 200 with an empty body: no MessageId. */
  | { kind: 'empty' }
  | ({ kind: 'error' } & AwsQueryError)
  /** The connection is destroyed without an answer: the SDK sees a network error. */
  | { kind: 'drop' }
) & { delayMs?: number };

/** One of Publish's MessageAttributes: `Value.StringValue`, or `Value.BinaryValue` as sent (base64). */
export interface SnsMessageAttribute {
  dataType: string;
  value: string;
}

export interface SnsSmsRequest {
  /** The form's Action ('' when absent). */
  action: string;
  /** Every form field as sent (Action, Version, PhoneNumber, Message, MessageAttributes.entry.N.…). */
  fields: Record<string, string>;
  /** PhoneNumber (Publish) or phoneNumber (CheckIfPhoneNumberIsOptedOut). */
  phoneNumber: string | null;
  message: string | null;
  /** MessageAttributes by name, e.g. 'AWS.SNS.SMS.SMSType' → { dataType: 'String', value: 'Transactional' }. */
  attributes: Record<string, SnsMessageAttribute>;
  /** From the Authorization header (null without one). */
  accessKeyId: string | null;
  signatureValid: boolean;
  /** The number was on the opt-out list on arrival (a Publish to it is accepted but never texted). */
  optedOut: boolean;
  /** The answer (given after a scripted delay: recorded on arrival); null status when dropped. */
  status: number | null;
  code: string | null;
  messageId: string | null;
  /** The answer's body: XML, '' for an empty 200, null when dropped. */
  answer: string | null;
  receivedAt: number;
}

export interface SnsSmsEmulator {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly received: SnsSmsRequest[];
  /**
   * Replies for a phone number (exactly as sent), consumed in order by correctly signed, valid Publish
   * requests; then the default (success) applies.
   */
  script(phoneNumber: string, replies: SnsSmsReply[]): void;
  setDefault(reply: SnsSmsReply): void;
  /** Puts a number on the account's opt-out list, as a recipient replying STOP does. */
  optOut(phoneNumber: string): void;
  optIn(phoneNumber: string): void;
  /** Resolves once the predicate holds for what has arrived; rejects after timeoutMs. */
  waitFor(predicate: (received: readonly SnsSmsRequest[]) => boolean, timeoutMs: number): Promise<void>;
  /** Drops every connection (pending delays included) and stops listening. */
  close(): Promise<void>;
}

const XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/';
/** E.164: a plus, a non-zero digit, at most 15 digits in all. */
const E164 = /^\+[1-9]\d{1,14}$/;

export async function startSnsSmsEmulator(options: SnsSmsEmulatorOptions): Promise<SnsSmsEmulator> {
  const log = arrivals<SnsSmsRequest>('SNS SMS emulator');
  const scripts = new Map<string, SnsSmsReply[]>();
  const optedOut = new Set<string>();
  let defaultReply: SnsSmsReply = { kind: 'ok' };

  const server = await startQueryServer('SNS SMS emulator', async (req, body, res) => {
    const receivedAt = Date.now();
    const form = new URLSearchParams(body.toString('utf8'));
    const action = form.get('Action') ?? '';
    const auth = checkSignature(req, body, options, 'sns');
    const phoneNumber = form.get(action === 'CheckIfPhoneNumberIsOptedOut' ? 'phoneNumber' : 'PhoneNumber');
    const isOptedOut = phoneNumber !== null && optedOut.has(phoneNumber);

    const refusal = auth.refusal ?? invalidRequest(action, form);
    const reply: SnsSmsReply = refusal
      ? { kind: 'error', ...refusal }
      : action === 'Publish'
        ? (scripts.get(phoneNumber ?? '')?.shift() ?? defaultReply)
        : { kind: 'ok' };
    const requestId = randomUUID();
    const messageId = action === 'Publish' && reply.kind === 'ok' ? randomUUID() : null;
    const result =
      action === 'Publish' ? `<MessageId>${messageId}</MessageId>` : `<isOptedOut>${isOptedOut}</isOptedOut>`;
    const answer = answerOf(action, reply, result, requestId);
    log.record({
      action,
      fields: Object.fromEntries(form),
      phoneNumber,
      message: form.get('Message'),
      attributes: messageAttributes(form),
      accessKeyId: auth.accessKeyId,
      signatureValid: auth.refusal === null,
      optedOut: isOptedOut,
      status: reply.kind === 'drop' ? null : reply.kind === 'error' ? reply.status : 200,
      code: reply.kind === 'error' ? reply.code : null,
      messageId,
      answer,
      receivedAt,
    });

    const send = () => {
      if (answer === null) return void res.destroy();
      const headers = { 'content-type': 'text/xml', 'x-amzn-requestid': requestId };
      res.writeHead(reply.kind === 'error' ? reply.status : 200, headers).end(answer);
    };
    if (!reply.delayMs) return send();
    server.later(reply.delayMs, send);
  });

  return {
    url: server.url,
    received: log.received,
    script(phoneNumber, replies) {
      scripts.set(phoneNumber, [...replies]);
    },
    setDefault(reply) {
      defaultReply = reply;
    },
    optOut(phoneNumber) {
      optedOut.add(phoneNumber);
    },
    optIn(phoneNumber) {
      optedOut.delete(phoneNumber);
    },
    waitFor: log.waitFor,
    close: server.close,
  };
}

/**
 * SNS's own checks, in its order: an empty Message, a Publish naming no destination, a PhoneNumber that is not
 * E.164. The words are AWS's as quoted by clients and SDK tests ("… is not valid to publish to", "TopicArn or
 * TargetArn Reason: no value for required parameter"), LocalStack's ("Empty message") and moto's ("input
 * incorrectly formatted"). Topics and platform endpoints are not served here.
 */
function invalidRequest(action: string, form: URLSearchParams): AwsQueryError | null {
  const invalid = (message: string): AwsQueryError => ({ status: 400, code: 'InvalidParameter', message });
  if (action === 'CheckIfPhoneNumberIsOptedOut') {
    const phoneNumber = form.get('phoneNumber') ?? '';
    return E164.test(phoneNumber)
      ? null
      : invalid('Invalid parameter: PhoneNumber Reason: input incorrectly formatted');
  }
  if (action !== 'Publish') {
    return {
      status: 400,
      code: 'InvalidAction',
      message: `Could not find operation ${action} for version ${form.get('Version') ?? ''}`,
    };
  }
  const phoneNumber = form.get('PhoneNumber');
  if (!form.get('Message')) return invalid('Invalid parameter: Empty message');
  if (phoneNumber === null) {
    return invalid('Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter');
  }
  if (!E164.test(phoneNumber)) {
    return invalid(`Invalid parameter: PhoneNumber Reason: ${phoneNumber} is not valid to publish to`);
  }
  return null;
}

/** The body to send: the action's result document, '' for an empty 200, null for a drop. */
function answerOf(action: string, reply: SnsSmsReply, result: string, requestId: string): string | null {
  switch (reply.kind) {
    case 'drop':
      return null;
    case 'empty':
      return '';
    case 'error':
      return errorDocument(XMLNS, reply, requestId);
    case 'ok':
      return (
        `<${action}Response xmlns="${XMLNS}"><${action}Result>${result}</${action}Result>` +
        `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`
      );
  }
}

/** `MessageAttributes.entry.N.Name` with its `Value.DataType` and `Value.StringValue` (or BinaryValue). */
function messageAttributes(form: URLSearchParams): Record<string, SnsMessageAttribute> {
  const names = numbered(form, 'MessageAttributes.entry', '.Name');
  return Object.fromEntries(
    names.map((name, i) => {
      const value = (field: string) => form.get(`MessageAttributes.entry.${i + 1}.Value.${field}`);
      const attribute = {
        dataType: value('DataType') ?? '',
        value: value('StringValue') ?? value('BinaryValue') ?? '',
      };
      return [name, attribute];
    }),
  );
}
