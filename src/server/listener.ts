// One port for everything. Node's cleartext http2 server does not fall back to HTTP/1.1, so a plain TCP
// server peeks at the first bytes of each connection: the HTTP/2 preface goes to an http2 server
// (gRPC, Connect and gRPC-Web over h2c), anything else to an http server (Connect and gRPC-Web over
// HTTP/1.1, plain endpoints, WebSocket upgrades). Both use the same request handler.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const CANCEL_GRACE_MS = 500;

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface Listener {
  readonly http1: http.Server;
  readonly http2: http2.Http2Server;
  listen(port: number, host: string): Promise<number>;
  /** Stops accepting, lets in-flight requests finish within `deadlineMs`, then cuts what is left. */
  close(deadlineMs: number, onDeadline: () => void): Promise<void>;
  /** Requests being handled right now. */
  inFlight(): number;
}

const EMPTY = Buffer.alloc(0);

function destroy(this: net.Socket) {
  this.destroy();
}

export function createListener(handler: RequestHandler): Listener {
  const sockets = new Set<net.Socket>();
  let active = 0;
  let draining = false;
  const idleWaiters: (() => void)[] = [];

  const tracked: RequestHandler = (req, res) => {
    active++;
    // HTTP/1.1 keep-alive connections are told to close after their current response.
    if (draining && req.httpVersionMajor === 1) res.setHeader('connection', 'close');
    res.once('close', () => {
      active--;
      if (active === 0) for (const wake of idleWaiters.splice(0)) wake();
    });
    handler(req, res);
  };

  const h1 = http.createServer(
    { requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 65_000 },
    tracked,
  );
  const h2 = http2.createServer({}, tracked);
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  h2.on('session', (session) => {
    h2Sessions.add(session);
    session.once('close', () => h2Sessions.delete(session));
    if (draining) session.close();
  });

  // noDelay as Node's own http servers set it: RPC answers are small writes that Nagle's algorithm would hold
  // back waiting for an ACK (measured: ~10% fewer RPCs per second without it).
  // Per-socket listeners are shared functions (`this` is the socket): a closure per socket would keep the
  // bytes read while sniffing alive for as long as the connection lasts.
  function forget(this: net.Socket) {
    sockets.delete(this);
  }
  const tcp = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', forget);
    socket.on('error', destroy);
    let head: Buffer = EMPTY;
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const n = Math.min(head.length, PREFACE.length);
      const looksLikeH2 = head.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (looksLikeH2 && head.length < PREFACE.length) return; // wait for the rest of the preface
      socket.off('data', onData);
      socket.pause();
      socket.unshift(head);
      head = EMPTY;
      // The http2 session takes the bytes already buffered on the socket itself; do not resume it.
      if (looksLikeH2) h2.emit('connection', socket);
      else {
        h1.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
  });

  return {
    http1: h1,
    http2: h2,
    inFlight: () => active,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, host, () => {
          tcp.off('error', reject);
          resolve((tcp.address() as net.AddressInfo).port);
        });
      });
    },
    async close(deadlineMs, onDeadline) {
      draining = true;
      const stopped = new Promise<void>((resolve) => tcp.close(() => resolve()));
      for (const session of h2Sessions) session.close();
      h1.closeIdleConnections();
      const idle =
        active === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve));
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'deadline'>((resolve) => {
        timer = setTimeout(() => resolve('deadline'), deadlineMs);
      });
      if ((await Promise.race([idle, deadline])) === 'deadline') {
        onDeadline();
        // Give the cancelled handlers a moment to write their final status before the sockets go.
        await Promise.race([idle, new Promise((resolve) => setTimeout(resolve, CANCEL_GRACE_MS))]);
      }
      clearTimeout(timer);
      h1.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      await stopped;
    },
  };
}
