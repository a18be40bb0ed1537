/**
 * Policy: where active data connections may go (the client itself, RFC 2577)
 * and where passive ones may be dialled (the server or its declared networks).
 */
import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { ipOf, mustCidr, sameAddress, type Endpoint, type IpAddress } from '../../src/protocol/address.js';
import {
  DEFAULT_ALLOWED_CLIENTS,
  MIN_ACTIVE_PORT,
  checkActiveTarget,
  checkDestination,
  passiveDialTarget,
  type DestinationPolicy,
} from '../../src/alg/policy.js';
import { REASON, type ReasonCode } from '../../src/codes.js';
import { ip, v4, v6 } from './fixtures.js';

describe('checkActiveTarget', () => {
  test.each<{ title: string; input: { client: IpAddress; target: Endpoint }; expected: ReasonCode | undefined }>([
    { title: 'the client, port 1024', input: { client: ip('198.18.0.5'), target: v4('198.18.0.5', 1024) }, expected: undefined },
    { title: 'the client, port 65535', input: { client: ip('198.18.0.5'), target: v4('198.18.0.5', 65535) }, expected: undefined },
    { title: 'loopback client to itself', input: { client: ip('127.0.0.1'), target: v4('127.0.0.1', 5001) }, expected: undefined },
    { title: 'IPv6 client to itself', input: { client: ip('fd00::5'), target: v6('fd00::5', 5001) }, expected: undefined },
    { title: 'v4-mapped client address folds to IPv4', input: { client: ip('::ffff:198.18.0.5'), target: v4('198.18.0.5', 5001) }, expected: undefined },
    { title: 'the client, port 1023', input: { client: ip('198.18.0.5'), target: v4('198.18.0.5', 1023) }, expected: REASON.PRIVILEGED_PORT },
    { title: 'the client, port 20', input: { client: ip('198.18.0.5'), target: v4('198.18.0.5', 20) }, expected: REASON.PRIVILEGED_PORT },
    { title: 'IPv6 client, port 22', input: { client: ip('fd00::5'), target: v6('fd00::5', 22) }, expected: REASON.PRIVILEGED_PORT },
    { title: 'a third host', input: { client: ip('198.18.0.5'), target: v4('198.18.0.6', 5001) }, expected: REASON.BOUNCE_ADDRESS },
    { title: 'an inside host', input: { client: ip('198.18.0.5'), target: v4('100.64.0.10', 5001) }, expected: REASON.BOUNCE_ADDRESS },
    { title: 'loopback from a remote client', input: { client: ip('198.18.0.5'), target: v4('127.0.0.1', 5001) }, expected: REASON.BOUNCE_ADDRESS },
    { title: 'a third host, privileged: address first', input: { client: ip('198.18.0.5'), target: v4('198.18.0.6', 25) }, expected: REASON.BOUNCE_ADDRESS },
    { title: 'another IPv6 host', input: { client: ip('fd00::5'), target: v6('fd00::6', 5001) }, expected: REASON.BOUNCE_ADDRESS },
    { title: 'IPv4 target for an IPv6 client', input: { client: ip('fd00::5'), target: v4('198.18.0.5', 5001) }, expected: REASON.BOUNCE_ADDRESS },
    { title: 'IPv6 target for an IPv4 client', input: { client: ip('198.18.0.5'), target: v6('fd00::5', 5001) }, expected: REASON.BOUNCE_ADDRESS },
  ])('$title', ({ input, expected }) => {
    expect(checkActiveTarget(input.client, input.target)?.code).toBe(expected);
  });

  test('the messages say what was refused and why', () => {
    expect(checkActiveTarget(ip('198.18.0.5'), v4('198.18.0.6', 5001))).toEqual({
      code: REASON.BOUNCE_ADDRESS,
      message: 'address 198.18.0.6 is not your own (198.18.0.5); refused as a bounce (RFC 2577)',
    });
    expect(checkActiveTarget(ip('198.18.0.5'), v4('198.18.0.5', 21))).toEqual({
      code: REASON.PRIVILEGED_PORT,
      message: 'port 21 is privileged (< 1024); refused (RFC 2577)',
    });
  });

  fcTest.prop([
    fc.constantFrom('198.18.0.5', '100.64.0.5', 'fd00::5', '127.0.0.1'),
    fc.constantFrom('198.18.0.5', '198.18.0.6', '100.64.0.5', 'fd00::5', 'fd00::6', '127.0.0.1'),
    fc.integer({ min: 1, max: 65535 }),
  ])('allowed iff the same address and an unprivileged port', (client, target, port) => {
    const t = { ...ip(target), port };
    const allowed = sameAddress(ip(client), t) && port >= MIN_ACTIVE_PORT;
    expect(checkActiveTarget(ip(client), t) === undefined).toBe(allowed);
  });
});

