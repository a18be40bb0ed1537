/**
 * Two captures, one each side of a NAT/ALG: the rewrites it made, the ledger
 * built from them, and whether it shifted sequence and acknowledgement
 * numbers to match (ALG_SEQ_NOT_ADJUSTED, with the first packet that shows
 * it).
 */
import { describe, expect, test } from 'vitest';
import { diagnoseCaptures, formatDiagnoseReport } from '../../src/diagnose/diagnose.js';
import type { DiagnoseReport } from '../../src/diagnose/report.js';
import { Middlebox, type MiddleboxOptions, type Side } from './middlebox.js';
import { Trace, TcpConversation, exchange, writePcap, writePcapng, type Packet } from './pcap-writer.js';
import { pasv, portCmd } from './scenarios.js';

const LOGIN: Array<[Side, string]> = [
  ['s', '220 FTP server ready'],
  ['c', 'USER anonymous'],
  ['s', '331 Password required'],
  ['c', 'PASS secret'],
  ['s', '230 Logged in'],
];

const PUBLIC = '198.18.0.100';
const SERVER_INSIDE = '100.64.0.5';
const CLIENT_INSIDE = '100.64.1.2';

/** Server behind a NAT whose ALG rewrites the 227 (10 → 12 characters of address). */
const AFTER_227: Array<[Side, string]> = [
  ['c', 'NOOP'],
  ['s', '200 ok'],
  ['c', 'QUIT'],
  ['s', '221 Bye'],
];

function serverNat(adjust: boolean, extra: Partial<MiddleboxOptions> = {}, after = AFTER_227): Middlebox {
  const client = { address: '198.18.1.10', port: 40000 };
  const box = new Middlebox({
    clientSide: { client, server: { address: PUBLIC, port: 21 } },
    serverSide: { client, server: { address: SERVER_INSIDE, port: 21 } },
    rewrite: (from, text) => (from === 's' ? text.replace('100,64,0,5,', '198,18,0,100,') : text),
    adjust,
    shift: { c: 0, s: 0x9000_0000 },
    ...extra,
  });
  box.handshake().exchange([...LOGIN, ['c', 'PASV'], ['s', pasv(SERVER_INSIDE, 50000)], ...after]);
  return box.close();
}

/** Client behind a NAT whose ALG rewrites PORT. */
function clientNat(adjust: boolean, inside = CLIENT_INSIDE, outside = PUBLIC): Middlebox {
  const server = { address: '198.18.0.21', port: 21 };
  const box = new Middlebox({
    clientSide: { client: { address: inside, port: 40000 }, server },
    serverSide: { client: { address: outside, port: 61000 }, server },
    rewrite: (from, text) => (from === 'c' ? text.replace(`${inside.replaceAll('.', ',')},`, `${outside.replaceAll('.', ',')},`) : text),
    adjust,
    shift: { c: 0xffff_fff0, s: 0 }, // the client's numbers wrap on the far side
  });
  box.handshake().exchange([...LOGIN, ['c', portCmd(inside, 40000)], ['s', '200 PORT ok'], ['c', 'NOOP'], ['s', '200 ok'], ['c', 'QUIT'], ['s', '221 Bye']]);
  return box.close();
}

function diagnose(first: Packet[], second: Packet[], ng = false): DiagnoseReport {
  const write = ng ? writePcapng : writePcap;
  return diagnoseCaptures([
    { file: 'first.pcap', data: write(first) },
    { file: 'second.pcap', data: write(second) },
  ]);
}

const firstPacketAfter = (list: Packet[], t: number, pred: (p: Packet) => boolean) => list.findIndex((p) => p.t > t && pred(p)) + 1;

