/**
 * Connections and reassembly: roles, handshake outcomes, retransmissions,
 * out-of-order arrival, 32-bit wraparound, SYN/FIN sequence accounting.
 */
import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { readCapture } from '../../src/diagnose/pcap.js';
import { reassemble, relativeSegments, trackConnections, type Connection, type Stream } from '../../src/diagnose/tcp.js';
import { Trace, TcpConversation, writePcap, type Packet } from './pcap-writer.js';

const C = { address: '100.64.0.10', port: 40000 };
const S = { address: '198.18.0.21', port: 21 };

function connections(packets: Packet[]): Connection[] {
  return trackConnections(readCapture(writePcap(packets), 't.pcap').segments);
}

function streams(conn: Connection): { up: Stream; down: Stream } {
  const rel = relativeSegments(conn);
  return { up: reassemble(rel.views['client->server']), down: reassemble(rel.views['server->client']) };
}

const text = (s: Stream) => Buffer.concat(s.pieces.map((p) => p.data)).toString('latin1');

describe('connections', () => {
  test('handshake, data both ways, FIN accounting', () => {
    const trace = new Trace();
    const conv = new TcpConversation(trace, C, S).handshake();
    conv.line('s', '220 hi');
    conv.line('c', 'QUIT');
    conv.close('s');
    const [c] = connections(trace.packets);
    expect(c).toMatchObject({ state: 'opened', roles: 'syn', client: { address: C.address, port: C.port }, server: { address: S.address, port: 21 } });
    expect(c!.syn).toMatchObject({ packet: 1, count: 1, isn: 1000 });
    expect(c!.synAck).toMatchObject({ packet: 2, isn: 5000 });
    expect(c!.handshakeAck?.packet).toBe(3);
    const { up, down } = streams(c!);
    expect(text(down)).toBe('220 hi\r\n');
    expect(text(up)).toBe('QUIT\r\n');
    expect(down.finOffset).toBe(8);
    expect(up.finOffset).toBe(6);
    expect(c!.fin['server->client']).toBeDefined();
  });

  test('SYN answered by RST: refused', () => {
    const trace = new Trace();
    new TcpConversation(trace, C, S).refused();
    const [c] = connections(trace.packets);
    expect(c!.state).toBe('refused');
    expect(c!.rst).toMatchObject({ from: 'server', packet: 2 });
  });

  test('SYN retransmitted, never answered: one unanswered connection', () => {
    const trace = new Trace();
    new TcpConversation(trace, C, S).syn(3);
    const cs = connections(trace.packets);
    expect(cs).toHaveLength(1);
    expect(cs[0]).toMatchObject({ state: 'unanswered', syn: { count: 3, packet: 1 } });
  });

  test('a new SYN on the same 4-tuple starts a new connection', () => {
    const trace = new Trace();
    const a = new TcpConversation(trace, C, S, { c: 100 }).handshake();
    a.line('s', '220 one');
    a.close();
    const b = new TcpConversation(trace, C, S, { c: 900000 }).handshake();
    b.line('s', '220 two');
    const cs = connections(trace.packets);
    expect(cs.map((c) => c.state)).toEqual(['opened', 'opened']);
    expect(cs.map((c) => text(streams(c).down))).toEqual(['220 one\r\n', '220 two\r\n']);
  });

  test('mid-stream, no FTP to read: roles from the port', () => {
    const trace = new Trace();
    const conv = new TcpConversation(trace, C, S).handshake();
    const skip = trace.packets.length;
    conv.line('c', 'hello');
    conv.line('s', 'there');
    const [c] = connections(trace.packets.slice(skip));
    expect(c).toMatchObject({ state: 'mid-stream', roles: 'port-guess', server: { port: 21 } });
  });

  test.each([
    ['220 hi', 'greeting'],
    ['200 ok', 'replies'],
  ] as const)('mid-stream with the client on a privileged port: the side that sends FTP replies (%s) is the server, not the lower port', (first, roles) => {
    const client = { address: '198.18.1.10', port: 1000 };
    const server = { address: '198.18.0.21', port: 2121 };
    const trace = new Trace();
    const conv = new TcpConversation(trace, client, server).handshake();
    const skip = trace.packets.length;
    conv.line('s', first);
    conv.line('c', 'NOOP');
    conv.line('s', '200 ok');
    const [c] = connections(trace.packets.slice(skip));
    expect(c).toMatchObject({ state: 'mid-stream', roles, server: { port: 2121 }, client: { port: 1000 } });
  });

  test('capture starting mid-stream: roles from the replies, stream from the first byte seen', () => {
    const trace = new Trace();
    const conv = new TcpConversation(trace, C, S).handshake();
    conv.line('s', '220 hi');
    const skip = trace.packets.length;
    conv.line('c', 'NOOP');
    conv.line('s', '200 ok');
    const [c] = connections(trace.packets.slice(skip));
    expect(c).toMatchObject({ state: 'mid-stream', roles: 'replies', server: { port: 21 } });
    expect(text(streams(c!).up)).toBe('NOOP\r\n');
    expect(text(streams(c!).down)).toBe('200 ok\r\n');
  });

  test('mid-stream with the first segment arriving late: the base moves back', () => {
    const trace = new Trace();
    const conv = new TcpConversation(trace, C, S).handshake();
    const skip = trace.packets.length;
    conv.send('c', 'USER anonymous\r\n', { split: [5], ack: false });
    const pkts = trace.packets.slice(skip);
    const [c] = connections([pkts[1]!, pkts[0]!]);
    const up = streams(c!).up;
    expect(text(up)).toBe('USER anonymous\r\n');
    expect(up.outOfOrder).toBe(1);
  });
});

