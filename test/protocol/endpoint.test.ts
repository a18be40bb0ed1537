/**
 * Endpoint codecs: PORT / EPRT / LPRT arguments and 227 / 228 / 229 replies.
 * Every case asserts exact values; reply cases also check that the returned
 * span covers exactly the numbers, since the gateway rewrites by splicing.
 */
import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { parseIp, type Endpoint } from '../../src/protocol/address.js';
import {
  find227,
  find228,
  find229,
  format227Numbers,
  format227Reply,
  format228Reply,
  format229Reply,
  formatEprtArg,
  formatLprtArg,
  formatPortArg,
  parseEprtArg,
  parseLprtArg,
  parsePortArg,
  spliceText,
} from '../../src/protocol/endpoint.js';

const v4 = (address: string, port: number): Endpoint => ({ family: 4, address, port });
const v6 = (address: string, port: number): Endpoint => ({ family: 6, address, port });

interface ParseCase {
  title: string;
  input: string;
  expected: Endpoint | undefined;
}

// ---- PORT --------------------------------------------------------------------

const PORT_CASES: ParseCase[] = [
  { title: 'plain', input: '192,0,2,1,4,1', expected: v4('192.0.2.1', 1025) },
  { title: 'lowest port', input: '192,0,2,1,0,1', expected: v4('192.0.2.1', 1) },
  { title: 'highest port', input: '198,18,0,5,255,255', expected: v4('198.18.0.5', 65535) },
  { title: 'surrounding spaces trimmed', input: '  100,64,0,9,19,137 ', expected: v4('100.64.0.9', 5001) },
  { title: 'spaces around commas tolerated', input: '192, 0, 2, 1, 4, 1', expected: v4('192.0.2.1', 1025) },
  { title: 'zero-padded numbers', input: '198,018,000,005,004,001', expected: v4('198.18.0.5', 1025) },
  { title: 'port 0 rejected', input: '192,0,2,1,0,0', expected: undefined },
  { title: 'host byte 256 rejected', input: '192,0,2,256,4,1', expected: undefined },
  { title: 'port byte 256 rejected', input: '192,0,2,1,256,1', expected: undefined },
  { title: 'four-digit number rejected', input: '1192,0,2,1,4,1', expected: undefined },
  { title: 'five numbers rejected', input: '192,0,2,1,4', expected: undefined },
  { title: 'seven numbers rejected', input: '192,0,2,1,4,1,7', expected: undefined },
  { title: 'negative number rejected', input: '192,0,2,1,4,-1', expected: undefined },
  { title: 'hex rejected', input: '0xc0,0,2,1,4,1', expected: undefined },
  { title: 'trailing garbage rejected', input: '192,0,2,1,4,1a', expected: undefined },
  { title: 'empty number rejected', input: '192,,2,1,4,1', expected: undefined },
  { title: 'dotted address rejected', input: '192.0.2.1,4,1', expected: undefined },
  { title: 'empty argument rejected', input: '', expected: undefined },
];

describe('parsePortArg', () => {
  test.each(PORT_CASES)('$title: $input', ({ input, expected }) => {
    expect(parsePortArg(input)).toEqual(expected);
  });
});

describe('formatPortArg', () => {
  test.each([
    { title: 'low port', input: v4('192.0.2.1', 1), expected: '192,0,2,1,0,1' },
    { title: 'port 1025', input: v4('192.0.2.1', 1025), expected: '192,0,2,1,4,1' },
    { title: 'high port', input: v4('198.18.0.5', 65535), expected: '198,18,0,5,255,255' },
    { title: 'zero octets', input: v4('100.64.0.0', 30000), expected: '100,64,0,0,117,48' },
  ])('$title', ({ input, expected }) => {
    expect(formatPortArg(input)).toBe(expected);
    expect(format227Numbers(input)).toBe(expected);
  });

  test('refuses IPv6', () => {
    expect(() => formatPortArg(v6('fd00::1', 21))).toThrow(/IPv4/);
  });
});

// ---- EPRT --------------------------------------------------------------------

