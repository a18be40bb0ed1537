/**
 * Implicit FTPS (port 990 style) on both sides: gateway A speaks TLS from
 * the first byte to its clients, in front of a plain server; gateway B
 * speaks explicit FTPS to its clients and implicit FTPS to A, verifying A's
 * certificate. Everything B's clients get went through two TLS ends.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { HAVE, randomFile, run, sha256, tempDir } from '../helpers/tools.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { curlFtps, ftplibTls, makeCertificate } from './ftps-fixtures.js';

describe('--implicit-tls listener and --server-tls implicit', () => {
  let dir: ReturnType<typeof tempDir>;
  let server: DemoServer;
  let implicitGw: TestGateway;
  let chainGw: TestGateway;
  const content = randomFile(1 << 20);

  beforeAll(async () => {
    dir = tempDir();
    const certA = await makeCertificate(dir.path, 'a');
    const certB = await makeCertificate(dir.path, 'b');
    writeFileSync(join(dir.path, 'f.bin'), content);
    server = await startDemoServer({ root: dir.path, announceAddress: '100.64.0.2' });
    // connect-timeout also bounds the client's handshake: a clear client waiting for a greeting is cut off after 2 s.
    implicitGw = await startTestReverse(server.address.port, { tls: 'terminate', 'tls-cert': certA.cert, 'tls-key': certA.key, 'implicit-tls': true, 'connect-timeout': 2 });
    chainGw = await startTestReverse(implicitGw.port, {
      tls: 'terminate',
      'tls-cert': certB.cert,
      'tls-key': certB.key,
      'server-tls': 'implicit',
      'server-ca': certA.cert,
      'server-name': '127.0.0.1',
    });
  });
  afterAll(async () => {
    await chainGw?.close();
    await implicitGw?.close();
    await server?.close();
    dir?.remove();
  });

  test.skipIf(!HAVE.curl)('curl ftps:// (implicit): download and upload 1 MiB', async () => {
    const url = `ftps://127.0.0.1:${implicitGw.port}`;
    const down = await run('curl', ['-sS', '--max-time', '60', '-k', `${url}/f.bin`]);
    expect(down.stderr).toBe('');
    expect(sha256(down.stdout)).toBe(sha256(content));
    const up = await run('curl', ['-sS', '--max-time', '60', '-k', '-T', join(dir.path, 'f.bin'), `${url}/up-curl-implicit.bin`]);
    expect(up.stderr).toBe('');
    expect(sha256(readFileSync(join(dir.path, 'up-curl-implicit.bin')))).toBe(sha256(content));
  });

  for (const mode of ['passive', 'active'] as const) {
    test.skipIf(!HAVE.python)(`Python implicit FTP_TLS prot_p ${mode}: RETR and STOR`, async () => {
      const r = await ftplibTls(implicitGw.port, mode, 'f.bin', join(dir.path, 'f.bin'), `up-implicit-${mode}.bin`, { implicit: true });
      expect(r.stderr).toBe('');
      expect(r.stdout.toString().trim()).toBe(sha256(content));
      expect(sha256(readFileSync(join(dir.path, `up-implicit-${mode}.bin`)))).toBe(sha256(content));
    });
  }

  test.skipIf(!HAVE.curl)('a clear client on the implicit listener: a handshake failure with a code, nothing else', async () => {
    const r = await run('curl', ['-sS', '--max-time', '20', `ftp://127.0.0.1:${implicitGw.port}/f.bin`]);
    expect(r.code).not.toBe(0);
    const refusal = await implicitGw.log.waitFor('refuse', (e) => e.code === 'TLS_HANDSHAKE_FAILED');
    const ofSession = implicitGw.log.events.filter((e) => 'session' in e && e.session === refusal.session).map((e) => e.event);
    expect(ofSession[0]).toBe('session-open');
    await implicitGw.log.waitFor('session-close', (e) => e.session === refusal.session);
  });

  test.skipIf(!HAVE.curl)('explicit FTPS to B, implicit FTPS from B to A (certificate verified): download 1 MiB', async () => {
    const r = await curlFtps([chainGw.url('/f.bin')]);
    expect(r.stderr).toBe('');
    expect(sha256(r.stdout)).toBe(sha256(content));
  });

  test.skipIf(!HAVE.python)('the chain in active mode, upload too', async () => {
    const r = await ftplibTls(chainGw.port, 'active', 'f.bin', join(dir.path, 'f.bin'), 'up-chain.bin');
    expect(r.stderr).toBe('');
    expect(r.stdout.toString().trim()).toBe(sha256(content));
    expect(sha256(readFileSync(join(dir.path, 'up-chain.bin')))).toBe(sha256(content));
  });
});
