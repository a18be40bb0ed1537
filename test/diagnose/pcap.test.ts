/**
 * The capture reader: every file format, byte order, timestamp resolution
 * and link type it claims, IP options and extension headers, the packets it
 * must skip, and a clear CaptureError (file + byte offset) for bad input.
 */
import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { parseIp } from '../../src/protocol/address.js';
import { CaptureError, readCapture, type TcpSegment } from '../../src/diagnose/pcap.js';
import { writePcap, writePcapng, type Link, type Packet, type PcapngOptions, type PcapOptions } from './pcap-writer.js';

const V4 = { c: { address: '100.64.0.10', port: 40000 }, s: { address: '198.18.0.21', port: 21 } };
const V6 = { c: { address: 'fd00::10', port: 40000 }, s: { address: 'fd00:1::21', port: 21 } };

function sample(ends: typeof V4): Packet[] {
  return [
    { t: 1_700_000_000.000001, src: ends.c, dst: ends.s, seq: 1000, ack: 0, flags: 'S' },
    { t: 1_700_000_000.5, src: ends.s, dst: ends.c, seq: 0xfffffff0, ack: 1001, flags: 'SA' },
    { t: 1_700_000_001.25, src: ends.s, dst: ends.c, seq: 0xfffffff1, ack: 1001, flags: 'PA', payload: Buffer.from('220 ready\r\n') },
    { t: 1_700_000_002, src: ends.c, dst: ends.s, seq: 1001, ack: 0xfffffffc, flags: 'FA' },
    { t: 1_700_000_002.75, src: ends.c, dst: ends.s, seq: 1002, ack: 0, flags: 'R' },
  ];
}

function expectSame(got: TcpSegment[], want: Packet[], timePrecision = 5): void {
  expect(got).toHaveLength(want.length);
  got.forEach((g, i) => {
    const w = want[i]!;
    expect(g.packet).toBe(i + 1);
    expect(g.t).toBeCloseTo(w.t, timePrecision);
    expect({ src: g.src.address, sport: g.src.port, dst: g.dst.address, dport: g.dst.port }).toEqual({
      src: parseIp(w.src.address)!.address,
      sport: w.src.port,
      dst: parseIp(w.dst.address)!.address,
      dport: w.dst.port,
    });
    expect(g.src.family).toBe(w.src.address.includes(':') ? 6 : 4);
    expect([g.seq, g.ack]).toEqual([w.seq >>> 0, w.ack >>> 0]);
    expect(g.flags).toEqual({
      syn: w.flags.includes('S'),
      ack: w.flags.includes('A'),
      fin: w.flags.includes('F'),
      rst: w.flags.includes('R'),
      psh: w.flags.includes('P'),
    });
    expect(g.payload.toString('latin1')).toBe((w.payload ?? Buffer.alloc(0)).toString('latin1'));
    expect(g.length).toBe(w.payload?.length ?? 0);
  });
}

const LINKS: Array<[Link, string]> = [
  ['ethernet', 'ethernet'],
  ['vlan', 'ethernet'],
  ['qinq', 'ethernet'],
  ['sll', 'linux-sll'],
  ['sll2', 'linux-sll2'],
  ['raw', 'raw-ip'],
  ['raw12', 'raw-ip'],
  ['raw14', 'raw-ip'],
  ['null', 'bsd-loopback'],
];

describe('pcap', () => {
  const formats: Array<{ title: string; opts: PcapOptions }> = [
    { title: 'little endian, µs', opts: { endian: 'le' } },
    { title: 'big endian, µs', opts: { endian: 'be' } },
    { title: 'little endian, ns', opts: { endian: 'le', nano: true } },
    { title: 'big endian, ns', opts: { endian: 'be', nano: true } },
  ];
  for (const { title, opts } of formats) {
    for (const [link, name] of LINKS) {
      for (const [family, ends] of [
        ['IPv4', V4],
        ['IPv6', V6],
      ] as const) {
        test(`${title}, ${link}, ${family}`, () => {
          const want = sample(ends);
          const cap = readCapture(writePcap(want, { ...opts, link }), 'x.pcap');
          expect(cap.format).toBe('pcap');
          expect(cap.linkTypes).toEqual([name]);
          expect(cap.packets).toBe(want.length);
          expect(cap.notes).toEqual([]);
          expectSame(cap.segments, want, opts.nano ? 8 : 5);
        });
      }
    }
  }
});

