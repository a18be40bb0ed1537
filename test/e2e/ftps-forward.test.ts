/**
 * Forward mode, explicit proxy, with TLS ended at the gateway: the client
 * sends AUTH TLS to the gateway before `USER name@host` (the gateway
 * answers it, and PBSZ/PROT, itself), and the gateway speaks FTPS on to
 * vsftpd with require_ssl_reuse=YES (--server-tls explicit) or plain FTP to
 * a server without TLS (--server-tls off). Real curl, lftp and Python
 * FTP_TLS; what arrives is compared by sha256.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HAVE, randomFile, run, sha256, tempDir } from '../helpers/tools.js';
import { CAN_VSFTPD, VSFTPD_SKIP } from '../helpers/netns.js';
import { startTestForward, type TestGateway } from '../helpers/gateway.js';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { curlFtps, ftplibTls, lftpTls, makeCertificate, startTlsVsftpd, vsftpdTlsSetup, type TestCertificate, type TlsServer } from './ftps-fixtures.js';

const FILE = randomFile(1 << 20);

/** curl's URL for a file behind the explicit proxy: the user name carries the server. */
const proxyUrl = (gw: TestGateway, server: number, path: string) => `ftp://anonymous%40127.0.0.1%3A${server}:x@127.0.0.1:${gw.port}${path}`;

/**
 * curl's passive ways to open a data connection. Active FTPS fails in curl
 * 7.88 itself, also without a gateway ("sa_addr inet_ntop() failed with
 * errno 97", LAB.md): active mode is Python's and lftp's below.
 */
const CURL_PASSIVE: Array<[string, string[]]> = [
  ['EPSV', []],
  ['PASV', ['--disable-epsv', '--no-ftp-skip-pasv-ip']],
];

const skip = !HAVE.root || !CAN_VSFTPD;
describe.skipIf(skip)(`forward --tls terminate --server-tls explicit to vsftpd (require_ssl_reuse)${VSFTPD_SKIP}${HAVE.root ? '' : ' [skipped: vsftpd needs root]'}`, () => {
  let dir: ReturnType<typeof tempDir>;
  let vsftpd: TlsServer;
  let gw: TestGateway;
  let root: string;
  let user: string;

  beforeAll(async () => {
    dir = tempDir();
    const { gatewayCert, serverCert, root: anon } = await vsftpdTlsSetup(dir.path);
    root = anon;
    writeFileSync(join(root, 'f.bin'), FILE, { mode: 0o644 });
    vsftpd = await startTlsVsftpd({ dir: dir.path, root, cert: serverCert, pasvAddress: '100.64.0.2', extra: { write_enable: 'YES', anon_upload_enable: 'YES', anon_umask: '022' } });
    user = `anonymous@127.0.0.1:${vsftpd.port}`;
    // The server's certificate names 127.0.0.1, the host of USER name@127.0.0.1:port.
    gw = await startTestForward({ tls: 'terminate', 'tls-cert': gatewayCert.cert, 'tls-key': gatewayCert.key, 'server-tls': 'explicit', 'server-ca': serverCert.cert });
  });
  afterAll(async () => {
    await gw?.close();
    vsftpd?.stop();
    dir?.remove();
  });

  const uploaded = (name: string) => sha256(readFileSync(join(root, 'up', name)));

  for (const [mode, args] of CURL_PASSIVE) {
    test.skipIf(!HAVE.curl)(`curl --ssl-reqd ${mode}: download and upload 1 MiB`, async () => {
      const down = await curlFtps([...args, proxyUrl(gw, vsftpd.port, '/f.bin')]);
      expect(down.stderr).toBe('');
      expect(sha256(down.stdout)).toBe(sha256(FILE));
      const up = await curlFtps([...args, '-T', join(root, 'f.bin'), proxyUrl(gw, vsftpd.port, `/up/curl-${mode}.bin`)]);
      expect(up.stderr).toBe('');
      expect(uploaded(`curl-${mode}.bin`)).toBe(sha256(FILE));
    });
  }

  for (const mode of ['passive', 'active'] as const) {
    test.skipIf(!HAVE.python)(`Python FTP_TLS prot_p ${mode}: RETR and STOR 1 MiB`, async () => {
      const r = await ftplibTls(gw.port, mode, 'f.bin', join(root, 'f.bin'), `up/ftplib-${mode}.bin`, { user });
      expect(r.stderr).toBe('');
      expect(r.stdout.toString().trim()).toBe(sha256(FILE));
      expect(uploaded(`ftplib-${mode}.bin`)).toBe(sha256(FILE));
    });
  }

  test.skipIf(!HAVE.python)('Python FTP_TLS with AUTH, PBSZ and PROT P before USER: the gateway keeps the PROT it agreed', async () => {
    const r = await ftplibTls(gw.port, 'passive', 'f.bin', join(root, 'f.bin'), 'up/ftplib-early.bin', { user, protFirst: true });
    expect(r.stderr).toBe('');
    expect(r.stdout.toString().trim()).toBe(sha256(FILE));
    expect(uploaded('ftplib-early.bin')).toBe(sha256(FILE));
  });

  for (const passive of ['on', 'off']) {
    test.skipIf(!HAVE.lftp)(`lftp ssl-force, ssl-protect-data, passive ${passive}: get and put 1 MiB`, async () => {
      const got = join(dir.path, `lftp-${passive}.bin`);
      const r = await lftpTls(gw.port, `set ftp:passive-mode ${passive}; get f.bin -o ${got}; put ${join(root, 'f.bin')} -o up/lftp-${passive}.bin`, user);
      expect(r.stderr).toBe('');
      expect(sha256(readFileSync(got))).toBe(sha256(FILE));
      expect(uploaded(`lftp-${passive}.bin`)).toBe(sha256(FILE));
    });
  }

  test('every session logged in through the proxy, the inside address in each 227 was caught, and every server-side data connection resumed the control session', () => {
    const opened = gw.log.of('session-open').length;
    expect(opened).toBeGreaterThan(0);
    expect(gw.log.of('rewrite').filter((e) => e.kind === 'USER' && e.after === 'USER anonymous').length).toBe(opened);
    // The one kind of refusal: the inside address vsftpd announced in its 227 (inside TLS), never passed on.
    const refusals = gw.log.of('refuse');
    expect(refusals.length).toBeGreaterThan(0);
    expect(refusals.filter((e) => e.code !== 'FOREIGN_PASSIVE_ADDRESS').map((e) => `${e.kind} ${e.code} ${e.message}`)).toEqual([]);
    expect(gw.log.of('warning').filter((e) => /did not resume/.test(e.message))).toEqual([]);
    expect(gw.log.of('data-open').length).toBeGreaterThan(0);
  });
});

