// CORS on the wire (HERALD_CORS_ORIGINS), over HTTP/1.1 and HTTP/2 (h2c) on the one port:
// - a preflight for the Connect and the gRPC-Web content types from an allowed origin is answered 204 with the
//   methods, the headers Connect clients send (Authorization among them), a max age and Vary: Origin; from any
//   other origin, 403 without CORS headers;
// - an actual request from an allowed origin carries Access-Control-Allow-Origin and the exposed headers; from
//   any other origin, or without Origin, it is served without them; never Allow-Credentials;
// - `*` answers every origin with `*`; unset, nothing changes (no CORS headers, a preflight gets 405 as before);
// - only RPC paths: the health endpoint and the link pages never carry CORS headers;
// - /ws refuses a browser upgrade from an origin not allowed (403) and takes an allowed or absent Origin;
// - the setting itself: origins validated and normalised at start, every bad one named.
import http from 'node:http';
import http2 from 'node:http2';
import { cors } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ConfigError, loadConfig } from '../../src/config.js';
import { pgliteEngine } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';

const APP = 'https://app.example.com';
const DEV = 'http://localhost:5173';
const EVIL = 'https://evil.example.net';
const GET_PREFERENCES = '/herald.v1.NotificationService/GetPreferences';
/** An empty GetPreferencesRequest in one gRPC-Web envelope (flag 0, length 0). */
const EMPTY_ENVELOPE = Buffer.alloc(5);

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

type Protocol = 'http/1.1' | 'h2';

