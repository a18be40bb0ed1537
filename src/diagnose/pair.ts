/**
 * Two captures of the same control sessions, one on each side of a NAT or
 * ALG: which lines the middlebox rewrote, and whether it shifted the TCP
 * sequence and acknowledgement numbers to match.
 *
 * A middlebox that rewrites inside TCP (a kernel FTP helper, a router ALG)
 * forwards one segment per segment it receives. When a rewrite changes a
 * line's length by d bytes, every later sequence number in that direction
 * must move by d, and every ACK coming back must move by -d (Linux does this
 * in nf_nat_seqadj). Numbers are compared relative to each side's ISN, since
 * the middlebox may also randomise ISNs.
 */
import { RewriteLedger, type LedgerEntry } from '../alg/ledger.js';
import { parseCommand } from '../protocol/command.js';
import { LineFramer, lineFromRaw } from '../protocol/framer.js';
import { replyCode } from '../protocol/reply.js';
import { align, type AlignOp } from './align.js';
import type { FtpSession } from './ftp.js';
import { isSiteLocal } from '../protocol/address.js';
import type { Finding, InferredRewrite, LegTranslation, PairReport, RewriteReport, SequenceMismatch } from './report.js';
import { inferFromAcks } from './ack-inference.js';
import { numbersRelated } from './legs.js';
import { DIRECTIONS, piecesIn, reverse, type Connection, type Direction, type SegmentView, type Stream } from './tcp.js';

export interface PairSide {
  capture: number;
  id: string;
  session: FtpSession;
}

function tokens(s: FtpSession): string[] {
  return [...s.commands.map((c) => c.verb), '|', ...s.replies.map((r) => String(r.code))];
}

/**
 * Pairs control sessions of two captures: the same command verbs and reply
 * codes in the same order (arguments differ where the middlebox rewrote
 * them; addresses differ by NAT). The server port should be the same too; a
 * session whose whole sequence matches is paired even across a port mapping.
 */
export function pairControlSessions(first: readonly PairSide[], second: readonly PairSide[]): Array<[PairSide, PairSide]> {
  const cands: Array<{ a: number; b: number; score: number }> = [];
  first.forEach((x, i) => {
    const tx = tokens(x.session);
    second.forEach((y, j) => {
      const ty = tokens(y.session);
      const same = align(tx, ty, (t) => t).filter((op) => op.kind === 'same').length - 1;
      const sim = same / Math.max(1, Math.max(tx.length, ty.length) - 1);
      const portEq = x.session.conn.server.port === y.session.conn.server.port;
      const exact = tx.join(' ') === ty.join(' ') && tx.length >= 3;
      if ((portEq && sim >= 0.8) || exact) cands.push({ a: i, b: j, score: sim + (portEq ? 0.5 : 0) - Math.abs(i - j) * 1e-6 });
    });
  });
  cands.sort((p, q) => q.score - p.score);
  const usedA = new Set<number>();
  const usedB = new Set<number>();
  const out: Array<[PairSide, PairSide]> = [];
  for (const c of cands) {
    if (usedA.has(c.a) || usedB.has(c.b)) continue;
    usedA.add(c.a);
    usedB.add(c.b);
    out.push([first[c.a]!, second[c.b]!]);
  }
  return out.sort((p, q) => p[0].session.conn.first.packet - q[0].session.conn.first.packet);
}

function handshakeGaps(c: Connection): { toSynAck: number; toAck: number } | undefined {
  if (!c.syn || !c.synAck || !c.handshakeAck) return undefined;
  return { toSynAck: c.synAck.t - c.syn.t, toAck: c.handshakeAck.t - c.synAck.t };
}

export interface ClientSideDecision {
  /** The capture taken nearer the client. */
  capture: number;
  /** Within one capture: the session (leg) nearer the client. */
  session?: string;
  by: PairReport['clientSideBy'];
  reason: string;
}

/**
 * Which of the two captures is nearer the client, decided once for all
 * paired sessions (a decision per session flips with timing noise), from the
 * most to the least telling evidence:
 * - addresses: the client's address is site-local in one capture only (the
 *   inside of a client's NAT), or the server's is (the inside of a server's);
 * - syn-order: the two captures share a clock (their connections overlap in
 *   time) and in every pair the SYN appears first in the same capture — a
 *   NAT forwards the client's SYN, a proxy dials only after accepting it;
 * - handshake-timing: near the client SYN→SYN-ACK spans the whole round trip
 *   and SYN-ACK→ACK is immediate, near the server the other way round (needs
 *   no common clock), summed over all pairs;
 * - argument-order: nothing tells; the first file is taken as the client side.
 */
