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

type Subnet = readonly [network: string, prefix: number];

// IANA special-purpose registries: nothing here is reachable as a public host.
const REFUSED_IPV4: readonly Subnet[] = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, including cloud metadata at 169.254.169.254
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation (TEST-NET-1)
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation (TEST-NET-2)
  ['203.0.113.0', 24], // documentation (TEST-NET-3)
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, including broadcast 255.255.255.255
];

const REFUSED_IPV6: readonly Subnet[] = [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['::', 96], // IPv4-compatible (deprecated, never global)
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard-only
  ['2001::', 32], // Teredo: tunnels to an address it embeds
  ['2001:2::', 48], // benchmarking
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
];

// Prefixes that carry an IPv4 address the traffic ends up at: the embedded address must pass as well.
const NAT64_PREFIX: readonly number[] = [0x64, 0xff9b, 0, 0, 0, 0]; // 64:ff9b::/96, IPv4 in the last 32 bits
const SIX_TO_FOUR = 0x2002; // 2002::/16, IPv4 in bits 16..47

interface Target {
  family: 'ipv4' | 'ipv6';
  address: string;
  /** The IPv4 address a NAT64 or 6to4 address leads to. */
  embeddedIpv4?: string;
}

export function createAddressGuard(allowList: readonly string[]): AddressGuard {
  const allowed = new net.BlockList();
  for (const entry of allowList) addAllowListEntry(allowed, entry);
  const refused = new net.BlockList();
  for (const [network, prefix] of REFUSED_IPV4) refused.addSubnet(network, prefix, 'ipv4');
  for (const [network, prefix] of REFUSED_IPV6) refused.addSubnet(network, prefix, 'ipv6');

  const allows = (address: string): boolean => {
    const target = parseTarget(address);
    if (target === undefined) return false;
    if (allowed.check(target.address, target.family)) return true;
    if (refused.check(target.address, target.family)) return false;
    return target.embeddedIpv4 === undefined || allows(target.embeddedIpv4);
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

/** The address traffic actually goes to: IPv4-mapped IPv6 is an IPv4 address on the wire. */
function parseTarget(address: string): Target | undefined {
  const bare = withoutZone(address);
  const version = net.isIP(bare);
  if (version === 4) return { family: 'ipv4', address: bare };
  if (version !== 6) return undefined;
  const groups = ipv6Groups(bare);
  const isMapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (isMapped) return { family: 'ipv4', address: ipv4FromGroups(groups[6], groups[7]) };
  if (NAT64_PREFIX.every((g, i) => groups[i] === g)) {
    return { family: 'ipv6', address: bare, embeddedIpv4: ipv4FromGroups(groups[6], groups[7]) };
  }
  if (groups[0] === SIX_TO_FOUR) {
    return { family: 'ipv6', address: bare, embeddedIpv4: ipv4FromGroups(groups[1], groups[2]) };
  }
  return { family: 'ipv6', address: bare };
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

function ipv4FromGroups(high = 0, low = 0): string {
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
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
