/**
 * Policy: where active data connections may go (the client itself, RFC 2577)
 * and where passive ones may be dialled (the server or its declared networks).
 */
import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { mustCidr, sameAddress, type Endpoint, type IpAddress } from '../../src/protocol/address.js';
import { MIN_ACTIVE_PORT, REASON, checkActiveTarget, passiveDialTarget, type ReasonCode } from '../../src/alg/policy.js';
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
