/**
 * LineFramer: bytes in, lines out, whatever the chunking. Raw bytes must come
 * out exactly as they went in; `text` is for parsing only.
 */
import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import {
  DEFAULT_MAX_LINE_BYTES,
  LineFramer,
  encodeLine,
  lineFromRaw,
  stripTelnet,
  type Framed,
  type FramedLine,
} from '../../src/protocol/framer.js';

const IAC = 0xff;
const IP = 0xf4;
const DM = 0xf2;
const SB = 0xfa;
const SE = 0xf0;
const WILL = 0xfb;
const DO = 0xfd;
const DONT = 0xfe;

const bytes = (...parts: Array<string | number[]>): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

function feed(framer: LineFramer, chunks: Buffer[]): Framed[] {
  return chunks.flatMap((c) => framer.push(c));
}

/** Lines only, as comparable plain values. */
function summary(out: Framed[]): Array<{ kind: string; raw: string; text?: string; eol?: string; done?: boolean }> {
  return out.map((f) =>
    f.kind === 'line'
      ? { kind: f.kind, raw: f.raw.toString('latin1'), text: f.text, eol: f.eol }
      : { kind: f.kind, raw: f.raw.toString('latin1'), done: f.done },
  );
}

describe('LineFramer lines', () => {
  test.each([
    {
      title: 'CRLF line',
      input: ['USER anonymous\r\n'],
      expected: [{ kind: 'line', raw: 'USER anonymous\r\n', text: 'USER anonymous', eol: '\r\n' }],
    },
    {
      title: 'bare LF line',
      input: ['NOOP\n'],
      expected: [{ kind: 'line', raw: 'NOOP\n', text: 'NOOP', eol: '\n' }],
    },
    {
      title: 'pipelined lines in one chunk, mixed endings',
      input: ['USER a\r\nPASS b\nSYST\r\n'],
      expected: [
        { kind: 'line', raw: 'USER a\r\n', text: 'USER a', eol: '\r\n' },
        { kind: 'line', raw: 'PASS b\n', text: 'PASS b', eol: '\n' },
        { kind: 'line', raw: 'SYST\r\n', text: 'SYST', eol: '\r\n' },
      ],
    },
    {
      title: 'CR and LF in different chunks',
      input: ['NOOP\r', '\n'],
      expected: [{ kind: 'line', raw: 'NOOP\r\n', text: 'NOOP', eol: '\r\n' }],
    },
    {
      title: 'one byte at a time',
      input: ['P', 'W', 'D', '\r', '\n'],
      expected: [{ kind: 'line', raw: 'PWD\r\n', text: 'PWD', eol: '\r\n' }],
    },
    {
      title: 'line split across chunks with the next line starting in the same chunk',
      input: ['CWD /pub', '\r\nCDUP\r', '\n'],
      expected: [
        { kind: 'line', raw: 'CWD /pub\r\n', text: 'CWD /pub', eol: '\r\n' },
        { kind: 'line', raw: 'CDUP\r\n', text: 'CDUP', eol: '\r\n' },
      ],
    },
    {
      title: 'empty lines',
      input: ['\r\n\n'],
      expected: [
        { kind: 'line', raw: '\r\n', text: '', eol: '\r\n' },
        { kind: 'line', raw: '\n', text: '', eol: '\n' },
      ],
    },
    {
      title: 'CR inside a line stays in the text',
      input: ['A\rB\r\n'],
      expected: [{ kind: 'line', raw: 'A\rB\r\n', text: 'A\rB', eol: '\r\n' }],
    },
    {
      title: 'double CR before LF: only the last belongs to the terminator',
      input: ['NOOP\r\r\n'],
      expected: [{ kind: 'line', raw: 'NOOP\r\r\n', text: 'NOOP\r', eol: '\r\n' }],
    },
    {
      title: '8-bit path bytes decoded as Latin-1',
      input: ['RETR caf\xc3\xa9\r\n'],
      expected: [{ kind: 'line', raw: 'RETR caf\xc3\xa9\r\n', text: 'RETR caf\xc3\xa9', eol: '\r\n' }],
    },
    {
      title: 'lone LF',
      input: ['\n'],
      expected: [{ kind: 'line', raw: '\n', text: '', eol: '\n' }],
    },
  ])('$title', ({ input, expected }) => {
    const framer = new LineFramer();
    expect(summary(feed(framer, input.map((s) => Buffer.from(s, 'latin1'))))).toEqual(expected);
    expect(framer.buffered).toBe(0);
    expect(framer.end()).toBeUndefined();
  });

  test('an empty chunk yields nothing', () => {
    const framer = new LineFramer();
    expect(framer.push(Buffer.alloc(0))).toEqual([]);
    expect(framer.buffered).toBe(0);
  });

  test('buffered counts the unterminated bytes', () => {
    const framer = new LineFramer();
    expect(framer.push(Buffer.from('RETR fi'))).toEqual([]);
    expect(framer.buffered).toBe(7);
    expect(framer.push(Buffer.from('le\r'))).toEqual([]);
    expect(framer.buffered).toBe(10);
    expect(framer.push(Buffer.from('\nST')).length).toBe(1);
    expect(framer.buffered).toBe(2);
  });

  test('raw is a copy: reusing the input chunk does not change a returned line', () => {
    const framer = new LineFramer();
    const chunk = Buffer.from('NOOP\r\n');
    const [line] = framer.push(chunk);
    chunk.fill(0x41);
    expect(line?.raw.toString('latin1')).toBe('NOOP\r\n');
  });
});

