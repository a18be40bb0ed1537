/**
 * --tls terminate in front of a plain server: real FTPS clients talk TLS to
 * the gateway, the gateway talks clear FTP to the server, and the 227 the
 * server announces inside is rewritten because the gateway reads the
 * control channel in clear.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { HAVE, randomFile, run, sha256, tempDir } from '../helpers/tools.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { curlFtps, ftplibTls, lftpTls, makeCertificate } from './ftps-fixtures.js';

const SIZES: Array<[string, number]> = [
  ['0 B', 0],
  ['1 MiB', 1 << 20],
  ['16 MiB', 16 << 20],
];
const fileName = (size: string) => `down-${size.replace(' ', '')}.bin`;

describe('reverse --tls terminate in front of the built-in server announcing 100.64.0.2', () => {
  let dir: ReturnType<typeof tempDir>;
  let server: DemoServer;
  let gw: TestGateway;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    dir = tempDir();
    const { cert, key } = await makeCertificate(dir.path);
    for (const [size, bytes] of SIZES) {
      const content = randomFile(bytes);
      files.set(fileName(size), content);
      writeFileSync(join(dir.path, fileName(size)), content);
    }
    server = await startDemoServer({ root: dir.path, announceAddress: '100.64.0.2' });
    gw = await startTestReverse(server.address.port, { tls: 'terminate', 'tls-cert': cert, 'tls-key': key });
  });
  afterAll(async () => {
    await gw?.close();
    await server?.close();
    dir?.remove();
  });

  for (const { mode, args, kind } of [
    { mode: 'PASV', args: ['--disable-epsv', '--no-ftp-skip-pasv-ip'], kind: '227' },
    { mode: 'EPSV', args: [], kind: '229' },
  ]) {
    for (const [size] of SIZES) {
      test.skipIf(!HAVE.curl)(`curl --ssl-reqd ${mode}: download and upload ${size}`, async () => {
        const name = fileName(size);
        const rewrites = gw.log.of('rewrite').filter((e) => e.kind === kind).length;
        const down = await curlFtps([...args, gw.url(`/${name}`)]);
        expect(down.stderr).toBe('');
        expect(down.code).toBe(0);
        expect(sha256(down.stdout)).toBe(sha256(files.get(name)!));

        const upName = `up-curl-${mode}-${name}`;
        const local = join(dir.path, `local-${upName}`);
        writeFileSync(local, files.get(name)!);
        const up = await curlFtps([...args, '-T', local, gw.url(`/${upName}`)]);
        expect(up.stderr).toBe('');
        expect(up.code).toBe(0);
        expect(sha256(readFileSync(join(dir.path, upName)))).toBe(sha256(files.get(name)!));
        // The passive reply came through TLS and was still rewritten.
        expect(gw.log.of('rewrite').filter((e) => e.kind === kind).length).toBe(rewrites + 2);
      });
    }
  }

  for (const mode of ['passive', 'active'] as const) {
    test.skipIf(!HAVE.python)(`Python FTP_TLS prot_p ${mode}: RETR and STOR 1 MiB`, async () => {
      const name = fileName('1 MiB');
      const asName = `up-ftplib-${mode}.bin`;
      const r = await ftplibTls(gw.port, mode, name, join(dir.path, name), asName);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout.toString().trim()).toBe(sha256(files.get(name)!));
      expect(sha256(readFileSync(join(dir.path, asName)))).toBe(sha256(files.get(name)!));
      expect(gw.log.of('rewrite').some((e) => e.kind === (mode === 'passive' ? '227' : 'PORT'))).toBe(true);
      // The gateway, not the server, agreed to protect the data.
      expect(gw.log.of('control').some((e) => e.line.startsWith('200 Protection level set to Private (from the gateway)'))).toBe(true);
    });
  }

  test.skipIf(!HAVE.python)('Python FTP_TLS with PROT C: clear data under an encrypted control connection', async () => {
    const name = fileName('1 MiB');
    const r = await ftplibTls(gw.port, 'passive', name, join(dir.path, name), 'up-ftplib-clear.bin', { prot: 'C' });
    expect(r.stderr).toBe('');
    expect(r.stdout.toString().trim()).toBe(sha256(files.get(name)!));
  });

  test.skipIf(!HAVE.lftp)('lftp ssl-force, ssl-protect-data: get and put 16 MiB', async () => {
    const name = fileName('16 MiB');
    const got = join(dir.path, 'lftp-got.bin');
    const r = await lftpTls(gw.port, `get ${name} -o ${got}; put ${join(dir.path, name)} -o up-lftp.bin`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(sha256(readFileSync(got))).toBe(sha256(files.get(name)!));
    expect(sha256(readFileSync(join(dir.path, 'up-lftp.bin')))).toBe(sha256(files.get(name)!));
  });

  test.skipIf(!HAVE.curl)('a client without TLS is still served in clear (no --require-tls)', async () => {
    const name = fileName('1 MiB');
    const r = await run('curl', ['-sS', '--max-time', '60', gw.url(`/${name}`)]);
    expect(r.stderr).toBe('');
    expect(sha256(r.stdout)).toBe(sha256(files.get(name)!));
  });

  test.skipIf(!HAVE.lftp)('lftp with its defaults (no ssl-force) negotiates TLS with the gateway', async () => {
    const name = fileName('1 MiB');
    const got = join(dir.path, 'lftp-feat.bin');
    const before = gw.log.events.length;
    const settings = 'set ftp:ssl-allow-anonymous yes; set ssl:verify-certificate no; set net:max-retries 1; set cmd:fail-exit yes;';
    const r = await run('lftp', ['-c', `${settings} open -u anonymous,x@example.org ftp://127.0.0.1:${gw.port}; get ${name} -o ${got}`], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(sha256(readFileSync(got))).toBe(sha256(files.get(name)!));
    const lines = gw.log.events.slice(before).flatMap((e) => (e.event === 'control' ? [e.line] : []));
    expect(lines.some((l) => l.startsWith('234 '))).toBe(true);
  });

  test.skipIf(!HAVE.curl)('CCC is refused with a reason code; the session goes on', async () => {
    const r = await curlFtps(['-Q', 'CCC', gw.url(`/${fileName('0 B')}`)]);
    expect(r.code).not.toBe(0);
    await gw.log.waitFor('refuse', (e) => e.code === 'TLS_CCC_REFUSED');
  });
});
