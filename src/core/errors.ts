// Domain errors carry a kind and the offending field; the API layer maps them to gRPC codes.
// Nothing here knows about transports.

export type ErrorKind =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'permission_denied'
  | 'unauthenticated'
  | 'failed_precondition';

export class HeraldError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly field?: string,
  ) {
    super(field ? `${field}: ${message}` : message);
    this.name = 'HeraldError';
  }
}

/** A request field broke a rule. `field` is a path as the client spells it, e.g. `requests[3].recipient.email`. */
export function invalidArgument(field: string, rule: string): HeraldError {
  return new HeraldError('invalid_argument', rule, field);
}