describe('passiveDialTarget', () => {
  const SERVER4 = ip('100.64.0.10');
  const SERVER6 = ip('fd00:64::10');
  test.each<{
    title: string;
    input: { server: IpAddress; networks: string[]; announced: Endpoint };
    expected: { target: Endpoint; refusal?: ReasonCode };
  }>([
    { title: 'the server itself', input: { server: SERVER4, networks: [], announced: v4('100.64.0.10', 5001) }, expected: { target: v4('100.64.0.10', 5001) } },
    { title: 'IPv6 server itself', input: { server: SERVER6, networks: [], announced: v6('fd00:64::10', 5001) }, expected: { target: v6('fd00:64::10', 5001) } },
    {
      title: 'inside a declared network',
      input: { server: SERVER4, networks: ['100.64.0.0/24'], announced: v4('100.64.0.77', 5001) },
      expected: { target: v4('100.64.0.77', 5001) },
    },
    {
      title: 'inside the second declared network',
      input: { server: SERVER4, networks: ['100.64.0.0/24', '198.18.0.0/15'], announced: v4('198.19.1.1', 5001) },
      expected: { target: v4('198.19.1.1', 5001) },
    },
    {
      title: 'inside a declared IPv6 network',
      input: { server: SERVER6, networks: ['fd00:64::/64'], announced: v6('fd00:64::77', 5001) },
      expected: { target: v6('fd00:64::77', 5001) },
    },
    {
      title: 'a third host, no networks',
      input: { server: SERVER4, networks: [], announced: v4('100.64.0.77', 5001) },
      expected: { target: v4('100.64.0.10', 5001), refusal: REASON.FOREIGN_PASSIVE_ADDRESS },
    },
    {
      title: 'just outside the declared network',
      input: { server: SERVER4, networks: ['100.64.0.0/24'], announced: v4('100.64.1.0', 5001) },
      expected: { target: v4('100.64.0.10', 5001), refusal: REASON.FOREIGN_PASSIVE_ADDRESS },
    },
    {
      title: 'loopback (SSRF)',
      input: { server: SERVER4, networks: ['100.64.0.0/10'], announced: v4('127.0.0.1', 22) },
      expected: { target: v4('100.64.0.10', 22), refusal: REASON.FOREIGN_PASSIVE_ADDRESS },
    },
    {
      title: '0.0.0.0',
      input: { server: SERVER4, networks: [], announced: v4('0.0.0.0', 5001) },
      expected: { target: v4('100.64.0.10', 5001), refusal: REASON.FOREIGN_PASSIVE_ADDRESS },
    },
    {
      title: 'IPv4 announced by an IPv6 server',
      input: { server: SERVER6, networks: [], announced: v4('100.64.0.10', 5001) },
      expected: { target: v6('fd00:64::10', 5001), refusal: REASON.FOREIGN_PASSIVE_ADDRESS },
    },
    {
      title: 'an IPv6 network does not admit IPv4',
      input: { server: SERVER4, networks: ['fd00::/8'], announced: v4('198.18.0.99', 5001) },
      expected: { target: v4('100.64.0.10', 5001), refusal: REASON.FOREIGN_PASSIVE_ADDRESS },
    },
    {
      title: 'another IPv6 host',
      input: { server: SERVER6, networks: ['fd00:64::/64'], announced: v6('fd00:65::10', 5001) },
      expected: { target: v6('fd00:64::10', 5001), refusal: REASON.FOREIGN_PASSIVE_ADDRESS },
    },
  ])('$title', ({ input, expected }) => {
    const got = passiveDialTarget(input.server, input.networks.map(mustCidr), input.announced);
    expect({ target: got.target, refusal: got.refusal?.code }).toEqual(expected);
  });

  test('the refusal message names both addresses', () => {
    expect(passiveDialTarget(SERVER4, [], v4('198.18.0.99', 5001)).refusal).toEqual({
      code: REASON.FOREIGN_PASSIVE_ADDRESS,
      message:
        'server announced 198.18.0.99, which is neither its own address 100.64.0.10 nor in its networks; dialling 100.64.0.10 instead',
    });
  });
});