const EPRT_CASES: ParseCase[] = [
  { title: 'IPv4 with |', input: '|1|192.0.2.1|6446|', expected: v4('192.0.2.1', 6446) },
  { title: 'IPv6 with |', input: '|2|fd00::1|6446|', expected: v6('fd00::1', 6446) },
  { title: 'IPv6 canonicalised', input: '|2|FD00:0:0:0:0:0:0:1|5282|', expected: v6('fd00::1', 5282) },
  { title: 'IPv6 with ! (RFC 2428 allows 33-126)', input: '!2!fd00::7!21!', expected: v6('fd00::7', 21) },
  { title: 'IPv4 with #', input: '#1#198.18.0.5#1025#', expected: v4('198.18.0.5', 1025) },
  { title: 'IPv4 with ~', input: '~1~100.64.0.9~65535~', expected: v4('100.64.0.9', 65535) },
  { title: 'IPv4 with .', input: '.1.192.0.2.1.21.', expected: undefined },
  { title: 'surrounding spaces trimmed', input: '  |1|192.0.2.1|6446| ', expected: v4('192.0.2.1', 6446) },
  { title: 'NAT64 address stays IPv6', input: '|2|64:ff9b::192.0.2.1|6446|', expected: v6('64:ff9b::c000:201', 6446) },
  { title: 'port 1', input: '|1|192.0.2.1|1|', expected: v4('192.0.2.1', 1) },
  { title: 'digit delimiter rejected', input: '313192.0.2.1364463', expected: undefined },
  { title: 'digit delimiter 0 rejected', input: '010192.0.2.1064460', expected: undefined },
  { title: 'DEL delimiter rejected', input: '\x7f1\x7f192.0.2.1\x7f6446\x7f', expected: undefined },
  { title: 'missing trailing delimiter', input: '|1|192.0.2.1|6446', expected: undefined },
  { title: 'extra trailing delimiter', input: '|1|192.0.2.1|6446||', expected: undefined },
  { title: 'mixed delimiters', input: '|1|192.0.2.1!6446|', expected: undefined },
  { title: 'family 1 with IPv6 address', input: '|1|fd00::1|6446|', expected: undefined },
  { title: 'family 1 with v4-mapped text', input: '|1|::ffff:192.0.2.1|6446|', expected: undefined },
  { title: 'family 2 with IPv4 address', input: '|2|192.0.2.1|6446|', expected: undefined },
  { title: 'family 2 with v4-mapped address', input: '|2|::ffff:192.0.2.1|6446|', expected: undefined },
  { title: 'family 2 with hex v4-mapped address', input: '|2|::ffff:c000:201|6446|', expected: undefined },
  { title: 'unknown family', input: '|3|192.0.2.1|6446|', expected: undefined },
  { title: 'empty family', input: '||192.0.2.1|6446|', expected: undefined },
  { title: 'port 0', input: '|1|192.0.2.1|0|', expected: undefined },
  { title: 'port 65536', input: '|1|192.0.2.1|65536|', expected: undefined },
  { title: 'six-digit port', input: '|1|192.0.2.1|123456|', expected: undefined },
  { title: 'empty port', input: '|1|192.0.2.1||', expected: undefined },
  { title: 'space before address', input: '|1| 192.0.2.1|6446|', expected: undefined },
  { title: 'space after address', input: '|2|fd00::1 |6446|', expected: undefined },
  { title: 'space before port', input: '|1|192.0.2.1| 6446|', expected: undefined },
  { title: 'space in family', input: '| 1|192.0.2.1|6446|', expected: undefined },
  { title: 'bracketed IPv6', input: '|2|[fd00::1]|6446|', expected: undefined },
  { title: 'IPv6 with zone id', input: '|2|fe80::1%eth0|6446|', expected: undefined },
  { title: 'IPv6 with prefix length', input: '|2|fd00::1/64|6446|', expected: undefined },
  { title: 'short IPv4', input: '|1|192.0.2|6446|', expected: undefined },
  { title: 'zero-padded IPv4', input: '|1|192.000.002.001|6446|', expected: undefined },
  { title: 'hostname', input: '|1|localhost|6446|', expected: undefined },
  { title: 'empty', input: '', expected: undefined },
];

