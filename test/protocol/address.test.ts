/**
 * Addresses: parsing, CIDR blocks, classification. Classification only: these
 * tests never open a socket.
 */
import { describe, expect, test } from 'vitest';
import {
  broadcastOf,
  classifyAddress,
  embeddedIpv4,
  formatEndpoint,
  ipOf,
  isSiteLocal,
  isValidPort,
  mustCidr,
  parseCidr,
  parseIp,
  sameAddress,
  type AddressClass,
  type IpAddress,
} from '../../src/protocol/address.js';

const a4 = (address: string): IpAddress => ({ family: 4, address });
const a6 = (address: string): IpAddress => ({ family: 6, address });

describe('parseIp', () => {
  test.each([
    { title: 'IPv4', input: '192.0.2.1', expected: a4('192.0.2.1') },
    { title: 'IPv4 with spaces around', input: ' 198.18.0.5 ', expected: a4('198.18.0.5') },
    { title: 'IPv4 unspecified', input: '0.0.0.0', expected: a4('0.0.0.0') },
    { title: 'IPv4 broadcast', input: '255.255.255.255', expected: a4('255.255.255.255') },
    { title: 'bracketed IPv4 (brackets stripped whatever the family)', input: '[192.0.2.1]', expected: a4('192.0.2.1') },
    { title: 'three parts', input: '1.2.3', expected: undefined },
    { title: 'five parts', input: '1.2.3.4.5', expected: undefined },
    { title: 'octet over 255', input: '192.0.2.256', expected: undefined },
    { title: 'leading zero (octal-looking)', input: '01.2.3.4', expected: undefined },
    { title: 'leading zero in last octet', input: '192.0.2.01', expected: undefined },
    { title: 'IPv4 prefix', input: '192.0.2.0/24', expected: undefined },
    { title: 'hex IPv4', input: '0xc0.0.2.1', expected: undefined },
    { title: 'single number', input: '3221225985', expected: undefined },
    { title: 'hostname', input: 'localhost', expected: undefined },
    { title: 'empty', input: '', expected: undefined },
    { title: 'IPv6', input: 'fd00::1', expected: a6('fd00::1') },
    { title: 'IPv6 upper case, uncompressed', input: 'FD00:0:0:0:0:0:0:1', expected: a6('fd00::1') },
    { title: 'IPv6 leading zeros in groups', input: '2001:0db8:0000:0000:0000:0000:0000:0009', expected: a6('2001:db8::9') },
    { title: 'IPv6 longest zero run compressed (RFC 5952)', input: '2001:db8:0:0:1:0:0:1', expected: a6('2001:db8::1:0:0:1') },
    { title: 'IPv6 single zero group not compressed', input: '2001:db8:0:1:1:1:1:1', expected: a6('2001:db8:0:1:1:1:1:1') },
    { title: 'IPv6 bracketed', input: '[fd00::1]', expected: a6('fd00::1') },
    { title: 'IPv6 unspecified', input: '::', expected: a6('::') },
    { title: 'IPv6 loopback', input: '::1', expected: a6('::1') },
    { title: 'v4-mapped folded to IPv4', input: '::ffff:192.0.2.1', expected: a4('192.0.2.1') },
    { title: 'v4-mapped upper case folded', input: '::FFFF:198.18.0.5', expected: a4('198.18.0.5') },
    { title: 'v4-mapped in hex folded', input: '::ffff:c000:201', expected: a4('192.0.2.1') },
    { title: 'v4-mapped uncompressed folded', input: '0:0:0:0:0:ffff:c000:0201', expected: a4('192.0.2.1') },
    { title: 'bracketed v4-mapped folded', input: '[::ffff:100.64.0.1]', expected: a4('100.64.0.1') },
    { title: 'v4-compatible (deprecated) stays IPv6', input: '::192.0.2.1', expected: a6('::c000:201') },
    { title: 'NAT64 stays IPv6', input: '64:ff9b::192.0.2.1', expected: a6('64:ff9b::c000:201') },
    { title: 'dotted tail elsewhere stays IPv6', input: 'fd00::198.18.0.5', expected: a6('fd00::c612:5') },
    { title: 'zone id', input: 'fe80::1%eth0', expected: undefined },
    { title: 'bracketed zone id', input: '[fe80::1%25eth0]', expected: undefined },
    { title: 'IPv6 prefix', input: 'fd00::1/64', expected: undefined },
    { title: 'two ::', input: '1::2::3', expected: undefined },
    { title: 'nine groups', input: '1:2:3:4:5:6:7:8:9', expected: undefined },
    { title: 'bad hex', input: 'fd00::g', expected: undefined },
    { title: 'unclosed bracket', input: '[fd00::1', expected: undefined },
  ])('$title: $input', ({ input, expected }) => {
    expect(parseIp(input)).toEqual(expected);
  });
});