describe('server behind a NAT, ALG rewrites the 227 (+2 bytes)', () => {
  for (const order of ['client side first', 'server side first'] as const) {
    test(`sequence numbers shifted: no finding (${order})`, () => {
      const { clientSide, serverSide } = serverNat(true).captures();
      const r = order === 'client side first' ? diagnose(clientSide, serverSide) : diagnose(serverSide, clientSide, true);
      expect(r.findings).toEqual([]);
      expect(r.pairs).toHaveLength(1);
      const p = r.pairs[0]!;
      expect(p.sessions).toEqual(['1.1', '2.1']);
      expect(p.clientSide).toBe(order === 'client side first' ? 1 : 2);
      expect(p.clientSideBy).toBe('addresses');
      expect(p.middlebox).toBe('forwards-segments');
      expect(p.middleboxKind).toBe('translated');
      expect(p.middleboxEvidence.join(' ')).toMatch(/same ISN/);
      const before = pasv(SERVER_INSIDE, 50000);
      expect(p.rewrites).toEqual([
        {
          direction: 'server->client',
          kind: '227',
          before,
          after: pasv(PUBLIC, 50000),
          beforeAt: { capture: order === 'client side first' ? 2 : 1, packet: expect.any(Number) },
          afterAt: { capture: order === 'client side first' ? 1 : 2, packet: expect.any(Number) },
          offset: '220 FTP server ready\r\n331 Password required\r\n230 Logged in\r\n'.length,
          beforeBytes: before.length + 2,
          afterBytes: before.length + 4,
          delta: 2,
        },
      ]);
      expect(p.ledgers['server->client']).toEqual([{ offset: p.rewrites[0]!.offset, before: before.length + 2, after: before.length + 4, delta: 2 }]);
      expect(p.ledgers['client->server']).toEqual([]);
      expect(p.sequenceCheck).toMatchObject({ checked: true });
      expect(p.sequenceCheck.firstMismatch).toBeUndefined();
      expect(p.sequenceCheck.segments).toBeGreaterThan(15);
      expect(p.sequenceCheck.acks).toBeGreaterThan(15);
    });
  }

  test('sequence numbers not shifted: ALG_SEQ_NOT_ADJUSTED at the client ACK of the 227, seen on the server side', () => {
    const { clientSide, serverSide } = serverNat(false).captures();
    const r = diagnose(clientSide, serverSide);
    expect(r.findings.map((f) => f.code)).toEqual(['ALG_SEQ_NOT_ADJUSTED']);
    const f = r.findings[0]!;
    const t227 = serverSide.find((p) => p.payload?.toString().startsWith('227'))!.t;
    const wrongAck = firstPacketAfter(serverSide, t227, (p) => p.src.port === 40000);
    expect(f).toMatchObject({ severity: 'error', capture: 2, packet: wrongAck, session: { id: '2.1' } });
    expect(f.evidence).toBe(`${pasv(SERVER_INSIDE, 50000)} → ${pasv(PUBLIC, 50000)}`);
    expect(f.message).toMatch(/rewrote a 227 line \(\d+ → \d+ bytes, at offset 60\) but did not shift the acknowledgement numbers after it by 2/);
    const m = r.pairs[0]!.sequenceCheck.firstMismatch!;
    expect(m).toMatchObject({ kind: 'ack', direction: 'server->client', capture: 2, packet: wrongAck });
    expect(m.actual - m.expected).toBe(2);
  });

  test('the sequence numbers of later server segments are wrong too (seen on the client side)', () => {
    // The server sends two lines in a row after the 227; no client ACK in between.
    const after: Array<[Side, string]> = [
      ['s', '421 Timeout'],
      ['c', 'QUIT'],
    ];
    const { clientSide, serverSide } = serverNat(false, {}, after).captures();
    // Take the ACKs out of the picture: drop every pure ACK from the client.
    const noAcks = (l: Packet[]) => l.filter((p) => !(p.src.port === 40000 && !p.payload && p.flags === 'A'));
    const r = diagnose(noAcks(clientSide), noAcks(serverSide));
    const m = r.pairs[0]!.sequenceCheck.firstMismatch!;
    const t227 = clientSide.find((p) => p.payload?.toString().startsWith('227'))!.t;
    const next = firstPacketAfter(noAcks(clientSide), t227, (p) => p.src.port === 21);
    expect(m).toMatchObject({ kind: 'seq', direction: 'server->client', capture: 1, packet: next });
    expect(m.expected - m.actual).toBe(2);
  });

  test('a length-preserving rewrite needs no shift', () => {
    const client = { address: '198.18.1.10', port: 40000 };
    const box = new Middlebox({
      clientSide: { client, server: { address: '198.18.0.1', port: 21 } },
      serverSide: { client, server: { address: SERVER_INSIDE, port: 21 } },
      rewrite: (from, text) => (from === 's' ? text.replace('100,64,0,5,', '198,18,0,1,') : text),
      adjust: false,
    });
    box.handshake().exchange([...LOGIN, ['c', 'PASV'], ['s', pasv(SERVER_INSIDE, 50000)], ['c', 'QUIT'], ['s', '221 Bye']]).close();
    const { clientSide, serverSide } = box.captures();
    const r = diagnose(clientSide, serverSide);
    expect(r.findings).toEqual([]);
    expect(r.pairs[0]!.rewrites.map((w) => [w.kind, w.beforeBytes - w.afterBytes, w.delta])).toEqual([['227', 0, 0]]);
    expect(r.pairs[0]!.sequenceCheck.checked).toBe(true);
  });
});