describe('parseEprtArg', () => {
  test.each(EPRT_CASES)('$title: $input', ({ input, expected }) => {
    expect(parseEprtArg(input)).toEqual(expected);
  });
});

describe('formatEprtArg', () => {
  test.each([
    { title: 'IPv4 default delimiter', input: v4('192.0.2.1', 6446), delimiter: undefined, expected: '|1|192.0.2.1|6446|' },
    { title: 'IPv6 default delimiter', input: v6('fd00::1', 21), delimiter: undefined, expected: '|2|fd00::1|21|' },
    { title: 'IPv4 with !', input: v4('198.18.0.5', 1025), delimiter: '!', expected: '!1!198.18.0.5!1025!' },
  ])('$title', ({ input, delimiter, expected }) => {
    expect(formatEprtArg(input, delimiter)).toBe(expected);
  });
});

// ---- LPRT --------------------------------------------------------------------

const FD00_1 = '253,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1';
const MAPPED_192_0_2_1 = '0,0,0,0,0,0,0,0,0,0,255,255,192,0,2,1';

const LPRT_CASES: ParseCase[] = [
  { title: 'IPv4', input: '4,4,192,0,2,1,2,4,1', expected: v4('192.0.2.1', 1025) },
  { title: 'IPv4 spaces tolerated', input: ' 4, 4, 198,18,0,5, 2, 255,255', expected: v4('198.18.0.5', 65535) },
  { title: 'IPv6', input: `6,16,${FD00_1},2,25,46`, expected: v6('fd00::1', 6446) },
  {
    title: 'IPv6 documentation prefix',
    input: '6,16,32,1,13,184,0,0,0,0,0,0,0,0,0,0,0,9,2,0,21',
    expected: v6('2001:db8::9', 21),
  },
  { title: 'IPv6 carrying v4-mapped address', input: `6,16,${MAPPED_192_0_2_1},2,4,1`, expected: undefined },
  { title: 'IPv4 port 0', input: '4,4,192,0,2,1,2,0,0', expected: undefined },
  { title: 'IPv6 port 0', input: `6,16,${FD00_1},2,0,0`, expected: undefined },
  { title: 'port length 3', input: '4,4,192,0,2,1,3,0,4,1', expected: undefined },
  { title: 'port length 1', input: '4,4,192,0,2,1,1,4', expected: undefined },
  { title: 'family 4 with 16 address bytes', input: `4,16,${FD00_1},2,25,46`, expected: undefined },
  { title: 'family 6 with 4 address bytes', input: '6,4,192,0,2,1,2,4,1', expected: undefined },
  { title: 'unknown family', input: '5,4,192,0,2,1,2,4,1', expected: undefined },
  { title: 'byte over 255', input: '4,4,192,0,2,256,2,4,1', expected: undefined },
  { title: 'too short', input: '4,4,192,0,2,1,2,4', expected: undefined },
  { title: 'too long', input: '4,4,192,0,2,1,2,4,1,0', expected: undefined },
  { title: 'not numbers', input: '4,4,a,b,c,d,2,4,1', expected: undefined },
  { title: 'empty', input: '', expected: undefined },
];

describe('parseLprtArg', () => {
  test.each(LPRT_CASES)('$title: $input', ({ input, expected }) => {
    expect(parseLprtArg(input)).toEqual(expected);
  });
});

describe('formatLprtArg', () => {
  test.each([
    { title: 'IPv4', input: v4('192.0.2.1', 1025), expected: '4,4,192,0,2,1,2,4,1' },
    { title: 'IPv6', input: v6('fd00::1', 6446), expected: `6,16,${FD00_1},2,25,46` },
    { title: 'IPv6 unspecified', input: v6('::', 1), expected: '6,16,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,0,1' },
    {
      title: 'IPv6 with a zero run in the middle',
      input: v6('2001:db8::1:0:0:1', 258),
      expected: '6,16,32,1,13,184,0,0,0,0,0,1,0,0,0,0,0,1,2,1,2',
    },
  ])('$title', ({ input, expected }) => {
    expect(formatLprtArg(input)).toBe(expected);
  });
});

// ---- 227 ---------------------------------------------------------------------

