import { type Code, ConnectError } from '@connectrpc/connect';

/** The ConnectError a call failed with; fails the test if the call succeeded. */
export async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error('expected the call to fail');
}

/** 'ok', or the code the call failed with: for tables of calls that must all answer the same. */
export async function codeOf(promise: Promise<unknown>): Promise<Code | 'ok'> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    return ConnectError.from(error).code;
  }
}