describe('forward --tls terminate --server-tls off: TLS on the client side only', () => {
  let dir: ReturnType<typeof tempDir>;
  let server: DemoServer;
  let gw: TestGateway;
  let cert: TestCertificate;

  beforeAll(async () => {
    dir = tempDir();
    cert = await makeCertificate(dir.path);
    writeFileSync(join(dir.path, 'f.bin'), FILE);
    server = await startDemoServer({ root: dir.path, announceAddress: '100.64.0.2' });
    gw = await startTestForward({ tls: 'terminate', 'tls-cert': cert.cert, 'tls-key': cert.key, 'require-tls': true });
  });
  afterAll(async () => {
    await gw?.close();
    await server?.close();
    dir?.remove();
  });

  for (const [mode, args] of CURL_PASSIVE) {
    test.skipIf(!HAVE.curl)(`curl --ssl-reqd ${mode}: download and upload 1 MiB to a plain server`, async () => {
      const down = await curlFtps([...args, proxyUrl(gw, server.address.port, '/f.bin')]);
      expect(down.stderr).toBe('');
      expect(sha256(down.stdout)).toBe(sha256(FILE));
      const up = await curlFtps([...args, '-T', join(dir.path, 'f.bin'), proxyUrl(gw, server.address.port, `/curl-${mode}.bin`)]);
      expect(up.stderr).toBe('');
      expect(sha256(readFileSync(join(dir.path, `curl-${mode}.bin`)))).toBe(sha256(FILE));
    });
  }

  test.skipIf(!HAVE.python)('Python FTP_TLS prot_p active: RETR and STOR 1 MiB to a plain server', async () => {
    const r = await ftplibTls(gw.port, 'active', 'f.bin', join(dir.path, 'f.bin'), 'ftplib-active.bin', { user: `anonymous@127.0.0.1:${server.address.port}` });
    expect(r.stderr).toBe('');
    expect(r.stdout.toString().trim()).toBe(sha256(FILE));
    expect(sha256(readFileSync(join(dir.path, 'ftplib-active.bin')))).toBe(sha256(FILE));
  });

  test.skipIf(!HAVE.python)('--implicit-tls: TLS from the first byte, the proxy login inside it', async () => {
    const implicit = await startTestForward({ tls: 'terminate', 'tls-cert': cert.cert, 'tls-key': cert.key, 'implicit-tls': true });
    try {
      const user = `anonymous@127.0.0.1:${server.address.port}`;
      const r = await ftplibTls(implicit.port, 'passive', 'f.bin', join(dir.path, 'f.bin'), 'ftplib-implicit.bin', { user, implicit: true });
      expect(r.stderr).toBe('');
      expect(r.stdout.toString().trim()).toBe(sha256(FILE));
      expect(sha256(readFileSync(join(dir.path, 'ftplib-implicit.bin')))).toBe(sha256(FILE));
    } finally {
      await implicit.close();
    }
  });

  test.skipIf(!HAVE.curl)('--require-tls: a client that logs in without AUTH TLS gets 530 and TLS_REQUIRED', async () => {
    const plain = await run('curl', ['-sS', '--max-time', '20', proxyUrl(gw, server.address.port, '/f.bin')]);
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/530/);
    await gw.log.waitFor('refuse', (e) => e.code === 'TLS_REQUIRED' && e.kind === 'USER');
  });
});
