// How an AWS SDK v3 error becomes an outcome, for the adapters of AWS services (SES, SNS): the error's name
// (the service's code), its HTTP status and message; throttling is retried, refused credentials trip the
// circuit, another 4xx is permanent for the message, anything else (5xx, network, timeouts) is retried. Each
// adapter adds the codes of its own service and the cases it reads differently.
import { maskNumbersIn } from '../core/destinations.js';
import type { Outcome } from '../delivery/provider.js';

export interface AwsError {
  code: string;
  status: number | undefined;
  message: string;
}

/** The credentials or the account refused as a whole, by any AWS service: the provider's problem. */
const CREDENTIALS = new Set([
  'SignatureDoesNotMatch',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'AccessDenied',
  'AccessDeniedException',
  'ExpiredToken',
  'CredentialsProviderError',
]);

export function awsError(error: unknown): AwsError {
  const e = (error ?? {}) as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  return { code: e.name ?? 'Error', status: e.$metadata?.httpStatusCode, message: e.message ?? '' };
}

export function classifyAwsError(
  error: unknown,
  service: { label: string; throttling: ReadonlySet<string>; credentials: ReadonlySet<string> },
  special?: (e: AwsError, said: string) => Outcome | undefined,
): Outcome {
  const e = awsError(error);
  // A message may quote the recipient (SNS: "… PhoneNumber Reason: +1… is not valid"): never whole.
  const said = maskNumbersIn(`${service.label} ${e.code}: ${e.message}`).slice(0, 500);
  const detail = { statusCode: e.status, code: e.code };
  const own = special?.(e, said);
  if (own) return { ...detail, ...own };
  if (service.throttling.has(e.code)) return { kind: 'retry', reason: said, ...detail };
  if (CREDENTIALS.has(e.code) || service.credentials.has(e.code)) {
    return { kind: 'failed', reason: said, credentials: true, ...detail };
  }
  if (e.status !== undefined && e.status >= 400 && e.status < 500)
    return { kind: 'failed', reason: said, ...detail };
  return { kind: 'retry', reason: said, ...detail };
}
