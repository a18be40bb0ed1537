/**
 * pcap and pcapng reader, down to TCP segments. Pure: bytes in, segments out.
 *
 * Formats: classic pcap in either byte order with microsecond (a1b2c3d4) or
 * nanosecond (a1b23c4d) timestamps; pcapng (any number of sections, each with
 * its own byte order and interfaces) with Enhanced, Simple and the obsolete
 * Packet blocks. Link types: Ethernet (with 802.1Q/802.1ad tags), Linux
 * cooked SLL and SLL2, raw IP (101, and 12/14 which some systems write for
 * raw IP), 228/229 (IPv4/IPv6), BSD loopback (0 and 108).
 *
 * Anything that is not TCP over IP is counted and skipped quietly; what a
 * reader of the report should know about (IP fragments, snaplen-cut
 * payloads, an unsupported link type) becomes a note.
 */
import { parseIp, type Endpoint, type Family } from '../protocol/address.js';

/** A capture that cannot be read: names the file and the byte offset. */
export class CaptureError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number | undefined,
    readonly reason: string,
  ) {
    super(offset === undefined ? `${file}: ${reason}` : `${file}: ${reason} (at byte ${offset})`);
    this.name = 'CaptureError';
  }
}

export interface TcpFlags {
  syn: boolean;
  ack: boolean;
  fin: boolean;
  rst: boolean;
  psh: boolean;
}

export interface TcpSegment {
  /** Frame number, 1-based over every packet in the file, as Wireshark counts. */
  packet: number;
  /** Seconds since the epoch, fractional. */
  t: number;
  src: Endpoint;
  dst: Endpoint;
  seq: number;
  ack: number;
  flags: TcpFlags;
  /** Captured payload bytes (may be shorter than `length` when the snaplen cut the packet). */
  payload: Buffer;
  /** Payload length on the wire, from the IP header. */
  length: number;
  /** pcapng interface id. */
  iface?: number;
  /** Receive window field as sent (unscaled). */
  window: number;
  /** TCP timestamp option's TSval (RFC 7323), when present: a NAT forwards it, a proxy sends its own. */
  tsval?: number;
  /** IPv4 identification field: a NAT usually forwards it, a proxy's own connection counts its own. */
  ipId?: number;
}

export interface CaptureNote {
  packet?: number;
  offset?: number;
  message: string;
}

export type CaptureFormat = 'pcap' | 'pcapng';

export interface Capture {
  file: string;
  format: CaptureFormat;
  /** Link type names seen (e.g. `ethernet`, `linux-sll2`). */
  linkTypes: string[];
  packets: number;
  segments: TcpSegment[];
  notes: CaptureNote[];
}

export interface ReadOptions {
  /**
   * A capture cut short in its last record (a copy taken while tcpdump was
   * still writing) keeps the packets before the cut and gets a note, instead
   * of a CaptureError.
   */
  allowTruncatedTail?: boolean;
}

const LINK_NAMES: Record<number, string> = {
  0: 'bsd-loopback',
  1: 'ethernet',
  12: 'raw-ip',
  14: 'raw-ip',
  101: 'raw-ip',
  108: 'openbsd-loopback',
  113: 'linux-sll',
  228: 'ipv4',
  229: 'ipv6',
  276: 'linux-sll2',
};

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BOM = 0x1a2b3c4d;

type Endian = 'le' | 'be';

function u16(b: Buffer, o: number, e: Endian): number {
  return e === 'le' ? b.readUInt16LE(o) : b.readUInt16BE(o);
}
function u32(b: Buffer, o: number, e: Endian): number {
  return e === 'le' ? b.readUInt32LE(o) : b.readUInt32BE(o);
}

/** Stops at the first truncated record when allowed, else throws. */
class Truncation {
  constructor(
    private readonly file: string,
    private readonly allow: boolean,
    private readonly notes: CaptureNote[],
  ) {}

  /** Returns false (caller stops reading) or throws. */
  hit(offset: number, what: string): false {
    const reason = `capture truncated: ${what}`;
    if (!this.allow) throw new CaptureError(this.file, offset, reason);
    this.notes.push({ offset, message: `${reason} at byte ${offset}; the packets before it were analysed` });
    return false;
  }
}

