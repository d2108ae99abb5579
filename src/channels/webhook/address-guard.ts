// SSRF guard for webhook endpoints. Endpoint URLs come from customers, so before a socket opens, every
// address the host resolves to must be a global unicast address. The check
// runs inside the connection's own DNS lookup, so the address checked is the address connected to: a
// second resolution that could answer differently (DNS rebinding) never happens.
import dns from 'node:dns';
import net from 'node:net';

export const ADDRESS_REFUSED = 'ERR_HERALD_ADDRESS_REFUSED';

export class AddressRefusedError extends Error {
  readonly code = ADDRESS_REFUSED;
  constructor(
    readonly hostname: string,
    readonly address: string,
  ) {
    super(`webhook host ${hostname} has the address ${address}, which is not a global address`);
    this.name = 'AddressRefusedError';
  }
}

export interface AddressGuard {
  /** True when the address may be contacted: a global unicast address, or inside the allow-list. */
  allows(address: string): boolean;
  /**
   * A dns.lookup-compatible function (for undici's `connect.lookup` / net.connect `lookup`) that resolves,
   * then refuses with an {@link AddressRefusedError} when any resolved address is refused, even when the
   * caller asked for one address only. Supports every dns.lookup call shape, including `all: true`.
   */
  lookup: typeof dns.lookup;
  /** For URLs whose host is an IP literal (lookup is never called for those): throws the same error when refused. */
  checkLiteral(hostname: string): void;
}

/** One row of {@link SPECIAL_PURPOSE_RANGES}. */
export interface SpecialPurposeRange {
  /** The range in CIDR notation, as the registry writes it. */
  readonly cidr: string;
  /** The registry's name for the range (and the registry rows nested in it), with its RFC. */
  readonly name: string;
  /**
   * Set on the IPv6 ranges whose addresses carry an IPv4 address the traffic ends up at: the bit offset of those
   * 32 bits. Such an address is judged by its IPv4 address (allow-list included) instead of being refused.
   */
  readonly ipv4At?: number;
}

/**
 * Every address range that is not globally reachable, mirroring the IANA IPv4 and IPv6 Special-Purpose Address
 * Registries (https://www.iana.org/assignments/iana-ipv4-special-registry and
 * https://www.iana.org/assignments/iana-ipv6-special-registry, checked 2026-11-30): each row whose "Globally
 * Reachable" column is False, or N/A for a range that is not global in practice, plus the non-unicast and
 * deprecated ranges of the IANA IPv4 and IPv6 Address Space registries (multicast, site-local, IPv4-compatible)
 * and the IPv4-translated form of RFC 2765. An address inside a row is refused unless the allow-list names it.
 *
 * Rows nested in a larger refused row are named in that row rather than listed again. Where the registry marks a
 * nested row globally reachable (192.0.0.9/32 and 192.0.0.10/32 inside 192.0.0.0/24; the anycast, AMT, AS112,
 * ORCHIDv2 and DRIP rows inside 2001::/23), the whole block is refused all the same: those are anycast service
 * addresses answered by whichever server is nearest (for PCP and TURN, typically the local network's own), and no
 * webhook endpoint lives there.
 *
 * Registry rows that are globally reachable and stand on their own are deliberately absent, so they pass like
 * any public address: 192.31.196.0/24 (AS112-v4), 192.52.193.0/24 (AMT), 192.175.48.0/24 (Direct Delegation
 * AS112 Service) and 2620:4f:8000::/48 (Direct Delegation AS112 Service).
 */