export function decideClientSide(pairs: ReadonlyArray<readonly [PairSide, PairSide]>, captures: [number, number]): ClientSideDecision {
  const [one, two] = captures;
  let votes = 0;
  for (const [a, b] of pairs) {
    const [ca, cb] = [a.session.conn, b.session.conn];
    if (isSiteLocal(ca.client) !== isSiteLocal(cb.client)) votes += isSiteLocal(ca.client) ? 1 : -1;
    if (isSiteLocal(ca.server) !== isSiteLocal(cb.server)) votes += isSiteLocal(ca.server) ? -1 : 1;
  }
  if (votes !== 0) {
    const capture = votes > 0 ? one : two;
    return { capture, by: 'addresses', reason: `capture ${capture} shows the inside (site-local) address of the client, or the other capture shows the server's` };
  }
  const timed = pairs.filter(([a, b]) => a.session.conn.syn && b.session.conn.syn);
  const overlap = (x: Connection, y: Connection) => x.first.t <= y.last.t && y.first.t <= x.last.t;
  if (timed.length > 0 && timed.every(([a, b]) => overlap(a.session.conn, b.session.conn))) {
    const firstEarlier = timed.filter(([a, b]) => a.session.conn.syn!.t < b.session.conn.syn!.t).length;
    const secondEarlier = timed.filter(([a, b]) => b.session.conn.syn!.t < a.session.conn.syn!.t).length;
    if (firstEarlier === timed.length || secondEarlier === timed.length) {
      const capture = firstEarlier === timed.length ? one : two;
      return { capture, by: 'syn-order', reason: `in all ${timed.length} paired session(s) the client's SYN appears first in capture ${capture} (the captures share a clock)` };
    }
  }
  let score = 0;
  for (const [a, b] of pairs) {
    const ga = handshakeGaps(a.session.conn);
    const gb = handshakeGaps(b.session.conn);
    if (ga && gb) score += ga.toSynAck - gb.toSynAck + (gb.toAck - ga.toAck);
  }
  if (Math.abs(score) >= 1e-7) {
    const capture = score > 0 ? one : two;
    return { capture, by: 'handshake-timing', reason: `summed over the paired sessions, SYN→SYN-ACK is longer and SYN-ACK→ACK shorter in capture ${capture}` };
  }
  return { capture: one, by: 'argument-order', reason: `nothing in the captures tells; capture ${one} (the first argument) is taken as the client side` };
}

/** Same connection forwarded (NAT, kernel ALG) or two connections (a proxy), and why. */
export function classifyMiddlebox(
  near: Connection,
  far: Connection,
  segOps: Record<Direction, AlignOp<SegmentView>[]>,
  forwards: boolean,
): { kind: PairReport['middleboxKind']; evidence: string[] } {
  const translated = (why: string) => ({ kind: 'translated' as const, evidence: [why] });
  const terminated = (why: string) => ({ kind: 'terminated' as const, evidence: [why] });
  if (near.syn && far.syn && near.syn.isn === far.syn.isn) return translated(`the client's SYN carries the same ISN (${near.syn.isn}) on both sides: one connection, forwarded`);
  if (near.synAck && far.synAck && near.synAck.isn === far.synAck.isn) return translated(`the server's SYN-ACK carries the same ISN (${near.synAck.isn}) on both sides: one connection, forwarded`);
  if (numbersRelated(near, far)) return translated("one side's sequence or acknowledgement numbers fall within the other's: one connection, forwarded with its ISNs");
  const paired = DIRECTIONS.flatMap((d) => segOps[d].flatMap((op) => (op.kind === 'same' || op.kind === 'changed' ? [[op.a.seg, op.b.seg] as const] : [])));
  const same = (field: 'tsval' | 'ipId') => {
    const both = paired.filter(([x, y]) => x[field] !== undefined && y[field] !== undefined);
    return { compared: both.length, equal: both.filter(([x, y]) => x[field] === y[field]).length, varies: new Set(both.map(([x]) => x[field])).size > 1 };
  };
  const ts = same('tsval');
  if (ts.compared >= 3) {
    return ts.equal >= 0.8 * ts.compared
      ? translated(`${ts.equal} of ${ts.compared} forwarded segments carry the same TCP timestamp on both sides: one connection, forwarded`)
      : terminated(`TCP timestamps differ between the sides (${ts.equal} of ${ts.compared} equal): two connections, the middlebox terminates TCP (a proxy)`);
  }
  const id = same('ipId');
  if (id.compared >= 3 && id.varies) {
    return id.equal >= 0.8 * id.compared
      ? translated(`${id.equal} of ${id.compared} forwarded segments keep their IPv4 identification: one connection, forwarded`)
      : terminated(`IPv4 identification fields are unrelated between the sides: two connections, the middlebox terminates TCP (a proxy)`);
  }
  const closer = (c: Connection) => {
    const fc = c.fin['client->server'];
    const fs = c.fin['server->client'];
    if (!fc || !fs) return undefined;
    return fc.packet < fs.packet ? 'client' : 'server';
  };
  const [cn, cf] = [closer(near), closer(far)];
  if (cn && cf && cn !== cf) return terminated(`the ${cn} closed first on the client's side, the ${cf} on the server's: two connections, closed separately (a proxy)`);
  if (!forwards) return terminated('the middlebox re-cuts the stream into segments of its own: it terminates TCP (a proxy)');
  return translated('ISNs differ but every segment is forwarded one to one, in the same order: one connection, with ISNs randomised by the middlebox');
}