/** Reads a whole capture file's bytes. Throws CaptureError for anything it cannot read. */
export function readCapture(data: Buffer, file: string, opts: ReadOptions = {}): Capture {
  if (data.length < 4) throw new CaptureError(file, 0, `not a pcap or pcapng file (${data.length} bytes)`);
  const magicBE = data.readUInt32BE(0);
  const magicLE = data.readUInt32LE(0);
  if (magicBE === PCAPNG_SHB) return readPcapng(data, file, opts);
  for (const [magic, endian] of [
    [magicLE, 'le'],
    [magicBE, 'be'],
  ] as const) {
    if (magic === PCAP_MAGIC_US || magic === PCAP_MAGIC_NS) return readPcap(data, file, endian, magic === PCAP_MAGIC_NS, opts);
  }
  const hint = data.subarray(0, 4).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
  throw new CaptureError(file, 0, `not a pcap or pcapng file (magic ${data.subarray(0, 4).toString('hex')} "${hint}")`);
}

function newCapture(file: string, format: CaptureFormat): Capture & { decoder: PacketDecoder } {
  const cap: Capture = { file, format, linkTypes: [], packets: 0, segments: [], notes: [] };
  return Object.assign(cap, { decoder: new PacketDecoder(cap) });
}

function finish(cap: Capture & { decoder: PacketDecoder }): Capture {
  cap.decoder.summarise();
  const { decoder: _decoder, ...rest } = cap;
  return rest;
}

function readPcap(data: Buffer, file: string, e: Endian, nano: boolean, opts: ReadOptions): Capture {
  const cap = newCapture(file, 'pcap');
  const trunc = new Truncation(file, opts.allowTruncatedTail ?? false, cap.notes);
  if (data.length < 24) throw new CaptureError(file, data.length, `capture truncated: pcap file header needs 24 bytes, file has ${data.length}`);
  const major = u16(data, 4, e);
  if (major !== 2) throw new CaptureError(file, 4, `unsupported pcap version ${major}.${u16(data, 6, e)}`);
  const snaplen = u32(data, 16, e);
  // The upper bits of the link-type field carry FCS information (pcap spec §4).
  const link = u32(data, 20, e) & 0xffff;
  cap.decoder.noteLinkType(link);
  const unit = nano ? 1e9 : 1e6;
  let o = 24;
  while (o < data.length) {
    if (data.length - o < 16 && !trunc.hit(o, `record header needs 16 bytes, ${data.length - o} left`)) break;
    const sec = u32(data, o, e);
    const frac = u32(data, o + 4, e);
    const incl = u32(data, o + 8, e);
    const orig = u32(data, o + 12, e);
    // A length far beyond the snaplen means we lost the record framing: stop
    // with the offset rather than read garbage as packets.
    if (incl > Math.max(snaplen, 262_144) && incl > orig) {
      throw new CaptureError(file, o + 8, `record length ${incl} exceeds the snaplen ${snaplen}: corrupt record header`);
    }
    if (o + 16 + incl > data.length && !trunc.hit(o, `record of ${incl} bytes, ${data.length - o - 16} left`)) break;
    cap.packets++;
    cap.decoder.decode(data.subarray(o + 16, o + 16 + incl), link, sec + frac / unit, cap.packets, orig, undefined);
    o += 16 + incl;
  }
  return finish(cap);
}

interface Interface {
  link: number;
  snaplen: number;
  /** Timestamp units per second. */
  units: bigint;
  /** if_tsoffset: seconds to add. */
  offset: number;
}

