/**
 * Real clients and servers for end-to-end tests, and the reasons a test
 * skips when one is missing (visible in the test name; CI installs all and
 * fails on any skip).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBuffered } from '../../scenarios/lib/process.js';

export const SYSTEM_PYTHON = '/usr/bin/python3';

function has(cmd: string[]): boolean {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { stdio: 'ignore', timeout: 10_000 });
  return r.status === 0;
}

export const HAVE = {
  curl: has(['curl', '--version']),
  python: existsSync(SYSTEM_PYTHON),
  pyftpdlib: existsSync(SYSTEM_PYTHON) && has([SYSTEM_PYTHON, '-c', 'import pyftpdlib']),
  lftp: has(['lftp', '--version']),
  tnftp: has(['sh', '-c', 'command -v tnftp']),
  tcpdump: has(['sh', '-c', 'command -v tcpdump']),
  root: process.getuid?.() === 0,
};

/** `why` is shown by vitest in the skipped test's name. */
export function needs(what: keyof typeof HAVE, why: string): string {
  return HAVE[what] ? '' : ` [skipped: ${why}]`;
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export function randomFile(bytes: number): Buffer {
  // Repeat a random 1 MiB block: random enough to catch reordering, cheap to make.
  const block = randomBytes(Math.min(bytes, 1 << 20));
  const out = Buffer.allocUnsafe(bytes);
  for (let o = 0; o < bytes; o += block.length) block.copy(out, o, 0, Math.min(block.length, bytes - o));
  return out;
}

export function tempDir(prefix = 'ftp-alg-test-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a client to completion (bounded by timeoutMs, then killed: code 1). */
export async function run(cmd: string, args: string[], opts: { input?: Buffer | string; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  const r = await runBuffered(cmd, args, { ...opts, maxBuffer: 512 << 20, timeoutMs: opts.timeoutMs ?? 60_000 });
  return { code: r.code ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a Python ftplib script with the system Python; argv is available as sys.argv[1:]. */
export function python(script: string, args: string[] = [], timeoutMs = 60_000): Promise<RunResult> {
  return run(SYSTEM_PYTHON, ['-c', script, ...args], { timeoutMs });
}

export interface Spawned {
  child: ChildProcess;
  port: number;
  stop: () => Promise<void>;
}

async function freePort(host: string): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, host, r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * A free port outside the kernel's ephemeral range (32768-60999), for a
 * test that names a one-port range: no connection elsewhere in the test run
 * can take it between here and the gateway's listen.
 */
export async function quietPort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    const s = net.createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, host, () => r(true));
    });
    if (ok) {
      await new Promise((r) => s.close(r));
      return port;
    }
  }
  throw new Error('no free port in 20000-29999 after 50 attempts');
}

/**
 * pyftpdlib (Debian's python3-pyftpdlib) serving `dir` read-write on
 * 127.0.0.1. `masquerade` sets the address it announces in 227 (-n).
 * Ready when it prints its "starting FTP server" line.
 */
export async function startPyftpdlib(dir: string, masquerade?: string): Promise<Spawned> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort('127.0.0.1');
    const args = ['-m', 'pyftpdlib', '-i', '127.0.0.1', '-p', String(port), '-d', dir, '-w', ...(masquerade ? ['-n', masquerade] : [])];
    const child = spawn(SYSTEM_PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const ready = await new Promise<boolean>((resolve) => {
      let seen = '';
      const onData = (d: Buffer) => {
        seen += d.toString();
        if (/starting FTP server|concurrency model/i.test(seen)) resolve(true);
        if (/Address already in use/i.test(seen)) resolve(false);
      };
      child.stderr!.on('data', onData);
      child.stdout!.on('data', onData);
      child.once('exit', () => resolve(false));
    });
    const stop = () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      });
    if (ready) return { child, port, stop };
    await stop();
  }
  throw new Error('pyftpdlib did not start');
}