export const SPECIAL_PURPOSE_RANGES: readonly SpecialPurposeRange[] = [
  // IPv4 Special-Purpose Address Registry.
  { cidr: '0.0.0.0/8', name: '"This network", including "this host on this network" 0.0.0.0/32 (RFC 791)' },
  { cidr: '10.0.0.0/8', name: 'Private-Use (RFC 1918)' },
  { cidr: '100.64.0.0/10', name: 'Shared Address Space, carrier-grade NAT (RFC 6598)' },
  { cidr: '127.0.0.0/8', name: 'Loopback (RFC 1122)' },
  { cidr: '169.254.0.0/16', name: 'Link Local, including cloud metadata at 169.254.169.254 (RFC 3927)' },
  { cidr: '172.16.0.0/12', name: 'Private-Use (RFC 1918)' },
  {
    cidr: '192.0.0.0/24',
    name:
      'IETF Protocol Assignments (RFC 6890), including IPv4 Service Continuity 192.0.0.0/29 (RFC 7335), ' +
      'the dummy address 192.0.0.8/32 (RFC 7600), PCP anycast 192.0.0.9/32 (RFC 7723), TURN anycast ' +
      '192.0.0.10/32 (RFC 8155) and NAT64/DNS64 discovery 192.0.0.170/32 and 192.0.0.171/32 (RFC 8880)',
  },
  { cidr: '192.0.2.0/24', name: 'Documentation, TEST-NET-1 (RFC 5737)' },
  {
    cidr: '192.88.99.0/24',
    name: 'Deprecated 6to4 Relay Anycast (RFC 7526), including the 6a44 relay 192.88.99.2/32 (RFC 6751)',
  },
  { cidr: '192.168.0.0/16', name: 'Private-Use (RFC 1918)' },
  { cidr: '198.18.0.0/15', name: 'Benchmarking (RFC 2544)' },
  { cidr: '198.51.100.0/24', name: 'Documentation, TEST-NET-2 (RFC 5737)' },
  { cidr: '203.0.113.0/24', name: 'Documentation, TEST-NET-3 (RFC 5737)' },
  { cidr: '224.0.0.0/4', name: 'Multicast, not unicast (RFC 5771; IPv4 Multicast Address Space registry)' },
  {
    cidr: '240.0.0.0/4',
    name: 'Reserved (RFC 1112), including Limited Broadcast 255.255.255.255/32 (RFC 919)',
  },

  // IPv6 Special-Purpose Address Registry, and the IPv6 Address Space registry.
  {
    cidr: '::/96',
    name:
      'Deprecated IPv4-compatible addresses (RFC 4291), including Unspecified ::/128 and Loopback ::1/128 ' +
      '(RFC 4291); refused outright, whatever IPv4 address they carry',
  },
  { cidr: '::ffff:0:0/96', name: 'IPv4-mapped Address (RFC 4291): an IPv4 address on the wire', ipv4At: 96 },
  {
    cidr: '::ffff:0:0:0/96',
    name: 'IPv4-translated addresses (RFC 2765, dropped by RFC 6145); refused outright',
  },
  { cidr: '64:ff9b::/96', name: 'IPv4-IPv6 Translation, well-known NAT64 prefix (RFC 6052)', ipv4At: 96 },
  { cidr: '64:ff9b:1::/48', name: 'IPv4-IPv6 Translation, local use (RFC 8215); refused outright' },
  { cidr: '100::/64', name: 'Discard-Only Address Block (RFC 6666)' },
  { cidr: '100:0:0:1::/64', name: 'Dummy IPv6 Prefix (RFC 9780)' },
  {
    cidr: '2001::/23',
    name:
      'IETF Protocol Assignments (RFC 2928), including TEREDO 2001::/32 (RFC 4380), PCP, TURN and DNS-SD SRP ' +
      'anycast 2001:1::1/128 to 2001:1::3/128, Benchmarking 2001:2::/48 (RFC 5180), AMT 2001:3::/32 (RFC 7450), ' +
      'AS112-v6 2001:4:112::/48 (RFC 7535), deprecated ORCHID 2001:10::/28 (RFC 4843), ORCHIDv2 2001:20::/28 ' +
      '(RFC 7343) and Drone Remote ID 2001:30::/28 (RFC 9374)',
  },
  { cidr: '2001:db8::/32', name: 'Documentation (RFC 3849)' },
  { cidr: '2002::/16', name: '6to4 (RFC 3056): tunnels to the IPv4 address in bits 16 to 47', ipv4At: 16 },
  { cidr: '3fff::/20', name: 'Documentation (RFC 9637)' },
  { cidr: '5f00::/16', name: 'Segment Routing (SRv6) SIDs (RFC 9602)' },
  { cidr: 'fc00::/7', name: 'Unique-Local (RFC 4193)' },
  { cidr: 'fe80::/10', name: 'Link-Local Unicast (RFC 4291)' },
  { cidr: 'fec0::/10', name: 'Deprecated site-local (RFC 3879; IPv6 Address Space registry)' },
  { cidr: 'ff00::/8', name: 'Multicast, not unicast (RFC 4291; IPv6 Address Space registry)' },
];

/** A range whose addresses lead to the IPv4 address at bit `ipv4At`. */
interface Embedding {
  network: bigint;
  prefix: number;
  ipv4At: number;
}

// Built once from the table: the ranges refused outright, and the ranges judged by the IPv4 address they carry.
// The IPv4-mapped range must stay out of the BlockList: a BlockList applies an IPv6 rule for ::ffff:0:0/96 to
// every IPv4 address, and an IPv4 rule to the IPv4-mapped form of its addresses.
const REFUSED = new net.BlockList();
const EMBEDDINGS: Embedding[] = [];
for (const range of SPECIAL_PURPOSE_RANGES) {
  const [network = '', prefixText = ''] = range.cidr.split('/');
  const prefix = Number(prefixText);
  if (range.ipv4At === undefined) REFUSED.addSubnet(network, prefix, net.isIPv4(network) ? 'ipv4' : 'ipv6');
  else EMBEDDINGS.push({ network: ipv6Value(network), prefix, ipv4At: range.ipv4At });
}