describe('pcapng', () => {
  const formats: Array<{ title: string; opts: PcapngOptions; precision?: number }> = [
    { title: 'little endian, default µs', opts: { endian: 'le' } },
    { title: 'big endian, default µs', opts: { endian: 'be' } },
    { title: 'if_tsresol 9 (ns)', opts: { tsresol: 9 }, precision: 8 },
    { title: 'if_tsresol 2^-20', opts: { tsresol: 0x80 | 20 }, precision: 5 },
    { title: 'blocks to skip (NRB, ISB, custom)', opts: { extraBlocks: true } },
    { title: 'two sections, second in the other byte order', opts: { twoSections: true } },
    { title: 'obsolete packet blocks', opts: { obsolete: true } },
  ];
  for (const { title, opts, precision } of formats) {
    for (const [link, name] of LINKS) {
      test(`${title}, ${link}`, () => {
        const want = [...sample(V4), ...sample(V6)];
        const cap = readCapture(writePcapng(want, { ...opts, link }), 'x.pcapng');
        expect(cap.format).toBe('pcapng');
        expect(cap.linkTypes).toEqual([name]);
        expect(cap.notes).toEqual([]);
        expectSame(cap.segments, want, precision ?? 5);
      });
    }
  }

  test('simple packet blocks: no timestamps, packets still read', () => {
    const want = sample(V4);
    const cap = readCapture(writePcapng(want, { simple: true }), 'x.pcapng');
    expect(cap.segments.map((s) => s.seq)).toEqual(want.map((p) => p.seq >>> 0));
    expect(cap.segments.map((s) => s.payload.toString())).toEqual(want.map((p) => (p.payload ?? '').toString()));
  });

  test('the interface id is kept', () => {
    const cap = readCapture(writePcapng(sample(V4)), 'x.pcapng');
    expect(cap.segments.every((s) => s.iface === 0)).toBe(true);
  });
});

describe('IP details', () => {
  const base = (extra: Partial<Packet>): Packet => ({ t: 1, src: V4.c, dst: V4.s, seq: 1, ack: 2, flags: 'PA', payload: Buffer.from('NOOP\r\n'), ...extra });

  test('IPv4 options are skipped by the header length', () => {
    const p = base({ ipv4Options: Buffer.from([0x94, 0x04, 0, 0, 0x01, 0x01, 0x01]) }); // router alert + NOPs
    const cap = readCapture(writePcap([p]), 'x.pcap');
    expect(cap.segments[0]!.payload.toString()).toBe('NOOP\r\n');
  });

  test('IPv4 fragments are skipped with one note for all of them', () => {
    const cap = readCapture(
      writePcap([base({ fragment: { offset: 0, more: true } }), base({ fragment: { offset: 3, more: false } }), base({})]),
      'x.pcap',
    );
    expect(cap.segments).toHaveLength(1);
    expect(cap.segments[0]!.packet).toBe(3);
    expect(cap.notes.map((n) => n.message)).toEqual([expect.stringMatching(/^2 IP fragment\(s\) skipped \(first: packet 1\)/)]);
  });

  test('IPv6 extension headers before TCP are walked', () => {
    const p: Packet = { ...base({}), src: V6.c, dst: V6.s, ipv6Ext: ['hop-by-hop', 'destination', 'routing', 'fragment-atomic'] };
    const cap = readCapture(writePcapng([p]), 'x.pcapng');
    expect(cap.segments[0]!.payload.toString()).toBe('NOOP\r\n');
    expect(cap.notes).toEqual([]);
  });

  test('an IPv6 fragment is skipped with a note', () => {
    const p: Packet = { ...base({}), src: V6.c, dst: V6.s, ipv6Ext: ['fragment'] };
    const cap = readCapture(writePcapng([p]), 'x.pcapng');
    expect(cap.segments).toEqual([]);
    expect(cap.notes[0]!.message).toMatch(/IP fragment/);
  });

  test('a payload cut by the snaplen keeps its wire length and is noted', () => {
    const p = base({ payload: Buffer.from('RETR a-rather-long-file-name.txt\r\n') });
    const cap = readCapture(writePcap([p], { snaplen: 60 }), 'x.pcap');
    const seg = cap.segments[0]!;
    expect(seg.length).toBe(34);
    expect(seg.payload.length).toBe(60 - 14 - 20 - 20);
    expect(cap.notes[0]!.message).toMatch(/snaplen/);
  });

  test('non-TCP and non-IP frames are skipped quietly', () => {
    const tcp = writePcap([base({})], { link: 'raw' });
    // Append a UDP packet and an ARP-ish frame by hand to a raw-IP file.
    const udp = Buffer.from(tcp.subarray(24 + 16));
    udp[9] = 17;
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(udp.length, 8);
    rec.writeUInt32LE(udp.length, 12);
    const junk = Buffer.from([0x00, 0x01, 0x02]);
    const rec2 = Buffer.alloc(16);
    rec2.writeUInt32LE(3, 8);
    rec2.writeUInt32LE(3, 12);
    const cap = readCapture(Buffer.concat([tcp, rec, udp, rec2, junk]), 'x.pcap');
    expect(cap.packets).toBe(3);
    expect(cap.segments).toHaveLength(1);
    expect(cap.notes).toEqual([]);
  });
});

