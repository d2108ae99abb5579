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
  SPECIAL_PURPOSE_RANGES,
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

/**
 * For every row of the table: addresses inside it, which are refused, and the nearest addresses outside it,
 * which pass. For a range judged by the IPv4 address it carries, `allowed` also holds addresses inside it that
 * carry a global IPv4 address. Where a row borders another row on both sides (224/4 and 240/4; fe80::/10,
 * fec0::/10 and ff00::/8), `allowed` holds the nearest address no row covers. IPv6 neighbours outside 2000::/3
 * are unallocated: no registry marks them, so they pass, and here they show that the rows end where they should.
 */
const tableCases: Record<string, { refused: string[]; allowed: string[] }> = {
  '0.0.0.0/8': { refused: ['0.0.0.0', '0.255.255.255'], allowed: ['1.0.0.0'] },
  '10.0.0.0/8': { refused: ['10.0.0.0', '10.255.255.255'], allowed: ['9.255.255.255', '11.0.0.0'] },
  '100.64.0.0/10': {
    refused: ['100.64.0.0', '100.127.255.255'],
    allowed: ['100.63.255.255', '100.128.0.0'],
  },
  '127.0.0.0/8': { refused: ['127.0.0.0', '127.255.255.255'], allowed: ['126.255.255.255', '128.0.0.0'] },
  '169.254.0.0/16': {
    refused: ['169.254.0.0', '169.254.169.254', '169.254.255.255'],
    allowed: ['169.253.255.255', '169.255.0.0'],
  },
  '172.16.0.0/12': { refused: ['172.16.0.0', '172.31.255.255'], allowed: ['172.15.255.255', '172.32.0.0'] },
  '192.0.0.0/24': {
    // 192.0.0.9 (PCP anycast) and 192.0.0.10 (TURN anycast) are refused with the block, deliberately.
    refused: ['192.0.0.0', '192.0.0.8', '192.0.0.9', '192.0.0.10', '192.0.0.170', '192.0.0.255'],
    allowed: ['191.255.255.255', '192.0.1.0'],
  },
  '192.0.2.0/24': { refused: ['192.0.2.0', '192.0.2.255'], allowed: ['192.0.1.255', '192.0.3.0'] },
  '192.88.99.0/24': {
    refused: ['192.88.99.0', '192.88.99.1', '192.88.99.2', '192.88.99.255'],
    allowed: ['192.88.98.255', '192.88.100.0'],
  },
  '192.168.0.0/16': {
    refused: ['192.168.0.0', '192.168.255.255'],
    allowed: ['192.167.255.255', '192.169.0.0'],
  },
  '198.18.0.0/15': { refused: ['198.18.0.0', '198.19.255.255'], allowed: ['198.17.255.255', '198.20.0.0'] },
  '198.51.100.0/24': {
    refused: ['198.51.100.0', '198.51.100.255'],
    allowed: ['198.51.99.255', '198.51.101.0'],
  },
  '203.0.113.0/24': {
    refused: ['203.0.113.0', '203.0.113.255'],
    allowed: ['203.0.112.255', '203.0.114.0'],
  },
  '224.0.0.0/4': { refused: ['224.0.0.0', '239.255.255.255'], allowed: ['223.255.255.255'] },
  '240.0.0.0/4': {
    refused: ['240.0.0.0', '255.255.255.254', '255.255.255.255'],
    allowed: ['223.255.255.255'],
  },
  '::/96': {
    // Refused outright: even an IPv4-compatible address that carries a global IPv4 address.
    refused: ['::', '::1', '::7f00:1', '::127.0.0.1', '::8.8.8.8', '::ffff:ffff'],
    allowed: ['::1:0:0'],
  },
  '::ffff:0:0/96': {
    refused: ['::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:0.0.0.0', '::ffff:255.255.255.255'],
    allowed: ['::ffff:8.8.8.8', '::ffff:101:101', '::fffe:ffff:ffff', '::1:0:0:0'],
  },
  '::ffff:0:0:0/96': {
    // Refused outright, whatever IPv4 address it carries.
    refused: ['::ffff:0:127.0.0.1', '::ffff:0:7f00:1', '::ffff:0:8.8.8.8', '::ffff:0:0:0'],
    allowed: ['::fffe:ffff:ffff:ffff', '::ffff:1:0:0'],
  },
  '64:ff9b::/96': {
    refused: ['64:ff9b::127.0.0.1', '64:ff9b::7f00:1', '64:ff9b::10.0.0.1', '64:ff9b::c058:6301'],
    // 64:ff9b::1:7f00:1 lies outside the /96: no NAT64 translates it to 127.0.0.1.
    allowed: [
      '64:ff9b::8.8.8.8',
      '64:ff9b::808:808',
      '64:ff9b::1:7f00:1',
      '64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff',
    ],
  },
  '64:ff9b:1::/48': {
    // Refused outright: 64:ff9b:1:808:8:800:: carries 8.8.8.8 in the RFC 6052 /48 layout.
    refused: ['64:ff9b:1::', '64:ff9b:1:808:8:800::', '64:ff9b:1:ffff:ffff:ffff:ffff:ffff'],
    allowed: ['64:ff9b:0:ffff:ffff:ffff:ffff:ffff', '64:ff9b:2::'],
  },
  '100::/64': {
    refused: ['100::', '100::ffff:ffff:ffff:ffff'],
    allowed: ['ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  },
  '100:0:0:1::/64': {
    refused: ['100:0:0:1::', '100:0:0:1:ffff:ffff:ffff:ffff'],
    allowed: ['100:0:0:2::'],
  },
  '2001::/23': {
    // The registry's globally reachable rows inside the /23 are refused with it, deliberately.
    refused: [
      '2001::',
      '2001:0:4136:e378:8000:63bf:3fff:fdd2', // Teredo
      '2001:1::1', // PCP anycast
      '2001:1::2', // TURN anycast
      '2001:1::3', // DNS-SD SRP anycast
      '2001:2::1', // benchmarking
      '2001:3::1', // AMT
      '2001:4:112::1', // AS112-v6
      '2001:10::1', // ORCHID (deprecated)
      '2001:20::1', // ORCHIDv2
      '2001:30::1', // Drone Remote ID
      '2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff',
    ],
    allowed: ['2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '2001:200::'],
  },
  '2001:db8::/32': {
    refused: ['2001:db8::', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff'],
    allowed: ['2001:db7:ffff:ffff:ffff:ffff:ffff:ffff', '2001:db9::'],
  },
  '2002::/16': {
    refused: [
      '2002::', // 0.0.0.0
      '2002:7f00:1::',
      '2002:7f00:1::1',
      '2002:a00:1::1', // 10.0.0.1
      '2002:a9fe:a9fe::', // 169.254.169.254
      '2002:c058:6301::', // 192.88.99.1, the deprecated relay anycast
    ],
    allowed: ['2002:808:808::1', '2002:101:101:1::1', '2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '2003::'],
  },
  '3fff::/20': {
    refused: ['3fff::', '3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff'],
    allowed: ['3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '3fff:1000::'],
  },
  '5f00::/16': {
    refused: ['5f00::', '5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    allowed: ['5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '5f01::'],
  },
  'fc00::/7': {
    refused: ['fc00::', 'fd12:3456::1', 'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    allowed: ['fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'fe00::'],
  },
  'fe80::/10': {
    refused: ['fe80::', 'fe80::1%eth0', 'febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    allowed: ['fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  },
  'fec0::/10': {
    refused: ['fec0::', 'fec0::1', 'FEFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF'],
    allowed: ['fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  },
  'ff00::/8': {
    refused: ['ff00::', 'ff02::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    allowed: ['fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  },
};

describe('the special-purpose table', () => {
  const guard = createAddressGuard([]);
  const rows = SPECIAL_PURPOSE_RANGES.map((range) => [range.cidr, range.name] as const);

  it('has a case for every row, and a row for every case', () => {
    expect(Object.keys(tableCases).sort()).toEqual(rows.map(([cidr]) => cidr).sort());
    for (const [cidr, { refused, allowed }] of Object.entries(tableCases)) {
      expect(refused.length, cidr).toBeGreaterThan(0);
      expect(allowed.length, cidr).toBeGreaterThan(0);
    }
  });

  it('writes every row as a valid CIDR with a name', () => {
    for (const { cidr, name, ipv4At } of SPECIAL_PURPOSE_RANGES) {
      const [network = '', prefix = ''] = cidr.split('/');
      const version = net.isIP(network);
      expect(version, cidr).not.toBe(0);
      expect(Number(prefix), cidr).toBeLessThanOrEqual(version === 4 ? 32 : 128);
      expect(name, cidr).not.toBe('');
      if (ipv4At !== undefined) expect(ipv4At + 32, cidr).toBeLessThanOrEqual(128);
    }
  });

  describe.each(rows)('%s (%s)', (cidr) => {
    const { refused = [], allowed = [] } = tableCases[cidr] ?? {};
    it.each(refused)('refuses %s', (address) => {
      expect(guard.allows(address)).toBe(false);
    });
    it.each(allowed)('allows %s', (address) => {
      expect(guard.allows(address)).toBe(true);
    });
  });

  it('refuses the three forms named in issue 9', () => {
    for (const address of ['::ffff:0:127.0.0.1', '::ffff:0:10.0.0.1', '::ffff:0:8.8.8.8']) {
      expect(guard.allows(address), `IPv4-translated ${address}`).toBe(false);
    }
    for (const address of ['fec0::1', 'fec0:0:0:ffff::1', 'fedc:ba98::1']) {
      expect(guard.allows(address), `site-local ${address}`).toBe(false);
    }
    for (const address of [
      '192.88.99.1',
      '::ffff:192.88.99.1',
      '64:ff9b::192.88.99.1',
      '2002:c058:6301::1',
    ]) {
      expect(guard.allows(address), `6to4 relay anycast ${address}`).toBe(false);
    }
  });
});

/**
 * IPv6 forms that carry an IPv4 address: [form, 127.0.0.1 spelt in it, 8.8.8.8 spelt in it]. The last list is
 * empty for the forms refused outright, whatever they carry; the others are judged by the address they carry.
 */
const ipv4EmbeddingForms: [string, string[], string[]][] = [
  [
    'IPv4-mapped',
    ['::ffff:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:ffff:7f00:1'],
    ['::ffff:8.8.8.8', '::ffff:808:808'],
  ],
  ['IPv4-translated', ['::ffff:0:127.0.0.1', '::ffff:0:7f00:1', '0:0:0:0:ffff:0:7f00:1'], []],
  ['IPv4-compatible', ['::127.0.0.1', '::7f00:1', '0:0:0:0:0:0:7f00:1'], []],
  [
    'NAT64 well-known',
    ['64:ff9b::127.0.0.1', '64:ff9b::7f00:1', '64:ff9b:0:0:0:0:7f00:1'],
    ['64:ff9b::8.8.8.8', '64:ff9b::808:808'],
  ],
  ['NAT64 local use', ['64:ff9b:1:7f00:0:100::'], []],
  ['6to4', ['2002:7f00:1::', '2002:7f00:0001:0:0:0:0:1'], ['2002:808:808::', '2002:0808:0808:0:0:0:0:1']],
  ['Teredo', ['2001:0:7f00:1::'], []],
];

describe('IPv6 forms that carry an IPv4 address', () => {
  const guard = createAddressGuard([]);

  it.each(ipv4EmbeddingForms)(
    '%s: refuses loopback in every spelling, passes a global address only where the form is judged',
    (_form, loopback, global) => {
      for (const address of loopback) expect(guard.allows(address), address).toBe(false);
      for (const address of global) expect(guard.allows(address), address).toBe(true);
    },
  );

  it('opens a judged form through the allow-list of its IPv4 address, and no form refused outright', () => {
    const guard = createAddressGuard(['127.0.0.1/32']);
    expect(guard.allows('::ffff:127.0.0.1')).toBe(true);
    expect(guard.allows('64:ff9b::127.0.0.1')).toBe(true);
    expect(guard.allows('2002:7f00:1::')).toBe(true);
    expect(guard.allows('::ffff:0:127.0.0.1')).toBe(false);
    expect(guard.allows('::127.0.0.1')).toBe(false);
    expect(guard.allows('64:ff9b::127.0.0.2')).toBe(false);
  });
});

describe('global addresses', () => {
  const guard = createAddressGuard([]);

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '2606:4700:4700::1111',
    '2a00:1450:4001:82a::200e',
    '2001:4860:4860::8888',
    // Registry rows that are globally reachable and stand on their own are left out of the table.
    '192.31.196.1', // AS112-v4
    '192.52.193.1', // AMT
    '192.175.48.1', // Direct Delegation AS112 Service
    '2620:4f:8000::1', // Direct Delegation AS112 Service
  ])('allows %s', (address) => {
    expect(guard.allows(address)).toBe(true);
  });
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
