/**
 * A small pcap / pcapng writer for building test captures in memory:
 * Ethernet (optionally 802.1Q-tagged), Linux SLL and SLL2, raw IP and BSD
 * loopback framing; IPv4 (with options, fragments) and IPv6 (with extension
 * headers); both byte orders; micro- and nanosecond pcap; pcapng with
 * if_tsresol, Enhanced and Simple packet blocks and blocks a reader must skip.
 *
 * TcpConversation keeps the sequence numbers of a made-up connection so a
 * test only says who sends what; a Trace collects packets of several
 * connections in the order (and with the clock) they were made.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addressBytes } from '../../src/protocol/endpoint.js';

export interface Peer {
  address: string;
  port: number;
}

export interface Packet {
  t: number;
  src: Peer;
  dst: Peer;
  seq: number;
  ack: number;
  /** Any of S, A, F, R, P: 'S', 'SA', 'PA', 'FA', 'R', 'RA'. */
  flags: string;
  payload?: Buffer;
  /** IPv4 options (padded to 4 bytes). */
  ipv4Options?: Buffer;
  /** IPv4: set the fragment offset (in 8-byte units) and/or More Fragments. */
  fragment?: { offset: number; more: boolean };
  /** IPv6 extension headers before TCP, in order. */
  ipv6Ext?: Array<'hop-by-hop' | 'destination' | 'routing' | 'fragment-atomic' | 'fragment'>;
}

export type Link = 'ethernet' | 'vlan' | 'qinq' | 'sll' | 'sll2' | 'raw' | 'raw12' | 'raw14' | 'null';

export const LINKTYPE: Record<Link, number> = {
  ethernet: 1,
  vlan: 1,
  qinq: 1,
  sll: 113,
  sll2: 276,
  raw: 101,
  raw12: 12,
  raw14: 14,
  null: 0,
};

// ---- IP and TCP -------------------------------------------------------------

const isV6 = (a: string) => a.includes(':');

/** IPv4 dotted quad or IPv6 RFC 5952 text to bytes. */
const bytes = (address: string) => addressBytes({ family: isV6(address) ? 6 : 4, address });

