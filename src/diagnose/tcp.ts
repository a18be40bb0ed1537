/**
 * TCP connections and per-direction reassembly from captured segments.
 *
 * Offline, so every pass may look at the whole connection: sequence numbers
 * become offsets relative to the ISN (RFC 9293 §3.4: the SYN takes one
 * sequence number, so byte 0 of the stream is ISN+1, and a FIN takes the one
 * after the last byte). Offsets are unwrapped across the 32-bit wraparound by
 * adding the signed 32-bit difference to the previous segment's offset.
 *
 * A byte's first arrival wins: a retransmission that carries different bytes
 * for the same offsets is recorded as a conflict, not applied (what Linux and
 * most stacks do for overlapping data already queued).
 */
import type { Endpoint } from '../protocol/address.js';
import { formatEndpoint } from '../protocol/address.js';
import type { TcpSegment } from './pcap.js';

import type { Direction } from '../alg/control-stream.js';

export type { Direction };
export const DIRECTIONS: readonly Direction[] = ['client->server', 'server->client'];

export function reverse(d: Direction): Direction {
  return d === 'client->server' ? 'server->client' : 'client->server';
}

export interface PacketRef {
  packet: number;
  t: number;
}

/** What the handshake tells about how the connection went. */
export type ConnectionState =
  /** SYN and SYN-ACK seen. */
  | 'opened'
  /** SYN answered by RST. */
  | 'refused'
  /** SYN (perhaps retransmitted) with no answer in the capture. */
  | 'unanswered'
  /** The capture starts after the handshake: roles are a guess. */
  | 'mid-stream';

export interface Connection {
  /** 1-based, in order of first packet. */
  id: number;
  client: Endpoint;
  server: Endpoint;
  /**
   * How client and server were told apart, most reliable first: who sent the
   * SYN; who answered with SYN-ACK; who sent an FTP greeting (220) or other
   * replies while the other side sent commands (a capture that starts
   * mid-stream); else the well-known or lower port (a guess).
   */
  roles: ConnectionRoles;
  state: ConnectionState;
  first: PacketRef;
  last: PacketRef;
  syn?: PacketRef & { count: number; isn: number };
  synAck?: PacketRef & { isn: number };
  /** The client's first ACK after the SYN-ACK (completes the handshake). */
  handshakeAck?: PacketRef;
  rst?: PacketRef & { from: 'client' | 'server' };
  fin: Partial<Record<Direction, PacketRef>>;
  segments: Record<Direction, TcpSegment[]>;
}

export type ConnectionRoles = 'syn' | 'syn-ack' | 'greeting' | 'replies' | 'port-guess';

const key = (e: Endpoint) => `${e.address}|${e.port}`;

const REPLY_START = /^[1-5]\d\d[ -]/;

/** Roles from the first payload each side sent: the side that speaks FTP replies is the server. */
function rolesByPayload(a: TcpSegment | undefined, b: TcpSegment | undefined): { serverIsA: boolean; by: 'greeting' | 'replies' } | undefined {
  const text = (s: TcpSegment | undefined) => s?.payload.subarray(0, 8).toString('latin1') ?? '';
  const [ta, tb] = [text(a), text(b)];
  const [aReplies, bReplies] = [REPLY_START.test(ta), REPLY_START.test(tb)];
  if (aReplies === bReplies) return undefined;
  const serverText = aReplies ? ta : tb;
  return { serverIsA: aReplies, by: serverText.startsWith('220') ? 'greeting' : 'replies' };
}

/**
 * Groups segments into connections. A SYN that is not a retransmission of the
 * current connection's SYN (same sender, same ISN) starts a new connection on
 * the same 4-tuple: port reuse after TIME_WAIT.
 */