describe('LineFramer Telnet handling', () => {
  test('IAC IP IAC DM before ABOR: text is ABOR, raw is verbatim', () => {
    const raw = bytes([IAC, IP, IAC, DM], 'ABOR\r\n');
    const [line] = new LineFramer().push(raw) as FramedLine[];
    expect(line?.text).toBe('ABOR');
    expect(line?.raw.equals(raw)).toBe(true);
    expect(line?.eol).toBe('\r\n');
  });

  test('IAC IP IAC ABOR (the DM byte lost as urgent data): text is still ABOR', () => {
    const [line] = new LineFramer().push(bytes([IAC, IP, IAC], 'ABOR\r\n')) as FramedLine[];
    expect(line?.text).toBe('ABOR');
  });

  test('IAC IAC is a literal 0xFF', () => {
    const [line] = new LineFramer().push(bytes('RETR a', [IAC, IAC], 'b\r\n')) as FramedLine[];
    expect(line?.text).toBe('RETR a\xffb');
    expect(line?.raw.length).toBe(11);
  });

  test('the Synch split across chunks', () => {
    const framer = new LineFramer();
    const out = feed(framer, [bytes([IAC]), bytes([IP, IAC]), bytes([DM], 'AB'), bytes('OR\r'), bytes('\n')]);
    expect(out).toHaveLength(1);
    expect((out[0] as FramedLine).text).toBe('ABOR');
    expect(out[0]!.raw.equals(bytes([IAC, IP, IAC, DM], 'ABOR\r\n'))).toBe(true);
  });
});

