/**
 * Listeners without a configured range: a port is drawn from the kernel's
 * ephemeral range and bound by number, not left to bind(…, 0), whose port
 * search grew to 1.45–5 ms per listener with tens of thousands of sockets
 * in TIME-WAIT (bench/RESULTS.md, "port churn"). Real listeners on loopback;
 * the range handed to the pool is one port wide, so that which path was taken
 * shows in the port it got.
 */
import { afterEach, describe, expect, test } from 'vitest';
import net from 'node:net';
import { PortPool, drawEphemeralPort, parseLocalPortRange, parseReservedPorts } from '../../src/gateway/ports.js';

const open: net.Server[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listener(port = 0): Promise<net.Server> {
  const s = net.createServer();
  open.push(s);
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port, exclusive: true }, resolve);
  });
  return s;
}

function portOf(s: net.Server): number {
  return (s.address() as net.AddressInfo).port;
}

/** A port nothing listens on now: taken from the kernel, then let go. */
async function freePort(): Promise<number> {
  const s = await listener();
  const port = portOf(s);
  await new Promise((r) => s.close(r));
  open.splice(open.indexOf(s), 1);
  return port;
}

describe('a pool without a range', () => {
  test('binds a port of the ephemeral range by number', async () => {
    const port = await freePort();
    const pool = new PortPool(undefined, { ephemeral: { range: { lo: port, hi: port }, reserved: () => false } });
    const s = net.createServer();
    open.push(s);
    // bind(…, 0) would have the kernel pick any of ~28,000 ports.
    expect(await pool.listen(s, '127.0.0.1')).toBe(port);
    expect(portOf(s)).toBe(port);
  });

  test('when the drawn ports are taken, the kernel picks one, and the listener works', async () => {
    const held = await listener();
    const port = portOf(held);
    const pool = new PortPool(undefined, { ephemeral: { range: { lo: port, hi: port }, reserved: () => false } });
    const s = net.createServer((c) => c.end('hello'));
    open.push(s);
    const got = await pool.listen(s, '127.0.0.1');
    expect(got).not.toBe(port);
    const reply = await new Promise<string>((resolve, reject) => {
      const c = net.connect(got, '127.0.0.1');
      let text = '';
      c.on('data', (d) => (text += d.toString()));
      c.on('end', () => resolve(text));
      c.on('error', reject);
    });
    expect(reply).toBe('hello');
  });

  test("the kernel's reserved ports are never drawn", async () => {
    const port = await freePort();
    const pool = new PortPool(undefined, { ephemeral: { range: { lo: port, hi: port }, reserved: (p) => p === port } });
    const s = net.createServer();
    open.push(s);
    expect(await pool.listen(s, '127.0.0.1')).not.toBe(port);
  });

  test('without a known range (no /proc), port 0', async () => {
    const pool = new PortPool(undefined, { ephemeral: null });
    const s = net.createServer();
    open.push(s);
    const got = await pool.listen(s, '127.0.0.1');
    expect(got).toBe(portOf(s));
    expect(got).toBeGreaterThan(0);
  });
});

describe('reading /proc/sys/net/ipv4', () => {
  test('ip_local_port_range', () => {
    expect(parseLocalPortRange('32768\t60999\n')).toEqual({ lo: 32768, hi: 60999 });
    expect(parseLocalPortRange('1024 1024')).toEqual({ lo: 1024, hi: 1024 });
    for (const bad of ['', '60999 32768', '0 100', '1 70000', 'x y', '1024']) expect(parseLocalPortRange(bad)).toBeUndefined();
  });

  test('ip_local_reserved_ports', () => {
    const reserved = parseReservedPorts('8080,9000-9010\n');
    expect([8080, 9000, 9005, 9010].map(reserved)).toEqual([true, true, true, true]);
    expect([8079, 8081, 8999, 9011].map(reserved)).toEqual([false, false, false, false]);
    expect(parseReservedPorts('\n')(8080)).toBe(false);
  });
});

describe('drawing a port', () => {
  test('reserved ports are drawn past, not taken as the end of the drawing', () => {
    // Half the range reserved: eight draws all landing on it would be 1 in 256; a thousand draws never return one.
    const ports = { range: { lo: 40000, hi: 40009 }, reserved: (p: number) => p < 40005 };
    const drawn = Array.from({ length: 1000 }, () => drawEphemeralPort(ports));
    expect(drawn.every((p) => p === undefined || p >= 40005)).toBe(true);
    expect(drawn.filter((p) => p === undefined).length).toBeLessThan(30);
    expect(drawEphemeralPort({ range: { lo: 40000, hi: 40000 }, reserved: () => true })).toBeUndefined();
    expect(drawEphemeralPort(null)).toBeUndefined();
  });
});
