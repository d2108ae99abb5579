// A minimal gRPC unary client on node:http2, in the spirit of ghz/h2load: the load generator shares the
// machine's two cores with the server and PostgreSQL, so every microsecond it spends is taken from what is
// being measured. It speaks real gRPC (length-prefixed protobuf frames, `grpc-status` trailers) over one
// HTTP/2 connection per client; messages are encoded and decoded with the generated protobuf-es schemas.
import http2 from 'node:http2';

export class GrpcCallError extends Error {}

export class RawGrpcClient {
  private readonly session: http2.ClientHttp2Session;

  constructor(
    baseUrl: string,
    private readonly authorization: string,
  ) {
    this.session = http2.connect(baseUrl);
    this.session.on('error', () => {}); // surfaced per call via the stream's error
  }

  /** Sends one request message and resolves to the response message bytes; rejects unless grpc-status is 0. */
  unary(path: string, message: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const frame = Buffer.allocUnsafe(5 + message.length);
    frame[0] = 0; // not compressed
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    return new Promise((resolve, reject) => {
      const stream = this.session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc+proto',
        te: 'trailers',
        authorization: this.authorization,
      });
      stream.setTimeout(timeoutMs, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      const chunks: Buffer[] = [];
      let status: string | undefined;
      let message: string | undefined;
      const readStatus = (headers: http2.IncomingHttpHeaders) => {
        if (headers['grpc-status'] !== undefined) {
          status = String(headers['grpc-status']);
          message = headers['grpc-message'] === undefined ? undefined : String(headers['grpc-message']);
        }
      };
      stream.on('response', readStatus); // a trailers-only error answer carries the status in the headers
      stream.on('trailers', readStatus);
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', reject);
      stream.on('close', () => {
        if (status !== '0') {
          reject(
            new GrpcCallError(`grpc-status ${status ?? 'missing'}: ${decodeURIComponent(message ?? '')}`),
          );
          return;
        }
        const body = Buffer.concat(chunks);
        const length = body.readUInt32BE(1);
        if (body[0] !== 0 || body.length !== 5 + length) {
          reject(new GrpcCallError('malformed response frame'));
          return;
        }
        resolve(body.subarray(5));
      });
      stream.end(frame);
    });
  }

  close(): void {
    this.session.close();
  }
}
