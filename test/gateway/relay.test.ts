/**
 * The data relay on its own (DataChannel between a plain client socket and a
 * plain target server): byte-exact under back-pressure both ways, a FIN
 * forwarded as a half-close, and a reader that stops does not make the relay
 * read on. The relay reuses its read buffers, so a write still in flight
 * being overwritten would show here as a hash mismatch: the data is random
 * throughout (no repeating block) and the readers stall so that writes do
 * not all complete at once.
 */
import { afterEach, expect, test } from 'vitest';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { DataChannel, grownReadBuffers, type DataChannelOptions } from '../../src/gateway/data.js';
import type { GatewayEvent } from '../../src/gateway/events.js';
import { PortPool, type EphemeralPorts } from '../../src/gateway/ports.js';
import { ipOf } from '../../src/protocol/address.js';
import { sha256 } from '../helpers/tools.js';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A target server running `onSocket` for its one connection; a passive channel in front of it; a client connected through it. */
async function relayTo(onSocket: (s: net.Socket) => void) {
  const target = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    onSocket(s);
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => target.close(r)));
  const events: GatewayEvent[] = [];
  let opened!: () => void;
  const open = new Promise<void>((r) => (opened = r));
  const channel = await passiveChannel((target.address() as net.AddressInfo).port, (e) => {
    events.push(e);
    if (e.event === 'data-open') opened();
  });
  const client = net.connect({ host: '127.0.0.1', port: channel.port, allowHalfOpen: true });
  client.on('error', () => undefined);
  cleanups.push(() => void client.destroy());
  await open;
  return { channel, client, events };
}

/** Writes `data` in 1 MiB pieces with back-pressure, then ends. */
function send(s: net.Socket, data: Buffer): void {
  let off = 0;
  const go = () => {
    while (off < data.length) {
      const piece = data.subarray(off, off + (1 << 20));
      off += piece.length;
      if (!s.write(piece)) return void s.once('drain', go);
    }
    s.end();
  };
  go();
}

/** Reads to EOF, stalling 15 ms after every 2 MiB so that the relay's writes to it back up. */
function stallingRead(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let sinceStall = 0;
  s.on('data', (d: Buffer) => {
    chunks.push(d);
    sinceStall += d.length;
    if (sinceStall >= 2 << 20) {
      sinceStall = 0;
      s.pause();
      setTimeout(() => s.resume(), 15);
    }
  });
  return new Promise((resolve) => s.once('end', () => resolve(Buffer.concat(chunks))));
}

test('a download through the relay arrives byte for byte when the reader keeps stalling', async () => {
  const data = randomBytes(32 << 20);
  const { channel, client, events } = await relayTo((s) => send(s, data));
  const got = await stallingRead(client);
  expect(got.length).toBe(data.length);
  expect(sha256(got)).toBe(sha256(data));
  await channel.settled(5_000, 'client');
  client.end();
  await channel.closed;
  expect(events.find((e) => e.event === 'data-close')).toMatchObject({ reason: 'complete', bytesUp: 0, bytesDown: data.length });
  // Grown read buffers are given back to the process-wide budget.
  expect(grownReadBuffers()).toBe(0);
});

test('an upload through the relay arrives byte for byte when the server keeps stalling', async () => {
  const data = randomBytes(32 << 20);
  let received!: Promise<Buffer>;
  const { channel, client, events } = await relayTo((s) => {
    received = stallingRead(s);
    void received.then(() => s.end());
  });
  send(client, data);
  client.resume();
  await channel.settled(5_000, 'server');
  const got = await received;
  expect(sha256(got)).toBe(sha256(data));
  await channel.closed;
  expect(events.find((e) => e.event === 'data-close')).toMatchObject({ reason: 'complete', bytesUp: data.length, bytesDown: 0 });
});

test("a client's FIN reaches the server as a half-close, and the server's reply still flows back", async () => {
  const reply = randomBytes(8 << 20);
  const { channel, client, events } = await relayTo((s) => {
    const heard: Buffer[] = [];
    s.on('data', (d: Buffer) => heard.push(d));
    // Only once the client's FIN has come through does the server answer.
    s.once('end', () => send(s, Buffer.concat([Buffer.from(`heard ${Buffer.concat(heard).toString()};`), reply])));
  });
  const got = stallingRead(client);
  client.end('hello');
  const all = await got;
  expect(all.subarray(0, 12).toString()).toBe('heard hello;');
  expect(sha256(all.subarray(12))).toBe(sha256(reply));
  await channel.closed;
  expect(events.find((e) => e.event === 'data-close')).toMatchObject({ reason: 'complete', bytesUp: 5, bytesDown: 12 + reply.length });
});