describe('helpers', () => {
  test('ipOf', () => {
    expect(ipOf('::ffff:192.0.2.1')).toEqual(a4('192.0.2.1'));
    expect(() => ipOf('nope')).toThrow('not an IP address: nope');
  });

  test.each([
    { title: 'same v4', a: a4('192.0.2.1'), b: a4('192.0.2.1'), expected: true },
    { title: 'different v4', a: a4('192.0.2.1'), b: a4('192.0.2.2'), expected: false },
    { title: 'same v6', a: a6('fd00::1'), b: a6('fd00::1'), expected: true },
    { title: 'folded mapped equals v4', a: ipOf('::ffff:192.0.2.1'), b: ipOf('192.0.2.1'), expected: true },
    { title: 'family differs', a: a4('0.0.0.0'), b: a6('::'), expected: false },
  ])('sameAddress: $title', ({ a, b, expected }) => {
    expect(sameAddress(a, b)).toBe(expected);
  });

  test('formatEndpoint', () => {
    expect(formatEndpoint({ family: 4, address: '192.0.2.1', port: 21 })).toBe('192.0.2.1:21');
    expect(formatEndpoint({ family: 6, address: 'fd00::1', port: 21 })).toBe('[fd00::1]:21');
  });

  test.each([
    { input: 1, expected: true },
    { input: 21, expected: true },
    { input: 65535, expected: true },
    { input: 0, expected: false },
    { input: -1, expected: false },
    { input: 65536, expected: false },
    { input: 21.5, expected: false },
    { input: Number.NaN, expected: false },
    { input: Number.POSITIVE_INFINITY, expected: false },
  ])('isValidPort($input) → $expected', ({ input, expected }) => {
    expect(isValidPort(input)).toBe(expected);
  });
});