function readPcapng(data: Buffer, file: string, opts: ReadOptions): Capture {
  const cap = newCapture(file, 'pcapng');
  const trunc = new Truncation(file, opts.allowTruncatedTail ?? false, cap.notes);
  let e: Endian = 'le';
  let ifaces: Interface[] = [];
  let o = 0;
  while (o < data.length) {
    if (data.length - o < 12 && !trunc.hit(o, `block header needs 12 bytes, ${data.length - o} left`)) break;
    const type = data.readUInt32BE(o) === PCAPNG_SHB ? PCAPNG_SHB : u32(data, o, e);
    if (type === PCAPNG_SHB) {
      // A new section: its byte-order magic decides how to read everything up to the next SHB.
      const bom = data.readUInt32LE(o + 8);
      if (bom === PCAPNG_BOM) e = 'le';
      else if (bom === 0x4d3c2b1a) e = 'be';
      else throw new CaptureError(file, o + 8, `pcapng section header with unknown byte-order magic ${data.subarray(o + 8, o + 12).toString('hex')}`);
      ifaces = [];
    }
    const len = u32(data, o + 4, e);
    if (len < 12 || len % 4 !== 0) throw new CaptureError(file, o + 4, `pcapng block length ${len} is not a multiple of 4 of at least 12: corrupt block`);
    if (o + len > data.length && !trunc.hit(o, `block of ${len} bytes, ${data.length - o} left`)) break;
    const trailer = u32(data, o + len - 4, e);
    if (trailer !== len) throw new CaptureError(file, o + len - 4, `pcapng block length ${len} does not match its trailer ${trailer}: corrupt block`);
    const body = data.subarray(o + 8, o + len - 4);
    switch (type) {
      case PCAPNG_SHB: {
        if (body.length < 16) throw new CaptureError(file, o, 'pcapng section header block too short');
        const major = u16(body, 4, e);
        if (major !== 1) throw new CaptureError(file, o + 12, `unsupported pcapng version ${major}`);
        break;
      }
      case 1: {
        // Interface Description Block
        if (body.length < 8) throw new CaptureError(file, o, 'pcapng interface block too short');
        const iface: Interface = { link: u16(body, 0, e), snaplen: u32(body, 4, e), units: 1_000_000n, offset: 0 };
        readOptions(body.subarray(8), e, (code, value) => {
          if (code === 9 && value.length >= 1) {
            // if_tsresol: high bit 0 → 10^-n, 1 → 2^-n (pcapng §4.2).
            const v = value[0]!;
            iface.units = v & 0x80 ? 1n << BigInt(v & 0x7f) : 10n ** BigInt(v);
          } else if (code === 14 && value.length >= 8) {
            iface.offset = Number(e === 'le' ? value.readBigInt64LE(0) : value.readBigInt64BE(0));
          }
        });
        ifaces.push(iface);
        cap.decoder.noteLinkType(iface.link);
        break;
      }
      case 6:
      case 2: {
        // Enhanced Packet Block (6); obsolete Packet Block (2) has a 16-bit interface id and a drops count.
        if (body.length < 20) throw new CaptureError(file, o, 'pcapng packet block too short');
        const id = type === 6 ? u32(body, 0, e) : u16(body, 0, e);
        const iface = ifaces[id];
        if (!iface) throw new CaptureError(file, o + 8, `pcapng packet refers to interface ${id}, which this section does not describe`);
        const ts = (BigInt(u32(body, 4, e)) << 32n) | BigInt(u32(body, 8, e));
        const caplen = u32(body, 12, e);
        const orig = u32(body, 16, e);
        if (20 + caplen > body.length) throw new CaptureError(file, o + 20, `pcapng packet length ${caplen} overruns its block`);
        cap.packets++;
        const t = Number(ts / iface.units) + Number(ts % iface.units) / Number(iface.units) + iface.offset;
        cap.decoder.decode(body.subarray(20, 20 + caplen), iface.link, t, cap.packets, orig, id);
        break;
      }
      case 3: {
        // Simple Packet Block: interface 0, no timestamp (we reuse the previous packet's).
        const iface = ifaces[0];
        if (!iface) throw new CaptureError(file, o + 8, 'pcapng simple packet block before any interface block');
        if (body.length < 4) throw new CaptureError(file, o, 'pcapng simple packet block too short');
        const orig = u32(body, 0, e);
        const caplen = Math.min(orig, iface.snaplen || orig, body.length - 4);
        cap.packets++;
        cap.decoder.decode(body.subarray(4, 4 + caplen), iface.link, cap.decoder.lastTime, cap.packets, orig, 0);
        break;
      }
      default:
        // Name resolution, statistics, custom and unknown blocks: nothing for us.
        break;
    }
    o += len;
  }
  return finish(cap);
}

/** The TSval of a TCP timestamp option (kind 8, length 10), if the options carry one. */
function optionalTsval(options: Buffer): { tsval?: number } {
  let o = 0;
  while (o < options.length) {
    const kind = options[o]!;
    if (kind === 0) break;
    if (kind === 1) {
      o++;
      continue;
    }
    const len = options[o + 1];
    if (len === undefined || len < 2 || o + len > options.length) break;
    if (kind === 8 && len === 10) return { tsval: options.readUInt32BE(o + 2) };
    o += len;
  }
  return {};
}