test('a reader that stops makes the relay stop reading: what it holds stays bounded by socket buffers', async () => {
  const size = 128 << 20;
  const block = randomBytes(1 << 20);
  let sent = 0;
  const { channel, client, events } = await relayTo((s) => {
    const go = () => {
      while (sent < size) {
        sent += block.length;
        if (!s.write(block)) return void s.once('drain', go);
      }
      s.end();
    };
    go();
  });
  client.pause();
  // Wait until the relay has stopped moving bytes (bounded: at most 10 s).
  let last = -1;
  for (let i = 0; i < 100 && channel.bytes !== last; i++) {
    last = channel.bytes;
    await sleep(100);
  }
  expect(channel.bytes).toBe(last);
  // Kernel buffers on loopback (tcp_wmem max 4 MiB on the relay's send side,
  // the paused client's receive queue) plus the relay's one read buffer: far
  // from the 128 MiB the server would send.
  expect(channel.bytes).toBeLessThan(64 << 20);
  expect(sent).toBeLessThan(size);
  // And the stalled transfer completes once the reader is back.
  let got = 0;
  client.on('data', (d: Buffer) => (got += d.length));
  const ended = new Promise((r) => client.once('end', r));
  client.resume();
  await ended;
  expect(got).toBe(size);
  client.end();
  await channel.closed;
  expect(events.find((e) => e.event === 'data-close')).toMatchObject({ reason: 'complete', bytesDown: size });
});

/** A passive channel on loopback in front of the target port, closed after the test. */
async function passiveChannel(targetPort: number, sink: (e: GatewayEvent) => void, dialEarly = false, more: Partial<DataChannelOptions> = {}) {
  const channel = await DataChannel.open({
    session: 't',
    mode: 'passive',
    listenHost: '127.0.0.1',
    pool: new PortPool(undefined),
    acceptFrom: () => true,
    acceptLabel: '127.0.0.1',
    dialTarget: { ...ipOf('127.0.0.1'), port: targetPort },
    acceptTimeoutMs: 5_000,
    idleTimeoutMs: 20_000,
    sink,
    dialEarly,
    ...more,
  });
  cleanups.push(() => channel.close('test over'));
  return channel;
}

/** A passive channel that dials early, in front of the target port (which nobody may listen on yet). */
const earlyChannel = (targetPort: number, events: GatewayEvent[] = []) => passiveChannel(targetPort, (e) => events.push(e), true);

function connectClient(port: number): net.Socket {
  const client = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  client.on('error', () => undefined);
  cleanups.push(() => void client.destroy());
  return client;
}

const readAll = (s: net.Socket) =>
  new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d)).once('end', () => resolve(Buffer.concat(chunks)));
  });

test('dialling early: the target has its connection before the client connects, and the relay then runs over it', async () => {
  const data = randomBytes(100_000);
  const connections: net.Socket[] = [];
  let first!: () => void;
  const dialled = new Promise<void>((r) => (first = r));
  const target = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    connections.push(s);
    first();
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => target.close(r)));
  const events: GatewayEvent[] = [];
  const channel = await earlyChannel((target.address() as net.AddressInfo).port, events);
  await dialled;
  expect(channel.state).toBe('listening');
  const client = connectClient(channel.port);
  const received = readAll(client);
  await new Promise((r) => client.once('connect', r));
  connections[0]!.end(data);
  expect(sha256(await received)).toBe(sha256(data));
  expect(connections).toHaveLength(1);
  expect(events.filter((e) => e.event === 'data-open')).toHaveLength(1);
});

