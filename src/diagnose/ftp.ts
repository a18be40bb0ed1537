/**
 * FTP control sessions from reassembled TCP streams, and the data connections
 * that followed each PORT/EPRT/LPRT and 227/228/229.
 *
 * The bytes go through the same LineFramer and ReplyAssembler the gateway
 * uses, so the analyser reads a line exactly where the gateway (and a kernel
 * ALG that does its job) would.
 */
import { parseCommand, redactCommand, TRANSFER_VERBS } from '../protocol/command.js';
import { sameAddress, type Endpoint } from '../protocol/address.js';
import { find227, find228, find229, parseEprtArg, parseLprtArg, parsePortArg } from '../protocol/endpoint.js';
import { LineFramer, type FramedLine } from '../protocol/framer.js';
import { ReplyAssembler } from '../protocol/reply.js';
import type { AnnouncementKind } from './report.js';
import {
  piecesIn,
  reassemble,
  relativeSegments,
  streamBytes,
  type Connection,
  type Direction,
  type PacketRef,
  type RelativeSegments,
  type Stream,
} from './tcp.js';

/** A line of one direction: where it is in the stream and which packets carried it. */
export interface LineRecord {
  direction: Direction;
  /** Parse text (Telnet sequences removed); PASS/ACCT masked for commands. */
  text: string;
  offset: number;
  length: number;
  /** The packet that completed the line. */
  packet: number;
  t: number;
  /** Packets in which the line's bytes first arrived, in stream order. */
  packets: number[];
}

export interface CommandRecord extends LineRecord {
  verb: string;
  arg: string;
  /** The final (≥200) reply, when one was seen. */
  reply?: ReplyRecord;
}

export interface ReplyRecord {
  code: number;
  lines: LineRecord[];
  text: string;
  packet: number;
  t: number;
  /** The command it answers (none for the greeting or an unsolicited reply). */
  command?: CommandRecord;
}

export interface Announcement {
  kind: AnnouncementKind;
  mode: 'active' | 'passive';
  /** The line that carries the endpoint. */
  line: LineRecord;
  endpoint: Endpoint;
  /** The PORT/EPRT/LPRT command, or the PASV/EPSV/LPSV command a reply answers. */
  command?: CommandRecord;
}

export interface FtpSession {
  conn: Connection;
  detectedBy: 'port-21' | 'greeting';
  rel: RelativeSegments;
  streams: Record<Direction, Stream>;
  commands: CommandRecord[];
  replies: ReplyRecord[];
  /** Lines from the server outside any reply (no code). */
  stray: LineRecord[];
  /** The 234 that answered AUTH: nothing after it is readable. */
  tls?: { command: CommandRecord; reply: ReplyRecord };
  epsvAll?: CommandRecord;
  announcements: Announcement[];
  notes: string[];
}

export interface DataConnection {
  conn: Connection;
  /** Who dialled, and where to (the roles of `conn` may be a guess without a handshake). */
  from: Endpoint;
  to: Endpoint;
  matchedBy: 'endpoint' | 'port';
  unexpectedPeer: boolean;
  bytes: { fromInitiator: number; toInitiator: number };
}

export interface CapturedDataChannel {
  announcement: Announcement;
  expectedPeer: string;
  connections: DataConnection[];
  status: 'opened' | 'unexpected-peer' | 'refused' | 'unanswered' | 'not-seen';
  /** A transfer command (RETR, LIST, …) came after the announcement, before the next one. */
  transferFollowed?: CommandRecord;
}

const GREETING = /^220[ -]/;
/** SMTP greets with 220 too. */
const SMTP = /\bE?SMTP\b|\bPostfix\b|\bSendmail\b/i;
const COMMAND_START = /^[A-Za-z]{3,4}(?: |\r?\n)/;

function firstBytes(stream: Stream, n: number): string {
  const parts: Buffer[] = [];
  let have = 0;
  for (const p of stream.pieces) {
    if (p.offset !== have) break;
    parts.push(p.data);
    have += p.data.length;
    if (have >= n) break;
  }
  return Buffer.concat(parts).subarray(0, n).toString('latin1');
}