interface ReplyCase {
  title: string;
  input: string;
  expected: { endpoint: Endpoint; numbers: string; rewritten: string } | undefined;
}

// What the gateway would put in place of the numbers.
const NEW_NUMBERS = '203,0,113,9,4,1';

const REPLY_227_CASES: ReplyCase[] = [
  {
    title: 'vsftpd',
    input: '227 Entering Passive Mode (127,0,0,1,117,48).',
    expected: {
      endpoint: v4('127.0.0.1', 30000),
      numbers: '127,0,0,1,117,48',
      rewritten: '227 Entering Passive Mode (203,0,113,9,4,1).',
    },
  },
  {
    title: 'ProFTPD',
    input: '227 Entering Passive Mode (192,0,2,1,195,80).',
    expected: {
      endpoint: v4('192.0.2.1', 50000),
      numbers: '192,0,2,1,195,80',
      rewritten: '227 Entering Passive Mode (203,0,113,9,4,1).',
    },
  },
  {
    title: 'Pure-FTPd (no final dot)',
    input: '227 Entering Passive Mode (192,0,2,7,117,49)',
    expected: {
      endpoint: v4('192.0.2.7', 30001),
      numbers: '192,0,2,7,117,49',
      rewritten: '227 Entering Passive Mode (203,0,113,9,4,1)',
    },
  },
  {
    title: 'IIS',
    input: '227 Entering Passive Mode (192,0,2,9,19,137).',
    expected: {
      endpoint: v4('192.0.2.9', 5001),
      numbers: '192,0,2,9,19,137',
      rewritten: '227 Entering Passive Mode (203,0,113,9,4,1).',
    },
  },
  {
    title: 'FileZilla Server',
    input: '227 Entering Passive Mode (198,18,0,5,200,10)',
    expected: {
      endpoint: v4('198.18.0.5', 51210),
      numbers: '198,18,0,5,200,10',
      rewritten: '227 Entering Passive Mode (203,0,113,9,4,1)',
    },
  },
  {
    title: 'z/OS zero-padded octets',
    input: '227 Entering Passive Mode (198,018,000,005,004,001)',
    expected: {
      endpoint: v4('198.18.0.5', 1025),
      numbers: '198,018,000,005,004,001',
      rewritten: '227 Entering Passive Mode (203,0,113,9,4,1)',
    },
  },
  {
    title: 'no parentheses',
    input: '227 Entering Passive Mode 198,18,0,5,4,1',
    expected: {
      endpoint: v4('198.18.0.5', 1025),
      numbers: '198,18,0,5,4,1',
      rewritten: '227 Entering Passive Mode 203,0,113,9,4,1',
    },
  },
  {
    title: 'equals sign',
    input: '227 =198,18,0,5,4,1',
    expected: { endpoint: v4('198.18.0.5', 1025), numbers: '198,18,0,5,4,1', rewritten: '227 =203,0,113,9,4,1' },
  },
  {
    title: 'spaces after commas, kept inside the span',
    input: '227 Entering Passive Mode (100, 64, 0, 9, 4, 1)',
    expected: {
      endpoint: v4('100.64.0.9', 1025),
      numbers: '100, 64, 0, 9, 4, 1',
      rewritten: '227 Entering Passive Mode (203,0,113,9,4,1)',
    },
  },
  {
    title: 'first line of a multi-line 227',
    input: '227-Entering Passive Mode (192,0,2,1,4,1)',
    expected: {
      endpoint: v4('192.0.2.1', 1025),
      numbers: '192,0,2,1,4,1',
      rewritten: '227-Entering Passive Mode (203,0,113,9,4,1)',
    },
  },
  {
    title: 'digits in the text before the numbers',
    input: '227 Entering Passive Mode v2 (192,0,2,1,4,1)',
    expected: {
      endpoint: v4('192.0.2.1', 1025),
      numbers: '192,0,2,1,4,1',
      rewritten: '227 Entering Passive Mode v2 (203,0,113,9,4,1)',
    },
  },
  {
    title: 'seven numbers: no endpoint (rewriting six of them would leave a different one)',
    input: '227 Entering Passive Mode (192,0,2,1,4,1,9)',
    expected: undefined,
  },
  {
    title: 'number over 255 rejected, scanning continues',
    input: '227 Entering Passive Mode (300,0,0,1,4,1) (192,0,2,1,4,1)',
    expected: {
      endpoint: v4('192.0.2.1', 1025),
      numbers: '192,0,2,1,4,1',
      rewritten: '227 Entering Passive Mode (300,0,0,1,4,1) (203,0,113,9,4,1)',
    },
  },
  {
    title: 'port byte over 255 rejected, scanning continues',
    input: '227 Entering Passive Mode (192,0,2,1,4,256) (192,0,2,7,4,2)',
    expected: {
      endpoint: v4('192.0.2.7', 1026),
      numbers: '192,0,2,7,4,2',
      rewritten: '227 Entering Passive Mode (192,0,2,1,4,256) (203,0,113,9,4,1)',
    },
  },
  { title: 'no endpoint', input: '227 Logout.', expected: undefined },
  { title: 'port 0', input: '227 Entering Passive Mode (192,0,2,1,0,0)', expected: undefined },
  { title: 'only five numbers', input: '227 Entering Passive Mode (192,0,2,1,4)', expected: undefined },
  { title: 'four-digit first number', input: '227 Entering Passive Mode (1192,0,2,1,4,1)', expected: undefined },
  { title: 'four-digit last number', input: '227 Entering Passive Mode (192,0,2,1,4,1000)', expected: undefined },
  { title: 'numbers inside the reply code are not scanned', input: '227', expected: undefined },
];

