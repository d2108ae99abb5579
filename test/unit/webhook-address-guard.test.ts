// The SSRF guard: which addresses a webhook may reach, checked on the addresses a connection actually uses.
import dns from 'node:dns';
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  ADDRESS_REFUSED,
  AddressRefusedError,
  createAddressGuard,
} from '../../src/channels/webhook/address-guard.js';

const LOOPBACK = ['127.0.0.1/32', '::1/128'];

const refusedAddresses: [string, string][] = [
  ['0.0.0.0', '"this network" 0/8'],
  ['0.1.2.3', '"this network" 0/8'],
  ['10.0.0.1', 'private 10/8'],
  ['10.255.255.255', 'private 10/8'],
  ['100.64.0.1', 'carrier-grade NAT 100.64/10'],
  ['100.127.255.254', 'carrier-grade NAT 100.64/10'],
  ['127.0.0.1', 'loopback 127/8'],
  ['127.255.255.254', 'loopback 127/8'],
  ['169.254.169.254', 'link-local 169.254/16 (cloud metadata)'],
  ['172.16.0.1', 'private 172.16/12'],
  ['172.31.255.255', 'private 172.16/12'],
  ['192.0.0.8', 'IETF protocol assignments 192.0.0/24'],
  ['192.0.2.1', 'documentation 192.0.2/24'],
  ['192.168.1.1', 'private 192.168/16'],
  ['198.18.0.1', 'benchmarking 198.18/15'],
  ['198.19.255.255', 'benchmarking 198.18/15'],
  ['198.51.100.7', 'documentation 198.51.100/24'],
  ['203.0.113.9', 'documentation 203.0.113/24'],
  ['224.0.0.251', 'multicast 224/4'],
  ['239.255.255.250', 'multicast 224/4'],
  ['240.0.0.1', 'reserved 240/4'],
  ['255.255.255.255', 'broadcast'],
  ['::', 'IPv6 unspecified'],
  ['::1', 'IPv6 loopback'],
  ['0:0:0:0:0:0:0:1', 'IPv6 loopback, written out'],
  ['fc00::1', 'unique local fc00::/7'],
  ['fd12:3456::1', 'unique local fc00::/7'],
  ['fe80::1', 'link-local fe80::/10'],
  ['fe80::1%eth0', 'link-local with a zone'],
  ['febf::1', 'link-local fe80::/10'],
  ['ff02::1', 'multicast ff00::/8'],
  ['FF05::1:3', 'multicast ff00::/8, upper case'],
  ['2001:db8::1', 'documentation 2001:db8::/32'],
  ['::ffff:127.0.0.1', 'IPv4-mapped loopback, dotted'],
  ['::ffff:7f00:1', 'IPv4-mapped loopback, hex'],
  ['0:0:0:0:0:ffff:7f00:1', 'IPv4-mapped loopback, written out'],
  ['::FFFF:10.0.0.1', 'IPv4-mapped private, upper case'],
  ['::ffff:a9fe:a9fe', 'IPv4-mapped cloud metadata'],
  ['64:ff9b::7f00:1', 'NAT64 of loopback, hex'],
  ['64:ff9b::10.0.0.1', 'NAT64 of private, dotted'],
  ['64:ff9b::a9fe:a9fe', 'NAT64 of cloud metadata'],
  ['64:ff9b:1::1', 'local-use NAT64 64:ff9b:1::/48'],
  ['::7f00:1', 'IPv4-compatible (deprecated) ::/96'],
  ['2002:7f00:1::1', '6to4 of loopback'],
  ['2001::1', 'Teredo 2001::/32'],
  ['100::1', 'discard-only 100::/64'],
];

const globalAddresses = [
  '8.8.8.8',
  '1.1.1.1',
  '100.63.255.255', // just below 100.64/10
  '100.128.0.1', // just above 100.64/10
  '172.15.255.255', // just below 172.16/12
  '172.32.0.1', // just above 172.16/12
  '192.0.1.1',
  '198.17.255.255', // just below 198.18/15
  '198.20.0.1', // just above 198.18/15
  '223.255.255.255', // just below multicast
  '2606:4700::1111',
  '2a00:1450:4001:82a::200e',
  '::ffff:8.8.8.8', // IPv4-mapped global
  '64:ff9b::808:808', // NAT64 of a global address
  '2002:808:808::1', // 6to4 of a global address
];

