/**
 * Forward mode, explicit proxy, --tls terminate: hostile and broken clients
 * in the pre-login dialogue, where the gateway itself answers AUTH and runs
 * the handshake before any server is chosen. Each gets a clear reply or a
 * closed connection and an event with a reason code, within a bounded time;
 * the gateway goes on serving (a real FTPS download through it after each).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { writeFileSync } from 'node:fs';
import tls from 'node:tls';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { HAVE, randomFile, sha256, tempDir } from '../helpers/tools.js';
import { startTestForward, type TestGateway } from '../helpers/gateway.js';
import { Replies, afterAuthTls, connect, explicitTls } from '../helpers/control-replies.js';
import { curlFtps, makeCertificate } from '../e2e/ftps-fixtures.js';
import { freePort } from '../e2e/ops-process.js';

const FILE = randomFile(256 << 10);

describe('hostile clients before login at a forward --tls terminate gateway', () => {
  let dir: ReturnType<typeof tempDir>;
  let server: DemoServer;
  let gw: TestGateway;

  beforeAll(async () => {
    dir = tempDir();
    const cert = await makeCertificate(dir.path);
    writeFileSync(join(dir.path, 'f.bin'), FILE);
    server = await startDemoServer({ root: dir.path });
    // connect-timeout bounds the handshake; login-timeout the whole dialogue.
    gw = await startTestForward({ tls: 'terminate', 'tls-cert': cert.cert, 'tls-key': cert.key, 'connect-timeout': 2, 'login-timeout': 10 });
  });
  afterAll(async () => {
    await gw?.close();
    await server?.close();
    dir?.remove();
  });

  /** A whole FTPS download through the gateway: nothing before disturbed it. */
  async function stillServes(): Promise<void> {
    if (!HAVE.curl) return;
    const r = await curlFtps([`ftp://anonymous%40127.0.0.1%3A${server.address.port}:x@127.0.0.1:${gw.port}/f.bin`]);
    expect(r.stderr).toBe('');
    expect(sha256(r.stdout)).toBe(sha256(FILE));
  }

  /** The refusal with this code and message, and its session's close. */
  async function refusalAndClose(code: string, message: RegExp) {
    const refusal = await gw.log.waitFor('refuse', (e) => e.code === code && message.test(e.message));
    const close = await gw.log.waitFor('session-close', (e) => e.session === refusal.session);
    return { refusal, close };
  }

  test('garbage instead of a ClientHello after 234: closed, TLS_HANDSHAKE_FAILED', async () => {
    const { plain, replies: r } = await afterAuthTls(gw.port);
    plain.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await r.next()).toBe('closed');
    const { refusal, close } = await refusalAndClose('TLS_HANDSHAKE_FAILED', /client failed/);
    expect(refusal.kind).toBe('tls');
    expect(close.reason).toMatch(/^TLS_HANDSHAKE_FAILED: TLS handshake with the client failed/);
    await stillServes();
  });

  test('a client that never starts its handshake after 234 is closed after --connect-timeout, with an event', async () => {
    const { replies } = await afterAuthTls(gw.port);
    expect(await replies.next(15_000)).toBe('closed');
    await refusalAndClose('TLS_HANDSHAKE_FAILED', /not completed within 2000 ms/);
    await stillServes();
  });

  test('a client that vanishes in the middle of its handshake: the session closes, the gateway goes on', async () => {
    const { plain } = await afterAuthTls(gw.port);
    const opened = gw.log.of('session-close').length;
    // The first bytes of a ClientHello record, then gone.
    const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
    plain.write(hello);
    plain.destroy();
    const close = await gw.log.waitFor('session-close', () => gw.log.of('session-close').length > opened);
    // Noticed when it left, not when the handshake timed out.
    expect(close.reason).not.toMatch(/not completed within/);
    // session-open first, as for every session; one refusal with its code; then the close.
    expect(gw.log.events.filter((e) => 'session' in e && e.session === close.session).map((e) => e.event)).toEqual(['session-open', 'refuse', 'session-close']);
    await stillServes();
  });

  test('clear-text commands pipelined behind AUTH are never run: closed with TLS_HANDSHAKE_FAILED', async () => {
    const plain = await connect(gw.port);
    const r = new Replies(plain);
    expect(await r.next()).toMatch(/^220/);
    plain.write(`AUTH TLS\r\nUSER anonymous@127.0.0.1:${server.address.port}\r\n`);
    expect(await r.next()).toMatch(/^234/);
    expect(await r.next()).toBe('closed');
    await refusalAndClose('TLS_HANDSHAKE_FAILED', /clear-text bytes after AUTH/);
    expect(gw.log.of('rewrite').filter((e) => e.kind === 'USER').length).toBe(gw.log.of('session-open').length - gw.log.of('refuse').length);
  });

  test('AUTH TLS twice: the second gets 503 inside TLS, and the login goes on', async () => {
    const r = await explicitTls(gw.port);
    expect(await r.command('AUTH TLS')).toMatch(/^503 /);
    expect(await r.command(`USER anonymous@127.0.0.1:${server.address.port}`)).toMatch(/^331 /);
    expect(await r.command('PASS x')).toMatch(/^230 /);
    expect(await r.command('QUIT')).toMatch(/^221 /);
  });

  test('USER name@host with a denied or unreachable destination: inside TLS the same refusal as in clear text', async () => {
    const closedPort = await freePort();
    for (const [dest, code] of [
      ['100.64.0.9:21', 'DESTINATION_NOT_ALLOWED'],
      [`127.0.0.1:${closedPort}`, 'SERVER_UNREACHABLE'],
    ] as const) {
      const clear = new Replies(await connect(gw.port));
      expect(await clear.next()).toMatch(/^220/);
      const inClear = await clear.command(`USER anonymous@${dest}`);
      const secure = await explicitTls(gw.port);
      const inTls = await secure.command(`USER anonymous@${dest}`);
      expect(inClear).toMatch(/^(421|530) /);
      expect(inTls).toBe(inClear);
      expect(await secure.next()).toBe('closed');
      await gw.log.waitFor('refuse', (e) => e.code === code);
    }
    await stillServes();
  });

  test('a forged record after the handshake (bad MAC): the session ends on it, not at --login-timeout', async () => {
    const { plain } = await afterAuthTls(gw.port);
    plain.removeAllListeners('data');
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    secure.on('error', () => undefined);
    expect(await new Replies(secure).command('FEAT')).toMatch(/^211/);
    const before = gw.log.of('session-close').length;
    const closed = gw.log.waitFor('session-close', () => gw.log.of('session-close').length > before, 20_000);
    // An application-data record whose MAC cannot check out.
    plain.write(Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20, ...Buffer.alloc(32, 0x41)]));
    const close = await closed;
    expect(close.reason).not.toMatch(/timeout|within/i);
    await stillServes();
  });
});
