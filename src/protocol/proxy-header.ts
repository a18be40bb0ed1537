/**
 * PROXY protocol v1 (text) and v2 (binary) headers, as HAProxy specifies
 * them (doc/proxy-protocol.txt). Pure: the parser takes bytes however they
 * were chunked and says "header", "need more" or "error"; the encoder makes
 * the header a gateway puts in front of its connection to a backend.
 */
import { parseIp, type Endpoint } from './address.js';

export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** The spec's longest v1 line: "PROXY TCP6 " + two full IPv6 + two ports + CRLF. */
export const PROXY_V1_MAX_BYTES = 107;
/**
 * A v2 header may declare up to 65535 bytes after its 16; nothing we use
 * needs more than addresses and a few TLVs, and a peer that declares more
 * must not make us buffer it.
 */
export const DEFAULT_PROXY_V2_MAX_BYTES = 4096;

const V2_FIXED = 16;
const UNIX_PATH_BYTES = 108;

export type ProxyAddresses =
  | { kind: 'inet'; transport: 'tcp' | 'udp'; source: Endpoint; destination: Endpoint }
  | { kind: 'unix'; transport: 'stream' | 'dgram'; source: string; destination: string }
  /** v1 UNKNOWN, v2 AF_UNSPEC or a v2 LOCAL: the connection's own addresses stand. */
  | { kind: 'unknown' };

export interface ProxyTlv {
  type: number;
  value: Buffer;
}

export interface ProxyHeader {
  version: 1 | 2;
  /** `local`: the balancer's own connection (a health check), not a client's. */
  command: 'proxy' | 'local';
  addresses: ProxyAddresses;
  tlvs: ProxyTlv[];
}

export type ProxyParseResult =
  | { kind: 'header'; header: ProxyHeader; rest: Buffer }
  | { kind: 'need-more' }
  | { kind: 'error'; message: string };

/** Collects a connection's first bytes until they hold a whole header. */
export class ProxyHeaderParser {
  private buffered: Buffer = Buffer.alloc(0);
  private finished: ProxyParseResult | undefined;

  constructor(private readonly maxV2Bytes = DEFAULT_PROXY_V2_MAX_BYTES) {}

  feed(chunk: Buffer): ProxyParseResult {
    if (this.finished) return this.finished.kind === 'error' ? this.finished : { kind: 'error', message: 'header already parsed' };
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    const result = parseProxyHeader(this.buffered, this.maxV2Bytes);
    if (result.kind !== 'need-more') {
      this.finished = result;
      this.buffered = Buffer.alloc(0);
    }
    return result;
  }
}

