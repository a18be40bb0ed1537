/**
 * A rewrite the capture does not show, told by the numbers. When one
 * direction of a translated connection was captured only before the
 * middlebox (the sender's segments) and only after it (the receiver's ACKs),
 * a receiver ACKs the rewritten stream: after a rewrite that changed a line
 * by d bytes, its ACKs land d bytes beyond the ends of the sender's
 * segments. A middlebox that adjusts sequence numbers keeps that shift for
 * every later ACK; one that does not (a broken ALG) shows it either as ACKs
 * that fall back onto the unshifted ends, or as a sender that keeps
 * retransmitting bytes the receiver has long acknowledged (the ACK that
 * reached it acknowledged data it never sent, and was dropped).
 *
 * Raw 32-bit numbers are compared: this applies to a NAT that keeps ISNs,
 * which is what the leg pairing established.
 */
import { parseCommand } from '../protocol/command.js';
import type { LineRecord } from './ftp.js';
import type { PairSide } from './pair.js';
import type { InferredRewrite, SequenceMismatch } from './report.js';
import { reverse, type Direction } from './tcp.js';

const diff32 = (a: number, b: number) => (a - b) | 0;
/** A line rewrite changes its length by a few bytes; more is not a rewrite. */
const MAX_CHANGE = 64;

export interface AckInference {
  direction: Direction;
  inferred: InferredRewrite[];
  acks: number;
  mismatch?: SequenceMismatch;
}

function rewritable(sender: PairSide, d: Direction): LineRecord[] {
  const s = sender.session;
  if (d === 'client->server') return s.commands.filter((c) => ['PORT', 'EPRT', 'LPRT'].includes(c.verb));
  return s.replies.filter((r) => r.code === 227 || r.code === 228 || r.code === 229).map((r) => r.lines.at(-1)!);
}

/**
 * For direction `d`: the sender's data seen on `sender`'s leg, the
 * receiver's ACKs on `receiver`'s leg. Undefined when the capture does not
 * hold that combination.
 */
export function inferFromAcks(sender: PairSide, receiver: PairSide, d: Direction): AckInference | undefined {
  const base = sender.session.rel.base[d];
  const data = sender.session.conn.segments[d].filter((s) => s.payload.length > 0);
  const acks = receiver.session.conn.segments[reverse(d)].filter((s) => s.flags.ack && !s.flags.syn);
  if (base === undefined || data.length === 0 || acks.length === 0) return undefined;
  const rel = (raw: number) => diff32(raw, base);
  // Receivers acknowledge whole segments: the ends of the sender's segments (and its FIN).
  const ends = new Set<number>([0]);
  for (const s of sender.session.conn.segments[d]) {
    if (s.payload.length > 0) ends.add(rel(s.seq) + s.payload.length);
    if (s.flags.fin) ends.add(rel(s.seq) + s.payload.length + 1);
  }
  const lines = rewritable(sender, d).map((l) => ({ line: l, end: l.offset + l.length }));
  const used = new Set<LineRecord>();
  const result: AckInference = { direction: d, inferred: [], acks: 0 };
  let shift = 0;
  let shiftedAt: { end: number; t: number } | undefined;
  for (const ack of acks) {
    const x = rel(ack.ack);
    result.acks++;
    if (ends.has(x - shift)) continue;
    // A shift that starts at the end of a rewritable line the receiver has now passed.
    const cause = lines.find((l) => !used.has(l.line) && x - l.end !== shift && Math.abs(x - l.end - shift) <= MAX_CHANGE);
    if (cause && x - cause.end !== shift) {
      used.add(cause.line);
      const change = x - cause.end - shift;
      shift = x - cause.end;
      shiftedAt = { end: cause.end, t: ack.t };
      result.inferred.push({
        direction: d,
        before: cause.line.text,
        kind: d === 'client->server' ? parseCommand(cause.line.text).verb : cause.line.text.slice(0, 3),
        beforeAt: { capture: sender.capture, packet: cause.line.packet },
        ackAt: { capture: receiver.capture, packet: ack.packet },
        lengthChange: change,
      });
      continue;
    }
    result.mismatch ??= { kind: 'ack', direction: d, capture: receiver.capture, packet: ack.packet, time: ack.t, expected: nearestEnd(ends, x - shift) + shift, actual: x };
  }
  // The sender retransmitting what the receiver acknowledged: the shifted ACK never reached it in a form it accepts.
  if (!result.mismatch && shiftedAt && shift !== 0) {
    const again = data.filter((s) => s.t > shiftedAt!.t && rel(s.seq) < shiftedAt!.end);
    if (again.length >= 2) {
      const s = again[again.length - 1]!;
      result.mismatch = { kind: 'ack', direction: d, capture: sender.capture, packet: s.packet, time: s.t, expected: shiftedAt.end, actual: rel(s.seq) };
    }
  }
  return result;
}

function nearestEnd(ends: Set<number>, x: number): number {
  let best = 0;
  for (const e of ends) if (Math.abs(e - x) < Math.abs(best - x)) best = e;
  return best;
}