describe('checkDestination (forward mode)', () => {
  // --allow-clients narrowed to one host, as in the issue: the defaults below
  // must not depend on the clients' networks.
  const NARROW: DestinationPolicy = { lanNetworks: [mustCidr('127.0.0.1/32')], allowed: [], ports: [{ lo: 21, hi: 21 }] };
  const DEFAULT: DestinationPolicy = { ...NARROW, lanNetworks: DEFAULT_ALLOWED_CLIENTS.map(mustCidr) };
  const OWN = [ip('198.18.0.1'), ip('fd00:1::1'), ip('198.18.0.255')];
  const at = (address: string, port = 21): Endpoint => ({ ...ipOf(address), port });
  const DENIED = REASON.DESTINATION_NOT_ALLOWED;

  test.each<{ title: string; input: { dest: Endpoint; policy?: DestinationPolicy }; expected: ReasonCode | undefined }>([
    { title: 'a public server on 21', input: { dest: at('198.18.5.5') }, expected: undefined },
    { title: 'an IPv6 server on 21', input: { dest: at('fd00:5::5') }, expected: undefined },
    { title: 'a public server via NAT64', input: { dest: at('64:ff9b::c612:505') }, expected: undefined },
    // this host
    { title: '127.0.0.1', input: { dest: at('127.0.0.1') }, expected: DENIED },
    { title: '127.0.0.2 although --allow-clients is 127.0.0.1/32', input: { dest: at('127.0.0.2') }, expected: DENIED },
    { title: '127.255.255.254', input: { dest: at('127.255.255.254') }, expected: DENIED },
    { title: '::1', input: { dest: at('::1') }, expected: DENIED },
    { title: '0.0.0.0', input: { dest: at('0.0.0.0') }, expected: DENIED },
    { title: '0.1.2.3 (this network)', input: { dest: at('0.1.2.3') }, expected: DENIED },
    { title: '::', input: { dest: at('::') }, expected: DENIED },
    // the link
    { title: '169.254.169.254 (cloud metadata)', input: { dest: at('169.254.169.254') }, expected: DENIED },
    { title: '169.254.0.1', input: { dest: at('169.254.0.1') }, expected: DENIED },
    { title: 'fe80::1', input: { dest: at('fe80::1') }, expected: DENIED },
    { title: 'febf::1 (end of fe80::/10)', input: { dest: at('febf::1') }, expected: DENIED },
    // everyone
    { title: '224.0.0.1', input: { dest: at('224.0.0.1') }, expected: DENIED },
    { title: '239.255.255.250', input: { dest: at('239.255.255.250') }, expected: DENIED },
    { title: 'ff02::1', input: { dest: at('ff02::1') }, expected: DENIED },
    { title: '255.255.255.255', input: { dest: at('255.255.255.255') }, expected: DENIED },
    { title: '240.0.0.1', input: { dest: at('240.0.0.1') }, expected: DENIED },
    // the gateway itself
    { title: 'its own IPv4 address', input: { dest: at('198.18.0.1') }, expected: DENIED },
    { title: 'its own IPv6 address', input: { dest: at('fd00:1::1') }, expected: DENIED },
    { title: 'the broadcast address of its network', input: { dest: at('198.18.0.255') }, expected: DENIED },
    // the same, in IPv6 forms that embed IPv4
    { title: 'IPv4-mapped loopback (folded to IPv4)', input: { dest: at('::ffff:127.0.0.2') }, expected: DENIED },
    { title: 'IPv4-mapped metadata, hex form', input: { dest: at('::ffff:a9fe:a9fe') }, expected: DENIED },
    { title: 'IPv4-compatible loopback', input: { dest: at('::127.0.0.1') }, expected: DENIED },
    { title: 'IPv4-compatible metadata, hex form', input: { dest: at('::a9fe:a9fe') }, expected: DENIED },
    { title: 'IPv4-translated loopback', input: { dest: at('::ffff:0:127.0.0.1') }, expected: DENIED },
    { title: 'NAT64 loopback', input: { dest: at('64:ff9b::7f00:1') }, expected: DENIED },
    { title: 'NAT64 metadata', input: { dest: at('64:ff9b::169.254.169.254') }, expected: DENIED },
    { title: 'NAT64 multicast', input: { dest: at('64:ff9b::e000:1') }, expected: DENIED },
    { title: 'NAT64 broadcast', input: { dest: at('64:ff9b::ffff:ffff') }, expected: DENIED },
    { title: 'NAT64 0.0.0.0', input: { dest: at('64:ff9b::') }, expected: DENIED },
    { title: 'NAT64 form of its own address', input: { dest: at('64:ff9b::c612:1') }, expected: DENIED },
    { title: 'NAT64 form of a LAN address', input: { dest: at('64:ff9b::6440:5'), policy: DEFAULT }, expected: DENIED },
    // the LAN it serves
    { title: 'a LAN address (default --allow-clients)', input: { dest: at('100.64.0.5'), policy: DEFAULT }, expected: DENIED },
    { title: 'a LAN address outside a narrowed --allow-clients', input: { dest: at('100.64.0.5') }, expected: undefined },
    // ports
    { title: 'a public server on 25', input: { dest: at('198.18.5.5', 25) }, expected: DENIED },
    { title: 'a public server on 2121', input: { dest: at('198.18.5.5', 2121) }, expected: DENIED },
    { title: 'a port inside an allowed range', input: { dest: at('198.18.5.5', 2125), policy: { ...NARROW, ports: [{ lo: 21, hi: 21 }, { lo: 2121, hi: 2130 }] } }, expected: undefined },
    // --allow-destinations opens an address, never a port
    { title: 'loopback when allowed', input: { dest: at('127.0.0.2'), policy: { ...NARROW, allowed: [mustCidr('127.0.0.0/8')] } }, expected: undefined },
    { title: 'metadata when allowed exactly', input: { dest: at('169.254.169.254'), policy: { ...NARROW, allowed: [mustCidr('169.254.169.254/32')] } }, expected: undefined },
    { title: 'allowed loopback, port not allowed', input: { dest: at('127.0.0.2', 25), policy: { ...NARROW, allowed: [mustCidr('127.0.0.0/8')] } }, expected: DENIED },
    { title: 'allowing 127/8 does not open its NAT64 form', input: { dest: at('64:ff9b::7f00:1'), policy: { ...NARROW, allowed: [mustCidr('127.0.0.0/8')] } }, expected: DENIED },
  ])('$title', ({ input, expected }) => {
    expect(checkDestination(input.dest, input.policy ?? NARROW, OWN)?.code).toBe(expected);
  });

  test('the message names the destination and the reason', () => {
    expect(checkDestination(at('64:ff9b::a9fe:a9fe'), NARROW, OWN)?.message).toBe('destination [64:ff9b::a9fe:a9fe]:21: link-local address (embeds 169.254.169.254)');
    expect(checkDestination(at('198.18.5.5', 25), NARROW, OWN)?.message).toBe('destination 198.18.5.5:25: port 25 is not an allowed destination port');
  });

  fcTest.prop([fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom('v4', 'mapped', 'compat', 'nat64')], { numRuns: 2000 })(
    'every IPv4 address and its IPv6 forms get the same answer',
    (n, form) => {
      const v4 = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
      const text = { v4, mapped: `::ffff:${v4}`, compat: `::${v4}`, nat64: `64:ff9b::${v4}` }[form];
      // ::0.0.0.0 and ::0.0.0.1 are IPv6's own :: and ::1: refused either way.
      expect(checkDestination(at(text), DEFAULT, OWN) === undefined).toBe(checkDestination(at(v4), DEFAULT, OWN) === undefined);
    },
  );
});