describe('bad input: CaptureError with file and offset', () => {
  const good = writePcap(sample(V4));
  const goodNg = writePcapng(sample(V4));
  const cases: Array<{ title: string; data: Buffer; message: RegExp; offset?: number }> = [
    { title: 'empty file', data: Buffer.alloc(0), message: /^bad\.cap: not a pcap or pcapng file \(0 bytes\) \(at byte 0\)$/, offset: 0 },
    { title: 'a text file', data: Buffer.from('hello, this is not a capture\n'), message: /not a pcap or pcapng file \(magic 68656c6c "hell"\)/, offset: 0 },
    { title: 'pcap header cut short', data: good.subarray(0, 20), message: /pcap file header needs 24 bytes/, offset: 20 },
    { title: 'pcap record cut short', data: good.subarray(0, good.length - 3), message: /capture truncated: record of \d+ bytes/ },
    { title: 'pcap record header cut short', data: good.subarray(0, 24 + 10), message: /record header needs 16 bytes, 10 left/, offset: 24 },
    {
      title: 'pcap version 3',
      data: Buffer.concat([good.subarray(0, 4), Buffer.from([3, 0]), good.subarray(6)]),
      message: /unsupported pcap version 3\.4/,
      offset: 4,
    },
    {
      title: 'pcap record length past any snaplen',
      data: (() => {
        const b = Buffer.from(good);
        b.writeUInt32LE(0x7fffffff, 24 + 8);
        return b;
      })(),
      message: /record length 2147483647 exceeds the snaplen/,
      offset: 32,
    },
    { title: 'pcapng block cut short', data: goodNg.subarray(0, goodNg.length - 8), message: /capture truncated: block of \d+ bytes/ },
    {
      title: 'pcapng byte-order magic unknown',
      data: (() => {
        const b = Buffer.from(goodNg);
        b.writeUInt32LE(0x12345678, 8);
        return b;
      })(),
      message: /unknown byte-order magic/,
      offset: 8,
    },
    {
      title: 'pcapng block length not a multiple of 4',
      data: (() => {
        const b = Buffer.from(goodNg);
        b.writeUInt32LE(31, 4);
        return b;
      })(),
      message: /block length 31 is not a multiple of 4/,
      offset: 4,
    },
    {
      title: 'pcapng packet before its interface',
      data: (() => {
        const shbLen = goodNg.readUInt32LE(4);
        const idbLen = goodNg.readUInt32LE(shbLen + 4);
        return Buffer.concat([goodNg.subarray(0, shbLen), goodNg.subarray(shbLen + idbLen)]);
      })(),
      message: /refers to interface 0, which this section does not describe/,
    },
  ];
  test.each(cases)('$title', ({ data, message, offset }) => {
    let err: unknown;
    try {
      readCapture(data, 'bad.cap');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CaptureError);
    const ce = err as CaptureError;
    expect(ce.message).toMatch(message);
    expect(ce.message).toMatch(/^bad\.cap: /);
    expect(ce.file).toBe('bad.cap');
    expect(ce.offset).toBeTypeOf('number');
    if (offset !== undefined) expect(ce.offset).toBe(offset);
    expect(ce.message).toContain(`(at byte ${ce.offset})`);
  });

  test('allowTruncatedTail keeps the packets before the cut and notes where', () => {
    const cut = good.subarray(0, good.length - 3);
    const cap = readCapture(cut, 'cut.pcap', { allowTruncatedTail: true });
    expect(cap.segments).toHaveLength(sample(V4).length - 1);
    expect(cap.notes).toHaveLength(1);
    expect(cap.notes[0]!.message).toMatch(/^capture truncated: record of \d+ bytes, \d+ left at byte \d+; the packets before it were analysed$/);
    const ng = readCapture(goodNg.subarray(0, goodNg.length - 8), 'cut.pcapng', { allowTruncatedTail: true });
    expect(ng.segments).toHaveLength(sample(V4).length - 1);
  });

  fcTest.prop([fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.constantFrom(good, goodNg), fc.nat(400)], { numRuns: 300 })(
    'corrupted files never throw anything but CaptureError',
    (noise, base, at) => {
      const data = Buffer.from(base);
      Buffer.from(noise).copy(data, Math.min(at, data.length));
      try {
        readCapture(data, 'fuzz.cap');
      } catch (e) {
        expect(e).toBeInstanceOf(CaptureError);
      }
    },
  );
});