/** One attempt on everything received so far. */
export function parseProxyHeader(buf: Buffer, maxV2Bytes = DEFAULT_PROXY_V2_MAX_BYTES): ProxyParseResult {
  if (buf.length === 0) return { kind: 'need-more' };
  if (isPrefixOf(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? { kind: 'need-more' } : parseV1(buf);
  if (isPrefixOf(buf, PROXY_V2_SIGNATURE)) return buf.length < V2_FIXED ? { kind: 'need-more' } : parseV2(buf, maxV2Bytes);
  return { kind: 'error', message: 'no PROXY protocol signature' };
}

/**
 * Whether a connection's first bytes open a PROXY header (v1 "PROXY " or
 * the v2 signature): `maybe` while too few bytes have come to tell. No FTP
 * command starts so: "PROXY" is no verb, and the v2 signature holds
 * "\r\n\r\n\0\r\nQUIT\n", which a server would read as empty lines and QUIT.
 */
export function proxySignatureAt(start: Buffer): 'yes' | 'no' | 'maybe' {
  for (const signature of [V1_PREFIX, PROXY_V2_SIGNATURE]) {
    if (!isPrefixOf(start, signature)) continue;
    if (start.length >= signature.length) return 'yes';
    return 'maybe';
  }
  return 'no';
}

export type SignatureGateStep = { kind: 'pass'; bytes: Buffer } | { kind: 'header'; version: 1 | 2; start: Buffer } | { kind: 'wait' };

/**
 * Watches a connection's first bytes for a PROXY header where none is
 * expected. Holds at most a signature's length back while they could still
 * be one, then lets everything through untouched.
 */
export class ProxySignatureGate {
  private start: Buffer | undefined = Buffer.alloc(0);

  /** Bytes held back, not yet passed on. */
  get holding(): number {
    return this.start?.length ?? 0;
  }

  /** The stream ended: what was held is no header, and goes on as it came. */
  end(): Buffer {
    const held = this.start ?? Buffer.alloc(0);
    this.start = undefined;
    return held;
  }

  feed(chunk: Buffer): SignatureGateStep {
    if (!this.start) return { kind: 'pass', bytes: chunk };
    const start = this.start.length ? Buffer.concat([this.start, chunk]) : chunk;
    const seen = proxySignatureAt(start);
    if (seen === 'maybe') {
      this.start = start;
      return { kind: 'wait' };
    }
    this.start = undefined;
    return seen === 'yes' ? { kind: 'header', version: start[0] === V1_PREFIX[0] ? 1 : 2, start } : { kind: 'pass', bytes: start };
  }
}

/** True when the shorter of the two is a prefix of the longer. */
function isPrefixOf(buf: Buffer, signature: Buffer): boolean {
  const n = Math.min(buf.length, signature.length);
  return buf.subarray(0, n).equals(signature.subarray(0, n));
}

function parseV1(buf: Buffer): ProxyParseResult {
  const lf = buf.indexOf(0x0a);
  if (lf < 0) {
    return buf.length >= PROXY_V1_MAX_BYTES ? { kind: 'error', message: `v1 header longer than ${PROXY_V1_MAX_BYTES} bytes` } : { kind: 'need-more' };
  }
  if (lf + 1 > PROXY_V1_MAX_BYTES) return { kind: 'error', message: `v1 header longer than ${PROXY_V1_MAX_BYTES} bytes` };
  if (lf === 0 || buf[lf - 1] !== 0x0d) return { kind: 'error', message: 'v1 header does not end in CRLF' };
  const line = buf.subarray(0, lf - 1).toString('latin1');
  const rest = buf.subarray(lf + 1);
  const parts = line.split(' ');
  const proto = parts[1];
  const header = (addresses: ProxyAddresses): ProxyParseResult => ({ kind: 'header', header: { version: 1, command: 'proxy', addresses, tlvs: [] }, rest });
  // The spec lets UNKNOWN carry anything up to CRLF; it is ignored.
  if (proto === 'UNKNOWN') return header({ kind: 'unknown' });
  if (proto !== 'TCP4' && proto !== 'TCP6') return { kind: 'error', message: `v1 protocol ${JSON.stringify(proto ?? '')} is not TCP4, TCP6 or UNKNOWN` };
  if (parts.length !== 6) return { kind: 'error', message: 'v1 header needs exactly: PROXY TCPn SRC DST SPORT DPORT' };
  const family = proto === 'TCP4' ? 4 : 6;
  const source = v1Endpoint(parts[2]!, parts[4]!, family);
  const destination = v1Endpoint(parts[3]!, parts[5]!, family);
  if (!source || !destination) return { kind: 'error', message: `v1 header has a malformed ${proto} address or port` };
  return header({ kind: 'inet', transport: 'tcp', source, destination });
}

function v1Endpoint(addr: string, port: string, family: 4 | 6): Endpoint | undefined {
  // Ports are plain decimal without leading zeros; addresses in their usual text.
  if (!/^(0|[1-9]\d{0,4})$/.test(port) || Number(port) > 65535) return undefined;
  if (family === 4 ? !/^\d{1,3}(\.\d{1,3}){3}$/.test(addr) : !/^[0-9a-fA-F:.]+$/.test(addr)) return undefined;
  const ip = parseIp(addr);
  // A TCP6 line naming a v4-mapped address is still an IPv6 connection on the wire; parseIp folds it.
  if (!ip || (family === 4 && ip.family !== 4)) return undefined;
  return { ...ip, port: Number(port) };
}

function parseV2(buf: Buffer, maxBytes: number): ProxyParseResult {
  const verCmd = buf[12]!;
  const famProto = buf[13]!;
  const length = buf.readUInt16BE(14);
  if (verCmd >> 4 !== 2) return { kind: 'error', message: `v2 header with version ${verCmd >> 4}` };
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return { kind: 'error', message: `v2 header with command ${cmd}` };
  if (V2_FIXED + length > maxBytes) return { kind: 'error', message: `v2 header of ${V2_FIXED + length} bytes is over the limit of ${maxBytes}` };
  if (buf.length < V2_FIXED + length) return { kind: 'need-more' };
  const body = buf.subarray(V2_FIXED, V2_FIXED + length);
  const rest = buf.subarray(V2_FIXED + length);
  const family = famProto >> 4;
  const transport = famProto & 0x0f;
  if (family > 3 || transport > 2 || (family === 0) !== (transport === 0)) {
    return { kind: 'error', message: `v2 header with address family/protocol 0x${famProto.toString(16).padStart(2, '0')}` };
  }
  const addrBytes = [0, 12, 36, 2 * UNIX_PATH_BYTES][family]!;
  if (body.length < addrBytes) return { kind: 'error', message: `v2 header too short for its addresses (${body.length} < ${addrBytes} bytes)` };
  const tlvs = parseTlvs(body.subarray(addrBytes));
  if (!tlvs) return { kind: 'error', message: 'v2 header has a malformed TLV' };
  let addresses: ProxyAddresses;
  if (family === 0) addresses = { kind: 'unknown' };
  else if (family === 3) {
    addresses = { kind: 'unix', transport: transport === 1 ? 'stream' : 'dgram', source: unixPath(body.subarray(0, UNIX_PATH_BYTES)), destination: unixPath(body.subarray(UNIX_PATH_BYTES, addrBytes)) };
  } else {
    const ipLen = family === 1 ? 4 : 16;
    const source = { ...rawIp(body.subarray(0, ipLen)), port: body.readUInt16BE(2 * ipLen) };
    const destination = { ...rawIp(body.subarray(ipLen, 2 * ipLen)), port: body.readUInt16BE(2 * ipLen + 2) };
    addresses = { kind: 'inet', transport: transport === 1 ? 'tcp' : 'udp', source, destination };
  }
  // LOCAL: the receiver must use the connection's real addresses, whatever the block says.
  return { kind: 'header', header: { version: 2, command: cmd === 0 ? 'local' : 'proxy', addresses: cmd === 0 ? { kind: 'unknown' } : addresses, tlvs }, rest };
}

function parseTlvs(buf: Buffer): ProxyTlv[] | undefined {
  const tlvs: ProxyTlv[] = [];
  let at = 0;
  while (at < buf.length) {
    if (at + 3 > buf.length) return undefined;
    const len = buf.readUInt16BE(at + 1);
    if (at + 3 + len > buf.length) return undefined;
    tlvs.push({ type: buf[at]!, value: Buffer.from(buf.subarray(at + 3, at + 3 + len)) });
    at += 3 + len;
  }
  return tlvs;
}

function unixPath(raw: Buffer): string {
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? raw.length : nul).toString('utf8');
}

function rawIp(raw: Buffer): { family: 4 | 6; address: string } {
  if (raw.length === 4) return { family: 4, address: [...raw].join('.') };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(raw.readUInt16BE(i).toString(16));
  // parseIp gives the canonical text (and folds v4-mapped, like every socket address we see).
  return parseIp(groups.join(':'))!;
}

export interface ProxyHeaderInput {
  command?: 'proxy' | 'local';
  /** Undefined: UNKNOWN (v1) or AF_UNSPEC (v2). Both ends must be of one family. */
  source?: Endpoint | undefined;
  destination?: Endpoint | undefined;
  tlvs?: ProxyTlv[];
}

/** The header naming `source` as the client that connected to `destination`. */
export function encodeProxyHeader(version: 1 | 2, input: ProxyHeaderInput): Buffer {
  const { source, destination } = input;
  const inet = source && destination ? sameFamily(source, destination) : undefined;
  if (version === 1) {
    if (input.command === 'local' || input.tlvs?.length) throw new Error('PROXY v1 has no LOCAL command and no TLVs');
    if (!inet) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    return Buffer.from(`PROXY TCP${inet.family} ${inet.source.address} ${inet.destination.address} ${inet.source.port} ${inet.destination.port}\r\n`, 'latin1');
  }
  const local = input.command === 'local';
  const addr = inet && !local ? Buffer.concat([ipBytes(inet.source), ipBytes(inet.destination), port16(inet.source.port), port16(inet.destination.port)]) : Buffer.alloc(0);
  const tlvs = (input.tlvs ?? []).map((t) => {
    if (t.value.length > 0xffff || t.type < 0 || t.type > 0xff) throw new Error('TLV out of range');
    return Buffer.concat([Buffer.from([t.type]), port16(t.value.length), t.value]);
  });
  const body = Buffer.concat([addr, ...tlvs]);
  if (body.length > 0xffff) throw new Error('PROXY v2 header body over 65535 bytes');
  const famProto = addr.length === 0 ? 0x00 : inet!.family === 4 ? 0x11 : 0x21;
  return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([local ? 0x20 : 0x21, famProto]), port16(body.length), body]);
}