export function createAddressGuard(allowList: readonly string[]): AddressGuard {
  const allowed = new net.BlockList();
  for (const entry of allowList) addAllowListEntry(allowed, entry);

  const allows = (address: string): boolean => {
    const bare = withoutZone(address);
    const version = net.isIP(bare);
    if (version === 0) return false;
    const family = version === 4 ? 'ipv4' : 'ipv6';
    if (allowed.check(bare, family)) return true;
    if (REFUSED.check(bare, family)) return false;
    const embedded = family === 'ipv6' ? embeddedIpv4(bare) : undefined;
    return embedded === undefined || allows(embedded);
  };

  const lookup = createGuardedLookup(allows);

  const checkLiteral = (hostname: string): void => {
    const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
    if (net.isIP(withoutZone(bare)) === 0) return; // a name: the guarded lookup checks what it resolves to
    if (!allows(bare)) throw new AddressRefusedError(hostname, bare);
  };

  return { allows, lookup, checkLiteral };
}

function addAllowListEntry(list: net.BlockList, entry: string): void {
  const [network = '', prefixText, extra] = entry.trim().split('/');
  const version = net.isIP(network);
  const bits = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  const validPrefix = prefixText === undefined || /^\d{1,3}$/.test(prefixText);
  if (version === 0 || extra !== undefined || !validPrefix || prefix > bits) {
    throw new TypeError(`webhook address allow-list: "${entry}" is not a CIDR such as 10.0.0.0/8 or ::1/128`);
  }
  list.addSubnet(network, prefix, version === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The IPv4 address traffic to an IPv6 address ends up at, when the address lies in a table range that carries one
 * (IPv4-mapped, NAT64, 6to4).
 */
function embeddedIpv4(address: string): string | undefined {
  const value = ipv6Value(address);
  for (const { network, prefix, ipv4At } of EMBEDDINGS) {
    const hostBits = BigInt(128 - prefix);
    if (value >> hostBits !== network >> hostBits) continue;
    const ipv4 = Number((value >> BigInt(96 - ipv4At)) & 0xffffffffn);
    return [ipv4 >>> 24, (ipv4 >>> 16) & 0xff, (ipv4 >>> 8) & 0xff, ipv4 & 0xff].join('.');
  }
  return undefined;
}

/** The 128-bit value of an address that net.isIP already accepted as IPv6 (no zone). */
function ipv6Value(address: string): bigint {
  return ipv6Groups(address).reduce((value, group) => (value << 16n) | BigInt(group), 0n);
}

/** A link-local address may carry a zone (`fe80::1%eth0`); the zone says which interface, not which host. */
function withoutZone(address: string): string {
  const zone = address.indexOf('%');
  return zone === -1 ? address : address.slice(0, zone);
}

/** The eight 16-bit groups of an address that net.isIP already accepted as IPv6. */
function ipv6Groups(address: string): number[] {
  const parse = (part: string): number[] =>
    part === ''
      ? []
      : part
          .split(':')
          .flatMap((piece) => (net.isIPv4(piece) ? ipv4Groups(piece) : [Number.parseInt(piece, 16)]));
  const [head = '', tail] = address.split('::');
  const left = parse(head);
  if (tail === undefined) return left;
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

function ipv4Groups(address: string): number[] {
  const [a = 0, b = 0, c = 0, d = 0] = address.split('.').map(Number);
  return [(a << 8) | b, (c << 8) | d];
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

function createGuardedLookup(allows: (address: string) => boolean): typeof dns.lookup {
  function guardedLookup(
    hostname: string,
    optionsOrCallback: number | dns.LookupOptions | LookupCallback | undefined,
    maybeCallback?: LookupCallback,
  ): void {
    const callback = typeof optionsOrCallback === 'function' ? optionsOrCallback : maybeCallback;
    if (callback === undefined) throw new TypeError('lookup needs a callback');
    const options: dns.LookupOptions =
      typeof optionsOrCallback === 'number'
        ? { family: optionsOrCallback }
        : typeof optionsOrCallback === 'object' && optionsOrCallback !== null
          ? optionsOrCallback
          : {};
    // Resolve every address even when the caller wants one: a host is refused if any of its addresses is.
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, options.all ? [] : '', 0);
      const refusedAddress = addresses.find((a) => !allows(a.address));
      if (refusedAddress !== undefined) {
        return callback(new AddressRefusedError(hostname, refusedAddress.address), options.all ? [] : '', 0);
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (first === undefined) return callback(notFound(hostname), '', 0);
      return callback(null, first.address, first.family);
    });
  }
  // One implementation serves every overload of dns.lookup; TypeScript cannot check overloads against a
  // single implementation signature, hence the cast.
  return guardedLookup as typeof dns.lookup;
}

function notFound(hostname: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
  err.code = 'ENOTFOUND';
  return err;
}