describe('LineFramer ABOR with urgent data (RFC 959 §4.1.3)', () => {
  const synchAbor = bytes([IAC, IP, IAC, DM], 'ABOR\r\n');
  test.each([
    // What each client sends, cut where a read stops at the urgent mark (SO_OOBINLINE) …
    { title: 'lftp, DM urgent, kept in line', input: [bytes([IAC, IP, IAC]), bytes([DM], 'ABOR\r\n')], raw: synchAbor, received: undefined },
    { title: 'BSD ftp, last IAC urgent, kept in line', input: [bytes([IAC, IP]), bytes([IAC, DM], 'ABOR\r\n')], raw: synchAbor, received: undefined },
    { title: 'ftplib, LF urgent, kept in line', input: [bytes('ABOR\r'), bytes('\n')], raw: bytes('ABOR\r\n'), received: 5 },
    // … and without SO_OOBINLINE, the urgent byte lost.
    { title: 'lftp, DM lost', input: [bytes([IAC, IP, IAC], 'ABOR\r\n')], raw: synchAbor, received: 9 },
    { title: 'BSD ftp, IAC lost (ProFTPD would read \\xf2ABOR)', input: [bytes([IAC, IP, DM], 'ABOR\r\n')], raw: synchAbor, received: 9 },
    { title: 'ftplib, LF lost', input: [bytes('ABOR\r')], raw: bytes('ABOR\r\n'), received: 5 },
    { title: 'ftplib, LF lost, lower case', input: [bytes('abor\r')], raw: bytes('abor\r\n'), received: 5 },
    { title: 'plain ABOR with bare LF keeps its LF', input: [bytes('ABOR\n')], raw: bytes('ABOR\n'), received: undefined },
  ])('$title', ({ input, raw, received }) => {
    const out = feed(new LineFramer(), input);
    expect(out).toHaveLength(1);
    const line = out[0] as FramedLine;
    expect(line.raw.toString('latin1')).toBe(raw.toString('latin1'));
    expect(line.text.toUpperCase()).toBe('ABOR');
    expect(line.received).toBe(received);
  });

  test('the LF that follows an ABOR sent on at its CR is swallowed and counted with the next line', () => {
    const framer = new LineFramer();
    const out = feed(framer, [bytes('ABOR\r'), bytes('\nNOOP\r\n')]);
    expect(summary(out).map((l) => l.raw)).toEqual(['ABOR\r\n', 'NOOP\r\n']);
    expect((out[1] as FramedLine).received).toBe(7);
  });

  test.each([
    { title: 'in one chunk', input: ['ABOR\rNOOP\r\n'] },
    { title: 'in two chunks', input: ['ABOR\r', 'NOOP\r\n'] },
    { title: 'after a Synch that lost its DM', input: ['\xff\xf4\xffABOR\r', 'NOOP\r\n'] },
  ])('ABOR ended by a bare CR is never glued to the next command ($title)', ({ input }) => {
    const out = summary(feed(new LineFramer(), input.map((s) => bytes(s))));
    expect(out.map((l) => l.text?.toUpperCase())).toEqual(['ABOR', 'NOOP']);
    expect(out[1]!.raw).toBe('NOOP\r\n');
  });

  test.each([
    { title: 'a longer verb', input: 'ABORT\r' },
    { title: 'an argument', input: 'ABOR x\r' },
    { title: 'another command', input: 'RETR a\r' },
    { title: 'high bytes without IAC', input: '\xf2\xf4ABOR\r' },
  ])('a bare CR at the end of a chunk ends no other line ($title)', ({ input }) => {
    const framer = new LineFramer();
    expect(framer.push(bytes(input))).toEqual([]);
    expect(framer.push(bytes('\n')).map((f) => f.raw.toString('latin1'))).toEqual([`${input}\n`]);
  });

  fcTest.prop([fc.constantFrom('ABOR\r\n', 'ABOR\r', '\xff\xf4\xff\xf2ABOR\r\n', '\xff\xf4\xffABOR\r\n'), chunkingArb(6)])(
    'ABOR then NOOP: the same two lines whatever the chunking',
    (abor, chunking) => {
      const out = feed(new LineFramer(), split(bytes(abor, 'NOOP\r\n'), chunking));
      expect(out.map((f) => (f as FramedLine).text)).toEqual(['ABOR', 'NOOP']);
      expect(out[1]!.raw.toString('latin1')).toBe('NOOP\r\n');
      expect(out.reduce((n, f) => n + ((f as FramedLine).received ?? f.raw.length), 0)).toBe(abor.length + 6);
    },
  );
});

describe('stripTelnet', () => {
  test.each([
    { title: 'no IAC', input: bytes('NOOP'), expected: 'NOOP' },
    { title: 'Synch before ABOR', input: bytes([IAC, IP, IAC, DM], 'ABOR'), expected: 'ABOR' },
    { title: 'IAC IAC', input: bytes([0x61, IAC, IAC, 0x62]), expected: 'a\xffb' },
    { title: 'two escaped 0xFF in a row', input: bytes([IAC, IAC, IAC, IAC]), expected: '\xff\xff' },
    { title: 'WILL with option byte', input: bytes([IAC, WILL, 0x01], 'NOOP'), expected: 'NOOP' },
    { title: 'DO with option byte', input: bytes('NO', [IAC, DO, 0x03], 'OP'), expected: 'NOOP' },
    { title: 'DONT with option byte', input: bytes([IAC, DONT, 0x22], 'NOOP'), expected: 'NOOP' },
    { title: 'subnegotiation', input: bytes('NO', [IAC, SB, 0x18, 0x00, 0x41, IAC, SE], 'OP'), expected: 'NOOP' },
    { title: 'unterminated subnegotiation drops the rest', input: bytes('NO', [IAC, SB, 0x18], 'OP'), expected: 'NO' },
    { title: 'lone IAC at the end', input: bytes('NOOP', [IAC]), expected: 'NOOP' },
    { title: 'two-byte command (NOP)', input: bytes([IAC, 0xf1], 'NOOP'), expected: 'NOOP' },
    { title: 'other high bytes untouched', input: bytes([0xfe, 0xfd, 0x80], 'x'), expected: '\xfe\xfd\x80x' },
  ])('$title', ({ input, expected }) => {
    expect(stripTelnet(input)).toBe(expected);
  });
});

