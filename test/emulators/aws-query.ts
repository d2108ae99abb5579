// What the AWS Query-API stand-ins for tests (ses.ts, sns-sms.ts) share: a plain HTTP server on 127.0.0.1 that
// takes `POST /` with a form body, AWS Signature Version 4 verification against one configured key (wrong
// secret → 403 SignatureDoesNotMatch, unknown key → 403 InvalidClientTokenId, no Authorization → 403
// MissingAuthenticationToken), the numbered-list form fields and the XML error document. Each service keeps
// its own actions, scripts and answers (and records them with arrivals.ts, as every emulator does).
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

/** The one account an emulator accepts, and the region it expects requests to be signed for. */
export interface AwsAccount {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

/** An error as a Query API answers it: HTTP status plus the `<Error>` element. */
export interface AwsQueryError {
  status: number;
  code: string;
  message: string;
  /** `Sender` (the default) or `Receiver`: the SDK's `$fault` is `client` or `server` accordingly. */
  type?: 'Sender' | 'Receiver';
}

export interface SignatureCheck {
  /** From the Authorization header (null without one). */
  accessKeyId: string | null;
  /** The 403 to answer, or null when the signature holds. */
  refusal: AwsQueryError | null;
}

export type QueryHandler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => Promise<unknown>;

export interface QueryServer {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** Runs `fn` after `ms`, unless the server is closed first. */
  later(ms: number, fn: () => void): void;
  /** Drops every connection (pending `later` calls included) and stops listening. */
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1, port 0, and hands each `POST /` to `handle` with its whole body; anything else is a
 * 404, and a handler that throws answers 500 with the error as text.
 */
export async function startQueryServer(name: string, handle: QueryHandler): Promise<QueryServer> {
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/') return void res.writeHead(404).end();
      handle(req, Buffer.concat(chunks), res).catch((err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error(`${name}: not on a TCP port`);

  return {
    url: `http://127.0.0.1:${address.port}`,
    later(ms, fn) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        fn();
      }, ms);
      timers.add(timer);
    },
    close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      return new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/[^,]*, ?SignedHeaders=([^,]+), ?Signature=(\w+)$/;

/**
 * SigV4 as the SDK's signer computes it: the canonical request (method, path, empty query, the headers named
 * in SignedHeaders, the payload hash) hashed into the string to sign, HMAC'd with the key derived from the
 * secret, the request's date, the configured region and `service` (the client's signing name: `ses` for SES,
 * `sns` for SNS). A x-amz-content-sha256 header that does not match the body counts as a bad signature.
 */
export function checkSignature(
  req: IncomingMessage,
  body: Buffer,
  account: AwsAccount,
  service: string,
): SignatureCheck {
  const match = AUTHORIZATION.exec(req.headers.authorization ?? '');
  if (!match) {
    const message = 'Request is missing Authentication Token';
    return { accessKeyId: null, refusal: { status: 403, code: 'MissingAuthenticationToken', message } };
  }
  const [, accessKeyId = '', signedHeaders = '', signature = ''] = match;
  if (accessKeyId !== account.accessKeyId) {
    const message = 'The security token included in the request is invalid.';
    return { accessKeyId, refusal: { status: 403, code: 'InvalidClientTokenId', message } };
  }
  const bodyHash = sha256(body);
  const claimedHash = req.headers['x-amz-content-sha256'];
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  const scope = [amzDate.slice(0, 8), account.region, service, 'aws4_request'];
  const canonicalHeaders = signedHeaders.split(';').map((name) => `${name}:${unfold(req.headers[name])}\n`);
  // Only `POST /` without a query string is served: the canonical path is '/' and the query empty.
  const canonicalRequest = `POST\n/\n\n${canonicalHeaders.join('')}\n${signedHeaders}\n${bodyHash}`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope.join('/'), sha256(canonicalRequest)].join('\n');
  let key: Buffer = Buffer.from(`AWS4${account.secretAccessKey}`);
  for (const part of scope) key = hmac(key, part);
  const expected = Buffer.from(hmac(key, stringToSign).toString('hex'));
  const given = Buffer.from(signature);
  const valid =
    (claimedHash === undefined || claimedHash === bodyHash) &&
    expected.length === given.length &&
    timingSafeEqual(expected, given);
  if (valid) return { accessKeyId, refusal: null };
  const message =
    'The request signature we calculated does not match the signature you provided. ' +
    'Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';
  return { accessKeyId, refusal: { status: 403, code: 'SignatureDoesNotMatch', message } };
}

/** `prefix.1<suffix>`, `prefix.2<suffix>`, … up to the first gap (prefix ends in `.member` or `.entry`). */
export function numbered(form: URLSearchParams, prefix: string, suffix = ''): string[] {
  const values: string[] = [];
  for (let n = 1; form.has(`${prefix}.${n}${suffix}`); n++)
    values.push(form.get(`${prefix}.${n}${suffix}`) ?? '');
  return values;
}

/** The Query API's error document, in the service's namespace. */
export function errorDocument(xmlns: string, error: AwsQueryError, requestId: string): string {
  return (
    `<ErrorResponse xmlns="${xmlns}"><Error><Type>${error.type ?? 'Sender'}</Type><Code>${escapeXml(error.code)}` +
    `</Code><Message>${escapeXml(error.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`
  );
}

export const escapeXml = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A header value on one line, runs of white space as one space, trimmed. */
export const unfold = (value: string | string[] | undefined) => `${value ?? ''}`.replace(/\s+/g, ' ').trim();

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();