describe('allows', () => {
  const guard = createAddressGuard([]);

  it.each(refusedAddresses)('refuses %s (%s)', (address) => {
    expect(guard.allows(address)).toBe(false);
  });

  it.each(globalAddresses)('allows the global address %s', (address) => {
    expect(guard.allows(address)).toBe(true);
  });

  it.each(['localhost', 'example.com', '', '1.2.3', '[::1]', '::1::2'])(
    'refuses %j, which is no address',
    (text) => {
      expect(guard.allows(text)).toBe(false);
    },
  );
});

describe('allow-list', () => {
  it('lets an allow-listed loopback address through and nothing else in 127/8', () => {
    const guard = createAddressGuard(['127.0.0.1/32']);
    expect(guard.allows('127.0.0.1')).toBe(true);
    expect(guard.allows('127.0.0.2')).toBe(false);
    expect(guard.allows('::1')).toBe(false);
  });

  it('matches an IPv4-mapped address against an IPv4 allow-list entry', () => {
    const guard = createAddressGuard(['127.0.0.1/32']);
    expect(guard.allows('::ffff:127.0.0.1')).toBe(true);
    expect(guard.allows('::ffff:7f00:1')).toBe(true);
  });

  it('takes IPv6 subnets and wider IPv4 subnets', () => {
    const guard = createAddressGuard(['::1/128', '10.0.0.0/8']);
    expect(guard.allows('::1')).toBe(true);
    expect(guard.allows('10.20.30.40')).toBe(true);
    expect(guard.allows('192.168.0.1')).toBe(false);
  });

  it('reads a bare address as a single-address subnet', () => {
    const guard = createAddressGuard(['127.0.0.1']);
    expect(guard.allows('127.0.0.1')).toBe(true);
    expect(guard.allows('127.0.0.2')).toBe(false);
  });

  it.each(['localhost', '10.0.0.0/33', '::1/129', '10.0.0.0/8/8', '10.0.0.0/', '10.0.0.0/x'])(
    'rejects the allow-list entry %j',
    (entry) => {
      expect(() => createAddressGuard([entry])).toThrow(entry);
    },
  );
});

type LookupOutcome = { err: NodeJS.ErrnoException | null; address: unknown; family: unknown };

function lookupWith(
  lookup: typeof dns.lookup,
  hostname: string,
  options: dns.LookupOptions,
): Promise<LookupOutcome> {
  return new Promise((resolve) => {
    lookup(hostname, options, (err, address, family) => resolve({ err, address, family }));
  });
}