function checksum(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function flagsByte(f: string): number {
  let b = 0;
  if (f.includes('F')) b |= 0x01;
  if (f.includes('S')) b |= 0x02;
  if (f.includes('R')) b |= 0x04;
  if (f.includes('P')) b |= 0x08;
  if (f.includes('A')) b |= 0x10;
  return b;
}

export function tcpHeader(p: Packet, pseudo: Buffer): Buffer {
  const payload = p.payload ?? Buffer.alloc(0);
  const h = Buffer.alloc(20);
  h.writeUInt16BE(p.src.port, 0);
  h.writeUInt16BE(p.dst.port, 2);
  h.writeUInt32BE(p.seq >>> 0, 4);
  h.writeUInt32BE(p.ack >>> 0, 8);
  h[12] = 5 << 4;
  h[13] = flagsByte(p.flags);
  h.writeUInt16BE(65535, 14);
  const seg = Buffer.concat([h, payload]);
  seg.writeUInt16BE(checksum(Buffer.concat([pseudo, seg])), 16);
  return seg;
}

export function ipPacket(p: Packet): Buffer {
  const payloadLength = 20 + (p.payload?.length ?? 0);
  if (!isV6(p.src.address)) {
    const src = Buffer.from(bytes(p.src.address));
    const dst = Buffer.from(bytes(p.dst.address));
    const pseudo = Buffer.concat([src, dst, Buffer.from([0, 6, payloadLength >> 8, payloadLength & 0xff])]);
    const tcp = tcpHeader(p, pseudo);
    const opts = p.ipv4Options ?? Buffer.alloc(0);
    const optsPadded = Buffer.concat([opts, Buffer.alloc((4 - (opts.length % 4)) % 4)]);
    const ihl = 20 + optsPadded.length;
    const h = Buffer.alloc(20);
    h[0] = 0x40 | (ihl / 4);
    h.writeUInt16BE(ihl + tcp.length, 2);
    h.writeUInt16BE(0x1234, 4);
    let frag = 0x4000; // DF
    if (p.fragment) frag = (p.fragment.more ? 0x2000 : 0) | (p.fragment.offset & 0x1fff);
    h.writeUInt16BE(frag, 6);
    h[8] = 64;
    h[9] = 6;
    src.copy(h, 12);
    dst.copy(h, 16);
    const header = Buffer.concat([h, optsPadded]);
    header.writeUInt16BE(checksum(header), 10);
    return Buffer.concat([header, tcp]);
  }
  const src = Buffer.from(bytes(p.src.address));
  const dst = Buffer.from(bytes(p.dst.address));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(payloadLength);
  const pseudo = Buffer.concat([src, dst, len, Buffer.from([0, 0, 0, 6])]);
  const tcp = tcpHeader(p, pseudo);
  const exts = p.ipv6Ext ?? [];
  const codes: Record<string, number> = { 'hop-by-hop': 0, destination: 60, routing: 43, 'fragment-atomic': 44, fragment: 44 };
  const chain: Buffer[] = [];
  exts.forEach((kind, i) => {
    const next = i + 1 < exts.length ? codes[exts[i + 1]!]! : 6;
    if (kind === 'fragment-atomic' || kind === 'fragment') {
      const f = Buffer.alloc(8);
      f[0] = next;
      f.writeUInt16BE(kind === 'fragment' ? 1 : 0, 2); // M flag set for a real fragment
      f.writeUInt32BE(0xabcd, 4);
      chain.push(f);
    } else {
      // 8 bytes: next header, length 0 (one unit), PadN option.
      chain.push(Buffer.from([next, 0, 1, 4, 0, 0, 0, 0]));
    }
  });
  const ext = Buffer.concat(chain);
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(ext.length + tcp.length, 4);
  h[6] = exts.length > 0 ? codes[exts[0]!]! : 6;
  h[7] = 64;
  src.copy(h, 8);
  dst.copy(h, 24);
  return Buffer.concat([h, ext, tcp]);
}

export function frame(p: Packet, link: Link): Buffer {
  const ip = ipPacket(p);
  const type = isV6(p.src.address) ? 0x86dd : 0x0800;
  const typeBytes = Buffer.from([type >> 8, type & 0xff]);
  const mac = (n: number) => Buffer.from([0x02, 0, 0, 0, 0, n]);
  switch (link) {
    case 'ethernet':
    case 'vlan':
    case 'qinq': {
      const tags =
        link === 'ethernet' ? [] : link === 'vlan' ? [Buffer.from([0x81, 0x00, 0x00, 0x2a])] : [Buffer.from([0x88, 0xa8, 0x00, 0x07]), Buffer.from([0x81, 0x00, 0x00, 0x2a])];
      const f = Buffer.concat([mac(1), mac(2), ...tags, typeBytes, ip]);
      // Ethernet pads to 60 bytes: the reader must cut at the IP total length.
      return f.length < 60 ? Buffer.concat([f, Buffer.alloc(60 - f.length)]) : f;
    }
    case 'sll': {
      const h = Buffer.alloc(16);
      h.writeUInt16BE(0, 0); // to us
      h.writeUInt16BE(1, 2); // ARPHRD_ETHER
      h.writeUInt16BE(6, 4);
      mac(1).copy(h, 6);
      h.writeUInt16BE(type, 14);
      return Buffer.concat([h, ip]);
    }
    case 'sll2': {
      const h = Buffer.alloc(20);
      h.writeUInt16BE(type, 0);
      h.writeUInt32BE(2, 4); // ifindex
      h.writeUInt16BE(1, 8);
      h[10] = 0;
      h[11] = 6;
      mac(1).copy(h, 12);
      return Buffer.concat([h, ip]);
    }
    case 'null': {
      const af = Buffer.alloc(4);
      af.writeUInt32LE(isV6(p.src.address) ? 30 : 2);
      return Buffer.concat([af, ip]);
    }
    default:
      return ip;
  }
}

// ---- files ------------------------------------------------------------------

export interface PcapOptions {
  link?: Link;
  endian?: 'le' | 'be';
  nano?: boolean;
  /** Cut frames to this many bytes (records say the original length). */
  snaplen?: number;
}

export function writePcap(packets: readonly Packet[], opts: PcapOptions = {}): Buffer {
  const le = (opts.endian ?? 'le') === 'le';
  const link = opts.link ?? 'ethernet';
  const snaplen = opts.snaplen ?? 262_144;
  const u32 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt32LE(v >>> 0, o) : b.writeUInt32BE(v >>> 0, o));
  const u16 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  const head = Buffer.alloc(24);
  u32(head, opts.nano ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  u16(head, 2, 4);
  u16(head, 4, 6);
  u32(head, snaplen, 16);
  u32(head, LINKTYPE[link], 20);
  const parts: Buffer[] = [head];
  for (const p of packets) {
    const f = frame(p, link);
    const cut = f.subarray(0, Math.min(f.length, snaplen));
    const rec = Buffer.alloc(16);
    const sec = Math.floor(p.t);
    const frac = Math.round((p.t - sec) * (opts.nano ? 1e9 : 1e6));
    u32(rec, sec, 0);
    u32(rec, frac, 4);
    u32(rec, cut.length, 8);
    u32(rec, f.length, 12);
    parts.push(rec, cut);
  }
  return Buffer.concat(parts);
}

export interface PcapngOptions {
  link?: Link;
  endian?: 'le' | 'be';
  /** if_tsresol byte: 6 → µs (default, option omitted), 9 → ns, 0x80|n → 2^-n. */
  tsresol?: number;
  /** Write packets as Simple Packet Blocks (no timestamps). */
  simple?: boolean;
  /** Add blocks a reader must skip: name resolution, interface statistics, a custom block. */
  extraBlocks?: boolean;
  /** Start a second section (new SHB, other byte order) halfway through. */
  twoSections?: boolean;
  /** Write the obsolete Packet Block (type 2) instead of EPB. */
  obsolete?: boolean;
}

export function writePcapng(packets: readonly Packet[], opts: PcapngOptions = {}): Buffer {
  const link = opts.link ?? 'ethernet';
  const parts: Buffer[] = [];
  const half = opts.twoSections ? Math.floor(packets.length / 2) : packets.length;
  const sections = opts.twoSections ? [packets.slice(0, half), packets.slice(half)] : [packets];
  sections.forEach((list, i) => {
    const le = ((opts.endian ?? 'le') === 'le') !== (i === 1);
    parts.push(...section(list, link, le, opts));
  });
  return Buffer.concat(parts);
}

function section(packets: readonly Packet[], link: Link, le: boolean, opts: PcapngOptions): Buffer[] {
  const u32 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt32LE(v >>> 0, o) : b.writeUInt32BE(v >>> 0, o));
  const u16 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  const block = (type: number, body: Buffer) => {
    const pad = (4 - (body.length % 4)) % 4;
    const len = 12 + body.length + pad;
    const b = Buffer.alloc(len);
    u32(b, type, 0);
    u32(b, len, 4);
    body.copy(b, 8);
    u32(b, len, len - 4);
    return b;
  };
  const option = (code: number, value: Buffer) => {
    const h = Buffer.alloc(4);
    u16(h, code, 0);
    u16(h, value.length, 2);
    return Buffer.concat([h, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
  };
  const out: Buffer[] = [];
  const shb = Buffer.alloc(16);
  u32(shb, 0x1a2b3c4d, 0);
  u16(shb, 1, 4);
  u16(shb, 0, 6);
  shb.writeBigInt64LE(-1n, 8); // section length unknown
  out.push(block(0x0a0d0d0a, Buffer.concat([shb, option(1, Buffer.from('test capture')), Buffer.alloc(4)])));
  const idb = Buffer.alloc(8);
  u16(idb, LINKTYPE[link], 0);
  u32(idb, 262_144, 4);
  const tsresol = opts.tsresol ?? 6;
  const idbOpts = [option(2, Buffer.from('lo')), ...(tsresol !== 6 ? [option(9, Buffer.from([tsresol]))] : []), Buffer.alloc(4)];
  out.push(block(1, Buffer.concat([idb, ...idbOpts])));
  if (opts.extraBlocks) {
    // Name Resolution Block with one IPv4 record, then end of records.
    const nrb = Buffer.alloc(4 + 8 + 4);
    u16(nrb, 1, 0);
    u16(nrb, 8, 2);
    Buffer.from([127, 0, 0, 1]).copy(nrb, 4);
    Buffer.from('lo\0\0').copy(nrb, 8);
    out.push(block(4, nrb));
    out.push(block(0x00000bad, Buffer.from('custom block a reader must skip')));
  }
  const units = tsresol & 0x80 ? 2 ** (tsresol & 0x7f) : 10 ** tsresol;
  for (const p of packets) {
    const f = frame(p, link);
    if (opts.simple) {
      const h = Buffer.alloc(4);
      u32(h, f.length, 0);
      out.push(block(3, Buffer.concat([h, f])));
      continue;
    }
    const ts = BigInt(Math.floor(p.t)) * BigInt(units) + BigInt(Math.round((p.t - Math.floor(p.t)) * units));
    const h = Buffer.alloc(20);
    if (opts.obsolete) {
      u16(h, 0, 0);
      u16(h, 0, 2);
    } else {
      u32(h, 0, 0);
    }
    u32(h, Number(ts >> 32n), 4);
    u32(h, Number(ts & 0xffffffffn), 8);
    u32(h, f.length, 12);
    u32(h, f.length, 16);
    out.push(block(opts.obsolete ? 2 : 6, Buffer.concat([h, f, Buffer.alloc((4 - (f.length % 4)) % 4)])));
  }
  if (opts.extraBlocks) {
    const isb = Buffer.alloc(12);
    u32(isb, 0, 0);
    out.push(block(5, isb));
  }
  return out;
}

// ---- conversations ------------------------------------------------------------

/** Packets of several connections, in the order and at the times they were made. */
export class Trace {
  readonly packets: Packet[] = [];
  constructor(
    public t = 1_700_000_000,
    readonly step = 0.001,
  ) {}

  add(p: Omit<Packet, 't'>): Packet {
    this.t += this.step;
    const packet = { ...p, t: Math.round(this.t * 1e6) / 1e6 };
    this.packets.push(packet);
    return packet;
  }

  /** Lets time pass (no packet). */
  wait(seconds: number): this {
    this.t += seconds;
    return this;
  }
}

export type Side = 'c' | 's';

export interface SendOptions {
  /** Sizes of the segments to cut the data into (the rest goes in a last segment). */
  split?: number[];
  /** The peer acknowledges each segment (default true). */
  ack?: boolean;
}

export class TcpConversation {
  /** Next sequence number to send, per side. */
  readonly nxt: Record<Side, number>;
  constructor(
    readonly trace: Trace,
    readonly client: Peer,
    readonly server: Peer,
    isn: { c?: number; s?: number } = {},
  ) {
    this.nxt = { c: isn.c ?? 1000, s: isn.s ?? 5000 };
  }

  private ends(side: Side): [Peer, Peer] {
    return side === 'c' ? [this.client, this.server] : [this.server, this.client];
  }

  private other(side: Side): Side {
    return side === 'c' ? 's' : 'c';
  }

  /** One raw segment; does not move the sequence numbers unless told. */
  segment(side: Side, flags: string, payload?: Buffer | string, seq?: number): Packet {
    const [src, dst] = this.ends(side);
    const data = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
    return this.trace.add({
      src,
      dst,
      seq: (seq ?? this.nxt[side]) >>> 0,
      ack: flags.includes('A') ? this.nxt[this.other(side)] >>> 0 : 0,
      flags,
      ...(data ? { payload: data } : {}),
    });
  }

  syn(times = 1): this {
    for (let i = 0; i < times; i++) this.segment('c', 'S');
    return this;
  }

  handshake(): this {
    this.segment('c', 'S');
    this.nxt.c = (this.nxt.c + 1) >>> 0;
    this.segment('s', 'SA');
    this.nxt.s = (this.nxt.s + 1) >>> 0;
    this.segment('c', 'A');
    return this;
  }

  /** SYN answered by RST. */
  refused(): this {
    this.segment('c', 'S');
    this.nxt.c = (this.nxt.c + 1) >>> 0;
    this.segment('s', 'RA', undefined, 0);
    return this;
  }

  send(side: Side, data: Buffer | string, opts: SendOptions = {}): Packet[] {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    const sizes = [...(opts.split ?? [])];
    const out: Packet[] = [];
    let o = 0;
    while (o < bytes.length) {
      const n = Math.min(sizes.shift() ?? bytes.length - o, bytes.length - o);
      const piece = bytes.subarray(o, o + n);
      out.push(this.segment(side, 'PA', piece));
      this.nxt[side] = (this.nxt[side] + n) >>> 0;
      o += n;
      if (opts.ack ?? true) this.segment(this.other(side), 'A');
    }
    return out;
  }

  /** Lines (CRLF added) from one side, one segment each unless split. */
  line(side: Side, text: string, opts: SendOptions = {}): Packet[] {
    return this.send(side, `${text}\r\n`, opts);
  }

  close(first: Side = 'c'): this {
    const second = this.other(first);
    this.segment(first, 'FA');
    this.nxt[first] = (this.nxt[first] + 1) >>> 0;
    this.segment(second, 'FA');
    this.nxt[second] = (this.nxt[second] + 1) >>> 0;
    this.segment(first, 'A');
    return this;
  }

  reset(side: Side): this {
    this.segment(side, 'RA');
    return this;
  }
}

/** A scripted control exchange: [side, line] pairs, each line in its own segment. */
export function exchange(conv: TcpConversation, script: Array<[Side, string]>): void {
  for (const [side, text] of script) conv.line(side, text);
}

// ---- files on disk ------------------------------------------------------------------

/** A temporary directory for capture files, removed by `remove`. */
export function captureDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}
