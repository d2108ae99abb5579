// One port for everything. Node's cleartext http2 server does not fall back to HTTP/1.1, so a plain TCP
// server peeks at the first bytes of each connection: the HTTP/2 preface goes to an http2 server
// (gRPC, Connect and gRPC-Web over h2c), anything else to an http server (Connect and gRPC-Web over
// HTTP/1.1, plain endpoints, WebSocket upgrades). Both use the same request handler.
//
// Everything here happens before authentication, so every stage has a bound:
// - connections: at most `maxConnections` open at once, and `maxConnectionsPerAddress` from one client
//   address (IPv6: one /64; local proxies exempt); a connection over either cap is answered in its own protocol (HTTP/1.1 503, or
//   an HTTP/2 GOAWAY) and closed;
// - sniffing: the first bytes (all 24 of an HTTP/2 preface) must arrive within `sniffTimeoutMs`;
// - HTTP/1.1: a request's headers must arrive within `headersTimeoutMs` of its first byte and the whole
//   request, body included, within `requestTimeoutMs` (408 and close; the response may take as long as it
//   needs, so streaming responses are not cut); a keep-alive connection idle for `idleTimeoutMs` between
//   requests is closed. Upgraded connections (the WebSocket bridge) belong to `ws` and its own pings;
// - HTTP/2: at most `maxConcurrentStreams` streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS; nghttp2
//   refuses more), a stream whose request has not fully arrived within `requestTimeoutMs` is reset
//   (RST_STREAM CANCEL), and a session with no open stream for `idleTimeoutMs` is closed with GOAWAY. A
//   session with an open stream (a live StreamNotifications call) is never closed for idleness.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../observability/logger.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const CANCEL_GRACE_MS = 500;
/** A refused connection is kept this long at most to read its first bytes and answer them. */
const REFUSAL_LINGER_MS = 1_000;
/** Refused connections being answered at once; beyond this they are closed without an answer. */
const MAX_LINGERING_REFUSALS = 100;
/** At most one warning about refused connections per this interval (with the counts since the last one). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface ListenerLimits {
  /** A new connection must send its first bytes (all 24 of an HTTP/2 preface) within this. */
  sniffTimeoutMs: number;
  /** HTTP/1.1: a request's headers must be complete this long after its first byte. */
  headersTimeoutMs: number;
  /** A request (headers and body) must be complete this long after its first byte; responses may take longer. */
  requestTimeoutMs: number;
  /** An HTTP/1.1 keep-alive connection between requests, or an HTTP/2 session without streams, closes after this. */
  idleTimeoutMs: number;
  /** HTTP/2 streams open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams: number;
  /** Connections open at once on this listener. */
  maxConnections: number;
  /** Connections open at once from one client address (IPv6: one /64); 0 for no such cap. */
  maxConnectionsPerAddress: number;
  /** Client addresses or CIDRs the per-address cap does not apply to (local proxies, sidecars). */
  perAddressExemptNetworks: readonly string[];
}

export const DEFAULT_LISTENER_LIMITS: Readonly<ListenerLimits> = {
  sniffTimeoutMs: 10_000,
  headersTimeoutMs: 15_000,
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 65_000,
  maxConcurrentStreams: 250,
  maxConnections: 10_000,
  maxConnectionsPerAddress: 1_000,
  perAddressExemptNetworks: ['127.0.0.0/8', '::1'],
};

export interface ListenerOptions extends Partial<ListenerLimits> {
  /** Warned (rate-limited) when connections are refused. */
  logger?: Pick<Logger, 'warn'>;
  /** Gets `herald_connections_open` and `herald_connections_refused_total`. */
  registry?: Registry;
}

export type RefusalReason = 'max_connections' | 'max_connections_per_address';

