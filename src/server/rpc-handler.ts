// The Node request handler for every RPC: connect-node's router and its universal request/response bridge,
// plus two corrections. connect-es answers a request whose protobuf binary cannot be parsed (garbage, a
// truncated message, invalid UTF-8 in a string field, a Struct nested past the decoder's depth), or whose
// compressed message cannot be decompressed, with INTERNAL (some decompression failures with INVALID_ARGUMENT
// "decompression failed"), on all three protocols, before any interceptor runs. That is a client's mistake, so
// it is answered INVALID_ARGUMENT naming the request, in the same words as the native gRPC port:
// `request: not a valid <type> (…)`, `request: the compressed message could not be decompressed`. The JSON forms already answer INVALID_ARGUMENT. And a request whose Host (or
// :authority) is no URL authority, which the bridge throws on synchronously, gets 400 instead of taking the
// process down.
//
// The error travels differently per protocol, and each is rewritten where it travels:
// - Connect unary: HTTP 500 with a JSON error body (status and body are rewritten before the head is sent);
// - Connect server streaming: the end-stream envelope (flag 0x02) carries the error as JSON;
// - gRPC-Web: the trailer envelope (flag 0x80) carries grpc-status and grpc-message as text;
// - gRPC: the HTTP/2 trailers.
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  createConnectRouter,
} from '@connectrpc/connect';
import type { UniversalHandler, UniversalServerResponse } from '@connectrpc/connect/protocol';
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from '@connectrpc/connect-node';
import { methodName } from '../observability/metrics.js';
import type { RequestHandler } from './listener.js';

export interface RpcHandlerOptions extends ConnectRouterOptions {
  routes: (router: ConnectRouter) => void;
  /** A handler that failed other than by aborting (a response write error): logged, never thrown. */
  onHandlerError: (method: string, error: unknown) => void;
}

const PARSE_FAILURE = 'parse binary: ';
const DECOMPRESSION_FAILED = 'decompression failed';
const COMPRESSED_WITHOUT_ENCODING = 'received compressed envelope, but do not know how to decompress';
const END_STREAM_FLAG = 0b10;
const TRAILER_FLAG = 0b1000_0000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function createRpcHandler(options: RpcHandlerOptions): RequestHandler {
  const router = createConnectRouter({
    acceptCompression: [compressionGzip, compressionBrotli],
    ...options,
  });
  options.routes(router);
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) paths.set(handler.requestPath, handler);

  return (req, res) => {
    const handler = paths.get(req.url?.split('?', 1)[0] ?? '');
    if (!handler) {
      res.writeHead(404);
      res.end();
      return;
    }
    const typeName = handler.method.input.typeName;
    let request: ReturnType<typeof universalRequestFromNodeRequest>;
    try {
      // Throws for a Host header or :authority that is no URL authority (e.g. "[").
      request = universalRequestFromNodeRequest(req, res, undefined, undefined);
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end('the request has no valid Host (or :authority)\n');
      return;
    }
    handler(request)
      .then((response) =>
        universalResponseToNodeResponse(withParseFailuresAsInvalid(response, typeName), res),
      )
      .catch((error: unknown) => {
        if (ConnectError.from(error).code === Code.Aborted) return;
        options.onHandlerError(methodName(handler.method), error);
      });
  };
}

/** The answer to a request message that is not valid protobuf binary (both transports phrase it so). */
export function unparsableRequest(typeName: string, problem: string): string {
  return `request: not a valid ${typeName} in the protobuf binary format (${problem})`;
}

/**
 * The problem, phrased for the client, when `message` is one of connect-es's INTERNAL answers to a request
 * it could not read (a parse failure, or a compressed envelope it could not decompress); else undefined.
 */
function invalidRequest(message: unknown, typeName: string): string | undefined {
  if (typeof message !== 'string') return undefined;
  if (message.startsWith(PARSE_FAILURE))
    return unparsableRequest(typeName, message.slice(PARSE_FAILURE.length));
  if (message === DECOMPRESSION_FAILED) return 'request: the compressed message could not be decompressed';
  if (message.startsWith(COMPRESSED_WITHOUT_ENCODING)) {
    return 'request: a message is flagged compressed, but the request names no compression it was made with';
  }
  return undefined;
}

