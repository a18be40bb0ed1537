/**
 * A pool of FTPS backends behind one reverse listener that ends the
 * client's TLS: the pool secures each backend itself, so `--balance user`
 * replays the login only inside TLS (vsftpd refuses a clear USER with
 * force_anon_logins_ssl) and implicit backends are spoken to in TLS from
 * their first byte, health checks included. Real vsftpd (require_ssl_reuse),
 * real curl and Python FTP_TLS; what arrives is compared by sha256.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HAVE, randomFile, sha256, tempDir } from '../helpers/tools.js';
import { CAN_VSFTPD, VSFTPD_SKIP } from '../helpers/netns.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { curlFtps, ftplibTls, startTlsVsftpd, vsftpdTlsSetup, type TlsServer } from './ftps-fixtures.js';

const FILE = randomFile(1 << 20);

const skip = !HAVE.root || !CAN_VSFTPD;
for (const [label, serverTls, extra, balance] of [
  ['--balance user, explicit backends', 'explicit', {}, 'user'],
  ['round-robin, implicit backends, active health checks', 'implicit', { implicit_ssl: 'YES' }, 'round-robin'],
] as const) {
  describe.skipIf(skip)(`reverse --tls terminate over a pool: ${label}${VSFTPD_SKIP}${HAVE.root ? '' : ' [skipped: vsftpd needs root]'}`, () => {
    let dir: ReturnType<typeof tempDir>;
    const servers: TlsServer[] = [];
    let gw: TestGateway;
    let root: string;

    beforeAll(async () => {
      dir = tempDir();
      const { gatewayCert, serverCert, root: anon } = await vsftpdTlsSetup(dir.path);
      root = anon;
      writeFileSync(join(root, 'f.bin'), FILE, { mode: 0o644 });
      for (let i = 0; i < 2; i++) servers.push(await startTlsVsftpd({ dir: dir.path, root, cert: serverCert, pasvAddress: '100.64.0.2', extra: { write_enable: 'YES', anon_upload_enable: 'YES', anon_umask: '022', ...extra } }));
      gw = await startTestReverse(servers[0]!.port, {
        server: servers.map((s) => `127.0.0.1:${s.port}`).join(','),
        balance,
        tls: 'terminate',
        'tls-cert': gatewayCert.cert,
        'tls-key': gatewayCert.key,
        'server-tls': serverTls,
        'server-ca': serverCert.cert,
        ...(balance === 'round-robin' ? { 'health-interval': 1 } : {}),
      });
    });
    afterAll(async () => {
      await gw?.close();
      for (const s of servers) s.stop();
      dir?.remove();
    });

    test.skipIf(!HAVE.curl)('curl --ssl-reqd EPSV and PASV: 1 MiB, twice each (both backends under round-robin)', async () => {
      for (const args of [[], [], ['--disable-epsv'], ['--disable-epsv']]) {
        const down = await curlFtps([...args, `ftp://127.0.0.1:${gw.port}/f.bin`]);
        expect(down.stderr).toBe('');
        expect(sha256(down.stdout)).toBe(sha256(FILE));
      }
    });

    test.skipIf(!HAVE.python)('Python FTP_TLS with AUTH, PBSZ and PROT P before USER, passive and active', async () => {
      for (const mode of ['passive', 'active'] as const) {
        const r = await ftplibTls(gw.port, mode, 'f.bin', join(root, 'f.bin'), `up/pool-${balance}-${mode}.bin`, { protFirst: true });
        expect(r.stderr).toBe('');
        expect(r.stdout.toString().trim()).toBe(sha256(FILE));
      }
    });

    test('no backend was marked down, no login failed, every server data connection resumed its session', () => {
      expect(gw.log.of('warning').map((e) => e.message)).toEqual([]);
      expect(gw.log.of('refuse').filter((e) => e.code !== 'FOREIGN_PASSIVE_ADDRESS').map((e) => `${e.kind} ${e.code} ${e.message}`)).toEqual([]);
      const logins = gw.log.of('login').map((e) => e.reply);
      expect(logins.length).toBeGreaterThan(0);
      expect(logins.filter((code) => code !== 230)).toEqual([]);
      expect(gw.log.of('data-open').length).toBeGreaterThan(0);
    });
  });
}
