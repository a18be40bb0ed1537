/**
 * TLS on both sides: clients speak FTPS to the gateway, the gateway speaks
 * FTPS to vsftpd with require_ssl_reuse=YES (its default), which refuses any
 * data connection that does not resume the control connection's TLS
 * session. Python's FTP_TLS never resumes: directly it cannot download from
 * this vsftpd at all; through the gateway it can.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HAVE, randomFile, sha256, tempDir } from '../helpers/tools.js';
import { CAN_VSFTPD, VSFTPD_SKIP } from '../helpers/netns.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { curlFtps, ftplibTls, lftpTls, startTlsVsftpd, vsftpdTlsSetup, type TlsServer } from './ftps-fixtures.js';

const SIZES: Array<[string, number]> = [
  ['0 B', 0],
  ['1 MiB', 1 << 20],
  ['64 MiB', 64 << 20],
];
const fileName = (size: string) => `down-${size.replace(' ', '')}.bin`;

const skip = !HAVE.root || !CAN_VSFTPD;
describe.skipIf(skip)(`reverse --tls terminate --server-tls explicit in front of vsftpd (require_ssl_reuse)${VSFTPD_SKIP}${HAVE.root ? '' : ' [skipped: vsftpd needs root]'}`, () => {
  let dir: ReturnType<typeof tempDir>;
  let vsftpd: TlsServer;
  let gw: TestGateway;
  let root: string;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    dir = tempDir();
    const { gatewayCert, serverCert, root: anon } = await vsftpdTlsSetup(dir.path);
    root = anon;
    for (const [size, bytes] of SIZES) {
      const content = randomFile(bytes);
      files.set(fileName(size), content);
      writeFileSync(join(root, fileName(size)), content, { mode: 0o644 });
    }
    vsftpd = await startTlsVsftpd({
      dir: dir.path,
      root,
      cert: serverCert,
      pasvAddress: '100.64.0.2',
      extra: { write_enable: 'YES', anon_upload_enable: 'YES', anon_umask: '022' },
    });
    gw = await startTestReverse(vsftpd.port, {
      tls: 'terminate',
      'tls-cert': gatewayCert.cert,
      'tls-key': gatewayCert.key,
      'server-tls': 'explicit',
      'server-ca': serverCert.cert,
    });
  });
  afterAll(async () => {
    await gw?.close();
    vsftpd?.stop();
    dir?.remove();
  });

  for (const mode of ['passive', 'active'] as const) {
    for (const [size] of SIZES) {
      test.skipIf(!HAVE.python)(`Python FTP_TLS prot_p ${mode}: RETR and STOR ${size}`, async () => {
        const name = fileName(size);
        const asName = `up/ftplib-${mode}-${name}`;
        const r = await ftplibTls(gw.port, mode, name, join(root, name), asName);
        expect(r.stderr).toBe('');
        expect(r.stdout.toString().trim()).toBe(sha256(files.get(name)!));
        expect(sha256(readFileSync(join(root, asName)))).toBe(sha256(files.get(name)!));
      });
    }
  }

  test.skipIf(!HAVE.curl)('curl --ssl-reqd EPSV: download 64 MiB', async () => {
    const name = fileName('64 MiB');
    const r = await curlFtps([gw.url(`/${name}`)]);
    expect(r.stderr).toBe('');
    expect(sha256(r.stdout)).toBe(sha256(files.get(name)!));
  });

  test.skipIf(!HAVE.lftp)('lftp ssl-force, ssl-protect-data: get 1 MiB', async () => {
    const name = fileName('1 MiB');
    const got = join(dir.path, 'lftp-got.bin');
    const r = await lftpTls(gw.port, `get ${name} -o ${got}`);
    expect(r.stderr).toBe('');
    expect(sha256(readFileSync(got))).toBe(sha256(files.get(name)!));
  });

  test('every server-side data connection resumed the control session', () => {
    expect(gw.log.of('warning').filter((e) => /did not resume/.test(e.message))).toEqual([]);
    expect(gw.log.of('data-open').length).toBeGreaterThan(0);
  });
});
