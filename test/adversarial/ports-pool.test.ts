/**
 * Data ports against a host that shares the client's address (same NAT) and
 * a client that hoards listeners: ports were handed out in order (the next
 * one was predictable, so a neighbour could take a download), and one
 * address could hold as many listeners as it had sessions. Real listeners
 * on loopback; the clock is the test's where the quarantine matters.
 */
import { afterEach, describe, expect, test } from 'vitest';
import net from 'node:net';
import { ipOf } from '../../src/protocol/address.js';
import { DataListenerQuota, DataListenersExceededError, PortPool, PortsExhaustedError, TIME_WAIT_MS, dataPortPools } from '../../src/gateway/ports.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { startDemoServer } from '../../src/demo/server.js';
import { startTestReverse } from '../helpers/gateway.js';

const open: net.Server[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A range outside the ephemeral ports (LAB.md), different for each call. */
let nextBase = 20_000 + Math.floor(Math.random() * 500) * 20;
function range(width: number): { lo: number; hi: number } {
  const lo = nextBase;
  nextBase += width;
  return { lo, hi: lo + width - 1 };
}

async function take(pool: PortPool): Promise<{ port: number; server: net.Server }> {
  const server = net.createServer();
  open.push(server);
  return { port: await pool.listen(server, '127.0.0.1'), server };
}

async function takeAndRelease(pool: PortPool): Promise<number> {
  const { port, server } = await take(pool);
  await new Promise((r) => server.close(r));
  pool.release(port);
  return port;
}

describe('which port', () => {
  test('drawn at random: twelve listeners in turn are not the range in order', async () => {
    const r = range(64);
    const pool = new PortPool(r);
    const ports: number[] = [];
    for (let i = 0; i < 12; i++) ports.push(await takeAndRelease(pool));
    for (const p of ports) expect(p).toBeGreaterThanOrEqual(r.lo);
    const steps = ports.slice(1).map((p, i) => p - ports[i]!);
    // In order, every step would be +1; at random over 64 ports, all eleven are +1 with p ≈ 64^-11.
    expect(steps.every((d) => d === 1)).toBe(false);
    // And the first is not simply the bottom of the range every time (as a fresh round-robin pool gives).
    const firsts = new Set<number>();
    for (let i = 0; i < 6; i++) firsts.add(await takeAndRelease(new PortPool(r)));
    expect(firsts.size).toBeGreaterThan(1);
  });

  test('every port of the range is used before one released within TIME_WAIT', async () => {
    let now = 1_000_000;
    const pool = new PortPool(range(5), { now: () => now });
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) {
      seen.push(await takeAndRelease(pool));
      now += 1_000;
    }
    expect(new Set(seen).size).toBe(5);
    // All five rest now: the one released longest ago comes back first, then the next.
    expect(await takeAndRelease(pool)).toBe(seen[0]);
    now += 1_000;
    expect(await takeAndRelease(pool)).toBe(seen[1]);
  });

  test('after TIME_WAIT a released port is an ordinary candidate again', async () => {
    let now = 1_000_000;
    const r = range(2);
    const pool = new PortPool(r, { now: () => now });
    const first = await takeAndRelease(pool);
    const other = await takeAndRelease(pool);
    expect(other).not.toBe(first);
    now += TIME_WAIT_MS;
    const drawn = new Set<number>();
    for (let i = 0; i < 24; i++) drawn.add(await takeAndRelease(new PortPool(r, { now: () => now })));
    expect(drawn).toEqual(new Set([r.lo, r.hi]));
  });

  test('a port taken by someone else is skipped; a full range says PORTS_EXHAUSTED', async () => {
    const r = range(3);
    const squatter = net.createServer();
    open.push(squatter);
    await new Promise<void>((res) => squatter.listen(r.lo + 1, '127.0.0.1', res));
    const pool = new PortPool(r);
    const got = [await take(pool), await take(pool)].map((x) => x.port).sort();
    expect(got).toEqual([r.lo, r.hi]);
    const err = await take(pool).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortsExhaustedError);
    expect((err as PortsExhaustedError).code).toBe('PORTS_EXHAUSTED');
  });
});

describe('listeners per client', () => {
  test('a client past its share gets DATA_LISTENERS_EXCEEDED without a bind; others are unaffected', async () => {
    const pool = new PortPool(range(10), { quota: new DataListenerQuota(2) });
    const a = pool.forClient(ipOf('127.0.0.1'));
    const b = pool.forClient(ipOf('127.0.0.2'));
    const held = [await take(a), await take(a)];
    const server = net.createServer();
    const err = await a.listen(server, '127.0.0.1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataListenersExceededError);
    expect((err as DataListenersExceededError).code).toBe('DATA_LISTENERS_EXCEEDED');
    expect(server.listening).toBe(false);
    expect(pool.used).toBe(2);
    await take(b);
    // One given back: the client may open one again.
    await new Promise((r) => held[0]!.server.close(r));
    a.release(held[0]!.port);
    await take(a);
    expect(pool.used).toBe(3);
  });

  test('an IPv6 client is counted by its /64, and passive and active listeners count together', async () => {
    const { passivePool, activePool } = dataPortPools(range(10), range(10), 2);
    await take(passivePool.forClient(ipOf('fd00:1::1')));
    await take(activePool.forClient(ipOf('fd00:1::2')));
    await expect(take(passivePool.forClient(ipOf('fd00:1::3')))).rejects.toBeInstanceOf(DataListenersExceededError);
    await take(activePool.forClient(ipOf('fd00:2::1')));
  });

  test('without a range too, and a failed bind gives the share back', async () => {
    const pool = new PortPool(undefined, { quota: new DataListenerQuota(1) });
    const a = pool.forClient(ipOf('127.0.0.1'));
    const bad = net.createServer();
    await expect(a.listen(bad, '192.0.2.1')).rejects.toThrow(/EADDRNOTAVAIL/);
    const { port } = await take(a);
    await expect(take(a)).rejects.toBeInstanceOf(DataListenersExceededError);
    a.release(port);
    a.release(port); // twice: no share is given back that was not taken
    await take(a);
    await expect(take(a)).rejects.toBeInstanceOf(DataListenersExceededError);
  });

  test('through a gateway: --max-data-listeners-per-client 2 across sessions, 425 for the third, back after one closes', async () => {
    const server = await startDemoServer();
    const gw = await startTestReverse(server.address.port, { 'max-data-listeners-per-client': 2 });
    const clients: FtpClient[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const c = await FtpClient.connect('127.0.0.1', gw.port);
        clients.push(c);
        await c.login();
      }
      const [a, b, c] = clients as [FtpClient, FtpClient, FtpClient];
      expect((await a.send('EPSV')).code).toBe(229);
      expect((await b.send('EPSV')).code).toBe(229);
      const refused = await c.send('EPSV');
      expect(refused.code).toBe(425);
      expect(refused.text).toMatch(/too many open data connections from your address/);
      await gw.log.waitFor('refuse', (e) => e.code === 'DATA_LISTENERS_EXCEEDED');
      // A new EPSV in the same session replaces its listener: still two.
      expect((await a.send('EPSV')).code).toBe(229);
      await a.quit();
      await gw.log.waitFor('session-close');
      expect((await c.send('EPSV')).code).toBe(229);
    } finally {
      for (const c of clients) c.close();
      await gw.close();
      await server.close();
    }
  });
});