// The TCP timestamp, which a forwarding middlebox keeps, tells apart pure ACKs that look alike.
const segKey = (v: SegmentView) =>
  `${v.seg.flags.syn ? 'S' : ''}${v.seg.flags.fin ? 'F' : ''}${v.seg.flags.rst ? 'R' : ''}${v.seg.tsval ?? ''}:${v.seg.payload.toString('latin1')}`;

interface Line {
  offset: number;
  raw: Buffer;
}

/** Every line of a stream's bytes, and the unterminated rest as a last line; no length cap (offline). */
function linesOf(bytes: Buffer): Line[] {
  const framer = new LineFramer(Math.max(8, bytes.length + 1));
  const out: Line[] = [];
  let offset = 0;
  for (const f of framer.push(bytes)) {
    out.push({ offset, raw: f.raw });
    offset += f.raw.length;
  }
  const rest = framer.end();
  if (rest) out.push({ offset, raw: rest });
  return out;
}

function lineText(raw: Buffer): string {
  return raw.length > 0 && raw[raw.length - 1] === 0x0a ? lineFromRaw(raw).text : raw.toString('latin1');
}

function contiguous(stream: Stream): Buffer | undefined {
  if (stream.gaps.length > 0) return undefined;
  if ((stream.pieces[0]?.offset ?? 0) !== 0) return undefined;
  return Buffer.concat(stream.pieces.map((p) => p.data));
}

interface Content {
  bytes: Buffer;
  /** Content offset → packet in the receiver-side capture that carried it. */
  map: Array<{ offset: number; packet: number }>;
}

/**
 * What the middlebox emitted, in the order of the sender's stream: the
 * payload of each forwarded segment whose input carried new bytes. Built from
 * segments, not from the receiver side's sequence numbers, which are exactly
 * what may be wrong.
 */
function forwardedContent(ops: AlignOp<SegmentView>[], sender: Stream): Content {
  const parts: Array<{ key: number; data: Buffer; packet: number }> = [];
  const seen = new Set<string>();
  let lastKey = 0;
  for (const op of ops) {
    if (op.kind === 'deleted') continue;
    const out = op.b;
    if (out.seg.payload.length === 0) continue;
    const id = `${out.offset}:${out.seg.payload.toString('latin1')}`;
    if (op.kind === 'inserted') {
      if (seen.has(id)) continue;
      seen.add(id);
      parts.push({ key: lastKey, data: out.seg.payload, packet: out.seg.packet });
      continue;
    }
    seen.add(id);
    const inp = op.a;
    const fresh = piecesIn(sender, inp.offset, inp.seg.payload.length).filter((p) => p.packet === inp.seg.packet);
    if (fresh.length === 0) continue; // a retransmission
    const freshBytes = fresh.reduce((n, p) => n + p.data.length, 0);
    lastKey = inp.offset;
    if (freshBytes === inp.seg.payload.length || !out.seg.payload.equals(inp.seg.payload)) {
      parts.push({ key: inp.offset, data: out.seg.payload, packet: out.seg.packet });
    } else {
      for (const p of fresh) parts.push({ key: p.offset, data: out.seg.payload.subarray(p.offset - inp.offset, p.offset - inp.offset + p.data.length), packet: out.seg.packet });
    }
  }
  parts.sort((x, y) => x.key - y.key);
  const map: Content['map'] = [];
  let n = 0;
  for (const p of parts) {
    map.push({ offset: n, packet: p.packet });
    n += p.data.length;
  }
  return { bytes: Buffer.concat(parts.map((p) => p.data)), map };
}

