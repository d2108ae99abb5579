// E-mail through Amazon SES with `@aws-sdk/client-ses`: the message is built once as MIME (nodemailer's
// composer, the same one the SMTP provider's transport uses, so both carry the same headers) and sent raw,
// with the configuration set and message tags (type, notification id). The SDK's own retries are off: the
// dispatcher's backoff and failover decide. Credentials: from the providers file, or the AWS default chain.
// Classification: a MessageId is sent (a 200 without one is not); "Maximum sending rate exceeded" and other
// throttling, 5xx and network errors are retried (failing over); "Daily message quota exceeded" holds the
// provider an hour (its circuit opens, deliveries go to the next provider); MessageRejected and an unverified
// sender are permanent for the message; refused credentials trip the circuit.
import { SESClient, SendRawEmailCommand } from '@aws-sdk/client-ses';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type { DeliveryTask, Outcome, ProviderAdapter } from '../../delivery/provider.js';
import { channelAdapter } from '../adapter.js';
import { classifyAwsError } from '../aws-errors.js';
import { withinBudget } from '../budget.js';
import { type EmailSender, mailOptions } from './message.js';

export interface SesAdapterOptions {
  name?: string;
  timeoutMs: number;
  region: string;
  /** Another endpoint (a VPC endpoint, or a test emulator). */
  endpoint?: string | undefined;
  /** Absent: the AWS default chain (environment, shared files, instance role). */
  credentials?:
    | { accessKeyId: string; secretAccessKey: string; sessionToken?: string | undefined }
    | undefined;
  configurationSet?: string | undefined;
  sender: EmailSender;
}

/** A daily quota frees up over a rolling day: the provider is tried again after this. */
const DAILY_QUOTA_HOLD_MS = 3_600_000;
const THROTTLING = new Set(['Throttling', 'ThrottlingException', 'TooManyRequestsException']);
/** The account or the sender refused as a whole (besides any service's refused credentials). */
const CREDENTIALS = new Set([
  'AccountSendingPausedException',
  'ConfigurationSetSendingPausedException',
  'MailFromDomainNotVerifiedException',
]);
const PERMANENT = new Set(['MessageRejected', 'ConfigurationSetDoesNotExist']);

export function createSesAdapter(options: SesAdapterOptions): ProviderAdapter {
  const name = options.name ?? 'ses';
  const client = new SESClient({
    region: options.region,
    maxAttempts: 1,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
  });

  async function send(task: DeliveryTask, signal: AbortSignal): Promise<Outcome> {
    const mail = mailOptions(task, options.sender);
    if (!mail || task.destination.channel !== 'email') {
      return { kind: 'failed', reason: 'SES delivery without an e-mail address and content' };
    }
    const raw = await new MailComposer(mail).compile().build();
    const attempt = client
      .send(
        new SendRawEmailCommand({
          RawMessage: { Data: raw },
          Destinations: [task.destination.address],
          ...(options.configurationSet ? { ConfigurationSetName: options.configurationSet } : {}),
          Tags: [
            { Name: 'type', Value: tagValue(task.type) },
            { Name: 'notification_id', Value: task.notificationId },
          ],
        }),
        // Cut at the budget too: a request left running could still send after the next provider did.
        { abortSignal: AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs)]) },
      )
      .then(
        (result): Outcome =>
          result.MessageId
            ? { kind: 'sent', providerMessageId: result.MessageId, statusCode: 200 }
            : { kind: 'retry', reason: 'SES answered without a MessageId', statusCode: 200 },
        classify,
      );
    return withinBudget(attempt, options.timeoutMs, signal);
  }

  return channelAdapter('email', {
    name,
    timeoutMs: options.timeoutMs,
    send,
    close: async () => client.destroy(),
  });
}

function classify(error: unknown): Outcome {
  return classifyAwsError(
    error,
    { label: 'SES', throttling: THROTTLING, credentials: CREDENTIALS },
    (e, said) => {
      if (THROTTLING.has(e.code) && /daily message quota/i.test(e.message)) {
        return { kind: 'retry', reason: said, holdProviderMs: DAILY_QUOTA_HOLD_MS };
      }
      // "Email address is not verified" names our sender (sandbox or an unverified identity), not the recipient.
      if (e.code === 'MessageRejected' && /not verified/i.test(e.message)) {
        return { kind: 'failed', reason: said, credentials: true };
      }
      if (PERMANENT.has(e.code)) return { kind: 'failed', reason: said };
      return undefined;
    },
  );
}

/** SES tag values: letters, digits, "_" and "-", at most 256 characters. */
function tagValue(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 256);
}