export interface Listener {
  readonly http1: http.Server;
  readonly http2: http2.Http2Server;
  readonly limits: Readonly<ListenerLimits>;
  listen(port: number, host: string): Promise<number>;
  /**
   * A second port, for native gRPC: the same connection caps (counted together with the main port's), the same
   * sniffing; a connection that opens with the HTTP/2 preface goes to `accept`, anything else is answered 505.
   */
  listenGrpc(port: number, host: string, accept: (socket: net.Socket) => void): Promise<number>;
  /**
   * Stops accepting, lets in-flight requests finish within `deadlineMs`, then cuts what is left. Connections
   * are closed once `alsoDrained` (the native gRPC server's own drain) has settled too.
   */
  close(deadlineMs: number, onDeadline: () => void, alsoDrained?: Promise<unknown>): Promise<void>;
  /** Requests being handled right now. */
  inFlight(): number;
  /** Connections open right now (not counting refused ones being answered). */
  connections(): number;
}

const EMPTY = Buffer.alloc(0);

const NOT_GRPC_TEXT =
  'this port speaks native gRPC only (HTTP/2 with prior knowledge); Connect, gRPC-Web, HTTP/1.1 and WebSockets are on the main port\n';
const NOT_GRPC = Buffer.from(
  'HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(NOT_GRPC_TEXT)}\r\nConnection: close\r\n\r\n${NOT_GRPC_TEXT}`,
);

