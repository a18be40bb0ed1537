/**
 * Process helpers shared by the lab (scenarios/lib/lab.ts), the scenario
 * runner, the namespace tests and the bench: polling without sleeps as
 * synchronisation, liveness from /proc, killing by PID (never by name), and
 * running a command to completion with a hard time bound, and what /proc
 * says of a process (memory, CPU, open files). No side effects on import.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls cond every everyMs until true or timeoutMs has passed; bounded in rounds and time. */
export async function pollUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const rounds = Math.ceil(timeoutMs / everyMs) + 2;
  for (let i = 0; i < rounds; i++) {
    if (await cond()) return true;
    if (Date.now() >= deadline) return false;
    await pause(everyMs);
  }
  return false;
}

/** The fields of /proc/PID/stat after the parenthesised command name (which may hold spaces); field 0 is the state. */
function statFields(pid: number | string): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Alive = exists and is not a zombie (a zombie lingers until reaped; kill -0 would call it alive). */
export function isAlive(pid: number): boolean {
  try {
    const state = statFields(pid)[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Open file descriptors of a process (the listing's own directory fd included, so compare like with like). */
export function fdCount(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** VmRSS / VmHWM (peak) of a process in bytes, from /proc/PID/status; NaN when not there. */
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
  const f = statFields(pid);
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** CPU seconds of a process plus those of its children it has waited for (cutime + cstime): a forking daemon's whole cost. */
export function procCpuSecondsWithChildren(pid: number): number {
  const f = statFields(pid);
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
}

/** PIDs in `ip netns pids` output (or any whitespace-separated list), without init and ourselves. */
export function parsePids(text: string): number[] {
  return text
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number)
    .filter((p) => p > 1 && p !== process.pid);
}

export function killQuiet(pid: number, sig: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** Children, grandchildren… of pid, from /proc (bounded: at most 8 levels). */
export function descendants(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      parentOf.set(Number(d), Number(statFields(d)[1]));
    } catch {
      /* exited meanwhile */
    }
  }
  const out = new Set<number>();
  let frontier = [root];
  for (let depth = 0; depth < 8 && frontier.length; depth++) {
    const next: number[] = [];
    for (const [pid, ppid] of parentOf) if (frontier.includes(ppid) && !out.has(pid)) next.push(pid);
    next.forEach((p) => out.add(p));
    frontier = next;
  }
  return [...out];
}

/** SIGKILLs a process and all its descendants, by PID. */
export function killTree(pid: number): void {
  for (const p of [...descendants(pid), pid]) killQuiet(p, 'SIGKILL');
}

/** SIGKILLs pids and waits (bounded) until none is alive; resolves with the survivors. */
export async function killAndWait(pids: number[], timeoutMs = 3_000): Promise<number[]> {
  for (const p of pids) killQuiet(p, 'SIGKILL');
  await pollUntil(() => pids.every((p) => !isAlive(p)), timeoutMs);
  return pids.filter(isAlive);
}

export interface RunResult<Out extends string | Buffer = string> {
  /** null when killed by a signal or when it could not be started. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Out;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  input?: string | Buffer;
  /** SIGKILL after this long (default 15 s). */
  timeoutMs?: number;
  cwd?: string;
  /** Output kept at most (default 16 MiB). */
  maxBuffer?: number;
}

function runWith<Out extends string | Buffer>(cmd: string, args: string[], opts: RunOptions, toOut: (b: Buffer) => Out): Promise<RunResult<Out>> {
  return new Promise((resolve) => {
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const started = Date.now();
    const options = { encoding: 'buffer' as const, maxBuffer: opts.maxBuffer ?? 16 << 20, timeout: timeoutMs, killSignal: 'SIGKILL' as const, cwd: opts.cwd };
    const child = execFile(cmd, args, options, (err, stdout, stderrBytes) => {
      const e = err as (Error & { code?: unknown; signal?: NodeJS.Signals | null }) | null;
      const code = e ? (typeof e.code === 'number' ? e.code : null) : 0;
      const signal = e?.signal ?? null;
      const stderr = stderrBytes.toString();
      resolve({ code, signal, stdout: toOut(stdout), stderr: e && code === null && signal === null && !stderr ? e.message : stderr, timedOut: signal === 'SIGKILL' && Date.now() - started >= timeoutMs });
    });
    // A command that exits without reading its input must not crash the runner (EPIPE).
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input ?? '');
  });
}

/** Runs a command to completion, output captured as text, SIGKILLed after timeoutMs. Never rejects. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runWith(cmd, args, opts, (b) => b.toString());
}

/** The same with stdout as bytes (a download to stdout, a checksum). */
export function runBuffered(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult<Buffer>> {
  return runWith(cmd, args, opts, (b) => b);
}
