/**
 * The early dial to the server's data port binds the control connection's
 * address on a source port it draws itself, not on port 0, whose port
 * search grew to 4.9 ms per dial with the range full of TIME-WAIT sockets
 * (bench/RESULTS.md, "port churn"). The range handed to the channel is one
 * port wide, so which port the server sees shows which path was taken.
 * Real sockets on loopback.
 */
import { afterEach, expect, test } from 'vitest';
import net from 'node:net';
import { DataChannel } from '../../src/gateway/data.js';
import type { GatewayEvent } from '../../src/gateway/events.js';
import { PortPool, type EphemeralPorts } from '../../src/gateway/ports.js';
import { ipOf } from '../../src/protocol/address.js';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listening(server: net.Server, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port, exclusive: true }, resolve);
  });
  cleanups.push(() => new Promise((r) => server.close(r)));
  return (server.address() as net.AddressInfo).port;
}

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** A server for one data connection: says where it came from, then sends `text` and ends. */
async function dataServer(text: string): Promise<{ port: number; from: Promise<number>; connections: () => number }> {
  let connections = 0;
  let seen!: (port: number) => void;
  const from = new Promise<number>((r) => (seen = r));
  const server = net.createServer((s) => {
    connections++;
    s.on('error', () => undefined);
    seen(s.remotePort ?? 0);
    s.end(text);
  });
  return { port: await listening(server), from, connections: () => connections };
}

async function earlyChannel(targetPort: number, dialPorts: EphemeralPorts | null) {
  const events: GatewayEvent[] = [];
  const channel = await DataChannel.open({
    session: 't',
    mode: 'passive',
    listenHost: '127.0.0.1',
    pool: new PortPool(undefined),
    acceptFrom: () => true,
    acceptLabel: '127.0.0.1',
    dialTarget: { ...ipOf('127.0.0.1'), port: targetPort },
    dialFrom: '127.0.0.1',
    acceptTimeoutMs: 5_000,
    idleTimeoutMs: 20_000,
    sink: (e) => events.push(e),
    dialEarly: true,
    dialPorts,
  });
  cleanups.push(() => channel.close('test over'));
  return { channel, events };
}

/** What a client connected to the channel receives until the end. */
function receive(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1');
    let text = '';
    c.on('data', (d) => (text += d.toString()));
    c.on('end', () => resolve(text));
    c.on('error', reject);
    cleanups.push(() => void c.destroy());
  });
}

test('the early dial comes from a drawn port of the ephemeral range', async () => {
  const server = await dataServer('listing');
  const drawn = await freePort();
  const { channel } = await earlyChannel(server.port, { range: { lo: drawn, hi: drawn }, reserved: () => false });
  // Before any client: the early dial. Port 0 would have the kernel pick any of ~28,000.
  expect(await server.from).toBe(drawn);
  expect(await receive(channel.port)).toBe('listing');
  expect(server.connections()).toBe(1);
});

test('a drawn port that is taken: the dial tries again, then lets the kernel pick; one connection, the data flows', async () => {
  const server = await dataServer('file');
  const taken = await listening(net.createServer());
  const { channel, events } = await earlyChannel(server.port, { range: { lo: taken, hi: taken }, reserved: () => false });
  const from = await server.from;
  expect(from).not.toBe(taken);
  expect(await receive(channel.port)).toBe('file');
  expect(server.connections()).toBe(1);
  expect(await channel.closed).toBe('complete');
  expect(events.find((e) => e.event === 'data-close')).toMatchObject({ reason: 'complete' });
});

test('no range to draw from (null): port 0, as before', async () => {
  const server = await dataServer('x');
  const { channel } = await earlyChannel(server.port, null);
  expect(await server.from).toBeGreaterThan(0);
  expect(await receive(channel.port)).toBe('x');
});