/** Reads every connection that looks like an FTP control connection. */
export function findControlSessions(connections: readonly Connection[]): FtpSession[] {
  const sessions: FtpSession[] = [];
  for (const conn of connections) {
    const serverHasBytes = conn.segments['server->client'].some((s) => s.payload.length > 0);
    const byPort = conn.server.port === 21;
    if (!byPort && !serverHasBytes) continue;
    const rel = relativeSegments(conn);
    let detectedBy: FtpSession['detectedBy'] = 'port-21';
    if (!byPort) {
      // Only the first bytes decide: do not reassemble a large data transfer to find out it is not FTP.
      const head = (d: Direction) => reassemble(rel.views[d].filter((v) => v.offset < 256));
      const greeting = firstBytes(head('server->client'), 200);
      const clientFirst = firstBytes(head('client->server'), 16);
      const ftpLike = GREETING.test(greeting) && !SMTP.test(greeting) && (clientFirst === '' || (COMMAND_START.test(clientFirst) && !/^(EHLO|HELO|LHLO)/i.test(clientFirst)));
      if (!ftpLike) continue;
      detectedBy = 'greeting';
    }
    const streams = {
      'client->server': reassemble(rel.views['client->server']),
      'server->client': reassemble(rel.views['server->client']),
    };
    sessions.push(readSession(conn, detectedBy, rel, streams));
  }
  return sessions;
}

interface RawLine {
  framed: FramedLine;
  offset: number;
}

/** A note about one direction's bytes, dropped if those bytes turn out to be TLS. */
interface StreamNote {
  direction: Direction;
  offset: number;
  text: string;
}

/** Frames one direction; a gap in the capture restarts the framer (the line across it is lost). */
function frameStream(stream: Stream, direction: Direction, notes: StreamNote[]): RawLine[] {
  const note = (offset: number, text: string) => notes.push({ direction, offset, text: `${direction}: ${text}` });
  const out: RawLine[] = [];
  let framer = new LineFramer();
  let expected = stream.pieces[0]?.offset ?? 0;
  let lineStart = expected;
  let overlong: number | undefined;
  let resync = expected > 0;
  if (expected > 0) note(0, `the first ${expected} bytes were not captured`);
  for (const piece of stream.pieces) {
    if (piece.offset > expected) {
      note(expected, `${piece.offset - expected} bytes missing from the capture at stream offset ${expected}; the line across the gap is lost`);
      framer = new LineFramer();
      lineStart = piece.offset;
      overlong = undefined;
      // Up to the next terminator we hold the tail of a line whose start is lost.
      resync = true;
    }
    for (const f of framer.push(piece.data)) {
      if (f.kind === 'line') {
        if (!resync) out.push({ framed: f, offset: lineStart });
        resync = false;
      } else {
        if (f.done) resync = false;
        overlong ??= lineStart;
        if (f.done) {
          note(overlong, `line at stream offset ${overlong} is longer than ${framer.maxLineBytes} bytes; skipped`);
          overlong = undefined;
        }
      }
      lineStart += f.raw.length;
    }
    expected = piece.offset + piece.data.length;
  }
  const rest = framer.end();
  if (rest && rest.length > 0) note(lineStart, `${rest.length} bytes at the end without a line terminator`);
  return out;
}

function lineRecord(stream: Stream, direction: Direction, raw: RawLine, text: string): LineRecord {
  const pieces = piecesIn(stream, raw.offset, raw.framed.raw.length);
  const last = pieces[pieces.length - 1]!;
  const packets: number[] = [];
  for (const p of pieces) if (!packets.includes(p.packet)) packets.push(p.packet);
  return { direction, text, offset: raw.offset, length: raw.framed.raw.length, packet: last.packet, t: last.t, packets };
}

const AUTH_MECHANISMS = /^(TLS|SSL|TLS-C|TLS-P)$/i;

