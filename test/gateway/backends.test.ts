/**
 * The backend pool's decisions without sockets: order per policy, what
 * health marks do and undo, and the flags that configure it.
 */
import { describe, expect, test } from 'vitest';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { BackendPool, type BackendPoolOptions } from '../../src/gateway/backends.js';
import { parseRunConfig } from '../../src/config-file.js';
import { reverseFromFlags, type ReverseConfig } from '../../src/config.js';
import type { GatewayEvent } from '../../src/gateway/events.js';
import { parseIp, type IpAddress } from '../../src/protocol/address.js';

const TARGETS = [1, 2, 3].map((i) => ({ host: `127.0.0.${i}`, port: 21 }));
const ip = (text: string): IpAddress => parseIp(text)!;

function pool(opts: Partial<BackendPoolOptions> = {}) {
  let now = 1_000_000;
  const events: GatewayEvent[] = [];
  const p = new BackendPool(TARGETS, { balance: 'round-robin', downMs: 30_000, connectTimeoutMs: 1000, sink: (e) => events.push(e), now: () => now, ...opts });
  return { p, events, advance: (ms: number) => (now += ms) };
}

const labels = (list: { label: string }[]) => list.map((b) => b.label);

describe('choice', () => {
  test('round-robin starts one further each time and lists the rest as failover', () => {
    const { p } = pool();
    expect(labels(p.candidates({ client: ip('198.18.0.1') }))).toEqual(['127.0.0.1:21', '127.0.0.2:21', '127.0.0.3:21']);
    expect(labels(p.candidates({ client: ip('198.18.0.1') }))).toEqual(['127.0.0.2:21', '127.0.0.3:21', '127.0.0.1:21']);
    expect(labels(p.candidates({ client: ip('198.18.0.1') }))).toEqual(['127.0.0.3:21', '127.0.0.1:21', '127.0.0.2:21']);
  });

  test('source: one address (or one IPv6 /64) always gets the same order; different addresses spread', () => {
    const { p } = pool({ balance: 'source' });
    const first = labels(p.candidates({ client: ip('198.18.0.1') }));
    for (let i = 0; i < 5; i++) expect(labels(p.candidates({ client: ip('198.18.0.1') }))).toEqual(first);
    expect(labels(p.candidates({ client: ip('fd00::1') }))).toEqual(labels(p.candidates({ client: ip('fd00::ffff') })));
    const picks = new Set(Array.from({ length: 40 }, (_, i) => p.candidates({ client: ip(`198.18.1.${i}`) })[0]!.label));
    expect(picks.size).toBe(3);
  });

  test('user: by name, whatever the client address', () => {
    const { p } = pool({ balance: 'user' });
    const alice = labels(p.candidates({ client: ip('198.18.0.1'), user: 'alice' }));
    expect(labels(p.candidates({ client: ip('198.18.0.2'), user: 'alice' }))).toEqual(alice);
  });

  test('least-connections: fewest sessions first; a closed session frees its slot', () => {
    const { p } = pool({ balance: 'least-connections' });
    const sockets = [new EventEmitter(), new EventEmitter()];
    p.attach(p.backends[0]!, sockets[0] as unknown as Socket);
    p.attach(p.backends[1]!, sockets[1] as unknown as Socket);
    expect(p.candidates({ client: ip('198.18.0.1') })[0]!.label).toBe('127.0.0.3:21');
    p.attach(p.backends[2]!, new EventEmitter() as unknown as Socket);
    sockets[1]!.emit('close');
    expect(p.candidates({ client: ip('198.18.0.1') })[0]!.label).toBe('127.0.0.2:21');
  });
});

describe('health', () => {
  test('a backend marked down is left out for --backend-down, then comes back; one warning per transition', () => {
    const { p, events, advance } = pool({ balance: 'source' });
    const key = { client: ip('198.18.0.1') };
    const [preferred, next] = p.candidates(key);
    p.markDown(preferred!, 'refused');
    p.markDown(preferred!, 'refused again');
    expect(p.candidates(key)[0]).toBe(next);
    expect(p.candidates(key)).toHaveLength(2);
    expect(events.filter((e) => e.event === 'warning')).toHaveLength(1);
    advance(29_999);
    expect(p.candidates(key)[0]).toBe(next);
    advance(1);
    // Sticky policies hash over all backends: the client returns to its own.
    expect(p.candidates(key)[0]).toBe(preferred);
  });

  test('all marked down: no candidates', () => {
    const { p } = pool();
    for (const b of p.backends) p.markDown(b, 'x');
    expect(p.candidates({ client: ip('198.18.0.1') })).toEqual([]);
  });
});

