/**
 * `ftp-alg probe` over FTPS: what a server announces inside TLS, where no
 * capture can see it. Against the built-in server behind `reverse --tls
 * terminate` (explicit and implicit; the gateway rewrites the inside
 * address it reads in clear), against pyftpdlib's TLS handler and vsftpd
 * (require_ssl_reuse=YES: every data connection must resume the control
 * session) each announcing an address nobody listens on.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { formatProbeReport, parseProbeUrl, probe, type ProbeReport } from '../../src/diagnose/probe.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { CAN_VSFTPD, VSFTPD_SKIP } from '../helpers/netns.js';
import { HAVE, run, tempDir } from '../helpers/tools.js';
import { HAVE_PYOPENSSL, makeCertificate, startTlsPyftpdlib, startTlsVsftpd, type TestCertificate, type TlsServer } from './ftps-fixtures.js';

const mode = (r: ProbeReport, m: string) => r.modes.find((x) => x.mode === m)!;
const codesByMode = (r: ProbeReport) => r.modes.map((m) => [m.mode, m.codes]);

let dir: ReturnType<typeof tempDir>;
let cert: TestCertificate;

beforeAll(async () => {
  dir = tempDir();
  cert = await makeCertificate(dir.path, 'server');
});
afterAll(() => dir?.remove());

test('parseProbeUrl: ftpes:// is explicit FTPS on 21, ftps:// implicit on 990; --insecure rides along', () => {
  expect(parseProbeUrl('ftpes://127.0.0.1/')).toEqual({
    host: '127.0.0.1',
    port: 21,
    user: 'anonymous',
    password: 'ftp-alg-probe@example.org',
    tls: { mode: 'explicit', insecure: false },
  });
  expect(parseProbeUrl('ftps://bob:x@[::1]/', { insecure: true })).toMatchObject({ host: '::1', port: 990, user: 'bob', tls: { mode: 'implicit', insecure: true } });
  expect(parseProbeUrl('ftp://127.0.0.1/', { insecure: true })).not.toHaveProperty('tls');
  expect(() => parseProbeUrl('sftp://127.0.0.1/')).toThrow(/not an ftp:\/\/ URL \(nor ftpes:\/\/ for explicit FTPS, ftps:\/\/ for implicit FTPS\)/);
});

describe('the built-in server announcing 100.64.0.2 behind reverse --tls terminate', () => {
  let server: DemoServer;
  let explicit: TestGateway;
  let implicit: TestGateway;

  beforeAll(async () => {
    server = await startDemoServer({ announceAddress: '100.64.0.2', files: { '/a.txt': 'x' } });
    explicit = await startTestReverse(server.address.port, { tls: 'terminate', 'tls-cert': cert.cert, 'tls-key': cert.key, 'require-tls': true });
    implicit = await startTestReverse(server.address.port, { tls: 'terminate', 'tls-cert': cert.cert, 'tls-key': cert.key, 'implicit-tls': true });
  });
  afterAll(async () => {
    await explicit?.close();
    await implicit?.close();
    await server?.close();
  });

  test('ftpes:// --insecure: every mode works over PROT P, the 227 read inside TLS names the gateway', async () => {
    const r = await probe(parseProbeUrl(`ftpes://127.0.0.1:${explicit.port}/`, { insecure: true }), 5_000);
    expect(codesByMode(r), formatProbeReport(r)).toEqual([['PASV', ['OK']], ['EPSV', ['OK']], ['PORT', ['OK']], ['EPRT', ['OK']]]);
    expect(r.verdict.codes).toEqual(['OK']);
    expect(mode(r, 'PASV').announced).toMatchObject({ address: '127.0.0.1', class: 'loopback', differsFromControl: false });
    expect(mode(r, 'PASV').bytes).toBeGreaterThan(0);
    expect(r.tls).toMatchObject({ verified: false, subject: '127.0.0.1' });
    // --require-tls: the gateway refuses transfers without PROT P, so OK means the data really was protected.
    expect(explicit.log.of('refuse').filter((e) => String(e.code).startsWith('TLS_'))).toEqual([]);
    expect(formatProbeReport(r)).toMatch(/^tls: explicit \(AUTH TLS\), TLSv1\.\d .*certificate NOT verified/m);
  });

  test('ftps:// (implicit) --insecure: every mode works', async () => {
    const r = await probe(parseProbeUrl(`ftps://127.0.0.1:${implicit.port}/`, { insecure: true }), 5_000);
    expect(r.verdict.codes, formatProbeReport(r)).toEqual(['OK']);
    expect(r.target.scheme).toBe('ftps');
    expect(mode(r, 'PASV').announced?.address).toBe('127.0.0.1');
  });

  test('without --insecure a self-signed certificate fails the login, naming the reason and the flag', async () => {
    const r = await probe(parseProbeUrl(`ftpes://127.0.0.1:${explicit.port}/`), 5_000);
    expect(r.verdict.codes).toEqual(['LOGIN_FAILED']);
    expect(r.login?.error).toMatch(/TLS handshake on the control connection failed: .*self-signed.*--insecure/);
    expect(r.modes).toEqual([]);
  });

  test('a listener without TLS: ftps:// is a clear handshake error, ftpes:// names the refused AUTH TLS; no hang', async () => {
    const plain = await startTestReverse(server.address.port);
    try {
      const r = await probe(parseProbeUrl(`ftps://127.0.0.1:${plain.port}/`, { insecure: true }), 5_000);
      expect(r.verdict.codes).toEqual(['CONNECT_FAILED']);
      expect(r.verdict.summary.join(' ')).toMatch(/TLS handshake on the control connection/);
      const e = await probe(parseProbeUrl(`ftpes://127.0.0.1:${plain.port}/`, { insecure: true }), 5_000);
      expect(e.verdict.codes).toEqual(['LOGIN_FAILED']);
      expect(e.login?.error).toMatch(/^AUTH failed: 534 /);
    } finally {
      await plain.close();
    }
  });

  test('the CLI: ftpes:// with --insecure exits 0; a scheme it does not know exits 2 with one line', async () => {
    const cli = join(process.cwd(), 'dist/cli.js');
    const good = await run(process.execPath, [cli, 'probe', `ftpes://127.0.0.1:${explicit.port}/`, '--insecure', '--json', '--timeout', '5']);
    expect(good.stderr.toString()).toBe('');
    expect(good.code).toBe(0);
    expect((JSON.parse(good.stdout.toString()) as ProbeReport).tls?.verified).toBe(false);
    const bad = await run(process.execPath, [cli, 'probe', 'sftp://127.0.0.1/']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.toString().trim().split('\n')).toHaveLength(1);
  });
});

describe.skipIf(!HAVE_PYOPENSSL)(`pyftpdlib's TLS handler announcing 127.0.0.2 inside TLS${HAVE_PYOPENSSL ? '' : ' [skipped: needs python3-pyftpdlib and python3-openssl: run scripts/install-debian-packages.sh as root]'}`, () => {
  let server: TlsServer;
  beforeAll(async () => {
    const root = join(dir.path, 'py');
    mkdirSync(root);
    writeFileSync(join(root, 'a.txt'), 'x');
    // 127.0.0.2 is loopback but nothing listens there: an inside address seen from outside.
    server = await startTlsPyftpdlib(root, cert, '127.0.0.2');
  });
  afterAll(() => server?.stop());

  test('ftp:// sees only TLS_REQUIRED; ftpes:// sees the announced address: PASV_PRIVATE_ADDRESS', async () => {
    const plain = await probe(parseProbeUrl(`ftp://127.0.0.1:${server.port}/`), 5_000);
    expect(plain.verdict.codes).toEqual(['TLS_REQUIRED']);
    expect(plain.verdict.summary.join(' ')).toMatch(/ftpes:\/\//);

    const r = await probe(parseProbeUrl(`ftpes://127.0.0.1:${server.port}/`, { insecure: true }), 5_000);
    expect(mode(r, 'PASV').announced, formatProbeReport(r)).toMatchObject({ address: '127.0.0.2', differsFromControl: true });
    expect(codesByMode(r), formatProbeReport(r)).toEqual([
      ['PASV', ['PASV_PRIVATE_ADDRESS', 'PASV_UNREACHABLE']],
      ['EPSV', ['OK']],
      ['PORT', ['OK']],
      ['EPRT', ['OK']],
    ]);
    expect(r.verdict.codes).toEqual(['PASV_PRIVATE_ADDRESS', 'PASV_UNREACHABLE']);
    expect(r.verdict.summary.join(' ')).toMatch(/inside TLS the server announces 127\.0\.0\.2/);
  });
});

describe.skipIf(!HAVE.root || !CAN_VSFTPD)(`vsftpd with require_ssl_reuse=YES announcing 127.0.0.2${VSFTPD_SKIP}${HAVE.root ? '' : ' [skipped: vsftpd needs root]'}`, () => {
  let server: TlsServer;
  let gw: TestGateway;
  beforeAll(async () => {
    const root = join(dir.path, 'vs');
    mkdirSync(root, { mode: 0o755 });
    writeFileSync(join(root, 'a.txt'), 'x', { mode: 0o644 });
    server = await startTlsVsftpd({ dir: dir.path, root, cert, pasvAddress: '127.0.0.2' });
    gw = await startTestReverse(server.port, {
      tls: 'terminate',
      'tls-cert': cert.cert,
      'tls-key': cert.key,
      'server-tls': 'explicit',
      'server-ca': cert.cert,
    });
  });
  afterAll(async () => {
    await gw?.close();
    server?.stop();
  });

  test('directly: the data connections resume the control session (EPSV, PORT, EPRT work); PASV_PRIVATE_ADDRESS', async () => {
    const r = await probe(parseProbeUrl(`ftpes://127.0.0.1:${server.port}/`, { insecure: true }), 5_000);
    expect(codesByMode(r), formatProbeReport(r)).toEqual([
      ['PASV', ['PASV_PRIVATE_ADDRESS', 'PASV_UNREACHABLE']],
      ['EPSV', ['OK']],
      ['PORT', ['OK']],
      ['EPRT', ['OK']],
    ]);
    expect(mode(r, 'PASV').announced).toMatchObject({ address: '127.0.0.2', differsFromControl: true });
  });

  test('behind reverse --tls terminate --server-tls explicit: verdict OK, the gateway announced', async () => {
    const r = await probe(parseProbeUrl(`ftpes://127.0.0.1:${gw.port}/`, { insecure: true }), 5_000);
    expect(r.verdict.codes, formatProbeReport(r)).toEqual(['OK']);
    expect(mode(r, 'PASV').announced?.address).toBe('127.0.0.1');
  });
});