describe('client behind a NAT, ALG rewrites PORT', () => {
  test('shifted (and the far side ISN wraps): no finding', () => {
    const { clientSide, serverSide } = clientNat(true).captures();
    const r = diagnose(clientSide, serverSide);
    expect(r.findings).toEqual([]);
    const p = r.pairs[0]!;
    expect(p.rewrites.map((w) => [w.direction, w.kind, w.before, w.after, w.delta])).toEqual([
      ['client->server', 'PORT', portCmd(CLIENT_INSIDE, 40000), portCmd(PUBLIC, 40000), 2],
    ]);
    expect(p.sequenceCheck.firstMismatch).toBeUndefined();
  });

  test('not shifted: the server’s ACK arriving at the client is the first wrong packet', () => {
    const { clientSide, serverSide } = clientNat(false).captures();
    const r = diagnose(serverSide, clientSide);
    const f = r.findings.find((x) => x.code === 'ALG_SEQ_NOT_ADJUSTED')!;
    const tPort = clientSide.find((p) => p.payload?.toString().startsWith('PORT'))!.t;
    const wrong = firstPacketAfter(clientSide, tPort, (p) => p.src.port === 21);
    expect(f).toMatchObject({ capture: 2, packet: wrong });
    expect(r.pairs[0]!.sequenceCheck.firstMismatch).toMatchObject({ kind: 'ack', direction: 'client->server' });
    expect(formatDiagnoseReport(r)).toMatch(/ERROR {3}ALG_SEQ_NOT_ADJUSTED {2}session 2\.1 {2}capture 2 #\d+/);
  });

  test('a shrinking rewrite not shifted is caught as well', () => {
    // 100,100,100,100 (15 characters) → 198,18,0,1 (10)
    const { clientSide, serverSide } = clientNat(false, '100.100.100.100', '198.18.0.1').captures();
    const r = diagnose(clientSide, serverSide);
    expect(r.pairs[0]!.rewrites.map((w) => w.delta)).toEqual([-5]);
    const m = r.pairs[0]!.sequenceCheck.firstMismatch!;
    expect(m.actual - m.expected).toBe(-5);
    expect(r.findings.map((f) => f.code)).toEqual(['ALG_SEQ_NOT_ADJUSTED']);
  });
});

describe('other middleboxes and captures', () => {
  test('a NAT that only randomises ISNs: no rewrite, numbers match', () => {
    const client = { address: CLIENT_INSIDE, port: 40000 };
    const box = new Middlebox({
      clientSide: { client, server: { address: '198.18.0.21', port: 21 } },
      serverSide: { client: { address: PUBLIC, port: 50123 }, server: { address: '198.18.0.21', port: 21 } },
      adjust: false,
      shift: { c: 0x1234_5678, s: 0xfedc_ba98 },
    });
    box.handshake().exchange([...LOGIN, ['c', 'EPSV'], ['s', '229 Entering Extended Passive Mode (|||50000|)'], ['c', 'QUIT'], ['s', '221 Bye']]).close();
    const { clientSide, serverSide } = box.captures();
    const r = diagnose(clientSide, serverSide);
    expect(r.findings).toEqual([]);
    expect(r.pairs[0]!.rewrites).toEqual([]);
    expect(r.pairs[0]!.sequenceCheck.checked).toBe(true);
    expect(r.pairs[0]!.sequenceCheck.firstMismatch).toBeUndefined();
  });

  test('a proxy that re-segments: rewrites listed, sequence numbers not checked', () => {
    const client = { address: '198.18.1.10', port: 40000 };
    const near = new Trace();
    const a = new TcpConversation(near, client, { address: PUBLIC, port: 21 }).handshake();
    exchange(a, [...LOGIN, ['c', 'PASV'], ['s', pasv(PUBLIC, 50000)]]);
    const far = new Trace(1_700_000_000.0005);
    const b = new TcpConversation(far, { address: '100.64.0.1', port: 33000 }, { address: SERVER_INSIDE, port: 21 }, { c: 0x5000_0000, s: 0x7000_0000 }).handshake();
    // The proxy writes each line in two pieces.
    for (const [side, text] of [...LOGIN, ['c', 'PASV'], ['s', pasv(SERVER_INSIDE, 50000)]] as Array<[Side, string]>) b.line(side, text, { split: [3] });
    const r = diagnose(near.packets, far.packets);
    const p = r.pairs[0]!;
    expect(p.middlebox).toBe('re-segments');
    expect(p.sequenceCheck.checked).toBe(false);
    expect(p.middleboxKind).toBe('terminated');
    expect(p.sequenceCheck.reason).toMatch(/terminates TCP/);
    expect(p.rewrites.map((w) => [w.direction, w.before, w.after])).toEqual([['server->client', pasv(SERVER_INSIDE, 50000), pasv(PUBLIC, 50000)]]);
    expect(r.findings.filter((f) => f.code === 'ALG_SEQ_NOT_ADJUSTED')).toEqual([]);
  });

  test('the handshake missing from one capture: not checked, with the reason', () => {
    const { clientSide, serverSide } = serverNat(false).captures();
    const r = diagnose(clientSide.slice(3), serverSide);
    expect(r.pairs[0]!.sequenceCheck).toMatchObject({ checked: false, reason: expect.stringMatching(/handshake is not in capture 1/) });
    expect(r.pairs[0]!.clientSideBy).toBe('addresses');
  });

  /** A proxy on loopback-like public addresses: two connections with the same lines, each closed in its own order. */
  function proxySessions(n: number, finOrder: (i: number) => [Side, Side]): { near: Packet[]; far: Packet[] } {
    const near = new Trace();
    const far = new Trace(1_700_000_000.0005);
    for (let i = 0; i < n; i++) {
      const a = new TcpConversation(near, { address: '198.18.1.10', port: 40000 + i }, { address: '198.18.0.1', port: 2121 }, { c: 1000 + i, s: 9000 }).handshake();
      const b = new TcpConversation(far, { address: '198.18.0.1', port: 50000 + i }, { address: '198.18.0.21', port: 21 }, { c: 0x5000_0000 + i, s: 0x7000_0000 }).handshake();
      for (const conv of [a, b]) exchange(conv, [...LOGIN, ['c', 'NOOP'], ['s', '200 ok'], ['c', 'QUIT'], ['s', '221 Bye']]);
      const [nearFirst, farFirst] = finOrder(i);
      a.close(nearFirst);
      b.close(farFirst);
      // Timing noise: the far handshake looks slower in odd sessions.
      near.wait(0.01);
      far.wait(0.01 + (i % 2) * 0.002);
    }
    return { near: near.packets, far: far.packets };
  }

  test('a proxy that terminates TCP, lines unchanged, the client closes first on one side and the server on the other: terminated, no ALG_SEQ_NOT_ADJUSTED', () => {
    const { near, far } = proxySessions(1, () => ['c', 's']);
    const r = diagnose(near, far);
    const p = r.pairs[0]!;
    expect(p.middleboxKind).toBe('terminated');
    expect(p.middleboxEvidence.join(' ')).toMatch(/closed first/);
    expect(p.sequenceCheck.checked).toBe(false);
    expect(r.findings).toEqual([]);
  });

  test('the client side is decided once for all pairs: the same capture for every session, with the reason', () => {
    const { near, far } = proxySessions(6, (i) => (i % 2 ? ['c', 's'] : ['s', 'c']));
    for (const [first, second, expected] of [
      [near, far, 1],
      [far, near, 2],
    ] as const) {
      const r = diagnose(first, second);
      expect(r.pairs).toHaveLength(6);
      expect(new Set(r.pairs.map((p) => `${p.clientSide} ${p.clientSideBy}`))).toEqual(new Set([`${expected} syn-order`]));
      expect(r.pairs[0]!.clientSideReason).toMatch(/SYN appears first/);
    }
  });

  test('two sessions in each capture are paired by their command sequence', () => {
    const one = serverNat(true);
    const client2 = { address: '198.18.1.11', port: 40500 };
    const two = new Middlebox({
      clientSide: { client: client2, server: { address: PUBLIC, port: 21 } },
      serverSide: { client: client2, server: { address: SERVER_INSIDE, port: 21 } },
      adjust: true,
      t0: 1_700_000_000.005,
      // Its own ISNs: two sessions with the same numbers would look like the two legs of one.
      isn: { c: 0x4000_0000, s: 0x6000_0000 },
    });
    two.handshake().exchange([...LOGIN, ['c', 'SYST'], ['s', '215 UNIX'], ['c', 'QUIT'], ['s', '221 Bye']]).close();
    const sort = (l: Packet[]) => l.sort((x, y) => x.t - y.t);
    const c1 = one.captures();
    const c2 = two.captures();
    const clientSide = sort([...c1.clientSide, ...c2.clientSide]);
    const serverSide = sort([...c1.serverSide, ...c2.serverSide]);
    // Reverse the order of sessions on one side so that position alone would pair them wrongly.
    const r = diagnose(clientSide, serverSide);
    expect(r.sessions.map((s) => `${s.id} ${s.client.address}`)).toEqual(['1.1 198.18.1.10', '1.2 198.18.1.11', '2.1 198.18.1.10', '2.2 198.18.1.11']);
    expect(r.pairs.map((p) => p.sessions)).toEqual([
      ['1.1', '2.1'],
      ['1.2', '2.2'],
    ]);
    expect(r.pairs.map((p) => p.rewrites.length)).toEqual([1, 0]);
    expect(r.findings).toEqual([]);
  });

  test('captures of unrelated sessions: no pair', () => {
    const a = serverNat(true).captures().clientSide;
    const trace = new Trace();
    const conv = new TcpConversation(trace, { address: '198.18.1.50', port: 40000 }, { address: '198.18.0.50', port: 21 }).handshake();
    exchange(conv, [['s', '220 other'], ['c', 'SYST'], ['s', '215 UNIX']]);
    const r = diagnose(a, trace.packets);
    expect(r.pairs).toEqual([]);
  });
});