function packetAt(content: Content, offset: number): number | undefined {
  let found: number | undefined;
  for (const m of content.map) {
    if (m.offset > offset) break;
    found = m.packet;
  }
  return found;
}

/** Ledger output offset, or undefined when `offset` falls inside a rewritten line (no single answer). */
function outputOf(ledger: RewriteLedger, offset: number): number | undefined {
  for (const e of ledger.entries) {
    if (offset > e.offset && offset < e.offset + e.before) return undefined;
  }
  return ledger.toOutput(offset);
}

/** Inverse of RewriteLedger.toOutput, for ACKs: an output offset back to the input stream. */
function inputOf(entries: readonly LedgerEntry[], out: number): number | undefined {
  let d = 0;
  for (const e of entries) {
    const start = e.offset + d;
    if (out >= start + e.after) {
      d = e.delta;
      continue;
    }
    if (out > start) return undefined;
    break;
  }
  return out - d;
}

function kindOf(direction: Direction, text: string): string {
  if (direction === 'client->server') return parseCommand(text).verb || 'line';
  return String(replyCode(text) ?? 'line');
}

export interface PairResult {
  report: PairReport;
  findings: Finding[];
}

export function analysePair(first: PairSide, second: PairSide, side: ClientSideDecision, translation?: LegTranslation): PairResult {
  const secondIsClient = side.session !== undefined ? side.session === second.id : side.capture === second.capture;
  const [client, server] = secondIsClient ? [second, first] : [first, second];
  const sideOf = (d: Direction) => (d === 'client->server' ? { sender: client, receiver: server } : { sender: server, receiver: client });

  const segOps = {} as Record<Direction, AlignOp<SegmentView>[]>;
  let forwards = true;
  for (const d of DIRECTIONS) {
    const { sender, receiver } = sideOf(d);
    const ops = align(sender.session.rel.views[d], receiver.session.rel.views[d], segKey);
    segOps[d] = ops;
    const dataIn = sender.session.rel.views[d].filter((v) => v.seg.payload.length > 0).length;
    const dataOut = receiver.session.rel.views[d].filter((v) => v.seg.payload.length > 0).length;
    const paired = ops.filter((op) => op.kind !== 'deleted' && op.kind !== 'inserted' && op.a.seg.payload.length > 0 && op.b.seg.payload.length > 0).length;
    if (Math.max(dataIn, dataOut) > 0 && paired < 0.8 * Math.max(dataIn, dataOut)) forwards = false;
  }

  const middlebox = classifyMiddlebox(client.session.conn, server.session.conn, segOps, forwards);
  // Only a middlebox that forwards the same connection's segments keeps them comparable.
  const sameSegments = forwards && middlebox.kind === 'translated';
  const rewrites: RewriteReport[] = [];
  const ledgers = {} as Record<Direction, RewriteLedger>;
  const unreadable: string[] = [];
  for (const d of DIRECTIONS) {
    const { sender, receiver } = sideOf(d);
    const ledger = new RewriteLedger();
    ledgers[d] = ledger;
    const inStream = sender.session.streams[d];
    const input = contiguous(inStream);
    const output: Content | undefined = sameSegments
      ? forwardedContent(segOps[d], inStream)
      : (() => {
          const s = receiver.session.streams[d];
          const bytes = contiguous(s);
          return bytes ? { bytes, map: s.pieces.map((p) => ({ offset: p.offset, packet: p.packet })) } : undefined;
        })();
    if (!input || !output) {
      unreadable.push(`${d}: bytes missing from capture ${input ? receiver.capture : sender.capture}`);
      continue;
    }
    for (const op of align(linesOf(input), linesOf(output.bytes), (l) => l.raw.toString('latin1'))) {
      if (op.kind === 'same') {
        ledger.passed(op.a.raw.length);
        continue;
      }
      const before = op.kind === 'inserted' ? undefined : op.a;
      const after = op.kind === 'deleted' ? undefined : op.b;
      const entry = ledger.rewrote(before?.raw.length ?? 0, after?.raw.length ?? 0);
      const beforePacket = before ? piecesIn(inStream, before.offset, before.raw.length).pop()?.packet : undefined;
      const afterPacket = after ? packetAt(output, after.offset + after.raw.length - 1) : undefined;
      const beforeText = before ? lineText(before.raw) : '';
      const afterText = after ? lineText(after.raw) : '';
      rewrites.push({
        direction: d,
        kind: kindOf(d, beforeText || afterText),
        before: beforeText,
        after: afterText,
        beforeAt: { capture: sender.capture, packet: beforePacket ?? 0 },
        ...(afterPacket === undefined ? {} : { afterAt: { capture: receiver.capture, packet: afterPacket } }),
        offset: entry.offset,
        beforeBytes: entry.before,
        afterBytes: entry.after,
        delta: entry.delta,
      });
    }
  }

  const report: PairReport = {
    scope: first.capture === second.capture ? 'one-capture' : 'two-captures',
    sessions: [first.id, second.id],
    clientSession: client.id,
    ...(translation ? { translation } : {}),
    inferredRewrites: [],
    clientSide: client.capture,
    clientSideBy: side.by,
    clientSideReason: side.reason,
    middlebox: forwards ? 'forwards-segments' : 're-segments',
    middleboxKind: middlebox.kind,
    middleboxEvidence: middlebox.evidence,
    rewrites,
    ledgers: { 'client->server': [...ledgers['client->server'].entries], 'server->client': [...ledgers['server->client'].entries] },
    sequenceCheck: { checked: false, segments: 0, acks: 0 },
  };

  const check = report.sequenceCheck;
  if (middlebox.kind === 'terminated') {
    check.reason = `the middlebox terminates TCP (${middlebox.evidence.join('; ')}): each side has its own sequence numbers, there is nothing to adjust`;
    return { report, findings: [] };
  }
  const noHandshake = [first, second].find((p) => !p.session.conn.syn || !p.session.conn.synAck);
  const label = (p: PairSide) => (report.scope === 'one-capture' ? `session ${p.id}` : `capture ${p.capture}`);
  if (!forwards) check.reason = 'the middlebox re-segments the stream: its sequence numbers cannot be compared segment by segment';
  else if (noHandshake) check.reason = `the control connection's handshake is not in ${label(noHandshake)}: sequence numbers cannot be related to the ISNs`;
  else if (unreadable.length > 0) check.reason = `cannot rebuild the ledger: ${unreadable.join('; ')}`;
  if (check.reason) return inferredCheck(report, sideOf);

  check.checked = true;
  check.method = 'segments';
  const mismatches: Array<SequenceMismatch & { where: PairSide }> = [];
  for (const d of DIRECTIONS) {
    const { sender, receiver } = sideOf(d);
    const ledger = ledgers[d];
    for (const op of segOps[d]) {
      if (op.kind !== 'same' && op.kind !== 'changed') continue;
      if (op.a.seg.flags.syn) continue;
      const expected = outputOf(ledger, op.a.offset);
      if (expected === undefined) continue;
      check.segments++;
      if (op.b.offset !== expected) {
        mismatches.push({ kind: 'seq', direction: d, capture: receiver.capture, packet: op.b.seg.packet, time: op.b.seg.t, expected, actual: op.b.offset, where: receiver });
      }
    }
    // ACKs for d's bytes travel the other way: sent on the receiver's side in output numbering, arriving on the sender's side in input numbering.
    for (const op of segOps[reverse(d)]) {
      if (op.kind !== 'same' && op.kind !== 'changed') continue;
      const outAck = op.a.ackOffset;
      const inAck = op.b.ackOffset;
      if (outAck === undefined || inAck === undefined) continue;
      const expected = inputOf(ledger.entries, outAck);
      if (expected === undefined) continue;
      check.acks++;
      if (inAck !== expected) {
        mismatches.push({ kind: 'ack', direction: d, capture: sender.capture, packet: op.b.seg.packet, time: op.b.seg.t, expected, actual: inAck, where: sender });
      }
    }
  }
  mismatches.sort((x, y) => x.time - y.time || x.packet - y.packet);
  const first1 = mismatches[0];
  if (!first1) return { report, findings: [] };
  const { where, ...m } = first1;
  check.firstMismatch = m;
  return { report, findings: [seqFinding(m, rewrites, where)] };
}