function readOptions(buf: Buffer, e: Endian, each: (code: number, value: Buffer) => void): void {
  let o = 0;
  while (o + 4 <= buf.length) {
    const code = u16(buf, o, e);
    const len = u16(buf, o + 2, e);
    if (code === 0) return;
    if (o + 4 + len > buf.length) return;
    each(code, buf.subarray(o + 4, o + 4 + len));
    o += 4 + len + ((4 - (len % 4)) % 4);
  }
}

const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;
const ETH_VLAN = new Set([0x8100, 0x88a8, 0x9100]);

/** Link layer → IP → TCP, for one packet. Collects notes by kind so that a long capture does not produce a note per packet. */
class PacketDecoder {
  lastTime = 0;
  private readonly addrCache = new Map<string, string>();
  private fragments = 0;
  private firstFragment: number | undefined;
  private cut = 0;
  private firstCut: number | undefined;
  private readonly unknownLinks = new Map<number, number>();

  constructor(private readonly cap: Capture) {}

  noteLinkType(link: number): void {
    const name = LINK_NAMES[link] ?? `link-type-${link}`;
    if (!this.cap.linkTypes.includes(name)) this.cap.linkTypes.push(name);
  }

  summarise(): void {
    if (this.fragments > 0) {
      this.cap.notes.push({
        packet: this.firstFragment,
        message: `${this.fragments} IP fragment(s) skipped (first: packet ${this.firstFragment}); TCP inside fragmented packets is not reassembled`,
      });
    }
    if (this.cut > 0) {
      this.cap.notes.push({
        packet: this.firstCut,
        message: `${this.cut} packet(s) cut short by the capture's snaplen (first: packet ${this.firstCut}); their missing payload bytes count as gaps`,
      });
    }
    for (const [link, count] of this.unknownLinks) {
      this.cap.notes.push({ message: `${count} packet(s) with unsupported link type ${link} skipped` });
    }
  }

  decode(frame: Buffer, link: number, t: number, packet: number, _orig: number, iface: number | undefined): void {
    this.lastTime = t;
    const ip = this.linkPayload(frame, link);
    if (!ip) return;
    const seg = this.ipPayload(ip, packet);
    if (!seg) return;
    const { src, dst, tcp, wireLength, ipId } = seg;
    // An IPv4-mapped IPv6 address folds to IPv4 text (parseIp); the family follows the text.
    const family: Family = src.includes(':') ? 6 : 4;
    if (tcp.length < 20) return;
    const dataOffset = (tcp[12]! >> 4) * 4;
    if (dataOffset < 20 || dataOffset > tcp.length) return;
    const flagsByte = tcp[13]!;
    const payload = tcp.subarray(dataOffset);
    const length = Math.max(wireLength - dataOffset, payload.length);
    if (payload.length < length) {
      this.cut++;
      this.firstCut ??= packet;
    }
    this.cap.segments.push({
      packet,
      t,
      src: { family, address: src, port: tcp.readUInt16BE(0) },
      dst: { family, address: dst, port: tcp.readUInt16BE(2) },
      seq: tcp.readUInt32BE(4),
      ack: tcp.readUInt32BE(8),
      flags: {
        fin: (flagsByte & 0x01) !== 0,
        syn: (flagsByte & 0x02) !== 0,
        rst: (flagsByte & 0x04) !== 0,
        psh: (flagsByte & 0x08) !== 0,
        ack: (flagsByte & 0x10) !== 0,
      },
      payload,
      length,
      ...(iface === undefined ? {} : { iface }),
      window: tcp.readUInt16BE(14),
      ...optionalTsval(tcp.subarray(20, dataOffset)),
      ...(ipId === undefined ? {} : { ipId }),
    });
  }

  /** The IP packet inside a link-layer frame, or undefined when it is not IP. */
  private linkPayload(frame: Buffer, link: number): Buffer | undefined {
    switch (link) {
      case 1: {
        if (frame.length < 14) return undefined;
        let type = frame.readUInt16BE(12);
        let o = 14;
        while (ETH_VLAN.has(type) && o + 4 <= frame.length) {
          type = frame.readUInt16BE(o + 2);
          o += 4;
        }
        return ethertypePayload(type, frame.subarray(o));
      }
      case 113:
        return frame.length < 16 ? undefined : ethertypePayload(frame.readUInt16BE(14), frame.subarray(16));
      case 276:
        return frame.length < 20 ? undefined : ethertypePayload(frame.readUInt16BE(0), frame.subarray(20));
      case 12:
      case 14:
      case 101:
      case 228:
      case 229:
        return frame;
      case 0:
      case 108: {
        // BSD loopback: a 4-byte address family, host order for 0, network order for 108.
        // The IP version nibble is what we go by, whatever the AF value.
        return frame.length < 4 ? undefined : frame.subarray(4);
      }
      default:
        this.unknownLinks.set(link, (this.unknownLinks.get(link) ?? 0) + 1);
        return undefined;
    }
  }