describe('lineFromRaw', () => {
  test.each([
    { title: 'CRLF', input: 'PWD\r\n', expected: { text: 'PWD', eol: '\r\n' } },
    { title: 'LF', input: 'PWD\n', expected: { text: 'PWD', eol: '\n' } },
    { title: 'just LF', input: '\n', expected: { text: '', eol: '\n' } },
    { title: 'just CRLF', input: '\r\n', expected: { text: '', eol: '\r\n' } },
  ])('$title', ({ input, expected }) => {
    const raw = Buffer.from(input, 'latin1');
    const line = lineFromRaw(raw);
    expect(line).toEqual({ kind: 'line', raw, ...expected });
  });
});

describe('LineFramer overflow', () => {
  const CAP = 16;

  test('constructor', () => {
    expect(new LineFramer().maxLineBytes).toBe(DEFAULT_MAX_LINE_BYTES);
    expect(new LineFramer(8).maxLineBytes).toBe(8);
    expect(() => new LineFramer(7)).toThrow(RangeError);
    expect(() => new LineFramer(8.5)).toThrow(RangeError);
    expect(() => new LineFramer(Number.NaN)).toThrow(RangeError);
  });

  test('a line of exactly the cap, terminator included, is a line', () => {
    const input = `${'A'.repeat(CAP - 2)}\r\n`;
    const out = new LineFramer(CAP).push(Buffer.from(input));
    expect(summary(out)).toEqual([{ kind: 'line', raw: input, text: 'A'.repeat(CAP - 2), eol: '\r\n' }]);
  });

  test('one byte over the cap in one chunk: a single overflow piece, done', () => {
    const input = `${'A'.repeat(CAP - 1)}\r\n`;
    const framer = new LineFramer(CAP);
    expect(summary(framer.push(Buffer.from(input)))).toEqual([{ kind: 'overflow', raw: input, done: true }]);
    expect(framer.buffered).toBe(0);
    expect(summary(framer.push(Buffer.from('NOOP\r\n')))).toEqual([
      { kind: 'line', raw: 'NOOP\r\n', text: 'NOOP', eol: '\r\n' },
    ]);
  });

  test('a long unterminated chunk is handed out at once, then continues as overflow', () => {
    const framer = new LineFramer(CAP);
    const long = 'B'.repeat(40);
    expect(summary(framer.push(Buffer.from(long)))).toEqual([{ kind: 'overflow', raw: long, done: false }]);
    expect(framer.buffered).toBe(0);
    expect(summary(framer.push(Buffer.from('xyz')))).toEqual([{ kind: 'overflow', raw: 'xyz', done: false }]);
    expect(summary(framer.push(Buffer.from('!\r\nQUIT\r\n')))).toEqual([
      { kind: 'overflow', raw: '!\r\n', done: true },
      { kind: 'line', raw: 'QUIT\r\n', text: 'QUIT', eol: '\r\n' },
    ]);
    expect(framer.end()).toBeUndefined();
  });

  test('byte by byte: buffered stops at the cap, then pieces flow', () => {
    const framer = new LineFramer(CAP);
    const input = Buffer.from(`${'C'.repeat(30)}\r\n`);
    const out: Framed[] = [];
    for (const b of input) {
      out.push(...framer.push(Buffer.from([b])));
      expect(framer.buffered).toBeLessThanOrEqual(CAP);
    }
    // First piece: the CAP buffered bytes plus the one that went over.
    expect(summary(out)).toEqual([
      { kind: 'overflow', raw: 'C'.repeat(CAP + 1), done: false },
      ...Array.from({ length: 30 - CAP - 1 }, () => ({ kind: 'overflow', raw: 'C', done: false })),
      { kind: 'overflow', raw: '\r', done: false },
      { kind: 'overflow', raw: '\n', done: true },
    ]);
    expect(Buffer.concat(out.map((f) => f.raw)).equals(input)).toBe(true);
  });

  test('the cap is reached exactly, then the LF arrives alone: overflow, done', () => {
    const framer = new LineFramer(CAP);
    expect(framer.push(Buffer.from('D'.repeat(CAP)))).toEqual([]);
    expect(framer.buffered).toBe(CAP);
    expect(summary(framer.push(Buffer.from('\n')))).toEqual([{ kind: 'overflow', raw: `${'D'.repeat(CAP)}\n`, done: true }]);
    expect(framer.buffered).toBe(0);
  });

  test('huge input keeps memory bounded', () => {
    const framer = new LineFramer(CAP);
    for (let i = 0; i < 1000; i++) {
      framer.push(Buffer.alloc(97, 0x45));
      expect(framer.buffered).toBeLessThanOrEqual(CAP);
    }
  });
});

