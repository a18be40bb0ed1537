/**
 * IP addresses as the rest of the code sees them: a canonical string plus a
 * family. IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack socket reports
 * for an IPv4 peer) is folded to plain IPv4, so that "is this the client's own
 * address" compares like with like.
 */
import { Address4, Address6 } from 'ip-address';

export type Family = 4 | 6;

export interface IpAddress {
  family: Family;
  /** Canonical text: dotted quad, or RFC 5952 form for IPv6. */
  address: string;
}

export interface Endpoint extends IpAddress {
  port: number;
}

const V4_MAPPED_PREFIX = '0000:0000:0000:0000:0000:ffff:';

/**
 * parseIp's answers by text. Every session and data channel parses the same
 * few socket addresses several times over, and ip-address takes about 2 µs
 * for a dotted quad and 18–33 µs for IPv6 or `::ffff:a.b.c.d` (what a
 * dual-stack listener reports) where a lookup takes 0.04 µs. Dropped whole
 * when full: peers cannot grow it.
 */
const parsed = new Map<string, IpAddress | undefined>();
const PARSED_MAX = 1024;
/** Longer than any address text (IPv6 in brackets with a dotted tail is 47). */
const PARSED_TEXT_MAX = 64;

export function parseIp(text: string): IpAddress | undefined {
  if (text.length > PARSED_TEXT_MAX) return parseIpText(text);
  let ip = parsed.get(text);
  if (ip === undefined && !parsed.has(text)) {
    ip = parseIpText(text);
    if (parsed.size >= PARSED_MAX) parsed.clear();
    parsed.set(text, ip);
  }
  // A copy: callers own what they get.
  return ip && { family: ip.family, address: ip.address };
}

function parseIpText(text: string): IpAddress | undefined {
  const t = text.trim().replace(/^\[(.*)\]$/, '$1');
  if (Address4.isValid(t) && /^\d+\.\d+\.\d+\.\d+$/.test(t)) {
    return { family: 4, address: new Address4(t).correctForm() };
  }
  // Zone ids (`fe80::1%eth0`) and prefix lengths (`fd00::1/64`, which
  // Address6 accepts) are not addresses.
  if (Address6.isValid(t) && !/[%/]/.test(t)) {
    const a6 = new Address6(t);
    // Fold exactly ::ffff:0:0/96 (RFC 4291 §2.5.5.2), in dotted or hex form.
    // Address6.is4() is not that test: it is true for any text written with a
    // dotted tail (`::1.2.3.4`, NAT64 `64:ff9b::1.2.3.4`) and false for
    // `::ffff:c000:201`.
    if (a6.canonicalForm().startsWith(V4_MAPPED_PREFIX)) return { family: 4, address: a6.to4().correctForm() };
    return { family: 6, address: a6.correctForm() };
  }
  return undefined;
}

/** Like parseIp, but for addresses Node reports (always valid). */
export function ipOf(text: string): IpAddress {
  const ip = parseIp(text);
  if (!ip) throw new Error(`not an IP address: ${text}`);
  return ip;
}

export function sameAddress(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.address === b.address;
}

export function formatEndpoint(e: Endpoint): string {
  return e.family === 6 ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

export function isValidPort(p: number): boolean {
  return Number.isInteger(p) && p >= 1 && p <= 65535;
}

/** A CIDR block, e.g. 100.64.0.0/10 or fd00::/8. */
export interface Cidr {
  family: Family;
  text: string;
  contains(ip: IpAddress): boolean;
}

/** The network an address belongs to at a prefix length, as CIDR text. */
export function networkOf(ip: IpAddress, prefixLength: number): string {
  const start = ip.family === 4 ? new Address4(`${ip.address}/${prefixLength}`).startAddress() : new Address6(`${ip.address}/${prefixLength}`).startAddress();
  return `${start.correctForm()}/${prefixLength}`;
}

/**
 * The directed broadcast address of an IPv4 network (`100.64.1.0/24` →
 * 100.64.1.255). IPv6 has none, and neither have /31 (RFC 3021: both
 * addresses are hosts) and /32.
 */
export function broadcastOf(cidr: Cidr): IpAddress | undefined {
  if (cidr.family !== 4 || Number(cidr.text.split('/')[1]) >= 31) return undefined;
  return { family: 4, address: new Address4(cidr.text).endAddress().correctForm() };
}

export function parseCidr(text: string): Cidr | undefined {
  const t = text.trim();
  const slash = t.indexOf('/');
  const base = parseIp(slash === -1 ? t : t.slice(0, slash));
  if (!base) return undefined;
  const max = base.family === 4 ? 32 : 128;
  const bits = slash === -1 ? max : Number(t.slice(slash + 1));
  if (!Number.isInteger(bits) || bits < 0 || bits > max || (slash !== -1 && !/^\d+$/.test(t.slice(slash + 1)))) {
    return undefined;
  }
  const canonical = `${base.address}/${bits}`;
  if (base.family === 4) {
    const net = new Address4(canonical);
    return { family: 4, text: canonical, contains: (ip) => ip.family === 4 && new Address4(ip.address).isInSubnet(net) };
  }
  const net = new Address6(canonical);
  return { family: 6, text: canonical, contains: (ip) => ip.family === 6 && new Address6(ip.address).isInSubnet(net) };
}

export function mustCidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new Error(`not a CIDR block: ${text}`);
  return c;
}

