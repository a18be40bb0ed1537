/**
 * The reverse-mode matrix, run against any server that serves a folder:
 * real curl in every data mode and Python's ftplib passive and active,
 * downloads and uploads of several sizes, checked by sha256.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HAVE, python, randomFile, run, sha256, tempDir } from '../helpers/tools.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import type { ReverseFlags } from '../../src/config.js';

export interface FolderServer {
  port: number;
  stop: () => Promise<void>;
}

const SIZES: Array<[string, number]> = [
  ['0 B', 0],
  ['1 B', 1],
  ['1 MiB', 1 << 20],
  ['64 MiB', 64 << 20],
];

export const CURL_MODES: Array<{ mode: string; args: string[]; kind: string }> = [
  { mode: 'strict PASV', args: ['--disable-epsv', '--no-ftp-skip-pasv-ip'], kind: '227' },
  { mode: 'EPSV', args: [], kind: '229' },
  { mode: 'PORT', args: ['-P', '127.0.0.1', '--disable-eprt'], kind: 'PORT' },
  { mode: 'EPRT', args: ['-P', '127.0.0.1'], kind: 'EPRT' },
];

const FTPLIB = `
import ftplib, hashlib, io, sys
port, passive, name, upload = int(sys.argv[1]), sys.argv[2] == 'passive', sys.argv[3], sys.argv[4]
ftp = ftplib.FTP()
ftp.connect('127.0.0.1', port, timeout=30)
ftp.login('anonymous', 'test@example.org')
ftp.set_pasv(passive)
buf = io.BytesIO()
ftp.retrbinary('RETR ' + name, buf.write)
with open(upload, 'rb') as f:
    ftp.storbinary('STOR ftplib-' + ('p' if passive else 'a') + '.bin', f)
names = ftp.nlst()
ftp.quit()
print(hashlib.sha256(buf.getvalue()).hexdigest(), ','.join(sorted(names)))
`;

export interface MatrixOptions {
  gatewayFlags?: Partial<ReverseFlags>;
  /** Which path the data must take: relayed by us, or translated by the kernel (no relay listener at all). */
  dataPath?: 'relay' | 'kernel';
}

export function reverseMatrix(label: string, skipReason: string, startServer: (dir: string) => Promise<FolderServer>, options: MatrixOptions = {}): void {
  const dataPath = options.dataPath ?? 'relay';
  /** Data channels set up so far, on the path this matrix expects. */
  const channels = (gw: TestGateway) =>
    dataPath === 'kernel' ? gw.log.of('data-nat').filter((e) => e.action === 'map').length : gw.log.of('data-listen').length;
  const skip = skipReason !== '';
  describe.skipIf(skip)(`reverse gateway in front of ${label}${skipReason}`, () => {
    let dir: ReturnType<typeof tempDir>;
    let server: FolderServer;
    let gw: TestGateway;
    const files = new Map<string, Buffer>();

    beforeAll(async () => {
      dir = tempDir();
      for (const [name, size] of SIZES) {
        const content = randomFile(size);
        const file = `down-${name.replace(' ', '')}.bin`;
        files.set(file, content);
        writeFileSync(join(dir.path, file), content);
      }
      server = await startServer(dir.path);
      gw = await startTestReverse(server.port, options.gatewayFlags);
    });
    afterAll(async () => {
      await gw?.close();
      await server?.stop();
      dir?.remove();
    });

    for (const { mode, args, kind } of CURL_MODES) {
      for (const [sizeName, size] of SIZES) {
        test.skipIf(!HAVE.curl)(`curl ${mode}: download and upload ${sizeName}`, async () => {
          const name = `down-${sizeName.replace(' ', '')}.bin`;
          const rewritesBefore = gw.log.of('rewrite').filter((e) => e.kind === kind).length;
          const channelsBefore = channels(gw);
          const down = await run('curl', ['-sS', '--max-time', '60', ...args, gw.url(`/${name}`)]);
          expect(down.stderr).toBe('');
          expect(down.code).toBe(0);
          expect(down.stdout.length).toBe(size);
          expect(sha256(down.stdout)).toBe(sha256(files.get(name)!));

          const upName = `up-${mode.replace(/\W/g, '')}-${sizeName.replace(' ', '')}.bin`;
          const local = join(dir.path, `local-${upName}`);
          writeFileSync(local, files.get(name)!);
          const up = await run('curl', ['-sS', '--max-time', '60', ...args, '-T', local, gw.url(`/${upName}`)]);
          expect(up.stderr).toBe('');
          expect(up.code).toBe(0);
          expect(sha256(readFileSync(join(dir.path, upName)))).toBe(sha256(files.get(name)!));
          // Both transfers went through a data channel the gateway set up.
          expect(gw.log.of('rewrite').filter((e) => e.kind === kind).length).toBe(rewritesBefore + 2);
          expect(channels(gw)).toBe(channelsBefore + 2);
          if (dataPath === 'kernel') expect(gw.log.of('data-listen')).toEqual([]);
        });
      }
    }

    test.skipIf(!HAVE.curl)('curl LIST through the gateway', async () => {
      const r = await run('curl', ['-sS', '--disable-epsv', '--no-ftp-skip-pasv-ip', gw.url('/')]);
      expect(r.code).toBe(0);
      for (const name of files.keys()) expect(r.stdout.toString()).toContain(name);
    });

    for (const mode of ['passive', 'active'] as const) {
      test.skipIf(!HAVE.python)(`Python ftplib ${mode}: RETR, STOR, NLST`, async () => {
        const name = 'down-1MiB.bin';
        const r = await python(FTPLIB, [String(gw.port), mode, name, join(dir.path, name)]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const [digest, names] = r.stdout.toString().trim().split(' ');
        expect(digest).toBe(sha256(files.get(name)!));
        expect(names).toContain(name);
        const stored = readFileSync(join(dir.path, `ftplib-${mode === 'passive' ? 'p' : 'a'}.bin`));
        expect(sha256(stored)).toBe(sha256(files.get(name)!));
        expect(gw.log.of('rewrite').some((e) => e.kind === (mode === 'passive' ? '227' : 'PORT'))).toBe(true);
      });
    }
  });
}
