/**
 * The transfer log: `--transfer-log FILE` in xferlog format, reopened on
 * SIGHUP (logrotate), and the `transfer`/`login` events it is written from,
 * with the direction the user sees for RETR/STOR/LIST in both modes and on
 * both data paths.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { HAVE, randomFile, run, tempDir } from '../helpers/tools.js';
import { listeningPort, startGatewayProcess, type LogLine } from './ops-process.js';

const FILE = randomFile(300_000);
let server: DemoServer;
const dir = tempDir('ftp-alg-ops-xfer-');
beforeAll(async () => {
  server = await startDemoServer({ files: { '/pub/f.bin': FILE }, users: { alice: 'secret' } });
});
afterAll(async () => {
  await server?.close();
  dir.remove();
});

const reverseArgs = (...more: string[]) => ['reverse', '--listen', '127.0.0.1:0', '--server', `127.0.0.1:${server.address.port}`, '--public-address', '127.0.0.1', ...more];

test('SIGHUP reopens the transfer log: logrotate moves it away, a new file appears by the same name', async () => {
  const log = join(dir.path, 'xferlog');
  const gw = startGatewayProcess(reverseArgs('--transfer-log', log));
  try {
    await listeningPort(gw);
    expect(existsSync(log)).toBe(true);
    renameSync(log, `${log}.1`);
    gw.child.kill('SIGHUP');
    expect(await gw.waitFor((e) => e.event === 'reopen', 'reopen')).toMatchObject({ files: [log] });
    expect(existsSync(log)).toBe(true);
    gw.child.kill('SIGTERM');
    expect((await gw.exited).code).toBe(0);
  } finally {
    await gw.kill();
  }
});

test('--transfer-log in a folder that does not exist: exit 1, one line naming the file', async () => {
  const r = await run(process.execPath, [join(process.cwd(), 'dist/cli.js'), ...reverseArgs('--transfer-log', join(dir.path, 'no/such/dir/xferlog'))], { timeoutMs: 30_000 });
  expect(r.code).toBe(1);
  expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^ftp-alg: .*ENOENT.*no\/such\/dir\/xferlog/)]);
});

/**
 * Wiring pending: the session must feed src/alg/transfer-log.ts (see the
 * helper's report). Until then no `transfer`/`login` event exists; these
 * tests are written and skipped with that reason.
 */
const kernelSkip = HAVE.root && spawnSync('nft', ['--version']).status === 0 ? '' : ' [skipped: needs root and nft]';

describe(`transfer events and xferlog lines have the user's direction`, () => {
  const matrix = [
    ['RETR', 'passive', 'download', 'o'],
    ['RETR', 'active', 'download', 'o'],
    ['STOR', 'passive', 'upload', 'i'],
    ['STOR', 'active', 'upload', 'i'],
    ['LIST', 'passive', 'listing', undefined],
    ['LIST', 'active', 'listing', undefined],
  ] as const;
  for (const dataPath of ['relay', 'kernel'] as const) {
    // The kernel path needs root and nft: skipped, with the reason in its name, where they are missing.
    (dataPath === 'kernel' && kernelSkip !== '' ? test.skip : test).each(matrix)(`%s %s on the ${dataPath} path → %s${dataPath === 'kernel' ? kernelSkip : ''}`, async (command, mode, direction, xferDirection) => {
      const log = join(dir.path, `xferlog-${dataPath}-${command}-${mode}`);
      const extra = dataPath === 'kernel' ? ['--data-path', 'kernel', '--nft-table', `ops_xfer_${process.pid}`] : [];
      const gw = startGatewayProcess(reverseArgs('--transfer-log', log, ...extra));
      try {
        const port = await listeningPort(gw);
        const url = `ftp://alice:secret@127.0.0.1:${port}`;
        const active = mode === 'active' ? ['-P', '127.0.0.1'] : [];
        const r =
          command === 'RETR'
            ? await run('curl', ['-sS', ...active, `${url}/pub/f.bin`])
            : command === 'STOR'
              ? await run('curl', ['-sS', ...active, '-T', '-', `${url}/pub/up-${mode}-${dataPath}.bin`], { input: FILE })
              : await run('curl', ['-sS', ...active, `${url}/pub/`]);
        expect(r.code, r.stderr).toBe(0);
        const login = await gw.waitFor((e) => e.event === 'login', 'login event');
        expect(login).toMatchObject({ user: 'alice', reply: 230 });
        const t: LogLine = await gw.waitFor((e) => e.event === 'transfer', 'transfer event');
        expect(t).toMatchObject({ user: 'alice', command, direction, mode, dataPath, reply: 226, listener: expect.any(String), client: expect.stringMatching(/^127\.0\.0\.1:/) });
        if (dataPath === 'relay' && command !== 'LIST') expect(t.bytes).toBe(FILE.length);
        if (dataPath === 'kernel') expect(t.bytes !== undefined || typeof t.bytesOmitted === 'string').toBe(true);
        gw.child.kill('SIGTERM');
        await gw.exited;
        const lines = readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);
        if (xferDirection === undefined) expect(lines).toEqual([]);
        else {
          expect(lines).toHaveLength(1);
          const f = lines[0]!.split(/ +/);
          expect(f[6]).toBe('127.0.0.1');
          expect(f[11]).toBe(xferDirection);
          expect(f[13]).toBe('alice');
          expect(f[17]).toBe('c');
          if (dataPath === 'relay') expect(Number(f[7])).toBe(FILE.length);
        }
      } finally {
        await gw.kill();
        if (dataPath === 'kernel') spawnSync('nft', ['delete', 'table', 'inet', `ops_xfer_${process.pid}`]);
      }
    });
  }

  test('a failed login is a login event with its code (fail2ban reads it)', async () => {
    const gw = startGatewayProcess(reverseArgs());
    try {
      const port = await listeningPort(gw);
      const c = await FtpClient.connect('127.0.0.1', port);
      await c.read();
      expect((await c.send('USER alice')).code).toBe(331);
      expect((await c.send('PASS wrong')).code).toBe(530);
      c.close();
      expect(await gw.waitFor((e) => e.event === 'login', 'login event')).toMatchObject({ user: 'alice', reply: 530, client: expect.stringMatching(/^127\.0\.0\.1:/) });
    } finally {
      await gw.kill();
    }
  });
});