function listenOn(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

function destroy(this: net.Socket) {
  this.destroy();
}

function discard() {}

function destroySocket(socket: net.Socket) {
  socket.destroy();
}

const REFUSAL_TEXT: Record<RefusalReason, string> = {
  max_connections: 'too many connections to this server; retry later\n',
  max_connections_per_address: 'too many connections from your address; close some or retry later\n',
};
// HTTP/2 error codes (RFC 9113 §7).
const REFUSED_STREAM = 0x7;
const ENHANCE_YOUR_CALM = 0xb;

function http1Refusal(reason: RefusalReason): Buffer {
  const body = REFUSAL_TEXT[reason];
  return Buffer.from(
    'HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** The server's connection preface (an empty SETTINGS frame) and a GOAWAY naming the reason. */
function http2Refusal(reason: RefusalReason): Buffer {
  const debug = Buffer.from(REFUSAL_TEXT[reason].trim());
  const settings = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
  const goaway = Buffer.alloc(9 + 8 + debug.length);
  goaway.writeUIntBE(8 + debug.length, 0, 3);
  goaway[3] = 0x7; // GOAWAY on stream 0, last stream id 0: nothing was processed
  goaway.writeUInt32BE(reason === 'max_connections' ? REFUSED_STREAM : ENHANCE_YOUR_CALM, 13);
  debug.copy(goaway, 17);
  return Buffer.concat([settings, goaway]);
}

const REFUSALS = {
  http1: {
    max_connections: http1Refusal('max_connections'),
    max_connections_per_address: http1Refusal('max_connections_per_address'),
  },
  http2: {
    max_connections: http2Refusal('max_connections'),
    max_connections_per_address: http2Refusal('max_connections_per_address'),
  },
};

/** An IPv4 address seen through a dual-stack socket (`::ffff:1.2.3.4`) as plain IPv4. */
function plainAddress(address: string | undefined): string | undefined {
  const mapped = address && /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address;
}

/** The key connections are counted under: the IPv4 address, or the /64 of an IPv6 address. */
export function addressKey(peer: string | undefined): string {
  const address = plainAddress(peer);
  if (!address) return 'unknown';
  if (!address.includes(':')) return address;
  const bare = address.split('%', 1)[0]!;
  const [left = '', right] = bare.split('::');
  const groups = (s: string) => (s ? s.split(':') : []);
  const width = (g: string[]) => g.reduce((n, x) => n + (x.includes('.') ? 2 : 1), 0);
  const head = groups(left);
  const tail = right === undefined ? [] : groups(right);
  const full =
    right === undefined
      ? head
      : [...head, ...Array<string>(Math.max(0, 8 - width(head) - width(tail))).fill('0'), ...tail];
  return `${full
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

/** This process's open-file limit from /proc/self/limits (Linux); undefined where that cannot be read. */
export function descriptorLimit(): { soft: number; hard: number } | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const [soft, hard] = line?.slice('Max open files'.length).trim().split(/\s+/) ?? [];
    const value = (v: string | undefined) => (v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v));
    const limit = { soft: value(soft), hard: value(hard) };
    return Number.isNaN(limit.soft) || Number.isNaN(limit.hard) ? undefined : limit;
  } catch {
    return undefined;
  }
}

/**
 * The connection cap the descriptor limit allows: a quarter of the descriptors (at least 128) stays for
 * the database pool, Redis, outbound webhooks and files, so reaching the cap cannot starve those.
 */
export function connectionCap(configured: number, softDescriptorLimit: number | undefined): number {
  if (softDescriptorLimit === undefined || !Number.isFinite(softDescriptorLimit)) return configured;
  const reserve = Math.max(128, Math.ceil(softDescriptorLimit / 4));
  return Math.max(1, Math.min(configured, softDescriptorLimit - reserve));
}

interface Connection {
  /** addressKey of the peer; undefined when it is exempt from the per-address cap. */
  address: string | undefined;
  /** Set while the first bytes are awaited. */
  sniff: NodeJS.Timeout | undefined;
}

interface SessionState {
  streams: number;
  /** Closes the session when it fires with no stream open; refreshed whenever the last stream ends. */
  idle: NodeJS.Timeout;
}

export function createListener(handler: RequestHandler, options: ListenerOptions = {}): Listener {
  const { logger, registry, ...given } = options;
  const limits: ListenerLimits = {
    ...DEFAULT_LISTENER_LIMITS,
    ...(Object.fromEntries(
      Object.entries(given).filter(([, v]) => v !== undefined),
    ) as Partial<ListenerLimits>),
  };
  // Node refuses a headers timeout longer than the request timeout.
  limits.headersTimeoutMs = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  // How often expired requests are looked for (both protocols): a fraction of the shortest timeout.
  const checkIntervalMs = Math.max(10, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4)));

  const exempt = new net.BlockList();
  for (const cidr of limits.perAddressExemptNetworks) {
    const [address = '', prefix] = cidr.split('/');
    const family = net.isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) exempt.addAddress(address, family);
    else exempt.addSubnet(address, Number(prefix), family);
  }
  const sockets = new Map<net.Socket, Connection>();
  const perAddress = new Map<string, number>();
  /** Refused connections being answered, until they close or REFUSAL_LINGER_MS passes. */
  const lingering = new Map<net.Socket, { reason: RefusalReason; timer: NodeJS.Timeout }>();
  let active = 0;
  let draining = false;
  const idleWaiters: (() => void)[] = [];

  const refusedTotal = registry
    ? new Counter({
        name: 'herald_connections_refused_total',
        help: 'Connections refused at accept, by the cap they hit (max_connections, max_connections_per_address).',
        labelNames: ['reason'] as const,
        registers: [registry],
      })
    : undefined;
  if (registry) {
    new Gauge({
      name: 'herald_connections_open',
      help: 'TCP connections open on the listener (all protocols, WebSockets included).',
      registers: [registry],
      collect() {
        this.set(sockets.size);
      },
    });
  }
  let lastRefusalLog = Number.NEGATIVE_INFINITY;
  const unlogged: Record<RefusalReason, number> = { max_connections: 0, max_connections_per_address: 0 };
  function noteRefusal(reason: RefusalReason, address: string | undefined) {
    refusedTotal?.inc({ reason });
    unlogged[reason]++;
    const now = performance.now();
    if (now - lastRefusalLog < REFUSAL_LOG_INTERVAL_MS) return;
    lastRefusalLog = now;
    logger?.warn(
      {
        refused: { ...unlogged },
        lastAddress: address,
        connections: sockets.size,
        maxConnections: limits.maxConnections,
        maxConnectionsPerAddress: limits.maxConnectionsPerAddress,
      },
      'connections refused: connection cap reached (counts since the last such warning)',
    );
    unlogged.max_connections = 0;
    unlogged.max_connections_per_address = 0;
  }

  // HTTP/2 sessions by their stream count and idle timer; HTTP/2 requests whose body is still arriving.
  const h2Sessions = new Map<http2.ServerHttp2Session, SessionState>();
  const pendingRequests = new Map<http2.Http2Stream, number>();

  const tracked: RequestHandler = (req, res) => {
    active++;
    // HTTP/1.1 keep-alive connections are told to close after their current response.
    if (draining && req.httpVersionMajor === 1) res.setHeader('connection', 'close');
    let stream: http2.Http2Stream | undefined;
    let session: SessionState | undefined;
    if (req.httpVersionMajor === 2) {
      stream = (req as http2.Http2ServerRequest).stream;
      session = stream.session ? h2Sessions.get(stream.session as http2.ServerHttp2Session) : undefined;
      if (session) session.streams++;
      if (!stream.endAfterHeaders) pendingRequests.set(stream, performance.now());
    }
    res.once('close', () => {
      active--;
      if (active === 0) for (const wake of idleWaiters.splice(0)) wake();
      if (stream) pendingRequests.delete(stream);
      if (session && --session.streams === 0) session.idle.refresh();
    });
    handler(req, res);
  };

  const h1 = http.createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.idleTimeoutMs,
      connectionsCheckingInterval: checkIntervalMs,
    },
    tracked,
  );
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: limits.maxConcurrentStreams } }, tracked);
  h2.on('session', (session) => {
    const idle = setTimeout(closeIdleSession, limits.idleTimeoutMs, session).unref();
    h2Sessions.set(session, { streams: 0, idle });
    session.once('close', () => {
      clearTimeout(idle);
      h2Sessions.delete(session);
    });
    if (draining) session.close();
  });
  function closeIdleSession(session: http2.ServerHttp2Session) {
    // A stream opened since the timer was last refreshed: it is refreshed again when the last stream ends.
    if ((h2Sessions.get(session)?.streams ?? 0) === 0) session.close();
  }

  // HTTP/2 requests whose body has not fully arrived within the request timeout are reset. In start order,
  // so the sweep stops at the first one still within its time; a request seen complete leaves the map.
  function sweepRequests() {
    const deadline = performance.now() - limits.requestTimeoutMs;
    for (const [stream, started] of pendingRequests) {
      if (started > deadline) break;
      pendingRequests.delete(stream);
      if (stream.destroyed || stream.state.remoteClose) continue;
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }
  }
  let sweeper: NodeJS.Timeout | undefined;

  // noDelay as Node's own http servers set it: RPC answers are small writes that Nagle's algorithm would hold
  // back waiting for an ACK (measured: ~10% fewer RPCs per second without it).
  // Per-socket listeners are shared functions (`this` is the socket): a closure per socket would keep the
  // bytes read while sniffing alive for as long as the connection lasts.
  function forget(this: net.Socket) {
    const connection = sockets.get(this);
    if (!connection) return;
    sockets.delete(this);
    clearTimeout(connection.sniff);
    if (connection.address === undefined) return;
    const left = (perAddress.get(connection.address) ?? 1) - 1;
    if (left > 0) perAddress.set(connection.address, left);
    else perAddress.delete(connection.address);
  }

  // A refused connection is answered in its own protocol once its first bytes arrive, then closed; what it
  // sends after that is read and dropped, so the close does not reset the answer away.
  function refuse(socket: net.Socket, reason: RefusalReason, address: string | undefined) {
    noteRefusal(reason, address);
    if (lingering.size >= MAX_LINGERING_REFUSALS) {
      socket.destroy();
      return;
    }
    lingering.set(socket, { reason, timer: setTimeout(destroySocket, REFUSAL_LINGER_MS, socket) });
    socket.once('close', unlinger);
    socket.on('error', destroy);
    socket.on('data', answerRefused);
  }
  function answerRefused(this: net.Socket, chunk: Buffer) {
    const refused = lingering.get(this);
    if (!refused || this.writableEnded) return;
    const n = Math.min(chunk.length, PREFACE.length);
    const h2 = chunk.subarray(0, n).equals(PREFACE.subarray(0, n));
    this.end(REFUSALS[h2 ? 'http2' : 'http1'][refused.reason]);
  }
  /**
   * Anything but HTTP/2 on the gRPC port: answered 505 and closed. What the client sends after that is read and
   * dropped (its FIN too, so the socket closes and leaves the caps), and it is cut after REFUSAL_LINGER_MS.
   */
  function answerNotGrpc(socket: net.Socket) {
    socket.on('data', discard);
    socket.resume();
    socket.end(NOT_GRPC);
    const timer = setTimeout(destroySocket, REFUSAL_LINGER_MS, socket);
    socket.once('close', () => clearTimeout(timer));
  }
  function unlinger(this: net.Socket) {
    clearTimeout(lingering.get(this)?.timer);
    lingering.delete(this);
  }

  /** Admission (the caps), then sniffing: `route` gets the socket, paused, with its first bytes put back. */
  function accepting(route: (socket: net.Socket, http2: boolean) => void) {
    return (socket: net.Socket) => {
      const peer = plainAddress(socket.remoteAddress);
      if (sockets.size >= limits.maxConnections) return refuse(socket, 'max_connections', peer);
      // Counted per address unless the cap is off or the peer is exempt (a local proxy is every client).
      const counted =
        limits.maxConnectionsPerAddress > 0 &&
        peer !== undefined &&
        !exempt.check(peer, net.isIP(peer) === 6 ? 'ipv6' : 'ipv4');
      const address = counted ? addressKey(peer) : undefined;
      if (address !== undefined) {
        const fromAddress = perAddress.get(address) ?? 0;
        if (fromAddress >= limits.maxConnectionsPerAddress) {
          return refuse(socket, 'max_connections_per_address', address);
        }
        perAddress.set(address, fromAddress + 1);
      }
      const connection: Connection = {
        address,
        sniff: setTimeout(destroySocket, limits.sniffTimeoutMs, socket),
      };
      sockets.set(socket, connection);
      socket.once('close', forget);
      socket.on('error', destroy);
      let head: Buffer = EMPTY;
      const onData = (chunk: Buffer) => {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const n = Math.min(head.length, PREFACE.length);
        const looksLikeH2 = head.subarray(0, n).equals(PREFACE.subarray(0, n));
        if (looksLikeH2 && head.length < PREFACE.length) return; // wait for the rest of the preface
        clearTimeout(connection.sniff);
        connection.sniff = undefined;
        socket.off('data', onData);
        socket.pause();
        socket.unshift(head);
        head = EMPTY;
        route(socket, looksLikeH2);
      };
      socket.on('data', onData);
    };
  }

  const tcp = net.createServer(
    { noDelay: true },
    accepting((socket, looksLikeH2) => {
      // The http2 session takes the bytes already buffered on the socket itself; do not resume it.
      if (looksLikeH2) h2.emit('connection', socket);
      else {
        h1.emit('connection', socket);
        socket.resume();
      }
    }),
  );
  const extraPorts: net.Server[] = [];

  return {
    http1: h1,
    http2: h2,
    limits,
    inFlight: () => active,
    connections: () => sockets.size,
    listenGrpc(port, host, accept) {
      const server = net.createServer(
        { noDelay: true },
        accepting((socket, looksLikeH2) => {
          if (looksLikeH2) accept(socket);
          else answerNotGrpc(socket);
        }),
      );
      extraPorts.push(server);
      return listenOn(server, port, host);
    },
    listen(port, host) {
      return listenOn(tcp, port, host).then((bound) => {
        // The http server never listens itself (it is handed sockets), and Node starts the checker that
        // enforces its headers and request timeouts only on 'listening': start it (and its connection
        // list, which closeIdleConnections and closeAllConnections use) the same way.
        h1.emit('listening');
        sweeper = setInterval(sweepRequests, checkIntervalMs).unref();
        return bound;
      });
    },
    async close(deadlineMs, onDeadline, alsoDrained) {
      draining = true;
      const stopped = Promise.all(
        [tcp, ...extraPorts].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
      );
      for (const session of h2Sessions.keys()) session.close();
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
      await alsoDrained?.catch(() => {});
      clearInterval(sweeper);
      h1.closeAllConnections();
      // Stops the http server's timeout checker (it never listened, so this only emits 'close').
      h1.close();
      for (const socket of sockets.keys()) socket.destroy();
      for (const socket of lingering.keys()) socket.destroy();
      await stopped;
    },
  };
}
