/**
 * Every process the bench starts, tracked by PID and killed by PID: helpers
 * that print {"port": N} when ready, long-running daemons, one-shot
 * commands. A process's descendants (ftp-proxy forks one child per session)
 * are found through /proc and killed by PID too. Nothing is ever killed by
 * name. killAll() runs on exit; callers install signal handlers that exit.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { sleep } from './common.mjs';

const tracked = new Set();

export function track(child) {
  tracked.add(child);
  child.once('exit', () => tracked.delete(child));
  return child;
}

/** PIDs of all descendants of pid (children, grandchildren, …), from /proc/N/stat. */
export function descendants(pid) {
  const parentOf = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]);
      parentOf.set(Number(name), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const out = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift();
    for (const [child, parent] of parentOf) {
      if (parent === p && !out.includes(child)) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

/** Alive and not a zombie (LAB.md: judge from /proc/PID/stat, not kill -0). */
export function isAlive(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function killQuiet(pid, sig) {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** SIGKILLs a process and all its descendants, by PID. */
export function killTree(pid) {
  for (const p of [...descendants(pid), pid]) killQuiet(p, 'SIGKILL');
}

export function killAll() {
  for (const c of tracked) if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) killTree(c.pid);
}
process.on('exit', killAll);

/**
 * Starts a helper that prints {"port": N} as its first stdout line; resolves
 * with { proc, pid, port, later, nextJson() } (later: its further lines).
 * cmd/args as for spawn; stderr is inherited.
 */
export function startHelper(cmd, args, { env, timeoutMs = 60_000, what = args.find((a) => a.endsWith('.mjs')) ?? cmd } = {}) {
  const proc = track(spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'], env: env ?? process.env }));
  proc.stdin.on('error', () => {});
  const lines = createInterface({ input: proc.stdout });
  const later = [];
  const waiters = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      killTree(proc.pid);
      reject(new Error(`${what} did not start within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    proc.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? sig}) before listening`));
      for (const w of waiters.splice(0)) w(undefined);
    });
    let first = true;
    lines.on('line', (text) => {
      if (first) {
        first = false;
        clearTimeout(timer);
        let port;
        try {
          port = JSON.parse(text).port;
        } catch {
          reject(new Error(`${what}: unexpected first line ${text}`));
          return;
        }
        resolve({
          proc,
          pid: proc.pid,
          port,
          later,
          /** The next JSON line it prints (undefined if it exits first), bounded by ms. */
          nextJson(ms = 30_000) {
            return new Promise((res) => {
              const t = setTimeout(() => res(undefined), ms);
              waiters.push((v) => {
                clearTimeout(t);
                res(v);
              });
            });
          },
        });
      } else {
        later.push(text);
        const w = waiters.shift();
        if (w) {
          try {
            w(JSON.parse(text));
          } catch {
            w(undefined);
          }
        }
      }
    });
  });
}

/** Closes a helper through its stdin (SIGKILL after 5 s); resolves with its last JSON line, if any. */
export async function stopHelper(h, { graceMs = 5000 } = {}) {
  const exited = new Promise((r) => (h.proc.exitCode !== null || h.proc.signalCode !== null ? r() : h.proc.once('exit', r)));
  h.proc.stdin.end();
  await Promise.race([exited, sleep(graceMs)]);
  if (h.proc.exitCode === null && h.proc.signalCode === null) killTree(h.pid);
  await exited;
  const last = h.later.at(-1);
  try {
    return last ? JSON.parse(last) : undefined;
  } catch {
    return undefined;
  }
}

/** A long-running process (output to a file descriptor or ignored), tracked. */
export function startDaemon(cmd, args, { stdio = 'ignore', env } = {}) {
  const proc = track(spawn(cmd, args, { stdio, env: env ?? process.env }));
  const exited = new Promise((r) => proc.once('exit', (code, sig) => r(code ?? sig)));
  proc.once('error', () => {});
  return { proc, pid: proc.pid, exited, hasExited: () => proc.exitCode !== null || proc.signalCode !== null };
}

/** SIGTERM, then SIGKILL of the whole tree after graceMs; resolves when the process has exited. */
export async function stopDaemon(d, { graceMs = 3000 } = {}) {
  if (d.hasExited()) return;
  const kids = descendants(d.pid);
  killQuiet(d.pid, 'SIGTERM');
  await Promise.race([d.exited, sleep(graceMs)]);
  for (const p of kids) if (isAlive(p)) killQuiet(p, 'SIGKILL');
  if (!d.hasExited()) killTree(d.pid);
  await d.exited;
}

/**
 * Runs a command to completion, output captured; SIGKILLed (with its
 * descendants) after timeoutMs. Never rejects.
 */
export function runCommand(cmd, args, { timeoutMs = 15_000, input } = {}) {
  return new Promise((resolve) => {
    const proc = track(spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.on('data', (c) => (stdout += c));
    proc.stderr.on('data', (c) => (stderr += c));
    proc.stdin.on('error', () => {});
    proc.stdin.end(input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      killTree(proc.pid);
    }, timeoutMs);
    proc.once('error', (e) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: e.message, timedOut });
    });
    proc.once('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal: sig, stdout, stderr, timedOut });
    });
  });
}

/** Synchronous variant for cleanup paths (exit handlers). */
export function runSync(cmd, args, timeoutMs = 5000) {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
}
