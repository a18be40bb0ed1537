/**
 * Hostile and broken TLS peers: each gets a clear reply or a closed
 * connection and an event with a reason code, and nothing else is
 * disturbed: a good session running alongside completes.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { HAVE, randomFile, sha256, tempDir } from '../helpers/tools.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { curlFtps, makeCertificate, type TestCertificate } from '../e2e/ftps-fixtures.js';
import { Replies, afterAuthTls, connect, explicitTls } from '../helpers/control-replies.js';

describe('hostile TLS peers at a --tls terminate gateway', () => {
  let dir: ReturnType<typeof tempDir>;
  let server: DemoServer;
  let gw: TestGateway;
  let cert: TestCertificate;
  const content = randomFile(4 << 20);

  beforeAll(async () => {
    dir = tempDir();
    cert = await makeCertificate(dir.path);
    writeFileSync(join(dir.path, 'f.bin'), content);
    server = await startDemoServer({ root: dir.path, announceAddress: '100.64.0.2' });
    gw = await startTestReverse(server.address.port, { tls: 'terminate', 'tls-cert': cert.cert, 'tls-key': cert.key, 'connect-timeout': 2, 'data-timeout': 2 });
  });
  afterAll(async () => {
    await gw?.close();
    await server?.close();
    dir?.remove();
  });

  test.skipIf(!HAVE.curl)('garbage instead of a ClientHello after 234: closed, TLS_HANDSHAKE_FAILED; a good session alongside completes', async () => {
    const good = curlFtps(['--limit-rate', '8M', gw.url('/f.bin')]);
    const { plain, replies: r } = await afterAuthTls(gw.port);
    plain.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await r.next()).toBe('closed');
    const refusal = await gw.log.waitFor('refuse', (e) => e.code === 'TLS_HANDSHAKE_FAILED' && /client failed/.test(e.message));
    const close = await gw.log.waitFor('session-close', (e) => e.session === refusal.session);
    // The session ends for the reason the refusal gives, not as a bare socket error.
    expect(close.reason).toMatch(/^TLS handshake with the client failed/);
    const done = await good;
    expect(done.stderr).toBe('');
    expect(sha256(done.stdout)).toBe(sha256(content));
  });

  test('a client that rejects our certificate: the session ends with TLS_HANDSHAKE_FAILED', async () => {
    const before = gw.log.events.length;
    const { plain } = await afterAuthTls(gw.port);
    plain.removeAllListeners('data');
    // Verification on (the system CAs): a self-signed certificate is refused by the client.
    const secure = tls.connect({ socket: plain, servername: 'ftp.example.org' });
    const err = await new Promise<Error>((resolve) => secure.once('error', resolve));
    expect(err.message).toMatch(/self.signed|certificate/i);
    const refusal = await gw.log.waitFor('refuse', (e) => e.code === 'TLS_HANDSHAKE_FAILED' && gw.log.events.indexOf(e) >= before, 5_000);
    await gw.log.waitFor('session-close', (e) => e.session === refusal.session);
  });

  test('PROT P, then clear text on the data connection: the channel is refused with a code, the session goes on', async () => {
    const { r, raw: data } = await protectedPassive(gw.port);
    r.socket.write('RETR f.bin\r\n');
    data.write('this is not a TLS record\r\n');
    const refusal = await gw.log.waitFor('refuse', (e) => e.code === 'TLS_HANDSHAKE_FAILED' && /client on the data connection/.test(e.message));
    expect(refusal.kind).toBe('data-passive');
    // The transfer's own replies, whatever the server made of the lost connection; then the session still answers.
    const replies: string[] = [];
    for (let i = 0; i < 3 && !replies.some((x) => /^(226|4\d\d|5\d\d)/.test(x)); i++) replies.push(await r.next());
    expect(replies.some((x) => /^(226|4\d\d)/.test(x))).toBe(true);
    expect(await r.command('NOOP')).toMatch(/^200/);
    r.socket.destroy();
  });

  test('PROT P, then a forged record in an upload after the handshake: the channel ends on it, not at a timeout', async () => {
    const { r, raw } = await protectedPassive(gw.port);
    const data = tls.connect({ socket: raw, rejectUnauthorized: false });
    data.on('error', () => undefined);
    await new Promise<void>((resolve) => data.once('secureConnect', () => resolve()));
    r.socket.write('STOR forged-upload.bin\r\n');
    expect(await r.next()).toMatch(/^150/);
    const open = await gw.log.waitFor('data-open', (e) => e.mode === 'passive');
    // Some good records, then one whose MAC cannot check out, under the client's TLS layer. The
    // gateway only reads from this socket (an upload): nothing it writes would surface the error.
    await new Promise<void>((resolve) => data.write(Buffer.alloc(64 << 10, 0x42), () => resolve()));
    raw.write(Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20, ...Buffer.alloc(32, 0x41)]));
    const closed = await gw.log.waitFor('data-close', (e) => e.session === open.session, 10_000);
    expect(closed.reason).not.toMatch(/timeout|timed out|within|idle/i);
    // The transfer's own reply, whatever the server made of the cut upload; then the session still answers.
    expect(await r.next()).toMatch(/^(226|4\d\d|5\d\d)/);
    expect(await r.command('NOOP')).toMatch(/^200/);
    data.destroy();
    r.socket.destroy();
  });
});

/**
 * Logged in over explicit TLS with PBSZ 0, PROT P and TYPE I, after PASV:
 * the control replies and a plain TCP connection to the data port.
 */
