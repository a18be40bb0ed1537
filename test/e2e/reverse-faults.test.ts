/**
 * Bad input and failures through the reverse gateway: each gets a clear reply
 * or close, a refuse/session-close event with a reason, and other sessions
 * keep working.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import net from 'node:net';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { randomFile, sha256 } from '../helpers/tools.js';

const BIG = randomFile(32 << 20);

let server: DemoServer;
let gw: TestGateway;

beforeAll(async () => {
  server = await startDemoServer({ announceAddress: '100.64.0.2', files: { '/big.bin': BIG, '/small.txt': 'hello\r\n' } });
  gw = await startTestReverse(server.address.port, { 'max-line': 512 });
});
afterAll(async () => {
  await gw?.close();
  await server?.close();
});

async function login(): Promise<FtpClient> {
  const c = await FtpClient.connect('127.0.0.1', gw.port);
  await c.login();
  return c;
}

/** Another session, start to end: proves a fault stayed in its own session. */
async function healthyTransfer(): Promise<void> {
  const c = await login();
  const { data } = await c.transfer('PASV', 'RETR /small.txt');
  expect(data.toString()).toBe('hello\r\n');
  await c.quit();
}

describe('bounce protection (RFC 2577)', () => {
  test('PORT naming another address is refused with 500 and BOUNCE_ADDRESS', async () => {
    const c = await login();
    const r = await c.send('PORT 127,0,0,2,200,10');
    expect(r.code).toBe(500);
    expect(r.text).toMatch(/not your own/);
    const ev = await gw.log.waitFor('refuse', (e) => e.code === 'BOUNCE_ADDRESS');
    expect(ev.line).toBe('PORT 127,0,0,2,200,10');
    expect((await c.send('NOOP')).code).toBe(200);
    await c.quit();
  });

  test('EPRT to a privileged port is refused with 501 and PRIVILEGED_PORT', async () => {
    const c = await login();
    const r = await c.send('EPRT |1|127.0.0.1|21|');
    expect(r.code).toBe(501);
    await gw.log.waitFor('refuse', (e) => e.code === 'PRIVILEGED_PORT');
    await c.quit();
  });

  test('a refusal pipelined behind a forwarded command keeps reply order', async () => {
    const c = await login();
    c.socket.write('NOOP\r\nPORT 127,0,0,9,4,1\r\nSYST\r\n');
    expect((await c.read()).code).toBe(200);
    expect((await c.read()).code).toBe(500);
    expect((await c.read()).code).toBe(215);
    await c.quit();
  });
});

describe('passive replies', () => {
  test('a 227 announcing a foreign address is dialled at the server control address instead', async () => {
    const c = await login();
    const { data, setup } = await c.transfer('PASV', 'RETR /small.txt');
    expect(data.toString()).toBe('hello\r\n');
    expect(setup.text).toMatch(/\(127,0,0,1,\d+,\d+\)/);
    const ev = await gw.log.waitFor('refuse', (e) => e.code === 'FOREIGN_PASSIVE_ADDRESS');
    expect(ev.message).toContain('100.64.0.2');
    await c.quit();
  });

  test('a data connection from the wrong peer is closed, logged, and does not take the legitimate one', async () => {
    const c = await login();
    const pasv = await c.send('PASV');
    const port = Number(/(\d+),(\d+)\)/.exec(pasv.text)!.slice(1).reduce((hi, lo) => String(Number(hi) * 256 + Number(lo))));
    const intruder = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    const closed = new Promise<void>((r) => intruder.once('close', () => r()));
    intruder.on('error', () => undefined);
    await closed;
    await gw.log.waitFor('refuse', (e) => e.code === 'DATA_PEER_MISMATCH');
    const legit = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    legit.on('data', (d: Buffer) => chunks.push(d));
    const ended = new Promise<void>((r) => legit.once('end', () => r()));
    await new Promise<void>((r) => legit.once('connect', () => r()));
    const first = await c.send('RETR /small.txt', true);
    expect(first.code).toBe(150);
    await ended;
    expect((await c.read()).code).toBe(226);
    expect(Buffer.concat(chunks).toString()).toBe('hello\r\n');
    legit.destroy();
    await c.quit();
  });
});

