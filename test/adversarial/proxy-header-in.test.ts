/**
 * Hostile or broken PROXY headers on control connections: split into
 * one-byte segments, missing from a trusted source, malformed, oversized,
 * and sent by a source that is not trusted. The gateway stays up, says
 * nothing to a broken balancer, and never takes an untrusted header's word.
 */
import { afterEach, beforeAll, afterAll, expect, test } from 'vitest';
import net from 'node:net';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { encodeProxyHeader, PROXY_V2_SIGNATURE } from '../../src/protocol/proxy-header.js';
import { ipOf } from '../../src/protocol/address.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { startFakeBalancer } from '../helpers/proxy-protocol.js';

const BALANCER = '127.0.0.3';
let server: DemoServer;
let gw: TestGateway;
const cleanup: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  server = await startDemoServer({ files: { '/f.txt': 'hello' } });
  gw = await startTestReverse(server.address.port, { 'proxy-protocol-from': `${BALANCER}/32`, 'login-timeout': 1 });
});
afterAll(async () => {
  await gw?.close();
  await server?.close();
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** Connects from `from`, writes `bytes`, and resolves with everything received until the gateway closes. */
function rawExchange(from: string, bytes: Buffer, end = false): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port: gw.port, localAddress: from }, () => {
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
