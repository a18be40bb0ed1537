/**
 * Hostile or broken PROXY headers on control connections: split into
 * one-byte segments, missing from a trusted source, malformed, oversized,
 * and sent by a source that is not trusted. The gateway stays up, says
 * nothing to a broken balancer, and never takes an untrusted header's word.
 * Then on passive data connections from the trusted balancer: never
 * finished, oversized, a flood of silent connections, a flood of headers
 * naming other clients; each is refused with its code and the listener
 * keeps waiting for the session's own client.
 */
import { afterEach, beforeAll, afterAll, expect, test } from 'vitest';
import net from 'node:net';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { encodeProxyHeader, PROXY_V2_SIGNATURE } from '../../src/protocol/proxy-header.js';
import { find227 } from '../../src/protocol/endpoint.js';
import { MAX_PENDING_HEADERS } from '../../src/gateway/data-proxy-in.js';
import { ipOf } from '../../src/protocol/address.js';
import { startTestForward, startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { startFakeBalancer } from '../helpers/proxy-protocol.js';

const BALANCER = '127.0.0.3';
let server: DemoServer;
let gw: TestGateway;
const cleanup: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  server = await startDemoServer({ files: { '/f.txt': 'hello' } });
  // A 3 s accept window for data connections: their headers get half of it.
  gw = await startTestReverse(server.address.port, { 'proxy-protocol-from': `${BALANCER}/32`, 'login-timeout': 1, 'data-timeout': 3 });
});
afterAll(async () => {
  await gw?.close();
  await server?.close();
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** Connects from `from`, writes `bytes`, and resolves with everything received until the gateway closes. */
function rawExchange(from: string, bytes: Buffer, end = false, port = gw.port): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port, localAddress: from }, () => {
      if (bytes.length) s.write(bytes);
      if (end) s.end();
    });
    s.on('data', (d) => got.push(d));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(got)));
  });
}

const refusals = (pattern: RegExp) => gw.log.of('refuse').filter((e) => e.code === 'PROXY_HEADER' && pattern.test(e.message));

for (const version of [1, 2] as const) {
  test(`a v${version} header split into one-byte segments is read whole`, async () => {
    const lb = await startFakeBalancer(
      gw.port,
      BALANCER,
      (client) => encodeProxyHeader(version, { source: { family: 4, address: '127.0.0.1', port: client.remotePort! }, destination: { ...ipOf(client.localAddress!), port: client.localPort! } }),
      1,
    );
    cleanup.push(() => lb.close());
    const c = await FtpClient.connect('127.0.0.1', lb.port);
    cleanup.push(() => c.close());
    await c.login();
    expect((await c.transfer('PASV', 'RETR /f.txt')).data.toString()).toBe('hello');
  });
}

test('a trusted source that sends no header is closed silently when the login timeout ends', async () => {
  const got = await rawExchange(BALANCER, Buffer.alloc(0));
  expect(got.length).toBe(0);
  expect(refusals(/no PROXY header within 1000 ms/)).toHaveLength(1);
});

test('a trusted source that starts with FTP instead of a header is closed silently', async () => {
  const got = await rawExchange(BALANCER, Buffer.from('USER anonymous\r\n'));
  expect(got.length).toBe(0);
  expect(refusals(/no PROXY protocol signature/)).toHaveLength(1);
});

test('a truncated header followed by FIN, and an oversized v2 header, are refused', async () => {
  expect((await rawExchange(BALANCER, Buffer.from('PROXY TCP4 1.2.3.4'), true)).length).toBe(0);
  expect(refusals(/closed before its PROXY header/)).toHaveLength(1);
  const huge = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
  expect((await rawExchange(BALANCER, huge)).length).toBe(0);
  expect(refusals(/over the limit of 4096/)).toHaveLength(1);
  // The gateway is still there for the next one.
  const c = await FtpClient.connect('127.0.0.1', gw.port);
  cleanup.push(() => c.close());
  await c.login();
});