describe('LineFramer end()', () => {
  test('returns the unterminated tail once', () => {
    const framer = new LineFramer();
    expect(summary(framer.push(Buffer.from('NOOP\r\nQUI')))).toEqual([
      { kind: 'line', raw: 'NOOP\r\n', text: 'NOOP', eol: '\r\n' },
    ]);
    expect(framer.end()?.toString('latin1')).toBe('QUI');
    expect(framer.buffered).toBe(0);
    expect(framer.end()).toBeUndefined();
  });

  test('keeps a trailing CR', () => {
    const framer = new LineFramer();
    framer.push(Buffer.from('QUIT\r'));
    expect(framer.end()?.toString('latin1')).toBe('QUIT\r');
  });

  test('nothing pending: undefined', () => {
    const framer = new LineFramer();
    framer.push(Buffer.from('QUIT\r\n'));
    expect(framer.end()).toBeUndefined();
  });
});

describe('encodeLine', () => {
  test.each([
    { title: 'default CRLF', text: 'USER anonymous', eol: undefined, expected: 'USER anonymous\r\n' },
    { title: 'bare LF', text: 'NOOP', eol: '\n' as const, expected: 'NOOP\n' },
    { title: 'Latin-1 kept as single bytes', text: 'RETR caf\xe9\xff', eol: undefined, expected: 'RETR caf\xe9\xff\r\n' },
    { title: 'empty', text: '', eol: undefined, expected: '\r\n' },
  ])('$title', ({ text, eol, expected }) => {
    expect(encodeLine(text, eol).toString('latin1')).toBe(expected);
    expect(encodeLine(text, eol).length).toBe(expected.length);
  });

  test.each([
    { title: 'CR', text: 'NOOP\rDELE x' },
    { title: 'LF', text: 'NOOP\nDELE x' },
    { title: 'CRLF', text: 'NOOP\r\nDELE x' },
    { title: 'NUL', text: 'RETR a\0b' },
    { title: 'trailing LF', text: 'NOOP\n' },
    // Buffer's latin1 keeps only the low byte: these would become LF, CR, NUL.
    { title: 'U+010A (low byte LF)', text: 'NOOP\u010aDELE x' },
    { title: 'U+010D (low byte CR)', text: 'NOOP\u010dDELE x' },
    { title: 'U+0100 (low byte NUL)', text: 'RETR a\u0100b' },
    { title: 'non-Latin-1 text', text: 'RETR \u20ac' },
  ])('refuses $title', ({ text }) => {
    expect(() => encodeLine(text)).toThrow(/refusing/);
  });
});

// ---- properties ---------------------------------------------------------------

const LF = 0x0a;

// Bytes other than LF, with CR, IAC and high bytes over-represented.
const lineByte = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 255 }).filter((b) => b !== LF) },
  { weight: 1, arbitrary: fc.constantFrom(0x0d, 0xff, 0xf4, 0xf2, 0xfa, 0xf0, 0xfb) },
);
// ABOR lines are repaired, not passed verbatim: they have their own tests.
const body = (maxLength: number) =>
  fc
    .array(lineByte, { maxLength })
    .map((b) => Buffer.from(b))
    .filter((b) => !/abor/i.test(b.toString('latin1')));
const lineArb = (maxLength: number) =>
  fc.record({ body: body(maxLength), eol: fc.constantFrom('\r\n', '\n') }).map(({ body: b, eol }) => {
    const bytes = Buffer.concat([b, Buffer.from(eol)]);
    // A body ending in CR followed by a bare LF is, on the wire, a CRLF line.
    return { bytes, eol: bytes.length >= 2 && bytes[bytes.length - 2] === 0x0d ? '\r\n' : '\n' };
  });
const streamArb = (maxLength: number) =>
  fc.record({ lines: fc.array(lineArb(maxLength), { maxLength: 12 }), tail: body(maxLength) });