describe('find227', () => {
  test.each(REPLY_227_CASES)('$title', ({ input, expected }) => {
    const found = find227(input);
    if (expected === undefined) {
      expect(found).toBeUndefined();
      return;
    }
    expect(found?.endpoint).toEqual(expected.endpoint);
    expect(input.slice(found!.start, found!.end)).toBe(expected.numbers);
    expect(spliceText(input, found!.start, found!.end, NEW_NUMBERS)).toBe(expected.rewritten);
  });

  test('is not confused by a previous call (shared regex state)', () => {
    expect(find227('227 Entering Passive Mode (192,0,2,1,4,1) and more text to move lastIndex')?.start).toBe(27);
    expect(find227('227 (198,18,0,5,4,1)')).toEqual({ endpoint: v4('198.18.0.5', 1025), start: 5, end: 19 });
  });
});

// ---- 228 ---------------------------------------------------------------------

const REPLY_228_CASES: ReplyCase[] = [
  {
    title: 'IPv4',
    input: '228 Entering Long Passive Mode (4,4,192,0,2,1,2,4,1)',
    expected: {
      endpoint: v4('192.0.2.1', 1025),
      numbers: '4,4,192,0,2,1,2,4,1',
      rewritten: '228 Entering Long Passive Mode (203,0,113,9,4,1)',
    },
  },
  {
    title: 'IPv6',
    input: `228 Entering Long Passive Mode (6,16,${FD00_1},2,25,46)`,
    expected: {
      endpoint: v6('fd00::1', 6446),
      numbers: `6,16,${FD00_1},2,25,46`,
      rewritten: '228 Entering Long Passive Mode (203,0,113,9,4,1)',
    },
  },
  {
    title: 'spaces kept inside the span',
    input: '228 Entering Long Passive Mode (4, 4, 198, 18, 0, 5, 2, 4, 1).',
    expected: {
      endpoint: v4('198.18.0.5', 1025),
      numbers: '4, 4, 198, 18, 0, 5, 2, 4, 1',
      rewritten: '228 Entering Long Passive Mode (203,0,113,9,4,1).',
    },
  },
  {
    title: 'first parenthesised group is not an endpoint, scanning continues',
    input: '228 (1,2) Entering Long Passive Mode (4,4,192,0,2,1,2,4,1)',
    expected: {
      endpoint: v4('192.0.2.1', 1025),
      numbers: '4,4,192,0,2,1,2,4,1',
      rewritten: '228 (1,2) Entering Long Passive Mode (203,0,113,9,4,1)',
    },
  },
  { title: 'port 0', input: '228 Entering Long Passive Mode (4,4,192,0,2,1,2,0,0)', expected: undefined },
  { title: 'no parentheses', input: '228 Entering Long Passive Mode 4,4,192,0,2,1,2,4,1', expected: undefined },
  { title: 'no endpoint', input: '228 OK', expected: undefined },
];

