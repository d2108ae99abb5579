// SMS through Amazon SNS (`Publish` to a phone number, `@aws-sdk/client-sns`): the fallback provider of
// another company than Twilio, with the AWS credentials style SES uses (the providers file, or the default
// chain). Transactional by default; a sender ID or origination number when configured. The SDK's own retries
// are off: the dispatcher's backoff and failover decide.
//
// SNS accepts a Publish to a number that opted out of the account's SMS and drops it later; with
// `check_opt_out` the adapter asks CheckIfPhoneNumberIsOptedOut first and reports such a number gone (it is
// suppressed). Classification: a MessageId is sent (a 200 without one is not); throttling, 5xx and network
// errors are retried (failing over); InvalidParameter about the PhoneNumber is invalid_destination; refused
// credentials and authorization trip the circuit; other 4xx are permanent for the message.
import {
  CheckIfPhoneNumberIsOptedOutCommand,
  type MessageAttributeValue,
  PublishCommand,
  SNSClient,
} from '@aws-sdk/client-sns';
import type { DeliveryTask, Outcome, ProviderAdapter } from '../../delivery/provider.js';
import { channelAdapter } from '../adapter.js';
import { classifyAwsError } from '../aws-errors.js';
import { withinBudget } from '../budget.js';
import { estimatedCost, type SmsPricing } from './pricing.js';

export interface SnsSmsAdapterOptions {
  name?: string;
  timeoutMs: number;
  region: string;
  /** Another endpoint (a VPC endpoint, or a test emulator). */
  endpoint?: string | undefined;
  /** Absent: the AWS default chain (environment, shared files, instance role). */
  credentials?:
    | { accessKeyId: string; secretAccessKey: string; sessionToken?: string | undefined }
    | undefined;
  smsType: 'Transactional' | 'Promotional';
  senderId?: string | undefined;
  originationNumber?: string | undefined;
  checkOptOut: boolean;
  pricing?: SmsPricing | undefined;
}

const THROTTLING = new Set([
  'Throttling',
  'ThrottledException',
  'KMSThrottlingException',
  'TooManyRequestsException',
]);
/** Authorization and the topic's encryption key refused (besides any service's refused credentials). */
const CREDENTIALS = new Set([
  'AuthorizationErrorException',
  'KMSAccessDeniedException',
  'KMSDisabledException',
  'KMSNotFoundException',
  'InvalidSecurityException',
]);

export function createSnsSmsAdapter(options: SnsSmsAdapterOptions): ProviderAdapter {
  const name = options.name ?? 'sns';
  const client = new SNSClient({
    region: options.region,
    maxAttempts: 1,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
  });
  const attributes: Record<string, MessageAttributeValue> = {
    'AWS.SNS.SMS.SMSType': { DataType: 'String', StringValue: options.smsType },
    ...(options.senderId
      ? { 'AWS.SNS.SMS.SenderID': { DataType: 'String', StringValue: options.senderId } }
      : {}),
    ...(options.originationNumber
      ? { 'AWS.MM.SMS.OriginationNumber': { DataType: 'String', StringValue: options.originationNumber } }
      : {}),
  };

  async function publish(number: string, text: string, segments: number, abortSignal: AbortSignal) {
    if (options.checkOptOut) {
      const check = await client.send(new CheckIfPhoneNumberIsOptedOutCommand({ phoneNumber: number }), {
        abortSignal,
      });
      if (check.isOptedOut) {
        return {
          kind: 'invalid_destination',
          reason: 'opted_out: SNS lists the number as opted out',
          statusCode: 200,
        } satisfies Outcome;
      }
    }
    const result = await client.send(
      new PublishCommand({ PhoneNumber: number, Message: text, MessageAttributes: attributes }),
      { abortSignal },
    );
    return result.MessageId
      ? ({
          kind: 'sent',
          providerMessageId: result.MessageId,
          statusCode: 200,
          cost: estimatedCost(options.pricing, number, segments),
        } satisfies Outcome)
      : ({ kind: 'retry', reason: 'SNS answered without a MessageId', statusCode: 200 } satisfies Outcome);
  }

  async function send(task: DeliveryTask, signal: AbortSignal): Promise<Outcome> {
    const { destination, content } = task;
    if (destination.channel !== 'sms' || content.channel !== 'sms') {
      return { kind: 'failed', reason: 'SNS delivery without a number and a text' };
    }
    // Cut at the budget too: a request left running could still send after the next provider did.
    const abortSignal = AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs)]);
    const attempt = publish(destination.number, content.text, content.segments, abortSignal).catch(classify);
    return withinBudget(attempt, options.timeoutMs, signal);
  }

  return channelAdapter('sms', {
    name,
    timeoutMs: options.timeoutMs,
    send,
    close: async () => client.destroy(),
  });
}

function classify(error: unknown): Outcome {
  return classifyAwsError(
    error,
    { label: 'SNS', throttling: THROTTLING, credentials: CREDENTIALS },
    (e, said) => {
      if (e.code === 'OptedOutException')
        return { kind: 'invalid_destination', reason: `opted_out: ${said}` };
      if (e.code === 'InvalidParameterException' && /PhoneNumber/i.test(e.message)) {
        return { kind: 'invalid_destination', reason: said };
      }
      return undefined;
    },
  );
}