function readSession(conn: Connection, detectedBy: FtpSession['detectedBy'], rel: RelativeSegments, streams: Record<Direction, Stream>): FtpSession {
  const notes: string[] = [];
  const streamNotes: StreamNote[] = [];
  const up = streams['client->server'];
  const down = streams['server->client'];
  if (up.conflicts.length + down.conflicts.length > 0) {
    const c = [...up.conflicts, ...down.conflicts][0]!;
    notes.push(`retransmitted bytes differ from the first transmission (first at packet ${c.packet}); the first transmission was kept`);
  }

  const commands: CommandRecord[] = frameStream(up, 'client->server', streamNotes).map((raw) => {
    const record = lineRecord(up, 'client->server', raw, redactCommand(raw.framed.text));
    const { verb, arg } = parseCommand(raw.framed.text);
    return { ...record, verb, arg: verb === 'PASS' || verb === 'ACCT' ? '****' : arg };
  });

  const assembler = new ReplyAssembler();
  const replies: ReplyRecord[] = [];
  const stray: LineRecord[] = [];
  let open: LineRecord[] = [];
  for (const raw of frameStream(down, 'server->client', streamNotes)) {
    const record = lineRecord(down, 'server->client', raw, raw.framed.text);
    const ev = assembler.push(raw.framed);
    if (!ev) {
      open.push(record);
      continue;
    }
    if (ev.kind === 'stray') {
      stray.push(record);
      continue;
    }
    const lines = [...open, record];
    open = [];
    replies.push({ code: ev.reply.code, lines, text: lines.map((l) => l.text).join('\n'), packet: record.packet, t: record.t });
  }

  const session: FtpSession = { conn, detectedBy, rel, streams, commands, replies, stray, announcements: [], notes };
  pairReplies(session);
  // After a 234 to AUTH the bytes are TLS records: what the framer said about them means nothing.
  const tls = session.tls;
  const readable = (n: StreamNote) =>
    !tls || n.offset < (n.direction === 'client->server' ? tls.command.offset + tls.command.length : tls.reply.lines.at(-1)!.offset + tls.reply.lines.at(-1)!.length);
  notes.unshift(...streamNotes.filter(readable).map((n) => n.text));
  findAnnouncements(session);
  return session;
}

/**
 * Matches replies to commands in capture order: a preliminary (1xx) reply
 * leaves its command waiting, a final one completes the oldest waiting
 * command (clients may pipeline). Stops at a 234 to AUTH: the bytes after it
 * are TLS records, not lines.
 */
function pairReplies(s: FtpSession): void {
  type Item = { kind: 'command'; c: CommandRecord; i: number } | { kind: 'reply'; r: ReplyRecord; i: number };
  const items: Item[] = [
    ...s.commands.map((c, i) => ({ kind: 'command' as const, c, i })),
    ...s.replies.map((r, i) => ({ kind: 'reply' as const, r, i })),
  ].sort((a, b) => pos(a) - pos(b));
  function pos(x: Item): number {
    // The completing packet orders lines of the two directions; a reply's first line, for a multi-line reply.
    return x.kind === 'command' ? x.c.packet : x.r.lines[0]!.packet;
  }
  const waiting: CommandRecord[] = [];
  for (const item of items) {
    if (item.kind === 'command') {
      waiting.push(item.c);
      continue;
    }
    const r = item.r;
    // The greeting opens the stream; a client that talks before it does not own it.
    if (r.lines[0]!.offset === 0 && (r.code === 220 || r.code === 120)) continue;
    const c = waiting[0];
    if (!c) continue; // unsolicited (421)
    r.command = c;
    if (r.code < 200) continue;
    waiting.shift();
    c.reply = r;
    if (c.verb === 'AUTH' && AUTH_MECHANISMS.test(c.arg.trim()) && r.code === 234) {
      s.tls = { command: c, reply: r };
      const ci = s.commands.indexOf(c);
      const cut = s.commands.length - ci - 1;
      const rcut = s.replies.length - item.i - 1;
      s.commands.splice(ci + 1);
      s.replies.splice(item.i + 1);
      s.stray = s.stray.filter((l) => l.packet <= r.packet);
      s.notes.push(`control channel encrypted after AUTH ${c.arg.trim()} (234 at packet ${r.packet})${cut + rcut > 0 ? '; the bytes after it are not read as lines' : ''}`);
      return;
    }
  }
}

function findAnnouncements(s: FtpSession): void {
  const server = s.conn.server;
  for (const c of s.commands) {
    if (c.verb === 'EPSV' && c.arg.trim().toUpperCase() === 'ALL') s.epsvAll ??= c;
    const parse = c.verb === 'PORT' ? parsePortArg : c.verb === 'EPRT' ? parseEprtArg : c.verb === 'LPRT' ? parseLprtArg : undefined;
    if (!parse) continue;
    const endpoint = parse(c.arg);
    if (!endpoint) {
      s.notes.push(`${c.verb} at packet ${c.packet} has an argument that does not parse: ${c.text}`);
      continue;
    }
    s.announcements.push({ kind: c.verb as AnnouncementKind, mode: 'active', line: c, endpoint, command: c });
  }
  for (const r of s.replies) {
    if (r.code !== 227 && r.code !== 228 && r.code !== 229) continue;
    let found = false;
    for (const line of r.lines) {
      let endpoint: Endpoint | undefined;
      if (r.code === 227) endpoint = find227(line.text)?.endpoint;
      else if (r.code === 228) endpoint = find228(line.text)?.endpoint;
      else {
        const p = find229(line.text);
        if (p) endpoint = { family: server.family, address: server.address, port: p.port };
      }
      if (!endpoint) continue;
      s.announcements.push({ kind: String(r.code) as AnnouncementKind, mode: 'passive', line, endpoint, ...(r.command ? { command: r.command } : {}) });
      found = true;
      break;
    }
    if (!found) s.notes.push(`${r.code} at packet ${r.packet} carries no endpoint that parses: ${r.text}`);
  }
  s.announcements.sort((a, b) => a.line.packet - b.line.packet);
}

