/**
 * Small helpers shared by the benchmarks: process metrics from /proc,
 * formatting. Linux only (/proc).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export { fdCount, procCpuSeconds, procCpuSecondsWithChildren, procMemory } from '../../scenarios/lib/process.js';

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

/**
 * Before a measurement: when an earlier one left `from` or more sockets in
 * TIME-WAIT, waits (at most 65 s: TIME-WAIT lasts 60) until fewer than
 * `below` are left, and says so. Tens of thousands of them make connect()
 * and bind(…, 0) search the port space and would burden whichever path
 * happens to run next; a few thousand do not, and waiting for them to go
 * would only make the bench slower.
 */
export async function drainTimeWait(log: (text: string) => void, what: string, { from = 10_000, below = 5_000, maxMs = 65_000 } = {}): Promise<void> {
  const start = timeWaitCount();
  if (!(start >= from)) return;
  const until = Date.now() + maxMs;
  let n = start;
  while (n >= below && Date.now() < until) {
    await sleep(1000);
    n = timeWaitCount();
  }
  log(`${what}: waited for ${start} TIME-WAIT sockets to expire; ${n} left`);
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
