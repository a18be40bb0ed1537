/**
 * Real FTP servers on loopback for the ABOR and grammar tests: vsftpd
 * (needs root: it drops privileges itself) and pyftpdlib, each serving a
 * fresh folder, stopped by the test.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { pollUntil } from '../../scenarios/lib/process.js';
import { vsftpdConfigText } from '../../scenarios/lib/vsftpd-config.js';
import { HAVE, startPyftpdlib, tempDir } from '../helpers/tools.js';

export interface LoopbackServer {
  name: 'vsftpd' | 'pyftpdlib';
  port: number;
  stop: () => Promise<void>;
}

export const HAVE_VSFTPD = HAVE.root && spawnSync('sh', ['-c', 'command -v vsftpd'], { stdio: 'ignore' }).status === 0;

/** A port nobody listens on right now, below the ephemeral range. */
async function freeLowPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createServer().once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port for vsftpd');
}

function listening(port: number): boolean {
  const r = spawnSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8', timeout: 5_000 });
  return r.status === 0 && r.stdout.trim() !== '';
}

/** vsftpd on 127.0.0.1, anonymous read-only, serving `files`; PASV and PORT both allowed. */
export async function startLoopbackVsftpd(files: Record<string, Buffer>): Promise<LoopbackServer> {
  const dir = tempDir('ftp-alg-grammar-vsftpd-');
  chmodSync(dir.path, 0o755);
  const root = join(dir.path, 'anon');
  const empty = join(dir.path, 'empty');
  mkdirSync(root, { mode: 0o755 });
  mkdirSync(empty, { mode: 0o755 });
  for (const [name, data] of Object.entries(files)) writeFileSync(join(root, name), data, { mode: 0o644 });
  const port = await freeLowPort();
  const conf = join(dir.path, 'vsftpd.conf');
  writeFileSync(conf, vsftpdConfigText({ address: '127.0.0.1', port, root, emptyDir: empty, logPath: join(dir.path, 'vsftpd.log') }), { mode: 0o600 });
  const child = spawn('vsftpd', [conf], { stdio: 'ignore' });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    dir.remove();
  };
  if (!(await pollUntil(() => listening(port) || child.exitCode !== null, 10_000, 25)) || child.exitCode !== null) {
    await stop();
    throw new Error(`vsftpd did not listen on 127.0.0.1:${port}`);
  }
  return { name: 'vsftpd', port, stop };
}

export async function startLoopbackPyftpdlib(files: Record<string, Buffer>): Promise<LoopbackServer> {
  const dir = tempDir('ftp-alg-grammar-py-');
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir.path, name), data);
  const s = await startPyftpdlib(dir.path);
  return {
    name: 'pyftpdlib',
    port: s.port,
    stop: async () => {
      await s.stop();
      dir.remove();
    },
  };
}