export type AddressClass =
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'shared'
  | 'link-local'
  | 'documentation'
  | 'benchmarking'
  | 'unique-local'
  | 'multicast'
  | 'reserved'
  | 'public';

// Order matters: the first block that contains the address names its class.
const CLASS_TABLE: Array<[AddressClass, Cidr]> = (
  [
    ['unspecified', '0.0.0.0/8'],
    ['loopback', '127.0.0.0/8'],
    ['private', '10.0.0.0/8'],
    ['private', '172.16.0.0/12'],
    ['private', '192.168.0.0/16'],
    ['shared', '100.64.0.0/10'], // RFC 6598, carrier-grade NAT
    ['link-local', '169.254.0.0/16'],
    ['documentation', '192.0.2.0/24'],
    ['documentation', '198.51.100.0/24'],
    ['documentation', '203.0.113.0/24'],
    ['benchmarking', '198.18.0.0/15'], // RFC 2544
    ['multicast', '224.0.0.0/4'],
    ['reserved', '240.0.0.0/4'],
    ['unspecified', '::/128'],
    ['loopback', '::1/128'],
    ['link-local', 'fe80::/10'],
    ['unique-local', 'fc00::/7'],
    ['documentation', '2001:db8::/32'],
    ['multicast', 'ff00::/8'],
  ] as const
).map(([cls, cidr]) => [cls, mustCidr(cidr)]);

export function classifyAddress(ip: IpAddress): AddressClass {
  for (const [cls, cidr] of CLASS_TABLE) if (cidr.contains(ip)) return cls;
  return 'public';
}

/**
 * IPv6 forms that carry an IPv4 address in their last 32 bits and reach it:
 * IPv4-compatible (`::a.b.c.d`, RFC 4291 §2.5.5.1, deprecated but still
 * routed by some stacks), IPv4-translated (`::ffff:0:a.b.c.d`, RFC 2765) and
 * the NAT64 well-known prefix (`64:ff9b::/96`, RFC 6052). IPv4-mapped
 * (`::ffff:a.b.c.d`) never gets here: parseIp folds it to IPv4.
 */
const EMBEDDING_V4: readonly Cidr[] = ['::/96', '::ffff:0:0:0/96', '64:ff9b::/96'].map(mustCidr);

/** The IPv4 address an IPv6 address stands for, when it embeds one (see EMBEDDING_V4). */
export function embeddedIpv4(ip: IpAddress): IpAddress | undefined {
  if (ip.family !== 6 || !EMBEDDING_V4.some((n) => n.contains(ip))) return undefined;
  // :: and ::1 are IPv6's own unspecified and loopback addresses, not 0.0.0.0 and 0.0.0.1.
  if (ip.address === '::' || ip.address === '::1') return undefined;
  const groups = new Address6(ip.address).canonicalForm().split(':');
  const hi = parseInt(groups[6]!, 16);
  const lo = parseInt(groups[7]!, 16);
  return { family: 4, address: `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}` };
}

const INSIDE_CLASSES: ReadonlySet<AddressClass> = new Set(['unspecified', 'loopback', 'private', 'shared', 'link-local', 'unique-local']);

/**
 * Addresses that only make sense inside a site (behind a NAT) or nowhere.
 * Documentation and benchmarking blocks are left out on purpose: labs (ours
 * included) use 198.18.0.0/15 as their "Internet".
 */
export function isSiteLocal(ip: IpAddress): boolean {
  return INSIDE_CLASSES.has(classifyAddress(ip));
}
