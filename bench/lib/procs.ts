/**
 * Every process the bench starts, tracked by PID and killed by PID: helpers
 * that print {"port": N} when ready, long-running daemons. A process's
 * descendants (ftp-proxy forks one child per session) are found through
 * /proc and killed by PID too (scenarios/lib/process.ts, the project's one
 * set of process helpers). Nothing is ever killed by name. killAll() runs on
 * exit; callers install signal handlers that exit.
 */
import { spawn, type ChildProcess, type ChildProcessByStdio, type StdioOptions } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import { descendants, isAlive, killQuiet, killTree } from '../../scenarios/lib/process.js';
import { sleep } from './common.js';

export { descendants, isAlive, killTree };

const tracked = new Set<ChildProcess>();

export function track<C extends ChildProcess>(child: C): C {
  tracked.add(child);
  child.once('exit', () => tracked.delete(child));
  return child;
}

export function killAll(): void {
  for (const c of tracked) if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) killTree(c.pid);
}
process.on('exit', killAll);

/** A helper process that printed {"port": N} as its first stdout line. */
export interface Helper {
  proc: ChildProcessByStdio<Writable, Readable, null>;
  pid: number;
  port: number;
  /** Its further stdout lines. */
  later: string[];
  /** The next JSON line it prints (undefined if it exits first or prints no JSON), bounded by ms. */
  nextJson<T>(ms?: number): Promise<T | undefined>;
}

function parseJson<T>(text: string): T | undefined {
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

/**
 * Starts a helper that prints {"port": N} as its first stdout line; resolves
 * when it has. cmd/args as for spawn; stderr is inherited.
 */
export function startHelper(
  cmd: string,
  args: string[],
  { env, timeoutMs = 60_000, what = args.find((a) => a.endsWith('.js')) ?? cmd }: { env?: NodeJS.ProcessEnv; timeoutMs?: number; what?: string } = {},
): Promise<Helper> {
  const proc = track(spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'], env: env ?? process.env }));
  proc.stdin.on('error', () => {});
  const lines = createInterface({ input: proc.stdout });
  const later: string[] = [];
  const waiters: ((line: string | undefined) => void)[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (proc.pid !== undefined) killTree(proc.pid);
      reject(new Error(`${what} did not start within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    proc.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? sig}) before listening`));
      for (const w of waiters.splice(0)) w(undefined);
    });
    let first = true;
    lines.on('line', (text) => {
      if (!first) {
        later.push(text);
        waiters.shift()?.(text);
        return;
      }
      first = false;
      clearTimeout(timer);
      const port = parseJson<{ port?: unknown }>(text)?.port;
      if (typeof port !== 'number' || proc.pid === undefined) {
        reject(new Error(`${what}: unexpected first line ${text}`));
        return;
      }
      resolve({
        proc,
        pid: proc.pid,
        port,
        later,
        nextJson<T>(ms = 30_000) {
          return new Promise<T | undefined>((res) => {
            const t = setTimeout(() => res(undefined), ms);
            waiters.push((line) => {
              clearTimeout(t);
              res(line === undefined ? undefined : parseJson<T>(line));
            });
          });
        },
      });
    });
  });
}

/** Closes a helper through its stdin (SIGKILL after graceMs); resolves with its last JSON line, if any. */
export async function stopHelper<T>(h: Helper, { graceMs = 5000 } = {}): Promise<T | undefined> {
  const exited = new Promise<void>((r) => (h.proc.exitCode !== null || h.proc.signalCode !== null ? r() : h.proc.once('exit', () => r())));
  h.proc.stdin.end();
  await Promise.race([exited, sleep(graceMs)]);
  if (h.proc.exitCode === null && h.proc.signalCode === null) killTree(h.pid);
  await exited;
  const last = h.later.at(-1);
  return last === undefined ? undefined : parseJson<T>(last);
}

/** A long-running process, tracked. */
export interface Daemon {
  proc: ChildProcess;
  pid: number;
  /** The exit code, or the signal's name. */
  exited: Promise<number | string | null>;
  hasExited(): boolean;
}

/** A long-running process (output to a file descriptor or ignored), tracked. */
export function startDaemon(cmd: string, args: string[], { stdio = 'ignore', env }: { stdio?: StdioOptions; env?: NodeJS.ProcessEnv } = {}): Daemon {
  const proc = track(spawn(cmd, args, { stdio, env: env ?? process.env }));
  const exited = new Promise<number | string | null>((r) => {
    proc.once('exit', (code, sig) => r(code ?? sig));
    proc.once('error', (err) => r(err.message));
  });
  if (proc.pid === undefined) throw new Error(`could not start ${cmd}`);
  return { proc, pid: proc.pid, exited, hasExited: () => proc.exitCode !== null || proc.signalCode !== null };
}

/** SIGTERM, then SIGKILL of the whole tree after graceMs; resolves when the process has exited. */
export async function stopDaemon(d: Daemon, { graceMs = 3000 } = {}): Promise<void> {
  if (d.hasExited()) return;
  const kids = descendants(d.pid);
  killQuiet(d.pid, 'SIGTERM');
  await Promise.race([d.exited, sleep(graceMs)]);
  for (const p of kids) if (isAlive(p)) killQuiet(p, 'SIGKILL');
  if (!d.hasExited()) killTree(d.pid);
  await d.exited;
}