/** Chunkings of a buffer: random cuts, or one byte at a time. */
function chunkingArb(maxCuts: number) {
  return fc.oneof(
    fc.array(fc.nat(), { maxLength: maxCuts }).map((cuts) => ({ bytewise: false, cuts })),
    fc.constant({ bytewise: true, cuts: [] as number[] }),
  );
}

function split(input: Buffer, c: { bytewise: boolean; cuts: number[] }): Buffer[] {
  if (c.bytewise) return [...input].map((b) => Buffer.from([b]));
  const points = [...new Set(c.cuts.map((n) => (input.length === 0 ? 0 : n % (input.length + 1))))].sort(
    (a, b) => a - b,
  );
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, input.length]) {
    chunks.push(Buffer.from(input.subarray(prev, p)));
    prev = p;
  }
  return chunks;
}

/** Overflow pieces of one line merged, so that chunkings can be compared. */
function records(out: Framed[]): Array<{ kind: string; raw: string; text?: string; done?: boolean }> {
  const result: Array<{ kind: string; raw: string; text?: string; done?: boolean }> = [];
  let acc: Buffer[] | undefined;
  for (const f of out) {
    if (f.kind === 'line') {
      result.push({ kind: 'line', raw: f.raw.toString('latin1'), text: f.text });
      continue;
    }
    acc = [...(acc ?? []), f.raw];
    if (f.done) {
      result.push({ kind: 'overflow', raw: Buffer.concat(acc).toString('latin1'), done: true });
      acc = undefined;
    }
  }
  if (acc) result.push({ kind: 'overflow', raw: Buffer.concat(acc).toString('latin1'), done: false });
  return result;
}

describe('LineFramer properties', () => {
  fcTest.prop([streamArb(40), chunkingArb(20)], { numRuns: 300 })(
    'byte-exact pass-through and the same lines under any chunking',
    ({ lines, tail }, chunking) => {
      const input = Buffer.concat([...lines.map((l) => l.bytes), tail]);
      const framer = new LineFramer();
      const out = feed(framer, split(input, chunking));
      const rest = framer.end();

      expect(Buffer.concat([...out.map((f) => f.raw), rest ?? Buffer.alloc(0)]).equals(input)).toBe(true);
      expect(out.every((f) => f.kind === 'line')).toBe(true);
      expect(out.map((f) => f.raw.toString('latin1'))).toEqual(lines.map((l) => l.bytes.toString('latin1')));
      expect(out.map((f) => (f as FramedLine).eol)).toEqual(lines.map((l) => l.eol));
      expect(out.map((f) => (f as FramedLine).text)).toEqual(
        lines.map((l) => stripTelnet(l.bytes.subarray(0, l.bytes.length - l.eol.length))),
      );
      expect(rest?.toString('latin1')).toBe(tail.length === 0 ? undefined : tail.toString('latin1'));
    },
  );

  fcTest.prop([streamArb(60), chunkingArb(30), fc.integer({ min: 8, max: 40 })], { numRuns: 300 })(
    'with a small cap: byte-exact, bounded, and lines over the cap are overflow whatever the chunking',
    ({ lines, tail }, chunking, cap) => {
      const input = Buffer.concat([...lines.map((l) => l.bytes), tail]);
      const framer = new LineFramer(cap);
      const out: Framed[] = [];
      for (const chunk of split(input, chunking)) {
        out.push(...framer.push(chunk));
        expect(framer.buffered).toBeLessThanOrEqual(cap);
      }
      const rest = framer.end();

      expect(Buffer.concat([...out.map((f) => f.raw), rest ?? Buffer.alloc(0)]).equals(input)).toBe(true);
      const expected = lines.map((l) =>
        l.bytes.length <= cap
          ? {
              kind: 'line',
              raw: l.bytes.toString('latin1'),
              text: stripTelnet(l.bytes.subarray(0, l.bytes.length - l.eol.length)),
            }
          : { kind: 'overflow', raw: l.bytes.toString('latin1'), done: true },
      );
      if (tail.length > cap) expected.push({ kind: 'overflow', raw: tail.toString('latin1'), done: false });
      expect(records(out)).toEqual(expected);
      expect(rest?.toString('latin1')).toBe(tail.length === 0 || tail.length > cap ? undefined : tail.toString('latin1'));
    },
  );
});