export function trackConnections(segments: readonly TcpSegment[]): Connection[] {
  interface Building {
    a: Endpoint;
    b: Endpoint;
    bySender: Map<string, TcpSegment[]>;
    syn?: TcpSegment;
    synCount: number;
    synAck?: TcpSegment;
    first: TcpSegment;
    last: TcpSegment;
  }
  const current = new Map<string, Building>();
  const all: Building[] = [];
  for (const seg of segments) {
    const ks = key(seg.src);
    const kd = key(seg.dst);
    const flow = ks < kd ? `${ks}|${kd}` : `${kd}|${ks}`;
    let c = current.get(flow);
    const pureSyn = seg.flags.syn && !seg.flags.ack;
    const retransmittedSyn = c?.syn !== undefined && key(c.syn.src) === ks && c.syn.seq === seg.seq;
    if (!c || (pureSyn && !retransmittedSyn)) {
      c = { a: seg.src, b: seg.dst, bySender: new Map(), synCount: 0, first: seg, last: seg };
      current.set(flow, c);
      all.push(c);
    }
    c.last = seg;
    const list = c.bySender.get(ks) ?? [];
    list.push(seg);
    c.bySender.set(ks, list);
    if (pureSyn) {
      c.syn ??= seg;
      if (key(c.syn.src) === ks && c.syn.seq === seg.seq) c.synCount++;
    } else if (seg.flags.syn && seg.flags.ack) {
      c.synAck ??= seg;
    }
  }
  return all.map((b, i) => finishConnection(b, i + 1));

  function finishConnection(b: Building, id: number): Connection {
    let client: Endpoint;
    let server: Endpoint;
    let roles: Connection['roles'];
    if (b.syn) {
      [client, server, roles] = [b.syn.src, b.syn.dst, 'syn'];
    } else if (b.synAck) {
      [client, server, roles] = [b.synAck.dst, b.synAck.src, 'syn-ack'];
    } else {
      const firstPayload = (e: Endpoint) => b.bySender.get(key(e))?.find((x) => x.payload.length > 0);
      const byPayload = rolesByPayload(firstPayload(b.a), firstPayload(b.b));
      if (byPayload) {
        [client, server, roles] = byPayload.serverIsA ? [b.b, b.a, byPayload.by] : [b.a, b.b, byPayload.by];
      } else {
        const aServer = looksLikeServerPort(b.a.port, b.b.port);
        [client, server, roles] = aServer ? [b.b, b.a, 'port-guess'] : [b.a, b.b, 'port-guess'];
      }
    }
    const c2s = b.bySender.get(key(client)) ?? [];
    const s2c = b.bySender.get(key(server)) ?? [];
    const ref = (s: TcpSegment): PacketRef => ({ packet: s.packet, t: s.t });
    const conn: Connection = {
      id,
      client,
      server,
      roles,
      state: 'mid-stream',
      first: ref(b.first),
      last: ref(b.last),
      fin: {},
      segments: { 'client->server': c2s, 'server->client': s2c },
    };
    if (b.syn) conn.syn = { ...ref(b.syn), count: b.synCount, isn: b.syn.seq };
    if (b.synAck) {
      conn.synAck = { ...ref(b.synAck), isn: b.synAck.seq };
      const ack = c2s.find((s) => s.packet > b.synAck!.packet && s.flags.ack && !s.flags.syn);
      if (ack) conn.handshakeAck = ref(ack);
    }
    for (const s of [...c2s, ...s2c].sort((x, y) => x.packet - y.packet)) {
      if (s.flags.rst && !conn.rst) conn.rst = { ...ref(s), from: key(s.src) === key(client) ? 'client' : 'server' };
    }
    for (const [dir, list] of [
      ['client->server', c2s],
      ['server->client', s2c],
    ] as const) {
      const fin = list.find((s) => s.flags.fin);
      if (fin) conn.fin[dir] = ref(fin);
    }
    if (conn.syn && conn.synAck) conn.state = 'opened';
    else if (conn.syn && conn.rst?.from === 'server') conn.state = 'refused';
    else if (conn.syn) conn.state = 'unanswered';
    return conn;
  }
}

/** Without a handshake: 21 is the server; else a port below 1024; else the lower port (ephemeral ports are high). */
function looksLikeServerPort(a: number, b: number): boolean {
  if (a === 21 || b === 21) return a === 21;
  if (a < 1024 !== b < 1024) return a < 1024;
  return a < b;
}

/** One segment of one direction, with sequence and acknowledgement numbers relative to the ISNs. */
export interface SegmentView {
  seg: TcpSegment;
  /** Stream offset of the first payload byte (a SYN's own sequence number is -1). */
  offset: number;
  /** Offset in the other direction's stream that this segment acknowledges, when it has ACK and that stream's base is known. */
  ackOffset?: number;
}

export interface RelativeSegments {
  /** Sequence number of stream byte 0 per direction (ISN+1 when the SYN was seen). */
  base: Partial<Record<Direction, number>>;
  views: Record<Direction, SegmentView[]>;
}

/** Signed 32-bit difference, for numbers that may have wrapped. */
const diff32 = (a: number, b: number) => (a - b) | 0;

class Unwrapper {
  private lastRaw: number;
  private lastRel = 0;
  constructor(base: number) {
    this.lastRaw = base;
  }
  rel(raw: number): number {
    this.lastRel += diff32(raw, this.lastRaw);
    this.lastRaw = raw;
    return this.lastRel;
  }
}

export function relativeSegments(conn: Connection): RelativeSegments {
  const base: Partial<Record<Direction, number>> = {};
  for (const dir of DIRECTIONS) {
    const list = conn.segments[dir];
    const synSeq = dir === 'client->server' ? conn.syn?.isn : conn.synAck?.isn;
    if (synSeq !== undefined) {
      base[dir] = (synSeq + 1) >>> 0;
      continue;
    }
    const first = list[0];
    if (!first) continue;
    // No handshake: start at the first segment, then move the base back if
    // an earlier part of the stream arrived later (reordering at the start).
    const u = new Unwrapper(first.seq);
    let min = 0;
    for (const s of list) min = Math.min(min, u.rel(s.seq));
    base[dir] = (first.seq + min) >>> 0;
  }
  const views = {} as Record<Direction, SegmentView[]>;
  for (const dir of DIRECTIONS) {
    const own = base[dir];
    const other = base[reverse(dir)];
    const useq = own === undefined ? undefined : new Unwrapper(own);
    const uack = other === undefined ? undefined : new Unwrapper(other);
    views[dir] = conn.segments[dir].map((seg) => {
      const rel = useq!.rel(seg.seq);
      const view: SegmentView = { seg, offset: seg.flags.syn ? rel + 1 : rel };
      if (seg.flags.ack && uack) view.ackOffset = uack.rel(seg.ack);
      return view;
    });
  }
  return { base, views };
}

