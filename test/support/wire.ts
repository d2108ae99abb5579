// Raw clients for tests that assert on the bytes a server sends and on when it closes: a TCP client that
// records everything, and just enough HTTP/2 framing (RFC 9113 §4, HPACK without Huffman) to write frames a
// well-behaved client library would never send.
import net from 'node:net';

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** A TCP connection that keeps what it receives and when it closed. */
export class RawClient {
  private readonly chunks: Buffer[] = [];
  private waiters: (() => void)[] = [];
  /** performance.now() when the connection was established. */
  readonly openedAt: number;
  /** performance.now() when it closed (either side), once it has. */
  closedAt: number | undefined;
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    this.openedAt = performance.now();
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.wake();
    });
    // A reset is a close too; what counts is that it happened.
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closedAt = performance.now();
        this.wake();
        resolve();
      }),
    );
  }

  static connect(port: number, localAddress = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, localAddress });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
    });
  }

  get isClosed(): boolean {
    return this.closedAt !== undefined;
  }

  received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  text(): string {
    return this.received().toString('latin1');
  }

  write(data: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  /** Resolves when `done` holds for what was received (or the connection closed); fails after `timeoutMs`. */
  async until(what: string, timeoutMs: number, done: (received: Buffer) => boolean): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!done(this.received())) {
      const left = deadline - performance.now();
      if (left <= 0)
        throw new Error(`${what}: not within ${timeoutMs} ms (received ${JSON.stringify(this.text())})`);
      if (this.isClosed)
        throw new Error(`${what}: connection closed (received ${JSON.stringify(this.text())})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Milliseconds from open to close; fails if the connection is still open after `timeoutMs`. */
  async closesWithin(timeoutMs: number): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'open'>((resolve) => {
      timer = setTimeout(() => resolve('open'), timeoutMs);
    });
    const outcome = await Promise.race([this.closed, timeout]);
    clearTimeout(timer);
    if (outcome === 'open') throw new Error(`connection still open after ${timeoutMs} ms`);
    return this.closedAt! - this.openedAt;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake() {
    for (const wake of this.waiters.splice(0)) wake();
  }
}

/** Whether `text` holds one whole HTTP/1.1 response (Content-Length or chunked). */
function completeResponse(text: string): boolean {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const head = text.slice(0, end).toLowerCase();
  const body = text.slice(end + 4);
  const length = /\r\ncontent-length: *(\d+)/.exec(head);
  if (length) return Buffer.byteLength(body, 'latin1') >= Number(length[1]);
  if (/\r\ntransfer-encoding: *chunked/.test(head)) return body.endsWith('0\r\n\r\n');
  return false;
}

/** Sends `GET path` on a keep-alive HTTP/1.1 connection and returns the whole response, once it contains `expect`. */
export async function http1Get(
  client: RawClient,
  path: string,
  expect: string,
  timeoutMs = 2_000,
): Promise<string> {
  const before = client.received().length;
  client.write(`GET ${path} HTTP/1.1\r\nHost: herald\r\n\r\n`);
  const response = () => client.received().subarray(before).toString('latin1');
  await client.until(`response to GET ${path}`, timeoutMs, () => completeResponse(response()));
  if (!response().includes(expect))
    throw new Error(`GET ${path}: ${JSON.stringify(expect)} not in ${response()}`);
  return response();
}

// HTTP/2 frame types and flags used here.
export const FRAME = {
  DATA: 0x0,
  HEADERS: 0x1,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PING: 0x6,
  GOAWAY: 0x7,
} as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export function frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

/** The frames in what a server sent after the connection preface (which a server does not send). */
export function parseFrames(data: Buffer): Frame[] {
  const frames: Frame[] = [];
  let at = 0;
  while (at + 9 <= data.length) {
    const length = data.readUIntBE(at, 3);
    if (at + 9 + length > data.length) break;
    frames.push({
      type: data[at + 3]!,
      flags: data[at + 4]!,
      streamId: data.readUInt32BE(at + 5) & 0x7fffffff,
      payload: data.subarray(at + 9, at + 9 + length),
    });
    at += 9 + length;
  }
  return frames;
}

/** SETTINGS parameters by identifier (0x3 is MAX_CONCURRENT_STREAMS). */
export function settingsOf(f: Frame): Map<number, number> {
  const settings = new Map<number, number>();
  for (let at = 0; at + 6 <= f.payload.length; at += 6) {
    settings.set(f.payload.readUInt16BE(at), f.payload.readUInt32BE(at + 2));
  }
  return settings;
}

/** An HPACK literal (without indexing) whose name is static-table entry `index`. */
function literal(index: number, value: string): Buffer {
  const name = index < 15 ? [index] : [15, index - 15];
  const bytes = Buffer.from(value);
  if (bytes.length > 126) throw new Error('value too long for this encoder');
  return Buffer.from([...name, bytes.length, ...bytes]);
}

/** A request's header block: `:method`, `:scheme http`, `:path`, `:authority`, and a content type for POST. */
export function requestHeaders(method: 'GET' | 'POST', path: string, contentType?: string): Buffer {
  return Buffer.concat([
    Buffer.from([method === 'GET' ? 0x82 : 0x83, 0x86]),
    literal(4, path),
    literal(1, '127.0.0.1'),
    ...(contentType ? [literal(31, contentType)] : []),
  ]);
}