describe('malformed input', () => {
  test('a command over the line cap gets 500 and LINE_TOO_LONG; the session goes on', async () => {
    const c = await login();
    c.socket.write(`STAT ${'x'.repeat(2000)}\r\n`);
    const r = await c.read();
    expect(r.code).toBe(500);
    expect(r.text).toMatch(/too long/);
    await gw.log.waitFor('refuse', (e) => e.code === 'LINE_TOO_LONG');
    expect((await c.send('NOOP')).code).toBe(200);
    await c.quit();
  });

  test('garbage and NUL bytes reach the server unchanged and get its error reply', async () => {
    const c = await login();
    c.socket.write(Buffer.from('\x00\x01GARBAGE\xff\xfe\x00 zz\r\n', 'latin1'));
    const r = await c.read();
    expect(r.code).toBeGreaterThanOrEqual(500);
    expect((await c.send('NOOP')).code).toBe(200);
    await c.quit();
    await healthyTransfer();
  });

  test('AUTH TLS is refused with 534 so that clients fall back to plain FTP', async () => {
    const c = await login();
    const r = await c.send('AUTH TLS');
    expect(r.code).toBe(534);
    await gw.log.waitFor('refuse', (e) => e.code === 'TLS_REFUSED');
    await c.quit();
  });
});

describe('peers that vanish', () => {
  test('a client that vanishes mid-transfer: session closed with a reason, data channel closed, others unaffected', async () => {
    const c = await login();
    const pasv = await c.send('EPSV');
    const port = Number(/\|\|\|(\d+)\|/.exec(pasv.text)![1]);
    const data = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((r) => data.once('connect', () => r()));
    data.pause(); // a slow reader: the gateway must hold back, not buffer 32 MiB
    const sessionId = gw.log.of('session-open').at(-1)!.session;
    await c.send('RETR /big.bin', true);
    await gw.log.waitFor('data-open', (e) => e.session === sessionId);
    c.socket.destroy();
    data.destroy();
    const closed = await gw.log.waitFor('session-close', (e) => e.session === sessionId);
    expect(closed.reason).toMatch(/client/);
    const dataClosed = await gw.log.waitFor('data-close', (e) => e.session === sessionId);
    expect(dataClosed.bytes).toBeLessThan(BIG.length);
    await healthyTransfer();
  });

  test('a big download through the gateway arrives whole after the faults above', async () => {
    const c = await login();
    const { data } = await c.transfer('EPSV', 'RETR /big.bin');
    expect(sha256(data)).toBe(sha256(BIG));
    await c.quit();
  });

  test('a server that vanishes mid-transfer: the client is closed, the session reports it, others unaffected', async () => {
    const doomed = await startDemoServer({ files: { '/big.bin': BIG } });
    const gw2 = await startTestReverse(doomed.address.port);
    try {
      const c = await FtpClient.connect('127.0.0.1', gw2.port);
      await c.login();
      const pasv = await c.send('EPSV');
      const port = Number(/\|\|\|(\d+)\|/.exec(pasv.text)![1]);
      const data = net.connect({ host: '127.0.0.1', port });
      data.on('error', () => undefined);
      await new Promise<void>((r) => data.once('connect', () => r()));
      data.pause();
      await c.send('RETR /big.bin', true);
      await gw2.log.waitFor('data-open');
      const clientClosed = new Promise<void>((r) => c.socket.once('close', () => r()));
      await doomed.close();
      await clientClosed;
      const closed = await gw2.log.waitFor('session-close');
      expect(closed.reason).toMatch(/server/);
      await gw2.log.waitFor('data-close');
      data.destroy();
    } finally {
      await gw2.close();
    }
    await healthyTransfer();
  });

  test('a server that cannot be reached gets the client a 421 naming nothing inside, not a hang', async () => {
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as net.AddressInfo).port;
    await new Promise((r) => dead.close(r));
    const gw2 = await startTestReverse(port);
    try {
      const c = await FtpClient.connect('127.0.0.1', gw2.port);
      const r = await c.read();
      expect(r.code).toBe(421);
      // The backend's address, port and errno are for the log, never for the client.
      expect(r.text).not.toContain(String(port));
      expect(r.text).not.toMatch(/127\.0\.0\.1|ECONNREFUSED/);
      const refused = await gw2.log.waitFor('refuse', (e) => e.code === 'SERVER_UNREACHABLE');
      expect(refused.message).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*ECONNREFUSED`));
      // session-open comes first, even for a session refused at once: the client's address is logged.
      const events = gw2.log.events.filter((e) => 'session' in e && e.session === refused.session).map((e) => e.event);
      expect(events[0]).toBe('session-open');
      c.close();
    } finally {
      await gw2.close();
    }
  });

  test('after all sessions end, the gateway holds no session and no data listener', async () => {
    await healthyTransfer();
    await Promise.all([...gw.gateway.sessions].map((s) => s.closed));
    expect(gw.gateway.sessions.size).toBe(0);
    const listens = gw.log.of('data-listen').length;
    const closes = gw.log.of('data-close').length;
    expect(closes).toBe(listens);
  });
});