test('an untrusted source that sends a header is refused with a 500 and closed: its header is neither believed nor passed on', async () => {
  const header = encodeProxyHeader(1, { source: { family: 4, address: '198.18.0.66', port: 1234 }, destination: { family: 4, address: '127.0.0.1', port: gw.port } });
  const got = (await rawExchange('127.0.0.4', header)).toString('latin1');
  // The greeting may or may not have come first; the last words are ours.
  expect(got).toMatch(/500 PROXY protocol header refused: this address is not a trusted load balancer\r\n$/);
  const refusal = await gw.log.waitFor('refuse', (e) => e.code === 'PROXY_HEADER_UNTRUSTED');
  expect(refusal.message).toMatch(/^PROXY v1 header from 127\.0\.0\.4:\d+, which is not in --proxy-protocol-from; closed$/);
  // Nothing of it reached the server.
  expect(gw.log.of('control').filter((e) => e.direction === 'client->server' && e.line.startsWith('PROXY'))).toEqual([]);
});

test('an untrusted v2 header split across segments is refused before its QUIT reaches the server', async () => {
  const header = encodeProxyHeader(2, { source: { family: 4, address: '198.18.0.66', port: 1234 }, destination: { family: 4, address: '127.0.0.1', port: gw.port } });
  const got: Buffer[] = [];
  const s = net.connect({ host: '127.0.0.1', port: gw.port, localAddress: '127.0.0.5' });
  cleanup.push(() => void s.destroy());
  s.on('data', (d) => got.push(d));
  s.on('error', () => undefined);
  await new Promise((r) => s.once('connect', r));
  s.setNoDelay(true);
  s.write(header.subarray(0, 3));
  await gw.log.waitFor('session-open', (e) => /^127\.0\.0\.5:/.test(e.client));
  s.write(header.subarray(3));
  await new Promise((r) => s.once('close', r));
  expect(Buffer.concat(got).toString('latin1')).toMatch(/500 PROXY protocol header refused/);
  const refusal = await gw.log.waitFor('refuse', (e) => e.code === 'PROXY_HEADER_UNTRUSTED' && /127\.0\.0\.5/.test(e.message));
  expect(refusal.line).toBe('PROXY v2 signature');
  expect(gw.log.of('control').filter((e) => e.direction === 'client->server' && /QUIT/.test(e.line))).toEqual([]);
});

// The dialogues that greet the client themselves (reverse --balance user, forward explicit) read its first bytes before any control stream.
for (const [title, start] of [
  ['reverse --balance user', () => startTestReverse(server.address.port, { balance: 'user' })],
  ['forward explicit', () => startTestForward()],
] as const) {
  test(`${title}: an untrusted PROXY header is refused by the login dialogue (500, then close)`, async () => {
    const g = await start();
    cleanup.push(() => g.close());
    const header = encodeProxyHeader(2, { source: { family: 4, address: '198.18.0.66', port: 1234 }, destination: { family: 4, address: '127.0.0.1', port: g.port } });
    const got = (await rawExchange('127.0.0.6', header, false, g.port)).toString('latin1');
    expect(got).toMatch(/^220 .*\r\n500 PROXY protocol header refused: this address is not a trusted load balancer\r\n$/);
    const refusal = await g.log.waitFor('refuse', (e) => e.code === 'PROXY_HEADER_UNTRUSTED');
    expect(refusal.message).toMatch(/^PROXY v2 header from 127\.0\.0\.6:\d+, which is not in --proxy-protocol-from; closed$/);
  });
}

// ---- data connections ----------------------------------------------------

/** A session from 127.0.0.1 (not through the balancer) and the port its PASV opened. */
async function passive(): Promise<{ c: FtpClient; port: number; session: string }> {
  const c = await FtpClient.connect('127.0.0.1', gw.port);
  cleanup.push(() => c.close());
  await c.login();
  const setup = await c.expect('PASV', (code) => code === 227);
  const listen = gw.log.of('data-listen').at(-1)!;
  return { c, port: find227(setup.text)!.endpoint.port, session: listen.session };
}

/** A connection from the balancer's address straight to the data port. */
function fromBalancer(port: number, first?: Buffer): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: BALANCER }, () => {
      if (first) s.write(first);
      resolve(s);
    });
    s.on('error', () => undefined);
    s.once('error', reject);
    cleanup.push(() => void s.destroy());
  });
}

const closed = (s: net.Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));

