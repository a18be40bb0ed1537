/**
 * Renewed certificates: put in place, announced with SIGHUP, seen by the
 * next session; a pair that does not load leaves the old one in use.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import net from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { listeningPort, startGatewayProcess } from './ops-process.js';
import { tempDir } from '../helpers/tools.js';
import { makeCertificate } from './ftps-fixtures.js';

let server: DemoServer;
const dir = tempDir('ftp-alg-cert-reload-');

beforeAll(async () => {
  server = await startDemoServer({});
});
afterAll(async () => {
  await server?.close();
  dir.remove();
});

/** Reads until a complete reply line with this code. */
function expectReply(socket: net.Socket, code: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      if (new RegExp(`^${code} .*\\r\\n`, 'm').test(text)) {
        socket.off('data', onData);
        resolve();
      } else if (/^[45]\d\d /m.test(text)) reject(new Error(`expected ${code}, got ${text}`));
    };
    socket.on('data', onData);
  });
}

/** The certificate a client sees after AUTH TLS on a new session. */
async function certificateSeen(port: number): Promise<string> {
  const socket = net.connect({ host: '127.0.0.1', port });
  try {
    await expectReply(socket, '220');
    const auth = expectReply(socket, '234');
    socket.write('AUTH TLS\r\n');
    await auth;
    const secure = tls.connect({ socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    const fingerprint = secure.getPeerCertificate().fingerprint256;
    secure.destroy();
    return fingerprint;
  } finally {
    socket.destroy();
  }
}

const fingerprintOf = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;

test('SIGHUP re-reads the certificate for new sessions; a pair that does not load leaves the old one', async () => {
  const a = await makeCertificate(dir.path, 'a');
  const b = await makeCertificate(dir.path, 'b');
  const cert = join(dir.path, 'live.crt');
  const key = join(dir.path, 'live.key');
  copyFileSync(a.cert, cert);
  copyFileSync(a.key, key);
  const gw = startGatewayProcess(['reverse', '--listen', '127.0.0.1:0', '--server', `127.0.0.1:${server.address.port}`, '--public-address', '127.0.0.1', '--tls', 'terminate', '--tls-cert', cert, '--tls-key', key]);
  try {
    const port = await listeningPort(gw);
    expect(await certificateSeen(port)).toBe(fingerprintOf(a.cert));
    copyFileSync(b.cert, cert);
    copyFileSync(b.key, key);
    gw.child.kill('SIGHUP');
    await gw.waitFor((e) => e.event === 'reopen', 'reopen event');
    expect(await certificateSeen(port)).toBe(fingerprintOf(b.cert));
    writeFileSync(cert, 'not a certificate\n');
    gw.child.kill('SIGHUP');
    await gw.waitFor((e) => e.event === 'warning' && /certificate not re-read, the old one stays in use/.test(String(e.message)), 'certificate warning');
    expect(await certificateSeen(port)).toBe(fingerprintOf(b.cert));
    expect(gw.child.exitCode).toBeNull();
  } finally {
    await gw.kill();
  }
});