/**
 * When a direction was captured only on the sender's leg, with the
 * receiver's ACKs on the other (a firewall capture of one direction per
 * leg): rewrites and the sequence adjustment told by the ACK numbers.
 */
function inferredCheck(report: PairReport, sideOf: (d: Direction) => { sender: PairSide; receiver: PairSide }): PairResult {
  const check = report.sequenceCheck;
  const findings: Finding[] = [];
  for (const d of DIRECTIONS) {
    const { sender, receiver } = sideOf(d);
    if (receiver.session.conn.segments[d].some((s) => s.payload.length > 0)) continue;
    const inference = inferFromAcks(sender, receiver, d);
    if (!inference) continue;
    report.inferredRewrites.push(...inference.inferred);
    check.checked = true;
    check.method = 'ack-inference';
    check.acks += inference.acks;
    delete check.reason;
    const m = inference.mismatch;
    if (m && !check.firstMismatch) {
      check.firstMismatch = m;
      findings.push(inferredSeqFinding(m, inference.inferred, whichLeg(m, sender, receiver)));
    }
  }
  return { report, findings };
}

function whichLeg(m: SequenceMismatch, sender: PairSide, receiver: PairSide): PairSide {
  const has = (p: PairSide) => DIRECTIONS.some((d) => p.session.conn.segments[d].some((s) => s.packet === m.packet));
  return has(receiver) ? receiver : sender;
}

