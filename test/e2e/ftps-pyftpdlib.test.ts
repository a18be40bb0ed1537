/**
 * pyftpdlib's TLS handler (Debian python3-openssl) behind the gateway, TLS
 * required on its control and data connections and an inside address in
 * its 227: the gateway ends the clients' TLS, speaks its own to the server,
 * and rewrites the 227 it can now read. --server-insecure is logged.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HAVE, randomFile, sha256, tempDir } from '../helpers/tools.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { HAVE_PYOPENSSL, ftplibTls, lftpTls, makeCertificate, startTlsPyftpdlib, type TlsServer } from './ftps-fixtures.js';

describe.skipIf(!HAVE_PYOPENSSL)(`reverse --tls terminate --server-tls explicit in front of pyftpdlib's TLS handler${HAVE_PYOPENSSL ? '' : ' [skipped: needs python3-pyftpdlib and python3-openssl: run scripts/install-debian-packages.sh as root]'}`, () => {
  let dir: ReturnType<typeof tempDir>;
  let server: TlsServer;
  let gw: TestGateway;
  const content = randomFile(1 << 20);

  beforeAll(async () => {
    dir = tempDir();
    const gatewayCert = await makeCertificate(dir.path, 'gateway');
    const serverCert = await makeCertificate(dir.path, 'server');
    writeFileSync(join(dir.path, 'f.bin'), content);
    server = await startTlsPyftpdlib(dir.path, serverCert, '100.64.0.2');
    gw = await startTestReverse(server.port, {
      tls: 'terminate',
      'tls-cert': gatewayCert.cert,
      'tls-key': gatewayCert.key,
      'server-tls': 'explicit',
      'server-insecure': true,
    });
  });
  afterAll(async () => {
    await gw?.close();
    server?.stop();
    dir?.remove();
  });

  test('--server-insecure is a warning at start', () => {
    expect(gw.log.of('warning').some((e) => /--server-insecure/.test(e.message))).toBe(true);
  });

  for (const mode of ['passive', 'active'] as const) {
    test.skipIf(!HAVE.python)(`Python FTP_TLS prot_p ${mode}: RETR and STOR 1 MiB`, async () => {
      const asName = `up-${mode}.bin`;
      const r = await ftplibTls(gw.port, mode, 'f.bin', join(dir.path, 'f.bin'), asName);
      expect(r.stderr).toBe('');
      expect(r.stdout.toString().trim()).toBe(sha256(content));
      expect(sha256(readFileSync(join(dir.path, asName)))).toBe(sha256(content));
    });
  }

  // curl 7.88 gets "Connection reset" from this pyftpdlib even directly (it starts TLS on the data connection before RETR).
  test.skipIf(!HAVE.lftp)('lftp ssl-force: the 227 from inside TLS is rewritten', async () => {
    const got = join(dir.path, 'lftp-got.bin');
    const r = await lftpTls(gw.port, `set ftp:prefer-epsv no; get f.bin -o ${got}`);
    expect(r.stderr).toBe('');
    expect(sha256(readFileSync(got))).toBe(sha256(content));
    expect(gw.log.of('rewrite').some((e) => e.kind === '227' && e.before.includes('100,64,0,2'))).toBe(true);
  });
});