function request(
  protocol: Protocol,
  baseUrl: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<Answer> {
  return protocol === 'h2'
    ? h2Request(baseUrl, method, path, headers, body)
    : h1Request(baseUrl, method, path, headers, body);
}

function h1Request(
  baseUrl: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${baseUrl}${path}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

function h2Request(
  baseUrl: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on('error', reject);
    const stream = session.request({ ':method': method, ':path': path, ...headers }, { endStream: !body });
    const chunks: Buffer[] = [];
    let answered: http2.IncomingHttpHeaders = {};
    stream.on('response', (h) => {
      answered = h;
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('end', () => {
      session.close();
      const { ':status': status, ...rest } = answered;
      resolve({ status: Number(status), headers: rest, body: Buffer.concat(chunks).toString() });
    });
    if (body) stream.end(body);
  });
}

const connectPreflight = (origin: string) => ({
  origin,
  'access-control-request-method': 'POST',
  'access-control-request-headers': 'authorization,connect-protocol-version,content-type',
});
const grpcWebPreflight = (origin: string) => ({
  origin,
  'access-control-request-method': 'POST',
  'access-control-request-headers': 'authorization,content-type,x-grpc-web,x-user-agent',
});

/** The access-control-* headers of an answer. */
const corsHeadersOf = (answer: Answer) =>
  Object.keys(answer.headers).filter((name) => name.startsWith('access-control-'));

const listed = (value: string | string[] | undefined) =>
  String(value ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);

/** Opens /ws with a user token; resolves with the HTTP status of a refused upgrade, or 'acknowledged'. */
function openWebSocket(server: TestServer, token: string, origin?: string): Promise<number | 'acknowledged'> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws`, ['herald.v1', `bearer.${token}`], {
      ...(origin ? { origin } : {}),
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('message', (data) => {
      if ((JSON.parse(String(data)) as { type: string }).type === 'connection_ack') {
        resolve('acknowledged');
        ws.close();
      }
    });
    ws.on('error', (error) => {
      if (ws.readyState !== ws.CLOSED) reject(error);
    });
  });
}

describe('HERALD_CORS_ORIGINS', () => {
  it('takes exact origins, normalised as browsers send them', () => {
    expect(
      loadConfig({
        HERALD_CORS_ORIGINS: 'https://App.Example.com:443, http://localhost:5173,http://[::1]:8080',
      }).corsOrigins,
    ).toEqual(['https://app.example.com', 'http://localhost:5173', 'http://[::1]:8080']);
  });

  it('takes * alone for any origin, and is off when unset or empty', () => {
    expect(loadConfig({ HERALD_CORS_ORIGINS: ' * ' }).corsOrigins).toBe('*');
    expect(loadConfig({}).corsOrigins).toBeUndefined();
    expect(loadConfig({ HERALD_CORS_ORIGINS: '' }).corsOrigins).toBeUndefined();
  });

  it('names every value that is not scheme://host[:port]', () => {
    const bad = [
      'app.example.com',
      'https://app.example.com/',
      'https://app.example.com/app',
      'https://app.example.com?x=1',
      'https://user@app.example.com',
      'ftp://files.example.com',
      'https://app.example.com:99999',
      'null',
      '*',
    ];
    try {
      loadConfig({ HERALD_CORS_ORIGINS: [APP, ...bad].join(',') });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const { problems } = error as ConfigError;
      expect(problems).toHaveLength(bad.length);
      for (const [i, value] of bad.entries()) {
        expect(problems[i]).toContain(`HERALD_CORS_ORIGINS: "${value}" is not an origin`);
      }
    }
    expect(() => loadConfig({ HERALD_CORS_ORIGINS: ', ,' })).toThrow(/HERALD_CORS_ORIGINS names no origin/);
  });
});

describe('CORS with exact origins', () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer(pgliteEngine, {
      overrides: { HERALD_CORS_ORIGINS: `${APP},${DEV}` },
    });
    token = await server.userToken('cors-user');
  });
  afterAll(() => server?.stop());

  for (const protocol of ['http/1.1', 'h2'] as const) {
    for (const [kind, headers] of [
      ['Connect', connectPreflight],
      ['gRPC-Web', grpcWebPreflight],
    ] as const) {
      it(`answers a ${kind} preflight from an allowed origin with 204 and what Connect clients need (${protocol})`, async () => {
        const answer = await request(protocol, server.url, 'OPTIONS', GET_PREFERENCES, headers(DEV));
        expect(answer.status).toBe(204);
        expect(answer.headers['access-control-allow-origin']).toBe(DEV);
        expect(listed(answer.headers['access-control-allow-methods'])).toEqual(
          expect.arrayContaining(['post', 'get']),
        );
        const allowed = listed(answer.headers['access-control-allow-headers']);
        for (const name of [...cors.allowedHeaders, 'Authorization']) {
          expect(allowed).toContain(name.toLowerCase());
        }
        for (const name of listed(headers(DEV)['access-control-request-headers'])) {
          expect(allowed).toContain(name);
        }
        expect(answer.headers['access-control-max-age']).toBe('7200');
        expect(answer.headers.vary).toBe('Origin');
        expect(answer.headers['access-control-allow-credentials']).toBeUndefined();
      });

      it(`answers a ${kind} preflight from any other origin with 403 and no CORS headers (${protocol})`, async () => {
        const answer = await request(protocol, server.url, 'OPTIONS', GET_PREFERENCES, headers(EVIL));
        expect(answer.status).toBe(403);
        expect(corsHeadersOf(answer)).toEqual([]);
      });
    }

    it(`serves a Connect request from an allowed origin with ACAO and the exposed headers (${protocol})`, async () => {
      const answer = await request(
        protocol,
        server.url,
        'POST',
        GET_PREFERENCES,
        {
          origin: APP,
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'connect-protocol-version': '1',
        },
        '{}',
      );
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toMatchObject({ preferences: { userId: 'cors-user' } });
      expect(answer.headers['access-control-allow-origin']).toBe(APP);
      expect(listed(answer.headers['access-control-expose-headers'])).toEqual(
        expect.arrayContaining(cors.exposedHeaders.map((h) => h.toLowerCase())),
      );
      expect(answer.headers.vary).toBe('Origin');
      expect(answer.headers['access-control-allow-credentials']).toBeUndefined();
    });

    it(`serves a gRPC-Web request from an allowed origin with ACAO, grpc-status exposed (${protocol})`, async () => {
      const answer = await request(
        protocol,
        server.url,
        'POST',
        GET_PREFERENCES,
        {
          origin: DEV,
          authorization: `Bearer ${token}`,
          'content-type': 'application/grpc-web+proto',
          'x-grpc-web': '1',
        },
        EMPTY_ENVELOPE,
      );
      expect(answer.status).toBe(200);
      expect(answer.body).toContain('grpc-status: 0');
      expect(answer.headers['access-control-allow-origin']).toBe(DEV);
      expect(listed(answer.headers['access-control-expose-headers'])).toEqual(
        expect.arrayContaining(['grpc-status', 'grpc-message']),
      );
    });

    it(`serves a request from any other origin without CORS headers, so the browser withholds it (${protocol})`, async () => {
      const answer = await request(
        protocol,
        server.url,
        'POST',
        GET_PREFERENCES,
        {
          origin: EVIL,
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'connect-protocol-version': '1',
        },
        '{}',
      );
      expect(answer.status).toBe(200);
      expect(corsHeadersOf(answer)).toEqual([]);
    });
  }

  it('serves clients that send no Origin as before, without CORS headers', async () => {
    const answer = await h2Request(
      server.url,
      'POST',
      GET_PREFERENCES,
      {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'connect-protocol-version': '1',
      },
      '{}',
    );
    expect(answer.status).toBe(200);
    expect(corsHeadersOf(answer)).toEqual([]);
    const { preferences } = await server.client({ token }, 'grpc').getPreferences({});
    expect(preferences?.userId).toBe('cors-user');
  });

  it('gives the plain endpoints and link pages no CORS at all', async () => {
    const health = await h1Request(server.url, 'GET', '/healthz', { origin: APP });
    expect(health.status).toBe(200);
    expect(corsHeadersOf(health)).toEqual([]);
    for (const path of ['/unsubscribe/x', '/preferences/x', '/webhooks/ses', '/healthz']) {
      const preflight = await h1Request(server.url, 'OPTIONS', path, connectPreflight(APP));
      expect(preflight.status, path).not.toBe(204);
      expect(corsHeadersOf(preflight), path).toEqual([]);
    }
  });

  it('refuses a /ws upgrade from an origin not allowed with 403', async () => {
    expect(await openWebSocket(server, token, EVIL)).toBe(403);
  });

  it("takes a /ws upgrade from an allowed origin, Herald's own pages, or without Origin (not a browser)", async () => {
    expect(await openWebSocket(server, token, APP)).toBe('acknowledged');
    expect(await openWebSocket(server, token, server.url)).toBe('acknowledged');
    expect(await openWebSocket(server, token)).toBe('acknowledged');
  });
});

describe('CORS for any origin (*)', () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer(pgliteEngine, { overrides: { HERALD_CORS_ORIGINS: '*' } });
    token = await server.userToken('cors-any');
  });
  afterAll(() => server?.stop());

  it('answers a preflight from any origin with *, never with credentials', async () => {
    for (const protocol of ['http/1.1', 'h2'] as const) {
      const answer = await request(protocol, server.url, 'OPTIONS', GET_PREFERENCES, grpcWebPreflight(EVIL));
      expect(answer.status).toBe(204);
      expect(answer.headers['access-control-allow-origin']).toBe('*');
      expect(listed(answer.headers['access-control-allow-headers'])).toContain('authorization');
      expect(answer.headers['access-control-allow-credentials']).toBeUndefined();
    }
  });

  it('serves a request from any origin with ACAO *', async () => {
    const answer = await h1Request(
      server.url,
      'POST',
      GET_PREFERENCES,
      {
        origin: EVIL,
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'connect-protocol-version': '1',
      },
      '{}',
    );
    expect(answer.status).toBe(200);
    expect(answer.headers['access-control-allow-origin']).toBe('*');
    expect(listed(answer.headers['access-control-expose-headers'])).toContain('grpc-status');
  });

  it('takes a /ws upgrade from any origin', async () => {
    expect(await openWebSocket(server, token, EVIL)).toBe('acknowledged');
  });
});

describe('CORS unset', () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer(pgliteEngine);
    token = await server.userToken('cors-off');
  });
  afterAll(() => server?.stop());

  it('answers a preflight as before, without CORS headers', async () => {
    for (const protocol of ['http/1.1', 'h2'] as const) {
      const answer = await request(protocol, server.url, 'OPTIONS', GET_PREFERENCES, connectPreflight(APP));
      // Connect answers OPTIONS on an RPC path 405 Method Not Allowed.
      expect(answer.status).toBe(405);
      expect(corsHeadersOf(answer)).toEqual([]);
    }
  });

  it('serves a request with an Origin without CORS headers', async () => {
    const answer = await h1Request(
      server.url,
      'POST',
      GET_PREFERENCES,
      {
        origin: APP,
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'connect-protocol-version': '1',
      },
      '{}',
    );
    expect(answer.status).toBe(200);
    expect(corsHeadersOf(answer)).toEqual([]);
    expect(answer.headers.vary).toBeUndefined();
  });

  it('takes a /ws upgrade from any origin', async () => {
    expect(await openWebSocket(server, token, EVIL)).toBe('acknowledged');
  });
});