export interface StreamPiece {
  offset: number;
  data: Buffer;
  /** Packet in which these bytes first arrived. */
  packet: number;
  t: number;
}

export interface Stream {
  /** First arrivals, sorted by offset, not overlapping. */
  pieces: StreamPiece[];
  /** Byte ranges never captured (lost before the capture point, or cut by the snaplen). */
  gaps: Array<{ offset: number; length: number }>;
  /** Offset just past the highest byte seen. */
  end: number;
  /** Stream offset the FIN occupies, when one was seen. */
  finOffset?: number;
  /** Segments whose bytes had all arrived before. */
  retransmissions: number;
  /** Segments that filled a hole behind bytes that had already arrived. */
  outOfOrder: number;
  /** Retransmitted bytes that differ from the first arrival (first arrival kept). */
  conflicts: Array<{ offset: number; length: number; packet: number }>;
}

/** Index of the first piece that ends after `offset`. */
function firstEndingAfter(pieces: StreamPiece[], offset: number): number {
  let lo = 0;
  let hi = pieces.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const p = pieces[mid]!;
    if (p.offset + p.data.length > offset) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export function reassemble(views: readonly SegmentView[]): Stream {
  const pieces: StreamPiece[] = [];
  const stream: Stream = { pieces, gaps: [], end: 0, retransmissions: 0, outOfOrder: 0, conflicts: [] };
  for (const v of views) {
    const { seg } = v;
    if (seg.flags.fin) stream.finOffset ??= v.offset + seg.length;
    const data = seg.payload;
    if (data.length === 0) continue;
    const start = v.offset;
    const end = start + data.length;
    // Bytes before stream offset 0 would be before the SYN: a bogus segment.
    if (end <= 0) continue;
    const adds: Array<[number, number]> = [];
    let cur = Math.max(start, 0);
    let i = firstEndingAfter(pieces, cur);
    while (cur < end) {
      const p = pieces[i];
      if (!p || p.offset >= end) {
        adds.push([cur, end]);
        break;
      }
      if (p.offset > cur) adds.push([cur, p.offset]);
      const from = Math.max(cur, p.offset);
      const to = Math.min(end, p.offset + p.data.length);
      const mine = data.subarray(from - start, to - start);
      const theirs = p.data.subarray(from - p.offset, to - p.offset);
      if (!mine.equals(theirs)) stream.conflicts.push({ offset: from, length: to - from, packet: seg.packet });
      cur = to;
      i++;
    }
    if (adds.length === 0) {
      stream.retransmissions++;
      continue;
    }
    if (adds[0]![0] < stream.end) stream.outOfOrder++;
    for (const [s, e] of adds) {
      const at = firstEndingAfter(pieces, s);
      pieces.splice(at, 0, { offset: s, data: data.subarray(s - start, e - start), packet: seg.packet, t: seg.t });
    }
    stream.end = Math.max(stream.end, end);
  }
  let expect = 0;
  for (const p of pieces) {
    if (p.offset > expect) stream.gaps.push({ offset: expect, length: p.offset - expect });
    expect = p.offset + p.data.length;
  }
  return stream;
}

/** The pieces overlapping [offset, offset+length), in order. */
export function piecesIn(stream: Stream, offset: number, length: number): StreamPiece[] {
  const out: StreamPiece[] = [];
  for (let i = firstEndingAfter(stream.pieces, offset); i < stream.pieces.length; i++) {
    const p = stream.pieces[i]!;
    if (p.offset >= offset + length) break;
    out.push(p);
  }
  return out;
}

/** Payload bytes of a direction (first arrivals only). */
export function streamBytes(stream: Stream): number {
  return stream.pieces.reduce((n, p) => n + p.data.length, 0);
}

/** Why `client` is the client, in words for the report. */
export function rolesReason(c: Connection): string {
  switch (c.roles) {
    case 'syn':
      return `${formatEndpoint(c.client)} sent the SYN (packet ${c.syn?.packet})`;
    case 'syn-ack':
      return `${formatEndpoint(c.server)} sent the SYN-ACK (packet ${c.synAck?.packet}); the SYN is not in the capture`;
    case 'greeting':
      return `no handshake in the capture; ${formatEndpoint(c.server)} sent the 220 greeting`;
    case 'replies':
      return `no handshake in the capture; ${formatEndpoint(c.server)} sent FTP replies, ${formatEndpoint(c.client)} commands`;
    case 'port-guess':
      return `a guess: no handshake and no readable FTP in the capture; port ${c.server.port} looks like the server's`;
  }
}

export function describeConnection(c: Connection): string {
  return `${formatEndpoint(c.client)} → ${formatEndpoint(c.server)}`;
}
