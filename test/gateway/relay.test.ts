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
import { DataChannel, grownReadBuffers } from '../../src/gateway/data.js';
import type { GatewayEvent } from '../../src/gateway/events.js';
import { PortPool } from '../../src/gateway/ports.js';
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
  const channel = await DataChannel.open({
    session: 't',
    mode: 'passive',
    listenHost: '127.0.0.1',
    pool: new PortPool(undefined),
    acceptFrom: () => true,
    acceptLabel: '127.0.0.1',
    dialTarget: { ...ipOf('127.0.0.1'), port: (target.address() as net.AddressInfo).port },
    acceptTimeoutMs: 5_000,
    idleTimeoutMs: 20_000,
    sink: (e) => {
      events.push(e);
      if (e.event === 'data-open') opened();
    },
  });
  cleanups.push(() => channel.close('test over'));
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
