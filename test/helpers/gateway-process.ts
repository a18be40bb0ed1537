/**
 * The ftp-alg binary as a child process, for tests that need a process of
 * its own: a small heap, signals, exit codes. Its JSON log lines are read
 * from stderr as they come; tests wait on them, never on time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const CLI = join(process.cwd(), 'dist/cli.js');

export interface GatewayProcess {
  child: ChildProcess;
  /** The port of the first `listening` event. */
  port: number;
  /** Resolves with the first match in the log so far or to come; rejects if the process exits first. */
  seen(re: RegExp): Promise<RegExpMatchArray>;
  stderr(): string;
  exited: Promise<number | null>;
  /** Resident memory of the process now, from /proc. */
  rssBytes(): number;
  kill(): void;
}

export async function spawnGateway(args: string[], nodeArgs: string[] = []): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...args, '--log-format', 'json'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let log = '';
  const watchers = new Set<() => void>();
  child.stderr!.on('data', (d: Buffer) => {
    // Only what someone waits for needs the log; its last MiB is kept for messages.
    log += d.toString();
    if (log.length > 2 << 20) log = log.slice(-(1 << 20));
    for (const w of watchers) w();
  });
  const seen = (re: RegExp) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = re.exec(log);
        if (m) {
          watchers.delete(check);
          resolve(m);
        }
      };
      watchers.add(check);
      void exited.then((code) => {
        if (!watchers.has(check)) return;
        watchers.delete(check);
        reject(new Error(`gateway exited (${code}) before ${re}: ${log.slice(-2000)}`));
      });
      check();
    });
  const port = Number((await seen(/"event":"listening".*?"port":(\d+)/))[1]);
  return {
    child,
    port,
    seen,
    stderr: () => log,
    exited,
    rssBytes: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024,
    kill: () => child.kill('SIGKILL'),
  };
}
