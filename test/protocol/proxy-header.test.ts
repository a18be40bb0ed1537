/**
 * PROXY protocol v1/v2 headers: a table of valid and invalid headers with
 * exact expectations, the encoder against the parser, and properties that
 * hold however the bytes are chunked.
 */
import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import {
  encodeProxyHeader,
  parseProxyHeader,
  ProxyHeaderParser,
  PROXY_V2_SIGNATURE,
  type ProxyHeader,
  type ProxyParseResult,
} from '../../src/protocol/proxy-header.js';
import { parseIp, type Endpoint } from '../../src/protocol/address.js';

const v4 = (address: string, port: number): Endpoint => ({ family: 4, address, port });
const v6 = (address: string, port: number): Endpoint => ({ family: 6, address, port });
const tail = Buffer.from('USER x\r\n');

function v2(verCmd: number, famProto: number, body: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(body.length);
  return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([verCmd, famProto]), len, body]);
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const unixBlock = (a: string, b: string) => {
  const block = Buffer.alloc(216);
  block.write(a, 0);
  block.write(b, 108);
  return block;
};

interface Case {
  title: string;
  input: Buffer;
  expected: ProxyHeader | string;
}

const CASES: Case[] = [
  {
    title: 'v1 TCP4',
    input: Buffer.from('PROXY TCP4 198.18.0.7 100.64.0.1 40000 21\r\n'),
    expected: { version: 1, command: 'proxy', addresses: { kind: 'inet', transport: 'tcp', source: v4('198.18.0.7', 40000), destination: v4('100.64.0.1', 21) }, tlvs: [] },
  },
  {
    title: 'v1 TCP6',
    input: Buffer.from('PROXY TCP6 fd00::7 fd00:0:0:0::1 65535 2121\r\n'),
    expected: { version: 1, command: 'proxy', addresses: { kind: 'inet', transport: 'tcp', source: v6('fd00::7', 65535), destination: v6('fd00::1', 2121) }, tlvs: [] },
  },
  {
    title: 'v1 UNKNOWN without addresses',
    input: Buffer.from('PROXY UNKNOWN\r\n'),
    expected: { version: 1, command: 'proxy', addresses: { kind: 'unknown' }, tlvs: [] },
  },
  {
    title: 'v1 UNKNOWN with addresses (ignored)',
    input: Buffer.from('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n'),
    expected: { version: 1, command: 'proxy', addresses: { kind: 'unknown' }, tlvs: [] },
  },
  { title: 'v1 bare LF', input: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'), expected: 'v1 header does not end in CRLF' },
  { title: 'v1 UDP4', input: Buffer.from('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), expected: 'v1 protocol "UDP4" is not TCP4, TCP6 or UNKNOWN' },
  { title: 'v1 port 65536', input: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), expected: 'v1 header has a malformed TCP4 address or port' },
  { title: 'v1 leading zero port', input: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 021 2\r\n'), expected: 'v1 header has a malformed TCP4 address or port' },
  { title: 'v1 IPv6 in TCP4', input: Buffer.from('PROXY TCP4 ::1 5.6.7.8 1 2\r\n'), expected: 'v1 header has a malformed TCP4 address or port' },
  { title: 'v1 bad octet', input: Buffer.from('PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n'), expected: 'v1 header has a malformed TCP4 address or port' },
  { title: 'v1 missing field', input: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'), expected: 'v1 header needs exactly: PROXY TCPn SRC DST SPORT DPORT' },
  { title: 'v1 double space', input: Buffer.from('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'), expected: 'v1 header needs exactly: PROXY TCPn SRC DST SPORT DPORT' },
  { title: 'v1 over 107 bytes', input: Buffer.from(`PROXY UNKNOWN ${'x'.repeat(100)}\r\n`), expected: 'v1 header longer than 107 bytes' },
  { title: 'v1 no CRLF within 107 bytes', input: Buffer.from(`PROXY UNKNOWN ${'x'.repeat(120)}`), expected: 'v1 header longer than 107 bytes' },
  { title: 'plain FTP command', input: Buffer.from('USER anonymous\r\n'), expected: 'no PROXY protocol signature' },
  { title: 'lower-case proxy', input: Buffer.from('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), expected: 'no PROXY protocol signature' },
  {
    title: 'v2 PROXY TCP4',
    input: v2(0x21, 0x11, hex('c6120007 64400001 9c40 0015')),
    expected: { version: 2, command: 'proxy', addresses: { kind: 'inet', transport: 'tcp', source: v4('198.18.0.7', 40000), destination: v4('100.64.0.1', 21) }, tlvs: [] },
  },
  {
    title: 'v2 PROXY UDP4',
    input: v2(0x21, 0x12, hex('01020304 05060708 0001 0002')),
    expected: { version: 2, command: 'proxy', addresses: { kind: 'inet', transport: 'udp', source: v4('1.2.3.4', 1), destination: v4('5.6.7.8', 2) }, tlvs: [] },
  },
  {
    title: 'v2 PROXY TCP6',
    input: v2(0x21, 0x21, hex('fd000000000000000000000000000007 fd000000000000000000000000000001 ffff 0015')),
    expected: { version: 2, command: 'proxy', addresses: { kind: 'inet', transport: 'tcp', source: v6('fd00::7', 65535), destination: v6('fd00::1', 21) }, tlvs: [] },
  },
  {
    title: 'v2 TCP6 with v4-mapped addresses folds to IPv4',
    input: v2(0x21, 0x21, hex('00000000000000000000ffffc6120007 00000000000000000000ffff64400001 9c40 0015')),
    expected: { version: 2, command: 'proxy', addresses: { kind: 'inet', transport: 'tcp', source: v4('198.18.0.7', 40000), destination: v4('100.64.0.1', 21) }, tlvs: [] },
  },
  {
    title: 'v2 AF_UNIX stream',
    input: v2(0x21, 0x31, unixBlock('/run/client.sock', '/run/ftp.sock')),
    expected: { version: 2, command: 'proxy', addresses: { kind: 'unix', transport: 'stream', source: '/run/client.sock', destination: '/run/ftp.sock' }, tlvs: [] },
  },
  {
    title: 'v2 AF_UNSPEC',
    input: v2(0x21, 0x00, Buffer.alloc(0)),
    expected: { version: 2, command: 'proxy', addresses: { kind: 'unknown' }, tlvs: [] },
  },
  {
    title: 'v2 LOCAL ignores its address block',
    input: v2(0x20, 0x11, hex('01020304 05060708 0001 0002')),
    expected: { version: 2, command: 'local', addresses: { kind: 'unknown' }, tlvs: [] },
  },
  {
    title: 'v2 TLVs after the addresses (ALPN, authority, NOOP padding)',
    input: v2(0x21, 0x11, Buffer.concat([hex('01020304 05060708 0001 0002'), hex('01 0003 667470'), hex('02 0004 61626364'), hex('04 0000')])),
    expected: {
      version: 2,
      command: 'proxy',
      addresses: { kind: 'inet', transport: 'tcp', source: v4('1.2.3.4', 1), destination: v4('5.6.7.8', 2) },
      tlvs: [
        { type: 1, value: Buffer.from('ftp') },
        { type: 2, value: Buffer.from('abcd') },
        { type: 4, value: Buffer.alloc(0) },
      ],
    },
  },
  { title: 'v2 TLV longer than the header', input: v2(0x21, 0x11, Buffer.concat([hex('01020304 05060708 0001 0002'), hex('01 0009 6674')])), expected: 'v2 header has a malformed TLV' },
  { title: 'v2 TLV cut in its type/length', input: v2(0x21, 0x11, Buffer.concat([hex('01020304 05060708 0001 0002'), hex('01 00')])), expected: 'v2 header has a malformed TLV' },
  { title: 'v2 version 1', input: v2(0x11, 0x11, hex('01020304 05060708 0001 0002')), expected: 'v2 header with version 1' },
  { title: 'v2 command 2', input: v2(0x22, 0x11, hex('01020304 05060708 0001 0002')), expected: 'v2 header with command 2' },
  { title: 'v2 family 4', input: v2(0x21, 0x41, Buffer.alloc(12)), expected: 'v2 header with address family/protocol 0x41' },
  { title: 'v2 unspec family with TCP', input: v2(0x21, 0x01, Buffer.alloc(0)), expected: 'v2 header with address family/protocol 0x01' },
  { title: 'v2 TCP4 block too short', input: v2(0x21, 0x11, Buffer.alloc(11)), expected: 'v2 header too short for its addresses (11 < 12 bytes)' },
  { title: 'v2 over the size limit', input: v2(0x21, 0x00, Buffer.alloc(5000)), expected: 'v2 header of 5016 bytes is over the limit of 4096' },
];

function expectResult(result: ProxyParseResult, expected: ProxyHeader | string, rest: Buffer): void {
  if (typeof expected === 'string') {
    expect(result).toEqual({ kind: 'error', message: expected });
  } else {
    expect(result).toEqual({ kind: 'header', header: expected, rest });
  }
}

describe('PROXY header table', () => {
  test.each(CASES)('$title', ({ input, expected }) => {
    expectResult(parseProxyHeader(Buffer.concat([input, tail])), expected, tail);
  });

  test.each(CASES)('$title: the same, one byte at a time', ({ input, expected }) => {
    const parser = new ProxyHeaderParser();
    const bytes = Buffer.concat([input, tail]);
    let result: ProxyParseResult = { kind: 'need-more' };
    let fed = 0;
    while (result.kind === 'need-more' && fed < bytes.length) result = parser.feed(bytes.subarray(fed, ++fed));
    if (typeof expected === 'string') expect(result).toEqual({ kind: 'error', message: expected });
    // Fed one byte at a time, the header completes on its own last byte: the rest is empty, the tail still unfed.
    else expect([result, bytes.subarray(fed)]).toEqual([{ kind: 'header', header: expected, rest: Buffer.alloc(0) }, tail]);
  });

  test('incomplete headers ask for more', () => {
    for (const prefix of ['P', 'PROXY', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r']) {
      expect(parseProxyHeader(Buffer.from(prefix))).toEqual({ kind: 'need-more' });
    }
    expect(parseProxyHeader(PROXY_V2_SIGNATURE.subarray(0, 5))).toEqual({ kind: 'need-more' });
    expect(parseProxyHeader(v2(0x21, 0x11, Buffer.alloc(12)).subarray(0, 20))).toEqual({ kind: 'need-more' });
  });

  test('a parser that finished does not take a second header', () => {
    const parser = new ProxyHeaderParser();
    expect(parser.feed(Buffer.from('PROXY UNKNOWN\r\n')).kind).toBe('header');
    expect(parser.feed(Buffer.from('PROXY UNKNOWN\r\n'))).toEqual({ kind: 'error', message: 'header already parsed' });
  });
});

describe('encoder', () => {
  test('v1 and v2 bytes for TCP4 are the spec examples', () => {
    const input = { source: v4('198.18.0.7', 40000), destination: v4('100.64.0.1', 21) };
    expect(encodeProxyHeader(1, input).toString()).toBe('PROXY TCP4 198.18.0.7 100.64.0.1 40000 21\r\n');
    expect(encodeProxyHeader(2, input)).toEqual(v2(0x21, 0x11, hex('c6120007 64400001 9c40 0015')));
  });

  test('unknown and LOCAL', () => {
    expect(encodeProxyHeader(1, {}).toString()).toBe('PROXY UNKNOWN\r\n');
    expect(encodeProxyHeader(2, {})).toEqual(v2(0x21, 0x00, Buffer.alloc(0)));
    expect(encodeProxyHeader(2, { command: 'local', source: v4('1.2.3.4', 1), destination: v4('5.6.7.8', 2) })).toEqual(v2(0x20, 0x00, Buffer.alloc(0)));
    expect(() => encodeProxyHeader(1, { command: 'local' })).toThrow('PROXY v1 has no LOCAL');
  });

  test('mixed families are named in IPv6', () => {
    const header = encodeProxyHeader(1, { source: v6('fd00::7', 1), destination: v4('100.64.0.1', 21) }).toString();
    expect(header).toBe('PROXY TCP6 fd00::7 ::ffff:100.64.0.1 1 21\r\n');
  });

  const endpoint = fc.oneof(
    fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 65535 })).map(([a, p]) => v4(a, p)),
    // Canonical text via parseIp: ::ffff:0:0/96 comes out as IPv4, as from a socket.
    fc.tuple(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), fc.integer({ min: 0, max: 65535 })).map(([g, p]) => ({
      ...parseIp(g.map((x) => x.toString(16)).join(':'))!,
      port: p,
    })),
  );
  const tlv = fc.record({ type: fc.integer({ min: 0, max: 255 }), value: fc.uint8Array({ maxLength: 40 }) });

  fcTest.prop([fc.constantFrom(1 as const, 2 as const), endpoint, endpoint, fc.array(tlv, { maxLength: 4 })])('parse(encode(x)) is x, for both versions', (version, source, destination, tlvList) => {
    fc.pre(source.family === destination.family);
    const tlvs = version === 2 ? tlvList.map((t) => ({ type: t.type, value: Buffer.from(t.value) })) : [];
    const bytes = encodeProxyHeader(version, { source, destination, tlvs });
    const result = parseProxyHeader(Buffer.concat([bytes, tail]));
    expect(result).toEqual({ kind: 'header', header: { version, command: 'proxy', addresses: { kind: 'inet', transport: 'tcp', source, destination }, tlvs }, rest: tail });
  });

});

describe('hostile input', () => {
  const valid = [
    encodeProxyHeader(1, { source: v4('198.18.0.7', 40000), destination: v4('100.64.0.1', 21) }),
    encodeProxyHeader(1, { source: v6('fd00::7', 40000), destination: v6('fd00::1', 21) }),
    encodeProxyHeader(2, { source: v6('fd00::7', 40000), destination: v6('fd00::1', 21), tlvs: [{ type: 0xe0, value: Buffer.from('x') }] }),
    v2(0x21, 0x31, unixBlock('/a', '/b')),
  ];

  fcTest.prop([fc.constantFrom(...valid), fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 40 }), fc.uint8Array({ maxLength: 30 })])(
    'any split of a valid header gives the same header and the same rest',
    (header, cuts, after) => {
      const bytes = Buffer.concat([header, Buffer.from(after)]);
      const whole = parseProxyHeader(bytes);
      expect(whole.kind).toBe('header');
      const parser = new ProxyHeaderParser();
      let at = 0;
      let result: ProxyParseResult = { kind: 'need-more' };
      for (const cut of cuts) {
        if (at >= bytes.length || result.kind !== 'need-more') break;
        result = parser.feed(bytes.subarray(at, Math.min(bytes.length, at + cut)));
        at = Math.min(bytes.length, at + cut);
      }
      if (result.kind === 'need-more' && at < bytes.length) {
        result = parser.feed(bytes.subarray(at));
        at = bytes.length;
      }
      expect(result.kind).toBe('header');
      if (result.kind !== 'header' || whole.kind !== 'header') return;
      expect(result.header).toEqual(whole.header);
      expect(Buffer.concat([result.rest, bytes.subarray(at)])).toEqual(Buffer.from(after));
    },
  );

  test('every truncation of a valid header asks for more, never errs', () => {
    for (const header of valid) {
      for (let n = 1; n < header.length; n++) expect(parseProxyHeader(header.subarray(0, n))).toEqual({ kind: 'need-more' });
    }
  });

  fcTest.prop([fc.uint8Array({ maxLength: 300 })])('random bytes never throw', (bytes) => {
    const result = parseProxyHeader(Buffer.from(bytes));
    expect(['header', 'need-more', 'error']).toContain(result.kind);
  });

  fcTest.prop([fc.constantFrom(Buffer.from('PROXY '), PROXY_V2_SIGNATURE), fc.uint8Array({ maxLength: 300 })])('random bytes after a signature never throw', (sig, bytes) => {
    const parser = new ProxyHeaderParser();
    const result = parser.feed(Buffer.concat([sig, Buffer.from(bytes)]));
    expect(['header', 'need-more', 'error']).toContain(result.kind);
  });

  fcTest.prop([fc.constantFrom(...valid), fc.nat(), fc.integer({ min: 0, max: 255 })])('one flipped byte in the signature is refused', (header, at, value) => {
    const sigLength = header[0] === 0x50 ? 6 : 12;
    const i = at % sigLength;
    if (header[i] === value) return;
    const bad = Buffer.from(header);
    bad[i] = value;
    expect(parseProxyHeader(bad)).toEqual({ kind: 'error', message: 'no PROXY protocol signature' });
  });

  test('a v1 header without an end is refused at 107 bytes, not buffered', () => {
    const parser = new ProxyHeaderParser();
    expect(parser.feed(Buffer.from('PROXY TCP4 '))).toEqual({ kind: 'need-more' });
    expect(parser.feed(Buffer.alloc(200, 0x31))).toEqual({ kind: 'error', message: 'v1 header longer than 107 bytes' });
  });

  test('an oversized v2 length is refused from its first 16 bytes', () => {
    const header = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
    expect(parseProxyHeader(header)).toEqual({ kind: 'error', message: 'v2 header of 65551 bytes is over the limit of 4096' });
  });
});