describe('lookup', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it.each([false, true])('refuses localhost when nothing is allow-listed (all: %s)', async (all) => {
    const { err } = await lookupWith(createAddressGuard([]).lookup, 'localhost', { all });
    expect(err).toBeInstanceOf(AddressRefusedError);
    expect(err?.code).toBe(ADDRESS_REFUSED);
    expect(err?.message).toContain('localhost');
    expect(err?.message).toMatch(/127\.0\.0\.1|::1/);
  });

  it('resolves allow-listed localhost to one address and family when all is false', async () => {
    const { err, address, family } = await lookupWith(createAddressGuard(LOOPBACK).lookup, 'localhost', {
      all: false,
    });
    expect(err).toBeNull();
    expect(['127.0.0.1', '::1']).toContain(address);
    expect(family).toBe(address === '::1' ? 6 : 4);
  });

  it('resolves allow-listed localhost to every address when all is true', async () => {
    const { err, address } = await lookupWith(createAddressGuard(LOOPBACK).lookup, 'localhost', {
      all: true,
    });
    expect(err).toBeNull();
    expect(address).toEqual(
      expect.arrayContaining([expect.objectContaining({ address: expect.any(String) })]),
    );
  });

  it('accepts the (hostname, callback) and (hostname, family, callback) shapes', async () => {
    const { lookup } = createAddressGuard(LOOPBACK);
    const bare = await new Promise<string>((resolve, reject) =>
      lookup('localhost', (err, address) => (err ? reject(err) : resolve(address))),
    );
    expect(['127.0.0.1', '::1']).toContain(bare);
    const v4 = await new Promise<[string, number]>((resolve, reject) =>
      lookup('localhost', 4, (err, address, family) => (err ? reject(err) : resolve([address, family]))),
    );
    expect(v4).toEqual(['127.0.0.1', 4]);
  });

  it('refuses a host when any one of its addresses is refused, even if the caller wants one', async () => {
    vi.spyOn(dns, 'lookup').mockImplementation(((_host: string, _options: unknown, cb: LookupAllCallback) =>
      cb(null, [
        { address: '93.184.215.14', family: 4 },
        { address: '10.0.0.7', family: 4 },
      ])) as typeof dns.lookup);
    const { err } = await lookupWith(createAddressGuard([]).lookup, 'rebind.example', { all: false });
    expect(err?.code).toBe(ADDRESS_REFUSED);
    expect(err?.message).toContain('rebind.example');
    expect(err?.message).toContain('10.0.0.7');
  });

  it('passes resolver errors through unchanged', async () => {
    const { err } = await lookupWith(createAddressGuard([]).lookup, 'no-such-host.invalid', { all: true });
    expect(err?.code).toBeDefined();
    expect(err?.code).not.toBe(ADDRESS_REFUSED);
  });
});

type LookupAllCallback = (err: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void;

describe('lookup on a real connection', () => {
  let server: Server;
  let port = 0;
  beforeAll(async () => {
    server = createServer((_req, res) => res.end('reached'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP port');
    port = address.port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('makes net.connect fail before any byte is sent', async () => {
    const socket = net.connect({ host: 'localhost', port, lookup: createAddressGuard([]).lookup });
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => socket.once('error', resolve));
    expect(err.code).toBe(ADDRESS_REFUSED);
    expect(socket.bytesWritten).toBe(0);
  });

  it('stops an undici request to localhost unless loopback is allow-listed', async () => {
    const refusing = new Agent({ connect: { lookup: createAddressGuard([]).lookup } });
    const allowing = new Agent({ connect: { lookup: createAddressGuard(LOOPBACK).lookup } });
    try {
      await expect(request(`http://localhost:${port}/`, { dispatcher: refusing })).rejects.toMatchObject({
        code: ADDRESS_REFUSED,
      });
      const reply = await request(`http://localhost:${port}/`, { dispatcher: allowing });
      expect(await reply.body.text()).toBe('reached');
    } finally {
      await refusing.close();
      await allowing.close();
    }
  });
});

describe('checkLiteral', () => {
  const guard = createAddressGuard([]);

  it.each(['[::1]', '127.0.0.1', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '169.254.169.254', '[fe80::1]'])(
    'refuses the literal %s',
    (hostname) => {
      expect(() => guard.checkLiteral(hostname)).toThrow(
        expect.objectContaining({ code: ADDRESS_REFUSED, message: expect.stringContaining(hostname) }),
      );
    },
  );

  it.each(['8.8.8.8', '[2606:4700::1111]'])('passes the global literal %s', (hostname) => {
    expect(() => guard.checkLiteral(hostname)).not.toThrow();
  });

  it('leaves host names to the lookup', () => {
    expect(() => guard.checkLiteral('localhost')).not.toThrow();
  });

  it('refuses the hosts WHATWG URL parsing produces from disguised loopback forms', () => {
    for (const url of ['http://[::1]:8080/', 'http://0x7f000001/', 'http://2130706433/', 'http://127.1/']) {
      expect(() => guard.checkLiteral(new URL(url).hostname), url).toThrow(AddressRefusedError);
    }
  });

  it('passes an allow-listed literal', () => {
    expect(() => createAddressGuard(['::1/128']).checkLiteral('[::1]')).not.toThrow();
  });
});
