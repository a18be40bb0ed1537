/**
 * A made-up middlebox between an FTP client and server, recorded on both
 * sides: it translates addresses (NAT), may randomise ISNs, may rewrite the
 * payload of segments it forwards (an ALG), and shifts sequence and
 * acknowledgement numbers after a length change only when told to (what
 * Linux's nf_nat_seqadj does, and what a broken ALG forgets).
 *
 * Everything happens in order: the sender's segment is recorded on its side,
 * then (latency later) on the other side, then the receiver's ACK takes the
 * way back.
 */
import type { Packet, Peer } from './pcap-writer.js';

export type Side = 'c' | 's';

export interface MiddleboxOptions {
  /** Addresses as seen in the capture near the client, and near the server. */
  clientSide: { client: Peer; server: Peer };
  serverSide: { client: Peer; server: Peer };
  /** Payload rewriting per sender (the ALG). */
  rewrite?: (from: Side, text: string) => string;
  /** Shift sequence/ack numbers after a length-changing rewrite. */
  adjust: boolean;
  isn?: { c: number; s: number };
  /** ISN randomisation: added to each sender's numbers on the far side. */
  shift?: { c: number; s: number };
  t0?: number;
}

interface LedgerMark {
  /** Output offset at which this delta starts to apply. */
  outEnd: number;
  delta: number;
}

export class Middlebox {
  readonly near: Record<Side, Packet[]> = { c: [], s: [] };
  private t: number;
  private readonly latency = 0.002;
  private readonly step = 0.01;
  private readonly isn: Record<Side, number>;
  private readonly shift: Record<Side, number>;
  /** Next input offset per sender (the sender's own numbering). */
  private readonly x: Record<Side, number> = { c: 0, s: 0 };
  /** Cumulative length change per sender's direction. */
  private readonly delta: Record<Side, number> = { c: 0, s: 0 };
  private readonly marks: Record<Side, LedgerMark[]> = { c: [], s: [] };
  /** What each side has received, in its own side's numbering of the other direction. */
  private readonly rcv: Record<Side, number> = { c: 0, s: 0 };

  constructor(readonly opts: MiddleboxOptions) {
    this.t = opts.t0 ?? 1_700_000_000;
    this.isn = opts.isn ?? { c: 1000, s: 5000 };
    this.shift = opts.shift ?? { c: 0, s: 0 };
  }

  private other(s: Side): Side {
    return s === 'c' ? 's' : 'c';
  }

  private peers(capture: Side, from: Side): { src: Peer; dst: Peer } {
    const view = capture === 'c' ? this.opts.clientSide : this.opts.serverSide;
    return from === 'c' ? { src: view.client, dst: view.server } : { src: view.server, dst: view.client };
  }

  /** Output → input offset for ACKs of `dir`'s bytes. */
  private toInput(dir: Side, out: number): number {
    if (!this.opts.adjust) return out;
    let d = 0;
    for (const m of this.marks[dir]) if (out >= m.outEnd) d = m.delta;
    return out - d;
  }

  private record(capture: Side, from: Side, seq: number, ack: number, flags: string, payload: Buffer | undefined, t: number): void {
    this.near[capture].push({ t: Math.round(t * 1e6) / 1e6, ...this.peers(capture, from), seq: seq >>> 0, ack: ack >>> 0, flags, ...(payload && payload.length ? { payload } : {}) });
  }

  handshake(): this {
    const { isn, shift } = this;
    this.t += this.step;
    this.record('c', 'c', isn.c, 0, 'S', undefined, this.t);
    this.record('s', 'c', isn.c + shift.c, 0, 'S', undefined, this.t + this.latency);
    this.record('s', 's', isn.s, isn.c + shift.c + 1, 'SA', undefined, this.t + this.latency + 0.0001);
    this.record('c', 's', isn.s + shift.s, isn.c + 1, 'SA', undefined, this.t + 2 * this.latency + 0.0001);
    this.t += 2 * this.latency + 0.0002;
    this.segment('c', '', 'A', 0);
    return this;
  }

  /**
   * One segment from `from`, recorded on its side at the current time and
   * on the other side after the latency. Returns nothing: look at `near`.
   */
  private segment(from: Side, text: string, flags: string, at: number): void {
    const to = this.other(from);
    const input = Buffer.from(text, 'latin1');
    const output = Buffer.from(this.opts.rewrite && input.length ? this.opts.rewrite(from, text) : text, 'latin1');
    const inOff = this.x[from];
    const outOff = this.opts.adjust ? inOff + this.delta[from] : inOff;
    // The sender acknowledges what it has received, in its side's numbering of the other direction.
    const ackNear = this.rcv[from];
    const ackFar = this.toInput(to, ackNear);
    const t = this.t + at;
    this.record(from, from, this.isn[from] + 1 + inOff, this.isn[to] + this.shift[to] + 1 + ackNear, flags, input, t);
    this.record(to, from, this.isn[from] + this.shift[from] + 1 + outOff, this.isn[to] + 1 + ackFar, flags, output, t + this.latency);
    const fin = flags.includes('F') ? 1 : 0;
    if (output.length !== input.length) {
      this.delta[from] += output.length - input.length;
      this.marks[from].push({ outEnd: outOff + output.length, delta: this.delta[from] });
    }
    this.x[from] = inOff + input.length + fin;
    this.rcv[to] = Math.max(this.rcv[to], outOff + output.length + fin);
  }

  /** A line from one side, then the other side's ACK. */
  line(from: Side, text: string): this {
    this.t += this.step;
    this.segment(from, `${text}\r\n`, 'PA', 0);
    this.segment(this.other(from), '', 'A', this.latency + 0.0001);
    return this;
  }

  exchange(script: Array<[Side, string]>): this {
    for (const [side, text] of script) this.line(side, text);
    return this;
  }

  close(): this {
    this.t += this.step;
    this.segment('c', '', 'FA', 0);
    this.segment('s', '', 'FA', this.latency + 0.0001);
    this.t += 2 * this.latency + 0.0002;
    this.segment('c', '', 'A', 0);
    return this;
  }

  /** Both captures, each in time order. */
  captures(): { clientSide: Packet[]; serverSide: Packet[] } {
    const sort = (l: Packet[]) => [...l].sort((a, b) => a.t - b.t);
    return { clientSide: sort(this.near.c), serverSide: sort(this.near.s) };
  }
}