describe('find228', () => {
  test.each(REPLY_228_CASES)('$title', ({ input, expected }) => {
    const found = find228(input);
    if (expected === undefined) {
      expect(found).toBeUndefined();
      return;
    }
    expect(found?.endpoint).toEqual(expected.endpoint);
    expect(input.slice(found!.start, found!.end)).toBe(expected.numbers);
    expect(spliceText(input, found!.start, found!.end, NEW_NUMBERS)).toBe(expected.rewritten);
  });
});

// ---- 229 ---------------------------------------------------------------------

interface Reply229Case {
  title: string;
  input: string;
  expected: { port: number; delimiter: string; rewritten: string } | undefined;
}

const REPLY_229_CASES: Reply229Case[] = [
  {
    title: 'vsftpd / ProFTPD form',
    input: '229 Entering Extended Passive Mode (|||6446|)',
    expected: { port: 6446, delimiter: '|', rewritten: '229 Entering Extended Passive Mode (|||50000|)' },
  },
  {
    title: 'IIS form with final dot',
    input: '229 Entering Extended Passive Mode (|||5001|).',
    expected: { port: 5001, delimiter: '|', rewritten: '229 Entering Extended Passive Mode (|||50000|).' },
  },
  {
    title: '! delimiter',
    input: '229 Entering Extended Passive Mode (!!!6446!)',
    expected: { port: 6446, delimiter: '!', rewritten: '229 Entering Extended Passive Mode (!!!50000!)' },
  },
  {
    title: '# delimiter, port 1',
    input: '229 Extended Passive Mode OK (###1#)',
    expected: { port: 1, delimiter: '#', rewritten: '229 Extended Passive Mode OK (###50000#)' },
  },
  {
    title: 'highest port',
    input: '229 Entering Extended Passive Mode (|||65535|)',
    expected: { port: 65535, delimiter: '|', rewritten: '229 Entering Extended Passive Mode (|||50000|)' },
  },
  {
    title: 'invalid port rejected, scanning continues',
    input: '229 (|||0|) Entering Extended Passive Mode (|||6446|)',
    expected: { port: 6446, delimiter: '|', rewritten: '229 (|||0|) Entering Extended Passive Mode (|||50000|)' },
  },
  { title: 'digit delimiter rejected', input: '229 Entering Extended Passive Mode (111644461)', expected: undefined },
  { title: 'port 0', input: '229 Entering Extended Passive Mode (|||0|)', expected: undefined },
  { title: 'port 65536', input: '229 Entering Extended Passive Mode (|||65536|)', expected: undefined },
  { title: 'six-digit port', input: '229 Entering Extended Passive Mode (|||123456|)', expected: undefined },
  { title: 'mixed delimiters', input: '229 Entering Extended Passive Mode (|||6446!)', expected: undefined },
  { title: 'address field not empty', input: '229 Entering Extended Passive Mode (||192.0.2.1|6446|)', expected: undefined },
  { title: 'no parentheses', input: '229 Entering Extended Passive Mode |||6446|', expected: undefined },
  { title: 'no endpoint', input: '229 OK', expected: undefined },
];

describe('find229', () => {
  test.each(REPLY_229_CASES)('$title', ({ input, expected }) => {
    const found = find229(input);
    if (expected === undefined) {
      expect(found).toBeUndefined();
      return;
    }
    expect(found?.port).toBe(expected.port);
    expect(found?.delimiter).toBe(expected.delimiter);
    expect(input.slice(found!.start, found!.end)).toBe(String(expected.port));
    expect(spliceText(input, found!.start, found!.end, '50000')).toBe(expected.rewritten);
  });
});

