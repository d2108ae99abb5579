// Herald's API as the console calls it: the Connect protocol with JSON over fetch, the admin key from
// sessionStorage as the bearer token. The key is never put into a URL, so it reaches the server only in the
// Authorization header of these POSTs.

const KEY_ITEM = 'herald.console.key';

export const storedKey = () => sessionStorage.getItem(KEY_ITEM) ?? '';
export const storeKey = (key) => sessionStorage.setItem(KEY_ITEM, key);
export const forgetKey = () => sessionStorage.removeItem(KEY_ITEM);

/** A failed call, with the Connect error code (`not_found`, `permission_denied`, ...). */
export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }

  /** The key is unknown, revoked or lacks the admin scope: nothing the console shows may be asked with it. */
  get refusesKey() {
    return this.code === 'permission_denied' || this.code === 'unauthenticated';
  }
}

/** One unary RPC; answers the response message as JSON (proto3 JSON: defaults left out, int64 as strings). */
export async function call(service, method, request = {}, key = storedKey()) {
  let res;
  try {
    res = await fetch(`/herald.v1.${service}/${method}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'connect-protocol-version': '1',
        authorization: `Bearer ${key}`,
      },
      body: JSON.stringify(request),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (error) {
    throw new ApiError('unavailable', `the server cannot be reached (${error.message})`);
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(body.code || `http_${res.status}`, body.message || res.statusText);
  return body;
}

export const adminCall = (method, request) => call('AdminService', method, request);
export const notificationCall = (method, request) => call('NotificationService', method, request);