describe('reassembly', () => {
  function oneWay(build: (conv: TcpConversation, trace: Trace) => void, isn = 1000): Stream {
    const trace = new Trace();
    const conv = new TcpConversation(trace, C, S, { c: isn });
    conv.handshake();
    build(conv, trace);
    const [c] = connections(trace.packets);
    return streams(c!).up;
  }

  test('retransmission of a whole segment is counted, not duplicated', () => {
    const up = oneWay((conv, trace) => {
      const [p] = conv.send('c', 'USER a\r\n', { ack: false });
      trace.packets.push({ ...p!, t: p!.t + 0.2 });
      conv.send('c', 'PASS b\r\n');
    });
    expect(text(up)).toBe('USER a\r\nPASS b\r\n');
    expect(up.retransmissions).toBe(1);
    expect(up.conflicts).toEqual([]);
  });

  test('an overlapping retransmission adds only the new bytes', () => {
    const up = oneWay((conv) => {
      const start = conv.nxt.c;
      conv.send('c', 'USER a\r\n', { ack: false });
      // Resent together with the next line, as stacks do when they coalesce on retransmit.
      conv.segment('c', 'PA', 'USER a\r\nPASS b\r\n', start);
      conv.nxt.c += 8;
    });
    expect(text(up)).toBe('USER a\r\nPASS b\r\n');
    expect(up.pieces.map((p) => [p.offset, p.data.toString(), p.packet])).toEqual([
      [0, 'USER a\r\n', 4],
      [8, 'PASS b\r\n', 5],
    ]);
  });

  test('a retransmission with different bytes is a conflict; the first arrival wins', () => {
    const up = oneWay((conv) => {
      const start = conv.nxt.c;
      conv.send('c', 'PORT 100,64,0,10,4,1\r\n', { ack: false });
      conv.segment('c', 'PA', 'PORT 100,64,0,10,4,2\r\n', start);
    });
    expect(text(up)).toBe('PORT 100,64,0,10,4,1\r\n');
    expect(up.conflicts).toEqual([{ offset: 0, length: 22, packet: 5 }]);
  });

  test('out-of-order segments are put in place; the piece keeps the packet where bytes first arrived', () => {
    const trace = new Trace();
    const conv = new TcpConversation(trace, C, S).handshake();
    const pkts = conv.send('c', 'ABCDEFGHIJ', { split: [3, 3], ack: false });
    // Deliver 2, 3, then 1.
    trace.packets.splice(trace.packets.length - 3, 3, pkts[1]!, pkts[2]!, pkts[0]!);
    const [c] = connections(trace.packets);
    const up = streams(c!).up;
    expect(text(up)).toBe('ABCDEFGHIJ');
    expect(up.pieces.map((p) => p.packet)).toEqual([6, 4, 5]);
    expect(up.outOfOrder).toBe(1);
    expect(up.gaps).toEqual([]);
  });

  test('a segment never captured leaves a gap', () => {
    const trace = new Trace();
    const conv = new TcpConversation(trace, C, S).handshake();
    conv.send('c', 'ABCDEFGHIJ', { split: [3, 3], ack: false });
    trace.packets.splice(trace.packets.length - 2, 1);
    const [c] = connections(trace.packets);
    const up = streams(c!).up;
    expect(up.gaps).toEqual([{ offset: 3, length: 3 }]);
    expect(up.end).toBe(10);
  });

  test('sequence numbers wrapping past 2^32', () => {
    const up = oneWay((conv) => {
      conv.send('c', 'x'.repeat(10) + 'y'.repeat(10), { split: [5, 5, 5] });
    }, 0xfffffff5);
    expect(text(up)).toBe('x'.repeat(10) + 'y'.repeat(10));
    expect(up.pieces.map((p) => p.offset)).toEqual([0, 5, 10, 15]);
    expect(up.gaps).toEqual([]);
  });

  test('a SYN carrying data (TCP Fast Open): the data is byte 0', () => {
    const trace = new Trace();
    trace.add({ src: C, dst: S, seq: 77, ack: 0, flags: 'S', payload: Buffer.from('HELLO') });
    trace.add({ src: S, dst: C, seq: 9, ack: 83, flags: 'SA' });
    trace.add({ src: C, dst: S, seq: 83, ack: 10, flags: 'PA', payload: Buffer.from(' WORLD') });
    const [c] = connections(trace.packets);
    expect(text(streams(c!).up)).toBe('HELLO WORLD');
  });

  test('relative ACKs refer to the other direction’s stream', () => {
    const trace = new Trace();
    const conv = new TcpConversation(trace, C, S, { c: 0xfffffffe, s: 0x7ffffffe }).handshake();
    conv.line('s', '220 hi');
    const [c] = connections(trace.packets);
    const rel = relativeSegments(c!);
    expect(rel.base).toEqual({ 'client->server': 0xffffffff, 'server->client': 0x7fffffff });
    const acks = rel.views['client->server'].map((v) => v.ackOffset);
    expect(acks).toEqual([undefined, 0, 8]);
  });

  const RUNS = { numRuns: 200 };
  fcTest.prop(
    [
      fc.uint8Array({ minLength: 1, maxLength: 400 }),
      fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 40 }),
      fc.nat(0xffffffff),
      fc.array(fc.nat(), { maxLength: 60 }),
      fc.array(fc.nat(), { maxLength: 10 }),
    ],
    RUNS,
  )('any segmentation, order and duplication gives back the stream', (bytes, sizes, isn, order, dups) => {
    const data = Buffer.from(bytes);
    const trace = new Trace();
    const conv = new TcpConversation(trace, C, S, { c: isn });
    conv.handshake();
    const head = trace.packets.length;
    conv.send('c', data, { split: sizes, ack: false });
    const segs = trace.packets.splice(head);
    // Shuffle by the random keys, then resend some.
    const keyed = segs.map((p, i) => ({ p, k: order[i] ?? i }));
    keyed.sort((a, b) => a.k - b.k);
    const shuffled = keyed.map((x) => x.p);
    for (const d of dups) shuffled.push(segs[d % segs.length]!);
    trace.packets.push(...shuffled);
    const [c] = connections(trace.packets);
    const up = streams(c!).up;
    expect(Buffer.concat(up.pieces.map((p) => p.data)).equals(data)).toBe(true);
    expect(up.gaps).toEqual([]);
    expect(up.conflicts).toEqual([]);
    expect(up.retransmissions).toBe(dups.length);
  });
});