describe('reply formatters', () => {
  test('format227Reply', () => {
    expect(format227Reply(v4('192.0.2.1', 1025))).toBe('227 Entering Passive Mode (192,0,2,1,4,1).');
  });
  test('format228Reply', () => {
    expect(format228Reply(v4('192.0.2.1', 1025))).toBe('228 Entering Long Passive Mode (4,4,192,0,2,1,2,4,1)');
  });
  test('format229Reply', () => {
    expect(format229Reply(6446)).toBe('229 Entering Extended Passive Mode (|||6446|)');
    expect(format229Reply(6446, '!')).toBe('229 Entering Extended Passive Mode (!!!6446!)');
  });
  test('spliceText', () => {
    expect(spliceText('abcdef', 2, 4, 'XYZ')).toBe('abXYZef');
    expect(spliceText('abcdef', 0, 0, '>')).toBe('>abcdef');
    expect(spliceText('abcdef', 6, 6, '<')).toBe('abcdef<');
  });
});

// ---- round-trip properties ---------------------------------------------------

const RUNS = { numRuns: 300 };

const port = fc.integer({ min: 1, max: 65535 });
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
const v4Endpoint = fc.record({ family: fc.constant(4 as const), address: ipv4, port });
// Canonical IPv6 text, as parseIp produces it; v4-mapped addresses fold to
// IPv4 and are not IPv6 endpoints.
const ipv6 = fc
  .ipV6()
  .map((text) => parseIp(text))
  .filter((ip) => ip?.family === 6)
  .map((ip) => ip!.address);
const v6Endpoint = fc.record({ family: fc.constant(6 as const), address: ipv6, port });
const anyEndpoint = fc.oneof(v4Endpoint, v6Endpoint);

const notDigit = (c: number): boolean => c < 0x30 || c > 0x39;
const char = (c: number): string => String.fromCharCode(c);
// 229: any of ASCII 33–126 except digits and the parentheses around it.
const replyDelimiter = fc
  .integer({ min: 33, max: 126 })
  .filter((c) => notDigit(c) && c !== 0x28 && c !== 0x29)
  .map(char);
// EPRT: the delimiter must not occur in the address text itself.
const eprtDelimiter = fc
  .integer({ min: 33, max: 126 })
  .map(char)
  .filter((c) => !/[0-9a-f.:]/.test(c));

describe('round trips', () => {
  fcTest.prop([v4Endpoint], RUNS)('PORT', (e) => {
    expect(parsePortArg(formatPortArg(e))).toEqual(e);
  });

  fcTest.prop([anyEndpoint], RUNS)('EPRT with |', (e) => {
    expect(parseEprtArg(formatEprtArg(e))).toEqual(e);
  });

  fcTest.prop([anyEndpoint, eprtDelimiter], RUNS)('EPRT with any usable delimiter', (e, d) => {
    expect(parseEprtArg(formatEprtArg(e, d))).toEqual(e);
  });

  fcTest.prop([anyEndpoint], RUNS)('LPRT', (e) => {
    expect(parseLprtArg(formatLprtArg(e))).toEqual(e);
  });

  fcTest.prop([v4Endpoint], RUNS)('227', (e) => {
    const text = format227Reply(e);
    const found = find227(text);
    expect(found?.endpoint).toEqual(e);
    expect(text.slice(found!.start, found!.end)).toBe(formatPortArg(e));
  });

  fcTest.prop([anyEndpoint], RUNS)('228', (e) => {
    const text = format228Reply(e);
    const found = find228(text);
    expect(found?.endpoint).toEqual(e);
    expect(text.slice(found!.start, found!.end)).toBe(formatLprtArg(e));
  });

  fcTest.prop([port, replyDelimiter], RUNS)('229', (p, d) => {
    const text = format229Reply(p, d);
    // The text ends with `<port><d>)`.
    const end = text.length - 2;
    expect(find229(text)).toEqual({ port: p, delimiter: d, start: end - String(p).length, end });
  });

  fcTest.prop([v4Endpoint, v4Endpoint, fc.constantFrom('', '.', ' ')], RUNS)(
    '227 rewritten by splicing reads back as the new endpoint',
    (from, to, suffix) => {
      const text = format227Reply(from) + suffix;
      const found = find227(text)!;
      const rewritten = spliceText(text, found.start, found.end, formatPortArg(to));
      expect(rewritten).toBe(format227Reply(to) + suffix);
      expect(find227(rewritten)?.endpoint).toEqual(to);
    },
  );
});