async function protectedPassive(port: number): Promise<{ r: Replies; raw: Socket }> {
  const r = await explicitTls(port);
  const user = await r.command('USER anonymous');
  if (user.startsWith('331')) expect(await r.command('PASS x@example.org')).toMatch(/^230/);
  else expect(user).toMatch(/^230/);
  expect(await r.command('PBSZ 0')).toBe('200 PBSZ=0');
  expect(await r.command('PROT P')).toMatch(/^200/);
  expect(await r.command('TYPE I')).toMatch(/^200/);
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(await r.command('PASV'))!;
  const raw = await connect(Number(m[5]) * 256 + Number(m[6]));
  raw.on('error', () => undefined);
  return { r, raw };
}

/**
 * A server that does FTPS on its control connection but never completes a
 * TLS handshake on its data connections (a hung or broken server).
 */
async function startStuckServer(cert: TestCertificate): Promise<{ port: number; close: () => Promise<void> }> {
  const context = tls.createSecureContext({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) });
  const sockets = new Set<Socket>();
  const listeners = new Set<net.Server>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  };
  const srv = net.createServer((plain) => {
    track(plain);
    let control: Socket = plain;
    let dataClosed: Promise<void> | undefined;
    const reply = (line: string) => control.write(`${line}\r\n`);
    const onLine = async (line: string) => {
      const verb = line.split(' ')[0]!.toUpperCase();
      if (verb === 'AUTH') {
        reply('234 go');
        plain.removeAllListeners('data');
        control = new tls.TLSSocket(plain, { isServer: true, secureContext: context });
        track(control);
        listen(control);
      } else if (verb === 'USER') reply('331 pass');
      else if (verb === 'PASS') reply('230 in');
      else if (verb === 'PASV') {
        const l = net.createServer((d) => {
          track(d); // accepted and read, never answered: no ServerHello ever comes
          d.resume();
          dataClosed = new Promise((resolve) => d.on('close', () => resolve()));
        });
        listeners.add(l);
        await new Promise<void>((resolve) => l.listen(0, '127.0.0.1', resolve));
        const p = (l.address() as net.AddressInfo).port;
        reply(`227 Entering Passive Mode (127,0,0,1,${p >> 8},${p & 255})`);
      } else if (verb === 'RETR') {
        reply('150 sending');
        await dataClosed;
        reply('426 Connection closed; transfer aborted');
      } else if (verb === 'QUIT') reply('221 bye');
      else reply('200 ok');
    };
    const listen = (s: Socket) => {
      let buf = '';
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i).replace(/\r$/, '');
          buf = buf.slice(i + 1);
          void onLine(line);
        }
      });
    };
    listen(plain);
    reply('220 stuck FTPS server');
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      for (const l of listeners) l.close();
      await new Promise((resolve) => srv.close(resolve));
    },
  };
}

describe.skipIf(!HAVE.curl)('a server that never completes a data handshake', () => {
  let dir: ReturnType<typeof tempDir>;
  let stuck: Awaited<ReturnType<typeof startStuckServer>>;
  let gw: TestGateway;

  beforeAll(async () => {
    dir = tempDir();
    const cert = await makeCertificate(dir.path);
    stuck = await startStuckServer(cert);
    gw = await startTestReverse(stuck.port, {
      tls: 'terminate',
      'tls-cert': cert.cert,
      'tls-key': cert.key,
      'server-tls': 'explicit',
      'server-ca': cert.cert,
      'data-timeout': 2,
    });
  });
  afterAll(async () => {
    await gw?.close();
    await stuck?.close();
    dir?.remove();
  });

  test('the data channel gives up with TLS_HANDSHAKE_FAILED, the client gets the failure reply', async () => {
    const r = await curlFtps(['--disable-epsv', '--max-time', '20', gw.url('/f.bin')]);
    expect(r.code).not.toBe(0);
    const refusal = await gw.log.waitFor('refuse', (e) => e.code === 'TLS_HANDSHAKE_FAILED');
    expect(refusal.message).toMatch(/server on the data connection/);
    expect(gw.log.of('control').some((e) => e.line.startsWith('426'))).toBe(true);
  });
});

describe.skipIf(!HAVE.curl)('a server whose certificate does not verify', () => {
  let dir: ReturnType<typeof tempDir>;
  let server: DemoServer;
  let ftpsServer: TestGateway;
  let gw: TestGateway;

  beforeAll(async () => {
    dir = tempDir();
    const real = await makeCertificate(dir.path, 'real');
    const other = await makeCertificate(dir.path, 'other');
    server = await startDemoServer({ root: dir.path });
    // An implicit-FTPS server: the built-in server behind a gateway of ours with the "real" certificate.
    ftpsServer = await startTestReverse(server.address.port, { tls: 'terminate', 'tls-cert': real.cert, 'tls-key': real.key, 'implicit-tls': true });
    gw = await startTestReverse(ftpsServer.port, { tls: 'terminate', 'tls-cert': other.cert, 'tls-key': other.key, 'server-tls': 'implicit', 'server-ca': other.cert });
  });
  afterAll(async () => {
    await gw?.close();
    await ftpsServer?.close();
    await server?.close();
    dir?.remove();
  });

  test('the client gets 421 and the refusal says why, with TLS_HANDSHAKE_FAILED', async () => {
    const r = await curlFtps([gw.url('/')]);
    expect(r.code).not.toBe(0);
    const refusal = await gw.log.waitFor('refuse', (e) => e.code === 'TLS_HANDSHAKE_FAILED');
    expect(refusal.message).toMatch(/TLS to the server failed: .*(self.signed|certificate)/i);
    expect(gw.log.of('control')).toEqual([]);
    const close = await gw.log.waitFor('session-close');
    expect(close.reason).toMatch(/TLS_HANDSHAKE_FAILED/);
  });
});
