/**
 * `npm start` as a newcomer meets it: the happy path logs no warning, and
 * every client line the demo suggests works as printed (the lftp one used
 * to fail with "xfer:clobber is unset").
 */
import { expect, test } from 'vitest';
import { spawn } from 'node:child_process';
import { HAVE, run } from '../helpers/tools.js';
import { CLI } from './ops-process.js';

const skip = HAVE.curl && HAVE.lftp ? '' : ' [skipped: needs curl and lftp]';

test(`the demo: no warning on the happy path, every suggested command works as printed, SIGHUP does not end it${skip}`, async ({ skip: skipTest }) => {
  if (skip) skipTest();
  const child = spawn(process.execPath, [CLI, 'demo', '--listen', '127.0.0.1:0', '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ctrl-C stops it.')) resolve();
      });
      child.once('exit', () => reject(new Error(`demo exited: ${out}${err}`)));
    });
    const commands = out.split('\n').filter((l) => /^\s+(curl|lftp) /.test(l)).map((l) => l.replace(/\s+#.*$/, '').trim());
    expect(commands.length).toBeGreaterThanOrEqual(4);
    for (const command of commands) {
      const r = await run('sh', ['-c', command], { timeoutMs: 30_000 });
      expect(r.code, `${command}\n${r.stderr}`).toBe(0);
      if (/hello\.txt/.test(command)) expect(r.stdout.toString()).toContain('Hello through ftp-alg!');
    }
    child.kill('SIGHUP');
    await new Promise<void>((resolve) => {
      const check = () => err.includes('"event":"reopen"') && resolve();
      child.stderr.on('data', check);
      check();
    });
    expect(child.exitCode).toBeNull();
    const levels = err.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { level: number; event: string; code?: string }));
    expect(levels.filter((l) => l.level >= 40)).toEqual([]);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  } finally {
    child.kill('SIGKILL');
  }
});