  private ipPayload(
    ip: Buffer,
    packet: number,
  ): { family: Family; src: string; dst: string; tcp: Buffer; wireLength: number; ipId?: number } | undefined {
    if (ip.length < 1) return undefined;
    const version = ip[0]! >> 4;
    if (version === 4) {
      if (ip.length < 20) return undefined;
      const ihl = (ip[0]! & 0x0f) * 4;
      if (ihl < 20 || ihl > ip.length) return undefined;
      const total = ip.readUInt16BE(2);
      const fragField = ip.readUInt16BE(6);
      if ((fragField & 0x2000) !== 0 || (fragField & 0x1fff) !== 0) {
        this.fragments++;
        this.firstFragment ??= packet;
        return undefined;
      }
      if (ip[9] !== 6) return undefined;
      // total 0: TCP segmentation offload on the capturing host; trust the frame.
      // Ethernet pads short frames: cut to the IP total length.
      const end = total === 0 ? ip.length : Math.min(total, ip.length);
      const wire = total === 0 ? ip.length - ihl : total - ihl;
      return {
        family: 4,
        src: `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`,
        dst: `${ip[16]}.${ip[17]}.${ip[18]}.${ip[19]}`,
        tcp: ip.subarray(ihl, Math.max(ihl, end)),
        wireLength: wire,
        ipId: ip.readUInt16BE(4),
      };
    }
    if (version === 6) {
      if (ip.length < 40) return undefined;
      const payloadLength = ip.readUInt16BE(4);
      let next = ip[6]!;
      let o = 40;
      const end = payloadLength === 0 ? ip.length : Math.min(40 + payloadLength, ip.length);
      let wireEnd = payloadLength === 0 ? ip.length : 40 + payloadLength;
      // Extension headers (RFC 8200 §4): hop-by-hop 0, routing 43, fragment 44, destination options 60, AH 51.
      for (;;) {
        if (next === 6) break;
        if (next === 0 || next === 43 || next === 60) {
          if (o + 2 > end) return undefined;
          const hdr = ip[o]!;
          o += (ip[o + 1]! + 1) * 8;
          next = hdr;
        } else if (next === 51) {
          if (o + 2 > end) return undefined;
          const hdr = ip[o]!;
          o += (ip[o + 1]! + 2) * 4;
          next = hdr;
        } else if (next === 44) {
          if (o + 8 > end) return undefined;
          const off = ip.readUInt16BE(o + 2);
          // An atomic fragment (offset 0, no more fragments) is a whole packet.
          if ((off & 0xfff8) !== 0 || (off & 1) !== 0) {
            this.fragments++;
            this.firstFragment ??= packet;
            return undefined;
          }
          next = ip[o]!;
          o += 8;
        } else {
          return undefined; // ESP, no-next-header, other protocols
        }
        if (o > end) return undefined;
      }
      wireEnd = Math.max(wireEnd, end);
      return {
        family: 6,
        src: this.ipv6Text(ip.subarray(8, 24)),
        dst: this.ipv6Text(ip.subarray(24, 40)),
        tcp: ip.subarray(o, end),
        wireLength: wireEnd - o,
      };
    }
    return undefined;
  }

  /** RFC 5952 text via the project's address parser (cached: captures repeat a handful of addresses). */
  private ipv6Text(raw: Buffer): string {
    const hex = raw.toString('hex');
    let text = this.addrCache.get(hex);
    if (text === undefined) {
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(raw.readUInt16BE(i).toString(16));
      text = parseIp(groups.join(':'))?.address ?? groups.join(':');
      this.addrCache.set(hex, text);
    }
    return text;
  }
}

function ethertypePayload(type: number, rest: Buffer): Buffer | undefined {
  return type === ETH_IPV4 || type === ETH_IPV6 ? rest : undefined;
}