describe('random bytes behind a valid magic', () => {
  const magics = [
    Buffer.from([0xd4, 0xc3, 0xb2, 0xa1]),
    Buffer.from([0xa1, 0xb2, 0x3c, 0x4d]),
    Buffer.from([0x0a, 0x0d, 0x0d, 0x0a]),
  ];
  fcTest.prop([fc.constantFrom(...magics), fc.uint8Array({ maxLength: 200 }), fc.boolean()], { numRuns: 500 })('only CaptureError, or a capture', (magic, rest, lenient) => {
    const data = Buffer.concat([magic, Buffer.from(rest)]);
    // pcapng: make the byte-order magic valid half of the time so that blocks get parsed.
    if (magic[0] === 0x0a && data.length >= 12 && rest[0]! % 2 === 0) data.writeUInt32LE(0x1a2b3c4d, 8);
    try {
      readCapture(data, 'fuzz.cap', { allowTruncatedTail: lenient });
    } catch (e) {
      expect(e).toBeInstanceOf(CaptureError);
    }
  });
});

describe('round trip of random packets', () => {
  const addr4 = fc.tuple(fc.integer({ min: 64, max: 127 }), fc.nat(255), fc.nat(255)).map(([a, b, c]) => `100.${a}.${b}.${c}`);
  const addr6 = fc.tuple(fc.nat(0xffff), fc.nat(0xffff)).map(([a, b]) => `fd00::${a.toString(16)}:${b.toString(16)}`);
  const port = fc.integer({ min: 1, max: 65535 });
  const packet = (addr: fc.Arbitrary<string>) =>
    fc.record({
      t: fc.integer({ min: 1_600_000_000, max: 1_900_000_000 }).chain((s) => fc.nat(999_999).map((us) => s + us / 1e6)),
      src: fc.record({ address: addr, port }),
      dst: fc.record({ address: addr, port }),
      seq: fc.nat(0xffffffff),
      ack: fc.nat(0xffffffff),
      flags: fc.subarray(['S', 'A', 'F', 'R', 'P']).map((f) => f.join('')),
      payload: fc.uint8Array({ maxLength: 100 }).map((u) => Buffer.from(u)),
    });
  const format = fc.oneof(
    fc.record({ kind: fc.constant('pcap' as const), endian: fc.constantFrom('le' as const, 'be' as const), nano: fc.boolean() }),
    fc.record({ kind: fc.constant('pcapng' as const), endian: fc.constantFrom('le' as const, 'be' as const), nano: fc.boolean() }),
  );
  const link = fc.constantFrom<Link>('ethernet', 'vlan', 'sll', 'sll2', 'raw', 'null');

  fcTest.prop([fc.array(fc.oneof(packet(addr4), packet(addr6)), { maxLength: 20 }), format, link], { numRuns: 150 })(
    'what the writer writes, the reader reads',
    (packets, f, l) => {
      const data = f.kind === 'pcap' ? writePcap(packets, { endian: f.endian, nano: f.nano, link: l }) : writePcapng(packets, { endian: f.endian, link: l, ...(f.nano ? { tsresol: 9 } : {}) });
      const cap = readCapture(data, 'rt');
      expectSame(cap.segments, packets, 5);
    },
  );
});
