/**
 * Folder mode (`root`): files come from and go to disk, and nothing outside
 * the folder can be reached, by `..` or by a symbolic link.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { RawFtpClient, connectTo, ftpUrl, readAll, runCurl, sha256 } from './clients.js';

describe('demo server serving a folder', () => {
  let base: string;
  let root: string;
  let server: DemoServer;
  let host: string;
  let port: number;
  const random = randomBytes(1024 * 1024);

  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'ftp-alg-folder-'));
    root = path.join(base, 'root');
    const outside = path.join(base, 'outside');
    await mkdir(path.join(root, 'pub'), { recursive: true });
    await mkdir(outside);
    await writeFile(path.join(root, 'pub', 'random.bin'), random);
    await writeFile(path.join(outside, 'secret.txt'), 'secret');
    await symlink(outside, path.join(root, 'escape'));
    await symlink(path.join(outside, 'secret.txt'), path.join(root, 'pub', 'secret-link.txt'));
    server = await startDemoServer({ root });
    ({ host, port } = server.address);
  });

  afterAll(async () => {
    await server?.close();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('downloads and uploads with curl (sha256 on disk)', async () => {
    const down = path.join(base, 'down.bin');
    const get = await runCurl([ftpUrl(host, port, '/pub/random.bin'), '-o', down]);
    expect(get.code).toBe(0);
    expect(sha256(await readFile(down))).toBe(sha256(random));

    const put = await runCurl(['--ftp-create-dirs', '-T', down, ftpUrl(host, port, '/up/copy.bin')]);
    expect(put.stderr).toBe('');
    expect(sha256(await readFile(path.join(root, 'up', 'copy.bin')))).toBe(sha256(random));
    expect(server.files.size).toBe(0);

    const list = await runCurl([ftpUrl(host, port, '/pub/')]);
    expect(list.stdout).toMatch(/^-rw-r--r-- 1 ftp ftp 1048576 .* random\.bin$/m);
  });

  it('keeps every path inside the folder', async () => {
    const c = await RawFtpClient.open(host, port);
    await c.login();
    expect((await c.cmd('CWD ../../..')).code).toBe(250);
    expect((await c.cmd('PWD')).text).toBe('257 "/" is the current directory.');
    expect((await c.cmd('SIZE ../outside/secret.txt')).code).toBe(550);
    expect((await c.cmd('SIZE /escape/secret.txt')).code).toBe(550);
    expect((await c.cmd('SIZE /pub/secret-link.txt')).code).toBe(550);
    expect((await c.cmd('CWD /escape')).code).toBe(550);
    expect((await c.cmd('MKD /escape/new')).code).toBe(550);
    expect((await c.cmd('DELE /escape/secret.txt')).code).toBe(550);

    const retr = async (name: string): Promise<number> => {
      await connectTo(host, await c.epsv()).then((d) => d.on('error', () => {}));
      return (await c.cmd(`RETR ${name}`)).code;
    };
    expect(await retr('../outside/secret.txt')).toBe(550);
    expect(await retr('/escape/secret.txt')).toBe(550);
    expect(await retr('/pub/secret-link.txt')).toBe(550);

    const data = await connectTo(host, await c.epsv());
    data.on('error', () => {});
    expect((await c.cmd('STOR /escape/planted.txt')).code).toBe(553);
    data.destroy();
    await expect(stat(path.join(base, 'outside', 'planted.txt'))).rejects.toThrow();

    // The listing of the root shows the link by name; following it is what is refused.
    const listing = connectTo(host, await c.epsv()).then(readAll);
    expect((await c.cmd('NLST /')).code).toBe(150);
    expect((await listing).toString().split('\r\n')).toEqual(expect.arrayContaining(['escape', 'pub']));
    expect((await c.next()).code).toBe(226);
    c.destroy();
  });

  it('makes and removes directories and deletes files', async () => {
    const c = await RawFtpClient.open(host, port);
    await c.login();
    expect((await c.cmd('MKD /made')).text).toBe('257 "/made" created.');
    expect((await c.cmd('MKD /made')).code).toBe(550);
    await writeFile(path.join(root, 'made', 'f.txt'), 'f');
    expect((await c.cmd('RMD /made')).code).toBe(550);
    expect((await c.cmd('DELE /made/f.txt')).code).toBe(250);
    expect((await c.cmd('RMD /made')).code).toBe(250);
    expect((await c.cmd('RMD /')).code).toBe(550);
    c.destroy();
  });
});