function withParseFailuresAsInvalid(
  response: UniversalServerResponse,
  typeName: string,
): UniversalServerResponse {
  const body = response.body;
  if (!body) return response;
  // A copy whose status may still change: connect-node writes the head only after the first chunk is read.
  const rewritten: UniversalServerResponse = { ...response };
  rewritten.body = (async function* () {
    for await (const chunk of body) yield rewriteChunk(chunk, rewritten, typeName);
    rewriteGrpcTrailer(rewritten.trailer, typeName);
  })();
  return rewritten;
}

function rewriteChunk(chunk: Uint8Array, response: UniversalServerResponse, typeName: string): Uint8Array {
  const contentType = response.header?.get('content-type') ?? '';
  if ((response.status === 500 || response.status === 400) && contentType.startsWith('application/json')) {
    return rewriteConnectUnaryError(chunk, response, typeName);
  }
  if (contentType.startsWith('application/grpc-web')) {
    return rewriteLastEnvelope(chunk, TRAILER_FLAG, (text) => rewriteGrpcWebTrailer(text, typeName));
  }
  if (contentType.startsWith('application/connect+')) {
    return rewriteLastEnvelope(chunk, END_STREAM_FLAG, (text) => rewriteEndStream(text, typeName));
  }
  return chunk;
}

function rewriteConnectUnaryError(
  chunk: Uint8Array,
  response: UniversalServerResponse,
  typeName: string,
): Uint8Array {
  const error = parseJson(decoder.decode(chunk));
  if (error?.code !== 'internal' && error?.code !== 'invalid_argument') return chunk;
  const message = invalidRequest(error.message, typeName);
  if (!message) return chunk;
  const body = encoder.encode(JSON.stringify({ code: 'invalid_argument', message }));
  response.status = 400;
  response.header?.set('content-length', String(body.length));
  return body;
}

function rewriteEndStream(text: string, typeName: string): string | undefined {
  const end = parseJson(text);
  const error = end?.error as { code?: unknown; message?: unknown } | undefined;
  if (error?.code !== 'internal' && error?.code !== 'invalid_argument') return undefined;
  const message = invalidRequest(error.message, typeName);
  if (!message) return undefined;
  return JSON.stringify({ ...end, error: { code: 'invalid_argument', message } });
}

function rewriteGrpcWebTrailer(text: string, typeName: string): string | undefined {
  const fields = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  if (!rewritable(fields.get('grpc-status'))) return undefined;
  const message = invalidRequest(safeDecodeURIComponent(fields.get('grpc-message') ?? ''), typeName);
  if (!message) return undefined;
  fields.set('grpc-status', String(Code.InvalidArgument));
  fields.set('grpc-message', encodeURIComponent(message));
  return [...fields].map(([name, value]) => `${name}: ${value}\r\n`).join('');
}

function rewriteGrpcTrailer(trailer: Headers | undefined, typeName: string): void {
  if (!trailer || !rewritable(trailer.get('grpc-status'))) return;
  const message = invalidRequest(safeDecodeURIComponent(trailer.get('grpc-message') ?? ''), typeName);
  if (!message) return;
  trailer.set('grpc-status', String(Code.InvalidArgument));
  trailer.set('grpc-message', encodeURIComponent(message));
}

/**
 * When `chunk` is a run of whole envelopes (flag byte, 4-byte big-endian length, data) whose last one has
 * `flag`, that envelope's text rewritten by `rewrite` (undefined: leave it); otherwise the chunk as it is.
 */
function rewriteLastEnvelope(
  chunk: Uint8Array,
  flag: number,
  rewrite: (text: string) => string | undefined,
): Uint8Array {
  let offset = 0;
  let last = -1;
  while (offset + 5 <= chunk.length) {
    const length = new DataView(chunk.buffer, chunk.byteOffset + offset + 1, 4).getUint32(0);
    if (offset + 5 + length > chunk.length) return chunk;
    last = offset;
    offset += 5 + length;
  }
  if (last < 0 || offset !== chunk.length || (chunk[last]! & flag) !== flag) return chunk;
  const replaced = rewrite(decoder.decode(chunk.subarray(last + 5)));
  if (replaced === undefined) return chunk;
  const data = encoder.encode(replaced);
  const out = new Uint8Array(last + 5 + data.length);
  out.set(chunk.subarray(0, last + 1));
  new DataView(out.buffer).setUint32(last + 1, data.length);
  out.set(data, last + 5);
  return out;
}

/** Codes connect-es answers unreadable requests with: INTERNAL, or INVALID_ARGUMENT in its own words. */
function rewritable(grpcStatus: string | null | undefined): boolean {
  return grpcStatus === String(Code.Internal) || grpcStatus === String(Code.InvalidArgument);
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function safeDecodeURIComponent(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