function inferredSeqFinding(m: SequenceMismatch, inferred: InferredRewrite[], where: PairSide): Finding {
  const cause = inferred.at(-1);
  const what = cause
    ? `The receiver's ACKs show that the middlebox changed the ${cause.kind} line at packet ${cause.beforeAt.packet} by ${cause.lengthChange > 0 ? '+' : ''}${cause.lengthChange} bytes (ACK at packet ${cause.ackAt.packet}); `
    : '';
  const numbers =
    where.session.conn.segments[m.direction].some((s) => s.packet === m.packet)
      ? `the sender retransmits bytes at relative ${m.actual} (packet ${m.packet}) that the receiver acknowledged long ago: the shifted ACK never reached it in a form it accepts`
      : `packet ${m.packet} acknowledges relative ${m.actual}, which is not shifted like the ACKs before it (expected ${m.expected})`;
  return seqAdjustFinding(
    m,
    where,
    `${what}${numbers}. The middlebox does not keep sequence and acknowledgement numbers consistent with its rewrite, so the session stalls or its next line arrives corrupted.`,
    cause ? `${cause.before} (${cause.lengthChange > 0 ? '+' : ''}${cause.lengthChange} B)` : `ack ${m.actual}, expected ${m.expected}`,
  );
}

function seqAdjustFinding(m: SequenceMismatch, where: PairSide, message: string, evidence: string): Finding {
  const { client, server } = where.session.conn;
  return {
    code: 'ALG_SEQ_NOT_ADJUSTED',
    severity: 'error',
    capture: m.capture,
    session: { id: where.id, client, server },
    packet: m.packet,
    time: m.time,
    message: `${message} Turn that ALG off and use an FTP-aware proxy (ftp-alg), or avoid rewrites with EPSV.`,
    evidence,
  };
}

function seqFinding(m: SequenceMismatch, rewrites: RewriteReport[], where: PairSide): Finding {
  const ref = m.kind === 'seq' ? m.expected : m.actual;
  const cause = [...rewrites].reverse().find((r) => r.direction === m.direction && r.offset < Math.max(ref, m.expected) && r.beforeBytes !== r.afterBytes);
  const numbers =
    m.kind === 'seq'
      ? `packet ${m.packet} in capture ${m.capture} carries ${m.direction} bytes at relative sequence ${m.actual}, where they belong at ${m.expected}`
      : `packet ${m.packet} in capture ${m.capture} acknowledges ${m.direction} bytes up to relative ${m.actual}, where the sender's own numbering says ${m.expected}`;
  const what = cause
    ? `The middlebox rewrote a ${cause.kind} line (${cause.beforeBytes} → ${cause.afterBytes} bytes, at offset ${cause.offset}) but did not shift the ${m.kind === 'seq' ? 'sequence' : 'acknowledgement'} numbers after it by ${cause.afterBytes - cause.beforeBytes}: ${numbers}.`
    : `Sequence numbers across the middlebox do not match the bytes it forwarded: ${numbers}.`;
  return seqAdjustFinding(
    m,
    where,
    `${what} The receiver sees overlapping or missing bytes: the next line arrives corrupted, or the sender never gets an ACK it accepts and the session stalls. ` +
      'This is an ALG that rewrites payload without sequence adjustment (Linux needs nf_nat with the seqadj extension; some firewalls and routers get it wrong).',
    cause ? `${cause.before} → ${cause.after}` : `${m.kind} ${m.actual}, expected ${m.expected}`,
  );
}
