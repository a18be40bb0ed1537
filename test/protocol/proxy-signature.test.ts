/**
 * Recognising a PROXY header where none may come: the signatures at the very
 * start of a connection, by table and by property (any chunking, any bytes).
 */
import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { encodeProxyHeader, proxySignatureAt, ProxySignatureGate, PROXY_V2_SIGNATURE, type SignatureGateStep } from '../../src/protocol/proxy-header.js';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('proxySignatureAt', () => {
  const table: Array<[string, Buffer, 'yes' | 'no' | 'maybe']> = [
    ['v1 prefix', b('PROXY '), 'yes'],
    ['whole v1 header', encodeProxyHeader(1, { source: { family: 4, address: '198.18.0.7', port: 1 }, destination: { family: 4, address: '100.64.0.1', port: 21 } }), 'yes'],
    ['v1 UNKNOWN', b('PROXY UNKNOWN\r\n'), 'yes'],
    ['v2 signature', PROXY_V2_SIGNATURE, 'yes'],
    ['v2 LOCAL header', encodeProxyHeader(2, { command: 'local' }), 'yes'],
    ['"PROXY" without its space', b('PROXY'), 'maybe'],
    ['one byte of v1', b('P'), 'maybe'],
    ['v2 up to its NUL', PROXY_V2_SIGNATURE.subarray(0, 5), 'maybe'],
    ['an empty line (v2 starts with CRLF)', b('\r\n'), 'maybe'],
    ['PASV', b('PASV\r\n'), 'no'],
    ['PROXYX', b('PROXYX'), 'no'],
    ['lower-case proxy', b('proxy TCP4'), 'no'],
    ['USER', b('USER anonymous\r\n'), 'no'],
    ['two empty lines then QUIT (not the signature: no NUL)', b('\r\n\r\n\r\nQUIT\r\n'), 'no'],
    ['a TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5]), 'no'],
  ];
  test.each(table)('%s', (_title, bytes, expected) => expect(proxySignatureAt(bytes)).toBe(expected));
});

/** Feeds `bytes` to a gate in pieces at `cuts`; returns what passed, and the first header seen. */
function through(bytes: Buffer, cuts: number[]): { passed: Buffer; header?: Extract<SignatureGateStep, { kind: 'header' }>; maxHeld: number } {
  const gate = new ProxySignatureGate();
  const passed: Buffer[] = [];
  let maxHeld = 0;
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    const piece = bytes.subarray(at, Math.max(at, Math.min(bytes.length, at + cut)));
    at += piece.length;
    if (piece.length === 0 && at < bytes.length) continue;
    const step = gate.feed(piece);
    maxHeld = Math.max(maxHeld, gate.holding);
    if (step.kind === 'header') return { passed: Buffer.concat(passed), header: step, maxHeld };
    if (step.kind === 'pass') passed.push(step.bytes);
    if (at >= bytes.length) break;
  }
  return { passed: Buffer.concat(passed), maxHeld };
}

describe('ProxySignatureGate', () => {
  const cuts = fc.array(fc.integer({ min: 1, max: 8 }), { maxLength: 20 });

  fcTest.prop([fc.uint8Array({ maxLength: 200 }), cuts])('bytes that do not open a header pass whole and in order, whatever the chunking', (raw, pieces) => {
    const bytes = Buffer.from(raw);
    fc.pre(proxySignatureAt(bytes) === 'no');
    const { passed, header, maxHeld } = through(bytes, pieces);
    expect(header).toBeUndefined();
    expect(passed).toEqual(bytes);
    expect(maxHeld).toBeLessThan(PROXY_V2_SIGNATURE.length);
  });

  fcTest.prop([fc.constantFrom(b('PROXY '), PROXY_V2_SIGNATURE), fc.uint8Array({ maxLength: 100 }), cuts])('a signature at the start is seen however it is split, and nothing of it passes', (sig, after, pieces) => {
    const bytes = Buffer.concat([sig, Buffer.from(after)]);
    const { passed, header } = through(bytes, pieces);
    expect(passed.length).toBe(0);
    expect(header?.version).toBe(sig.length === 6 ? 1 : 2);
  });

  test('a signature after the first bytes is data like any other', () => {
    const gate = new ProxySignatureGate();
    expect(gate.feed(b('NOOP\r\n'))).toEqual({ kind: 'pass', bytes: b('NOOP\r\n') });
    expect(gate.feed(b('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'))).toEqual({ kind: 'pass', bytes: b('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n') });
  });
});