/**
 * For each announcement, the TCP connections that went to the announced
 * endpoint after it and before the session's next announcement. A
 * connection to the announced port on the control peer's own address also
 * counts (clients such as curl ignore the address in a 227 by default, and
 * some servers connect back to the control address whatever PORT says).
 */
export function matchDataChannels(sessions: readonly FtpSession[], connections: readonly Connection[]): Map<FtpSession, CapturedDataChannel[]> {
  const control = new Set(sessions.map((s) => s.conn));
  const used = new Set<Connection>();
  const candidates = connections.filter((c) => !control.has(c));
  const out = new Map<FtpSession, CapturedDataChannel[]>();
  const jobs = sessions.flatMap((s) => s.announcements.map((a, i) => ({ s, a, next: s.announcements[i + 1]?.line.packet ?? Infinity })));
  jobs.sort((x, y) => x.a.line.packet - y.a.line.packet);
  for (const { s, a, next } of jobs) {
    const passive = a.mode === 'passive';
    // The side that should accept, and the side that should dial.
    const acceptorControl = passive ? s.conn.server : s.conn.client;
    const initiatorControl = passive ? s.conn.client : s.conn.server;
    const channel: CapturedDataChannel = { announcement: a, expectedPeer: initiatorControl.address, connections: [], status: 'not-seen' };
    for (const conn of candidates) {
      if (used.has(conn) || conn.first.packet <= a.line.packet || conn.first.packet >= next) continue;
      const ends = conn.roles === 'syn' || conn.roles === 'syn-ack' ? [conn.server] : [conn.server, conn.client];
      let matchedBy: DataConnection['matchedBy'] | undefined;
      let to: Endpoint | undefined;
      for (const end of ends) {
        if (end.port !== a.endpoint.port) continue;
        if (sameAddress(end, a.endpoint)) matchedBy = 'endpoint';
        else if (sameAddress(end, acceptorControl)) matchedBy = 'port';
        if (matchedBy) {
          to = end;
          break;
        }
      }
      if (!matchedBy || !to) continue;
      used.add(conn);
      const from = to === conn.server ? conn.client : conn.server;
      const initiatorDir: Direction = to === conn.server ? 'client->server' : 'server->client';
      const rel = relativeSegments(conn);
      const fwd = streamBytes(reassemble(rel.views[initiatorDir]));
      const back = streamBytes(reassemble(rel.views[initiatorDir === 'client->server' ? 'server->client' : 'client->server']));
      channel.connections.push({ conn, from, to, matchedBy, unexpectedPeer: !sameAddress(from, initiatorControl), bytes: { fromInitiator: fwd, toInitiator: back } });
    }
    channel.status = channelStatus(channel.connections);
    channel.transferFollowed = s.commands.find((c) => TRANSFER_VERBS.has(c.verb) && c.packet > a.line.packet && c.packet < next);
    const list = out.get(s) ?? [];
    list.push(channel);
    out.set(s, list);
  }
  for (const list of out.values()) list.sort((x, y) => x.announcement.line.packet - y.announcement.line.packet);
  return out;
}

function channelStatus(conns: DataConnection[]): CapturedDataChannel['status'] {
  const good = (d: DataConnection) => d.conn.state === 'opened' || d.conn.state === 'mid-stream';
  if (conns.some((d) => good(d) && !d.unexpectedPeer)) return 'opened';
  if (conns.some((d) => good(d))) return 'unexpected-peer';
  if (conns.some((d) => d.conn.state === 'refused')) return 'refused';
  if (conns.some((d) => d.conn.state === 'unanswered')) return 'unanswered';
  return 'not-seen';
}

export function packetOf(ref: PacketRef): { packet: number; time: number } {
  return { packet: ref.packet, time: ref.t };
}