describe('flags', () => {
  const base = { listen: '127.0.0.1:0', 'public-address': '198.18.0.1' };

  test('a list of servers, defaults, and every new flag', () => {
    const cfg = reverseFromFlags({
      ...base,
      server: '127.0.0.1:21, [::1]:2121,ftp.example:21',
      balance: 'user',
      'backend-down': 5,
      'health-interval': 2,
      'send-proxy-protocol': 'v2',
      'proxy-protocol-from': '198.18.0.0/24,fd00::/8',
      announce: ['100.64.0.0/10=100.64.0.1', '127.0.0.0/8=127.0.0.1,198.18.9.0/24=198.18.9.1'],
    });
    expect(cfg.servers).toEqual([
      { host: '127.0.0.1', port: 21 },
      { host: '::1', port: 2121 },
      { host: 'ftp.example', port: 21 },
    ]);
    expect(cfg.server).toEqual(cfg.servers[0]);
    expect([cfg.balance, cfg.backendDownMs, cfg.healthIntervalMs, cfg.sendProxyProtocol]).toEqual(['user', 5000, 2000, 2]);
    expect(cfg.proxyProtocolFrom.map((c) => c.text)).toEqual(['198.18.0.0/24', 'fd00::/8']);
    expect(cfg.announce.map((a) => `${a.network.text}=${a.address.address}`)).toEqual(['100.64.0.0/10=100.64.0.1', '127.0.0.0/8=127.0.0.1', '198.18.9.0/24=198.18.9.1']);
    const plain = reverseFromFlags({ ...base, server: '127.0.0.1:21' });
    expect([plain.balance, plain.backendDownMs, plain.healthIntervalMs, plain.sendProxyProtocol, plain.proxyProtocolFrom, plain.announce]).toEqual(['round-robin', 30_000, undefined, undefined, [], []]);
  });

  test.each([
    [{ server: '127.0.0.1:21,' + '127.0.0.1:0' }, '--server: port 0 is not a server port'],
    [{ server: '127.0.0.1:21,nonsense' }, '--server: "nonsense" is not ADDRESS:PORT (IPv6 in brackets: [::1]:2121)'],
    [{ server: ',' }, '--server: is required'],
    [{ balance: 'random' }, '--balance: "random" is not one of round-robin, least-connections, source, user'],
    [{ 'send-proxy-protocol': 'v3' }, '--send-proxy-protocol: "v3" is not v1 or v2'],
    [{ 'backend-down': 0 }, '--backend-down: "0" is not a number of seconds in (0, 86400]'],
    [{ 'health-interval': -1 }, '--health-interval: "-1" is not a number of seconds in (0, 86400]'],
    [{ 'proxy-protocol-from': '1.2.3.4/33' }, '--proxy-protocol-from: "1.2.3.4/33" is not a CIDR block'],
    [{ announce: '100.64.0.0/10' }, '--announce: "100.64.0.0/10" is not CIDR=IP'],
    [{ announce: '100.64.0.0/10=fd00::1' }, '--announce: fd00::1 is IPv6; 227 replies carry IPv4 only'],
  ])('%j is refused with one line naming the flag', (flags, message) => {
    expect(() => reverseFromFlags({ ...base, server: '127.0.0.1:21', ...flags })).toThrow(message);
  });

  test('routes: YAML only, globs, servers from the list, balance user only', () => {
    const yaml = (extra: string) =>
      `listeners:\n  - mode: reverse\n    listen: 127.0.0.1:1\n    server: 127.0.0.1:21,127.0.0.2:21\n    public-address: 198.18.0.1\n${extra}`;
    const l = parseRunConfig('gw.yaml', yaml('    balance: user\n    routes:\n      - { user: "a*.x?", server: "127.0.0.2:21" }\n')).listeners[0] as ReverseConfig;
    expect(l.routes.map((r) => [r.user, r.server.host])).toEqual([['a*.x?', '127.0.0.2']]);
    expect(['alice.xy', 'a.x1', 'alice.x', 'bob.xy', 'a+.xy'].map((u) => l.routes[0]!.matches(u))).toEqual([true, true, false, false, true]);
    expect(() => parseRunConfig('gw.yaml', yaml('    routes:\n      - { user: a, server: "127.0.0.2:21" }\n'))).toThrow('gw.yaml: listeners[0].routes: routes pick by user name: they need balance: user');
    expect(() => parseRunConfig('gw.yaml', yaml('    balance: user\n    routes:\n      - { user: a, server: "127.0.0.9:21" }\n'))).toThrow(
      "gw.yaml: listeners[0].routes[0].server: 127.0.0.9:21 is not one of the listener's servers",
    );
    expect(() => parseRunConfig('gw.yaml', yaml('    balance: user\n    routes:\n      - { user: a }\n'))).toThrow('gw.yaml: listeners[0].routes[0]: expected { user: PATTERN, server: HOST:PORT } and nothing else');
    expect(() => parseRunConfig('gw.yaml', yaml('    balance: user\n    routes: a\n'))).toThrow('gw.yaml: listeners[0].routes: a list of { user: PATTERN, server: HOST:PORT }');
  });

  test('a route comes before the hash, and its backend still fails over', () => {
    const { p } = pool({ balance: 'user', routes: [{ matches: (u) => u === 'alice', server: TARGETS[2]! }] });
    expect(p.candidates({ client: ip('198.18.0.1'), user: 'alice' })[0]!.label).toBe('127.0.0.3:21');
    p.markDown(p.backends[2]!, 'x');
    expect(p.candidates({ client: ip('198.18.0.1'), user: 'alice' })[0]!.label).toBe('127.0.0.1:21');
  });

  test('YAML: announce is a list, the other flags are keys', () => {
    const cfg = parseRunConfig(
      'gw.yaml',
      `listeners:
  - mode: reverse
    listen: 127.0.0.1:2121
    server: 127.0.0.1:21,127.0.0.2:21
    public-address: 198.18.0.1
    balance: least-connections
    send-proxy-protocol: v1
    announce:
      - 100.64.0.0/10=100.64.0.1
      - 127.0.0.0/8=127.0.0.1
`,
    );
    const l = cfg.listeners[0] as ReverseConfig;
    expect([l.servers.length, l.balance, l.sendProxyProtocol, l.announce.length]).toEqual([2, 'least-connections', 1, 2]);
    expect(() => parseRunConfig('gw.yaml', 'listeners:\n  - mode: reverse\n    listen: 127.0.0.1:1\n    server: 127.0.0.1:21\n    public-address: 198.18.0.1\n    balance: [a]\n')).toThrow(
      'gw.yaml: listeners[0].balance: ["a"] is not a string',
    );
  });
});