describe('parseCidr', () => {
  test.each([
    { title: 'IPv4 block', input: '100.64.0.0/10', expected: { family: 4, text: '100.64.0.0/10' } },
    { title: 'IPv4 host without length', input: '192.0.2.1', expected: { family: 4, text: '192.0.2.1/32' } },
    { title: 'IPv4 /0', input: '0.0.0.0/0', expected: { family: 4, text: '0.0.0.0/0' } },
    { title: 'spaces around', input: ' 10.0.0.0/8 ', expected: { family: 4, text: '10.0.0.0/8' } },
    { title: 'leading zero in the length', input: '10.0.0.0/08', expected: { family: 4, text: '10.0.0.0/8' } },
    { title: 'IPv6 block', input: 'fd00::/8', expected: { family: 6, text: 'fd00::/8' } },
    { title: 'IPv6 canonicalised', input: 'FD00:0:0:0:0:0:0:0/8', expected: { family: 6, text: 'fd00::/8' } },
    { title: 'IPv6 host without length', input: 'fd00::1', expected: { family: 6, text: 'fd00::1/128' } },
    { title: 'IPv4 length 33', input: '10.0.0.0/33', expected: undefined },
    { title: 'IPv6 length 129', input: 'fd00::/129', expected: undefined },
    { title: 'empty length', input: '10.0.0.0/', expected: undefined },
    { title: 'negative length', input: '10.0.0.0/-1', expected: undefined },
    { title: 'fractional length', input: '10.0.0.0/8.0', expected: undefined },
    { title: 'hex length', input: '10.0.0.0/0x8', expected: undefined },
    { title: 'space in length', input: '10.0.0.0/ 8', expected: undefined },
    { title: 'two slashes', input: '10.0.0.0/8/8', expected: undefined },
    { title: 'bad address', input: '10.0.0/8', expected: undefined },
    { title: 'empty', input: '', expected: undefined },
  ])('$title: $input', ({ input, expected }) => {
    const cidr = parseCidr(input);
    expect(cidr === undefined ? undefined : { family: cidr.family, text: cidr.text }).toEqual(expected);
  });

  test.each([
    { cidr: '100.64.0.0/10', ip: '100.64.0.0', expected: true },
    { cidr: '100.64.0.0/10', ip: '100.127.255.255', expected: true },
    { cidr: '100.64.0.0/10', ip: '100.128.0.0', expected: false },
    { cidr: '100.64.0.0/10', ip: '100.63.255.255', expected: false },
    { cidr: '100.64.0.0/10', ip: '::ffff:100.64.0.1', expected: true },
    { cidr: '100.64.0.0/10', ip: 'fd00::1', expected: false },
    { cidr: '192.0.2.1', ip: '192.0.2.1', expected: true },
    { cidr: '192.0.2.1', ip: '192.0.2.2', expected: false },
    { cidr: '192.0.2.77/24', ip: '192.0.2.1', expected: true },
    { cidr: '0.0.0.0/0', ip: '198.18.0.5', expected: true },
    { cidr: '0.0.0.0/0', ip: '::1', expected: false },
    { cidr: 'fd00::/8', ip: 'fd12:3456::1', expected: true },
    { cidr: 'fd00::/8', ip: 'fc00::1', expected: false },
    { cidr: 'fd00::/8', ip: '10.0.0.1', expected: false },
    { cidr: '::/0', ip: '2001:db8::1', expected: true },
    // A v4-mapped address is IPv4 here, so no IPv6 block contains it.
    { cidr: '::/0', ip: '::ffff:192.0.2.1', expected: false },
    { cidr: 'fd00::1', ip: 'fd00::1', expected: true },
    { cidr: 'fd00::1', ip: 'fd00::2', expected: false },
  ])('$cidr contains $ip → $expected', ({ cidr, ip, expected }) => {
    expect(mustCidr(cidr).contains(ipOf(ip))).toBe(expected);
  });

  test('mustCidr throws on bad input', () => {
    expect(() => mustCidr('10.0.0.0/33')).toThrow('not a CIDR block: 10.0.0.0/33');
  });
});