function sameFamily(source: Endpoint, destination: Endpoint): { family: 4 | 6; source: Endpoint; destination: Endpoint } {
  if (source.family === destination.family) return { family: source.family, source, destination };
  // A dual-stack listener can see an IPv6 client arrive on an IPv4-mapped
  // local address (or the reverse): name both in IPv6.
  return { family: 6, source: asV6(source), destination: asV6(destination) };
}

function asV6(e: Endpoint): Endpoint {
  return e.family === 6 ? e : { family: 6, address: `::ffff:${e.address}`, port: e.port };
}

function ipBytes(ip: Endpoint): Buffer {
  if (ip.family === 4) return Buffer.from(ip.address.split('.').map(Number));
  const out = Buffer.alloc(16);
  const [head, tail] = expandV6(ip.address);
  head.forEach((g, i) => out.writeUInt16BE(g, 2 * i));
  tail.forEach((g, i) => out.writeUInt16BE(g, 16 - 2 * (tail.length - i)));
  return out;
}

/** The groups before and after "::" (a dotted tail counts as two groups). */
function expandV6(text: string): [number[], number[]] {
  const groups = (s: string): number[] =>
    s === ''
      ? []
      : s.split(':').flatMap((g) => {
          if (!g.includes('.')) return [parseInt(g, 16)];
          const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
          return [(a << 8) | b, (c << 8) | d];
        });
  const [head, tail] = text.split('::');
  return tail === undefined ? [groups(head!), []] : [groups(head!), groups(tail)];
}

function port16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