test('dialling early: a target not listening yet is dialled again when the client comes, as without the early dial', async () => {
  // A port that refuses now: listen on it only after the channel has tried.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const events: GatewayEvent[] = [];
  const channel = await earlyChannel(port, events);
  const data = randomBytes(10_000);
  const target = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.end(data);
  });
  // The early dial must have been refused before the target listens, or this test shows nothing. A
  // probe dialled after it is refused after it: once the probe's refusal is in, so is the channel's
  // (reported in the same turn of the event loop at the latest).
  const probeRefused = new Promise<void>((r) => net.connect({ host: '127.0.0.1', port }).once('error', () => r()));
  await probeRefused;
  await new Promise((r) => setImmediate(r));
  await new Promise<void>((r) => target.listen(port, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => target.close(r)));
  const client = connectClient(channel.port);
  expect(sha256(await readAll(client))).toBe(sha256(data));
  expect(events.filter((e) => e.event === 'data-close')).toEqual([]);
});

test('dialling early: a channel closed before the client came closes its early connection to the target', async () => {
  let ended!: () => void;
  const closedAtTarget = new Promise<void>((r) => (ended = r));
  const target = net.createServer((s) => {
    s.on('error', () => undefined).on('close', () => ended());
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => target.close(r)));
  const channel = await earlyChannel((target.address() as net.AddressInfo).port);
  await new Promise((r) => target.once('connection', r));
  channel.close('replaced');
  await closedAtTarget;
});

test('transfers one after another reuse read buffers without mixing their bytes', async () => {
  for (let i = 0; i < 20; i++) {
    const data = randomBytes(1000 + i * 3000);
    const { client } = await relayTo((s) => s.end(data));
    expect(sha256(await readAll(client))).toBe(sha256(data));
  }
});

// The early dial binds the control connection's address on a source port it
// draws itself, not on port 0, whose port search grew to 4.9 ms per dial with
// the range full of TIME-WAIT sockets (bench/RESULTS.md, "port churn"). The
// range handed to the channel is one port wide, so the port the server sees
// shows which path was taken.

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

/** A channel that binds 127.0.0.1 on a port drawn from `dialPorts`, dialling early or when the client comes. */
async function drawingChannel(targetPort: number, dialPorts: EphemeralPorts | null, dialEarly = true) {
  const events: GatewayEvent[] = [];
  const channel = await passiveChannel(targetPort, (e) => events.push(e), dialEarly, { dialFrom: '127.0.0.1', dialPorts });
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
  const { channel } = await drawingChannel(server.port, { range: { lo: drawn, hi: drawn }, reserved: () => false });
  // Before any client: the early dial. Port 0 would have the kernel pick any of ~28,000.
  expect(await server.from).toBe(drawn);
  expect(await receive(channel.port)).toBe('listing');
  expect(server.connections()).toBe(1);
});

test('a drawn port that is taken: the dial tries again, then lets the kernel pick; one connection, the data flows', async () => {
  const server = await dataServer('file');
  const taken = await listening(net.createServer());
  const { channel, events } = await drawingChannel(server.port, { range: { lo: taken, hi: taken }, reserved: () => false });
  const from = await server.from;
  expect(from).not.toBe(taken);
  expect(await receive(channel.port)).toBe('file');
  expect(server.connections()).toBe(1);
  expect(await channel.closed).toBe('complete');
  expect(events.find((e) => e.event === 'data-close')).toMatchObject({ reason: 'complete' });
});

test('no range to draw from (null): port 0, as before', async () => {
  const server = await dataServer('x');
  const { channel } = await drawingChannel(server.port, null);
  expect(await server.from).toBeGreaterThan(0);
  expect(await receive(channel.port)).toBe('x');
});

test('the dial made when the client comes draws its port too; a taken one is drawn again, then the kernel picks', async () => {
  const server = await dataServer('late');
  const drawn = await freePort();
  const { channel } = await drawingChannel(server.port, { range: { lo: drawn, hi: drawn }, reserved: () => false }, false);
  const got = receive(channel.port);
  expect(await server.from).toBe(drawn);
  expect(await got).toBe('late');

  const again = await dataServer('late again');
  const taken = await listening(net.createServer());
  const second = await drawingChannel(again.port, { range: { lo: taken, hi: taken }, reserved: () => false }, false);
  const text = receive(second.channel.port);
  expect(await again.from).not.toBe(taken);
  expect(await text).toBe('late again');
  expect(again.connections()).toBe(1);
  expect(await second.channel.closed).toBe('complete');
});