describe('classifyAddress', () => {
  const CASES: Array<{ input: string; expected: AddressClass; siteLocal: boolean }> = [
    { input: '0.0.0.0', expected: 'unspecified', siteLocal: true },
    { input: '0.1.2.3', expected: 'unspecified', siteLocal: true },
    { input: '127.0.0.1', expected: 'loopback', siteLocal: true },
    { input: '127.255.255.254', expected: 'loopback', siteLocal: true },
    { input: '10.0.0.1', expected: 'private', siteLocal: true },
    { input: '10.255.255.255', expected: 'private', siteLocal: true },
    { input: '172.16.0.1', expected: 'private', siteLocal: true },
    { input: '172.31.255.255', expected: 'private', siteLocal: true },
    { input: '172.15.255.255', expected: 'public', siteLocal: false },
    { input: '172.32.0.0', expected: 'public', siteLocal: false },
    { input: '192.168.1.1', expected: 'private', siteLocal: true },
    { input: '192.169.0.1', expected: 'public', siteLocal: false },
    { input: '100.64.0.1', expected: 'shared', siteLocal: true },
    { input: '100.127.255.255', expected: 'shared', siteLocal: true },
    { input: '100.128.0.0', expected: 'public', siteLocal: false },
    { input: '169.254.1.1', expected: 'link-local', siteLocal: true },
    { input: '192.0.2.1', expected: 'documentation', siteLocal: false },
    { input: '198.51.100.7', expected: 'documentation', siteLocal: false },
    { input: '203.0.113.9', expected: 'documentation', siteLocal: false },
    { input: '198.18.0.5', expected: 'benchmarking', siteLocal: false },
    { input: '198.19.255.255', expected: 'benchmarking', siteLocal: false },
    { input: '198.17.255.255', expected: 'public', siteLocal: false },
    { input: '198.20.0.0', expected: 'public', siteLocal: false },
    { input: '224.0.0.1', expected: 'multicast', siteLocal: false },
    { input: '239.255.255.250', expected: 'multicast', siteLocal: false },
    { input: '240.0.0.1', expected: 'reserved', siteLocal: false },
    { input: '255.255.255.255', expected: 'reserved', siteLocal: false },
    { input: '8.8.8.8', expected: 'public', siteLocal: false },
    { input: '::ffff:10.0.0.1', expected: 'private', siteLocal: true },
    { input: '::ffff:127.0.0.1', expected: 'loopback', siteLocal: true },
    { input: '::', expected: 'unspecified', siteLocal: true },
    { input: '::1', expected: 'loopback', siteLocal: true },
    { input: 'fe80::1', expected: 'link-local', siteLocal: true },
    { input: 'febf:ffff::1', expected: 'link-local', siteLocal: true },
    { input: 'fec0::1', expected: 'public', siteLocal: false },
    { input: 'fd00::1', expected: 'unique-local', siteLocal: true },
    { input: 'fc00::1', expected: 'unique-local', siteLocal: true },
    { input: '2001:db8::1', expected: 'documentation', siteLocal: false },
    { input: 'ff02::1', expected: 'multicast', siteLocal: false },
    { input: '2001:4860:4860::8888', expected: 'public', siteLocal: false },
    { input: '64:ff9b::192.0.2.1', expected: 'public', siteLocal: false },
  ];

  test.each(CASES)('$input is $expected', ({ input, expected }) => {
    expect(classifyAddress(ipOf(input))).toBe(expected);
  });

  test.each(CASES)('isSiteLocal($input) → $siteLocal', ({ input, siteLocal }) => {
    expect(isSiteLocal(ipOf(input))).toBe(siteLocal);
  });
});

describe('embeddedIpv4', () => {
  test.each([
    ['::127.0.0.1', '127.0.0.1'],
    ['::a9fe:a9fe', '169.254.169.254'],
    ['::ffff:0:127.0.0.1', '127.0.0.1'],
    ['64:ff9b::7f00:1', '127.0.0.1'],
    ['64:ff9b::198.18.0.1', '198.18.0.1'],
    ['::', undefined],
    ['::1', undefined],
    ['fd00::7f00:1', undefined],
    ['64:ff9b:1::7f00:1', undefined],
    ['127.0.0.1', undefined],
  ])('%s', (text, expected) => {
    expect(embeddedIpv4(ipOf(text))?.address).toBe(expected);
  });
});

describe('broadcastOf', () => {
  test.each([
    ['100.64.1.7/24', '100.64.1.255'],
    ['198.18.0.1/15', '198.19.255.255'],
    ['127.0.0.1/8', '127.255.255.255'],
    ['100.64.0.0/31', undefined],
    ['100.64.0.1/32', undefined],
    ['fd00::1/64', undefined],
  ])('%s', (text, expected) => {
    expect(broadcastOf(mustCidr(text))?.address).toBe(expected);
  });
});
