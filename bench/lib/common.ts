/**
 * Small helpers shared by the benchmarks: process metrics from /proc,
 * formatting. Linux only (/proc).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository: this file runs compiled as .bench-build/bench/lib/common.js (npm run bench builds it). */
export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** MB = 10^6 bytes, as curl and the LAB.md baselines count. */
export const MB = 1e6;
export const KiB = 1024;
export const MiB = 1024 * 1024;

export function mb(bytes: number): string {
  return (bytes / MB).toFixed(1);
}

export function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}

/** Open file descriptors of a process (the listing's own directory fd included, so compare like with like). */
export function fdCount(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** VmRSS / VmHWM (peak) of a process in bytes, from /proc/PID/status. */
export function procMemory(pid: number | 'self' = 'self'): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : NaN;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on every Linux we run on

/** CPU seconds (user + system) a process has used, from /proc/PID/stat. */
export function procCpuSeconds(pid: number | 'self' = 'self'): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name (which may hold spaces).
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
}

/** Positive integer flag, or exit 2 naming it. */
export function positiveNumber(name: string, text: string, { integer = true } = {}): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    process.stderr.write(`bench: --${name} must be a positive ${integer ? 'integer' : 'number'}, got "${text}"\n`);
    process.exit(2);
  }
  return n;
}

/** NaN when empty. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** TCP sockets in TIME-WAIT in this network namespace (/proc/net/sockstat), NaN when unreadable. */
export function timeWaitCount(): number {
  try {
    const m = /^TCP:.*\btw (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** CPU seconds of a process plus those of its children it has waited for (cutime + cstime): a forking daemon's whole cost. */
export function procCpuSecondsWithChildren(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14])) / CLK_TCK;
}

/** Nearest-rank percentile (p in 0–100) of a list of numbers; NaN when empty. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1]!;
}

/** The 1/5/15-minute load average as printed by the benches. */
export function loadavgText(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** Rejects after ms with a message naming `what`; the timer never keeps the process alive. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}