const headerFor = (address: string, port: number) =>
  encodeProxyHeader(2, { source: { family: 4, address, port: 40000 }, destination: { family: 4, address: '127.0.0.1', port } });

/** RETR through a balancer connection that names the session's client: the listener still takes it. */
async function retrieve(c: FtpClient, port: number): Promise<string> {
  const data = await fromBalancer(port, headerFor('127.0.0.1', port));
  const got: Buffer[] = [];
  data.on('data', (d: Buffer) => got.push(d));
  const done = closed(data);
  const first = await c.send('RETR /f.txt', true);
  expect(first.code).toBe(150);
  await done;
  expect((await c.read()).code).toBe(226);
  return Buffer.concat(got).toString();
}

const dataRefusals = (session: string, code: string) => gw.log.of('refuse').filter((e) => e.session === session && e.code === code);

test('a header never finished is refused after half the accept window; the client that comes next is served', async () => {
  const { c, port, session } = await passive();
  const stuck = await fromBalancer(port, Buffer.from('PROXY TCP4 127.0.0.1'));
  const refused = await gw.log.waitFor('refuse', (e) => e.session === session && e.code === 'PROXY_HEADER');
  expect(refused.message).toMatch(/^data connection from 127\.0\.0\.3:\d+: no PROXY header within 1500 ms from a --proxy-protocol-from source; closed$/);
  await closed(stuck);
  expect(await retrieve(c, port)).toBe('hello');
});

test('oversized headers (v2 length, v1 without an end) are refused at once, not buffered', async () => {
  const { c, port, session } = await passive();
  const huge = await fromBalancer(port, Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff]), Buffer.alloc(1000)]));
  const long = await fromBalancer(port, Buffer.concat([Buffer.from('PROXY TCP4 '), Buffer.alloc(4000, 0x31)]));
  await Promise.all([closed(huge), closed(long)]);
  const messages = dataRefusals(session, 'PROXY_HEADER').map((e) => e.message);
  expect(messages.some((m) => /v2 header of 65551 bytes is over the limit of 4096/.test(m))).toBe(true);
  expect(messages.some((m) => /v1 header longer than 107 bytes/.test(m))).toBe(true);
  expect(await retrieve(c, port)).toBe('hello');
});

test(`a flood of silent connections holds at most ${MAX_PENDING_HEADERS} headers in reading; the rest are closed at once`, async () => {
  const { c, port, session } = await passive();
  const flood = await Promise.all(Array.from({ length: 30 }, () => fromBalancer(port)));
  await gw.log.waitFor('refuse', () => dataRefusals(session, 'PROXY_HEADER').length >= 30 - MAX_PENDING_HEADERS);
  const busy = dataRefusals(session, 'PROXY_HEADER').filter((e) => /already 8 PROXY headers being read on this port/.test(e.message));
  expect(busy).toHaveLength(30 - MAX_PENDING_HEADERS);
  // The ones being read give up (FIN): their slots come back, and the real one is served.
  for (const s of flood) s.end();
  await gw.log.waitFor('refuse', () => dataRefusals(session, 'PROXY_HEADER').length >= 30);
  expect(dataRefusals(session, 'PROXY_HEADER').filter((e) => /closed before its PROXY header/.test(e.message))).toHaveLength(MAX_PENDING_HEADERS);
  expect(await retrieve(c, port)).toBe('hello');
});

test('a flood of valid headers naming other clients: each refused by the data-peer check, none relayed', async () => {
  const { c, port, session } = await passive();
  const intruders = await Promise.all(Array.from({ length: 40 }, (_, i) => fromBalancer(port, headerFor(`198.18.0.${10 + i}`, port))));
  await Promise.all(intruders.map(closed));
  const mismatches = dataRefusals(session, 'DATA_PEER_MISMATCH');
  expect(mismatches).toHaveLength(40);
  for (const e of mismatches) expect(e.message).toMatch(/^data connection from 198\.18\.0\.\d+:40000 \(PROXY header from 127\.0\.0\.3:\d+\), expected 127\.0\.0\.1; closed$/);
  expect(gw.log.of('data-open').filter((e) => e.session === session && !e.from.startsWith('127.0.0.1:'))).toEqual([]);
  expect(await retrieve(c, port)).toBe('hello');
});
