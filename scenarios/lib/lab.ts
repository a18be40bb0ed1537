/**
 * The one network-namespace lab of the project, used by the scenarios, the
 * namespace tests (test/helpers/netns.ts) and the bench: any number of
 * namespaces and veth links, the processes started in them, temporary
 * folders, and their guaranteed removal. Rules: a unique prefix per run,
 * veths created directly inside the namespaces (nothing appears in the host
 * namespace), every process tracked by PID, `ip netns pids` swept before
 * `ip netns del`, and a synchronous last-resort cleanup on exit and on
 * SIGINT/SIGTERM/SIGHUP. No sleeps as synchronisation: readiness is polled
 * with `ss -Hltn` (which never connects, so one-shot listeners stay intact).
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { isAlive, killAndWait, killQuiet, parsePids, pollUntil, run, type RunResult } from './process.js';

export { isAlive, pollUntil, run, type RunResult };

function nsPidsSync(ns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5_000 });
  return parsePids(r.stdout ?? '');
}

function has(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

/** Why no Lab can be built here (not root, no iproute2, no nftables), or undefined when one can. */
export function labUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  if (!has('ip', ['-V'])) return 'iproute2 (ip) not available';
  if (!has('nft', ['--version'])) return 'nftables (nft) not available';
  return undefined;
}

/** Namespace names: `fasc<pid36>-<n>-<name>`; the owner pid lets a later run find leftovers of a crashed one. */
export const NS_PREFIX = 'fasc';

// ---- per-namespace /etc (resolv.conf) ---------------------------------------------

/**
 * `ip netns exec` bind-mounts /etc/netns/NAME/* over /etc/*. Without this, a
 * client that resolves names (ncftp looks up the server's address) would
 * send DNS queries to the host's resolver, an address outside the plan,
 * through our gateways, and wait 5 s for an answer that cannot come. With
 * it, the resolver is loopback: refused at once, nothing leaves the plan.
 */
const NETNS_ETC = '/etc/netns';
/** Whether /etc/netns is someone else's too (then it is never removed); one holding only our entries was made by a run of ours. */
const netnsEtcExisted = existsSync(NETNS_ETC) && readdirSync(NETNS_ETC).some((n) => !n.startsWith(NS_PREFIX));

function writeNetnsEtc(name: string): void {
  mkdirSync(`${NETNS_ETC}/${name}`, { recursive: true, mode: 0o755 });
  writeFileSync(`${NETNS_ETC}/${name}/resolv.conf`, 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n', { mode: 0o644 });
}

function removeNetnsEtc(name: string): void {
  rmSync(`${NETNS_ETC}/${name}`, { recursive: true, force: true });
  if (!netnsEtcExisted) {
    try {
      rmdirSync(NETNS_ETC); // only when empty, and only if we created it
    } catch {
      /* not empty, or gone */
    }
  }
}

// ---- run-wide registry for the last-resort cleanup ------------------------------

const OWNER = process.pid.toString(36);
/** Worker threads share the pid: the thread id keeps their namespaces apart. */
const THREAD = threadId ? `${threadId.toString(36)}x` : '';
let labCounter = 0;
const liveLabs = new Set<Lab>();
let exitHookInstalled = false;
let signalHooksInstalled = false;

/** Every Lab not yet destroyed: SIGKILL by PID, delete by name, synchronously (exit handlers, signal handlers). */
export function destroyAllLabsSync(): void {
  for (const lab of liveLabs) lab.destroySync();
  liveLabs.clear();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', destroyAllLabsSync);
}

/**
 * Kill, delete, remove, synchronously, on the usual signals too. `exit`
 * (the runner's choice): then onSignal, then exit with 128+n. `reraise` (a
 * test worker, whose pool owns the signal): the signal is raised again once
 * ours is the last handler, so its default action still happens.
 */
export function installCleanupHooks(onSignal?: (sig: NodeJS.Signals) => void, then: 'exit' | 'reraise' = 'exit'): void {
  installExitHook();
  if (signalHooksInstalled) return;
  signalHooksInstalled = true;
  const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      destroyAllLabsSync();
      onSignal?.(sig);
      if (then === 'exit') process.exit(codes[sig]);
      process.removeListener(sig, handler);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

/** Lab namespaces of any run (this one, a concurrent one, a crashed one) that exist now. */
function listLabNamespaces(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5_000 });
  return (r.stdout ?? '')
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(NS_PREFIX));
}

/**
 * Namespaces of this process's labs that exist now. Other runs on the same
 * machine (another worktree's scenarios, namespace tests) are theirs to clean.
 */
export function listOurNamespaces(): string[] {
  return listLabNamespaces().filter((n) => n.startsWith(`${NS_PREFIX}${OWNER}-`));
}

/**
 * Namespaces left by an earlier run that died without cleaning up (its owner
 * pid, encoded in the name, is gone): their processes are killed by PID and
 * the namespaces deleted by name. Returns what was removed.
 */
export async function removeStaleNamespaces(): Promise<string[]> {
  const deadOwner = (n: string) => {
    const m = new RegExp(`^${NS_PREFIX}([0-9a-z]+)-`).exec(n);
    return m !== null && m[1] !== OWNER && !isAlive(parseInt(m[1]!, 36));
  };
  const stale = listLabNamespaces().filter(deadOwner);
  for (const n of stale) {
    await killAllIn(n);
    await run('ip', ['netns', 'del', n], { timeoutMs: 10_000 });
  }
  // Also /etc/netns folders whose namespace never came to exist.
  const etc = existsSync(NETNS_ETC) ? readdirSync(NETNS_ETC).filter((n) => n.startsWith(NS_PREFIX) && deadOwner(n)) : [];
  for (const n of new Set([...stale, ...etc])) removeNetnsEtc(n);
  return stale;
}

/** SIGKILLs everything in ns until it is empty (a process may fork meanwhile: several rounds, bounded). */
async function killAllIn(ns: string, timeoutMs = 5_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (let round = 0; round < 20; round++) {
    const pids = parsePids((await run('ip', ['netns', 'pids', ns], { timeoutMs: 5_000 })).stdout);
    const alive = pids.filter(isAlive);
    if (alive.length === 0) return [];
    for (const p of alive) killQuiet(p, 'SIGKILL');
    await pollUntil(() => alive.every((p) => !isAlive(p)), Math.max(100, deadline - Date.now()));
    if (Date.now() >= deadline) return alive.filter(isAlive);
  }
  return parsePids((await run('ip', ['netns', 'pids', ns])).stdout).filter(isAlive);
}

// ---- commands in a namespace -------------------------------------------------------

/** argv that runs cmd inside the namespace netns (its full name), or on the host when netns is undefined. */
export function inNamespace(netns: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return netns === undefined ? [cmd, args] : ['ip', ['netns', 'exec', netns, cmd, ...args]];
}

/**
 * Polls `ss -Hltn` (in netns, by full name, or on the host) until a TCP
 * listener on port exists; false after timeoutMs or as soon as alive() says
 * the process that should listen is gone. Never connects (a probe would use
 * up a one-shot listener).
 */
export async function waitTcpListener(port: number, opts: { netns?: string | undefined; timeoutMs?: number; alive?: () => boolean } = {}): Promise<boolean> {
  const alive = opts.alive ?? (() => true);
  let gone = false;
  const ok = await pollUntil(async () => {
    if (!alive()) return (gone = true);
    const [cmd, args] = inNamespace(opts.netns, 'ss', ['-Hltn', `sport = :${port}`]);
    const r = await run(cmd, args, { timeoutMs: 5_000 });
    return r.code === 0 && r.stdout.trim() !== '';
  }, opts.timeoutMs ?? 10_000);
  return ok && !gone;
}

// ---- the lab ------------------------------------------------------------------------

export interface Proc {
  pid: number;
  child: ChildProcess;
  /** Resolves with the exit code (or signal) when the process ends. */
  exited: Promise<string>;
  hasExited(): boolean;
}

export interface ClientExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  durationMs: number;
}

export class Lab {
  readonly prefix: string;
  private readonly created: string[] = [];
  private readonly procs = new Set<ChildProcess>();
  private readonly cleanups: (() => void | Promise<void>)[] = [];
  private readonly dirs: string[] = [];
  private destroying: Promise<string[]> | undefined;

  constructor() {
    this.prefix = `${NS_PREFIX}${OWNER}-${THREAD}${(labCounter++).toString(36)}`;
    liveLabs.add(this);
    installExitHook();
  }

  /** The real namespace name of a scenario's short name. */
  ns(short: string): string {
    return `${this.prefix}-${short}`;
  }

  /** `ip netns exec` a setup command; throws with its stderr when it fails. */
  async must(ns: string | undefined, cmd: string, args: string[], input?: string): Promise<RunResult> {
    const full = ns === undefined ? [cmd, ...args] : ['ip', 'netns', 'exec', this.ns(ns), cmd, ...args];
    const r = await run(full[0]!, full.slice(1), { timeoutMs: 15_000, ...(input !== undefined ? { input } : {}) });
    if (r.code !== 0) throw new Error(`${full.join(' ')} failed (${r.code ?? r.signal}): ${r.stderr.trim()}${input ? `\n--- input ---\n${input}` : ''}`);
    return r;
  }

  exec(ns: string, cmd: string, args: string[], timeoutMs = 15_000): Promise<RunResult> {
    return run('ip', ['netns', 'exec', this.ns(ns), cmd, ...args], { timeoutMs });
  }

  async addNamespace(short: string): Promise<void> {
    if (this.destroying) throw new Error('lab destroyed');
    const name = this.ns(short);
    writeNetnsEtc(name);
    this.created.push(name);
    await this.must(undefined, 'ip', ['netns', 'add', name]);
    // Before the veths exist, so they inherit "default"; "all" too (the effective value is the max).
    await this.must(short, 'sysctl', ['-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
    await this.must(undefined, 'ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  }

  /** A veth pair created directly inside both namespaces (names ≤ 15 characters): nothing appears in the host namespace. */
  async veth(a: { ns: string; if: string }, b: { ns: string; if: string }): Promise<void> {
    for (const n of [a.if, b.if]) if (n.length > 15) throw new Error(`interface name too long: ${n}`);
    await this.must(undefined, 'ip', ['link', 'add', a.if, 'netns', this.ns(a.ns), 'type', 'veth', 'peer', 'name', b.if, 'netns', this.ns(b.ns)]);
  }

  /** `ip -n NS -batch -`: addresses, links, routes in one call. */
  async ipBatch(ns: string, lines: string[]): Promise<void> {
    await this.must(undefined, 'ip', ['-n', this.ns(ns), '-batch', '-'], lines.join('\n') + '\n');
  }

  /** Runs (in reverse order) first on destroy(), before processes are killed and namespaces deleted. */
  addCleanup(fn: () => void | Promise<void>): void {
    this.cleanups.push(fn);
  }

  /** A fresh temporary folder (mode 0755), removed on destroy() (and by the last-resort cleanup). */
  tempDir(prefix = 'ftp-alg-lab-'): string {
    if (this.destroying) throw new Error('lab destroyed');
    const d = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(d);
    chmodSync(d, 0o755); // mkdtemp gives 0700; daemons dropping to another user must traverse it
    return d;
  }

  /**
   * A long-running process in a namespace with the stdio the caller wants
   * (default: stdout and stderr piped), tracked and killed by destroy().
   */
  start(ns: string, cmd: string, args: string[], opts: Pick<SpawnOptions, 'stdio' | 'cwd' | 'env'> = {}): ChildProcess {
    if (this.destroying) throw new Error('lab destroyed');
    // `ip netns exec` execs in place (no fork): child.pid is the command's pid.
    const child = spawn('ip', ['netns', 'exec', this.ns(ns), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.procs.add(child);
    child.once('exit', () => this.procs.delete(child));
    child.once('error', () => this.procs.delete(child));
    return child;
  }

  /**
   * Long-running process in a namespace, output appended to logPath.
   * `ip netns exec` execs in place (no fork): the child's pid is the command's.
   */
  spawn(ns: string, cmd: string, args: string[], logPath: string, opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Proc {
    if (this.destroying) throw new Error('lab destroyed');
    const fd = openSync(logPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn('ip', ['netns', 'exec', this.ns(ns), cmd, ...args], { stdio: ['ignore', fd, fd], ...opts });
    } finally {
      closeSync(fd);
    }
    if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
    this.procs.add(child);
    let done = false;
    const exited = new Promise<string>((resolve) => {
      child.once('exit', (code, sig) => {
        done = true;
        this.procs.delete(child);
        resolve(String(code ?? sig));
      });
      child.once('error', (err) => {
        done = true;
        this.procs.delete(child);
        resolve(err.message);
      });
    });
    return { pid: child.pid, child, exited, hasExited: () => done };
  }

  /**
   * A client to completion: output to logPath, stdin from input, SIGKILLed
   * after timeoutMs (bounded however the client behaves).
   */
  runClient(ns: string, cmd: string, args: string[], logPath: string, opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number }): Promise<ClientExit> {
    const started = Date.now();
    const fd = openSync(logPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn('ip', ['netns', 'exec', this.ns(ns), cmd, ...args], { stdio: ['pipe', fd, fd], env: opts.env, cwd: opts.cwd });
    } finally {
      closeSync(fd);
    }
    this.procs.add(child);
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input ?? '');
    return new Promise((resolve) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, opts.timeoutMs);
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        clearTimeout(timer);
        this.procs.delete(child);
        resolve({ code, signal, timedOut, durationMs: Date.now() - started });
      };
      child.once('exit', finish);
      child.once('error', () => finish(null, null));
    });
  }

  async nft(ns: string, ruleset: string): Promise<void> {
    await this.must(ns, 'nft', ['-f', '-'], ruleset);
  }

  /**
   * Polls `ss -Hltn` in ns until a TCP listener on port exists; fails early
   * if `proc` exits first. Never connects (a probe would use up a one-shot listener).
   */
  async waitListening(ns: string, port: number, what: string, proc?: Pick<Proc, 'hasExited' | 'exited'>, timeoutMs = 10_000): Promise<void> {
    const ok = await waitTcpListener(port, { netns: this.ns(ns), timeoutMs, ...(proc ? { alive: () => !proc.hasExited() } : {}) });
    if (proc?.hasExited()) throw new Error(`${what} exited before listening on port ${port} (exit ${await proc.exited})`);
    if (!ok) throw new Error(`${what}: nothing listening on TCP port ${port} in ${this.ns(ns)} after ${timeoutMs} ms`);
  }

  /** Kills every process in the namespace (the server's, between server kinds). */
  async stopAllIn(ns: string): Promise<void> {
    const left = await killAllIn(this.ns(ns));
    if (left.length) throw new Error(`processes still alive in ${this.ns(ns)}: ${left.join(' ')}`);
  }

  /** Kills tracked processes and everything in the namespaces, deletes them; idempotent. Resolves with errors (empty if clean). */
  destroy(): Promise<string[]> {
    this.destroying ??= (async () => {
      const errors: string[] = [];
      for (const fn of this.cleanups.splice(0).reverse()) {
        try {
          await fn();
        } catch (e) {
          errors.push(String(e));
        }
      }
      for (const c of this.procs) if (c.pid !== undefined) killQuiet(c.pid, 'SIGKILL');
      for (const n of [...this.created].reverse()) {
        const left = await killAllIn(n);
        if (left.length) errors.push(`processes still alive in ${n}: ${left.join(' ')}`);
      }
      const tracked = [...this.procs].map((c) => c.pid).filter((p): p is number => p !== undefined);
      const survivors = await killAndWait(tracked);
      if (survivors.length) errors.push(`processes still alive after SIGKILL: ${survivors.join(' ')}`);
      for (const n of this.created.splice(0).reverse()) {
        const r = await run('ip', ['netns', 'del', n], { timeoutMs: 10_000 });
        if (r.code !== 0 && !/No such file/.test(r.stderr)) errors.push(`ip netns del ${n}: ${r.stderr.trim()}`);
        removeNetnsEtc(n);
      }
      for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
      liveLabs.delete(this);
      return errors;
    })();
    return this.destroying;
  }

  /** The synchronous last resort (exit/signal): SIGKILL by PID, delete by name. */
  destroySync(): void {
    const pids = [...this.procs].map((c) => c.pid).filter((p): p is number => p !== undefined);
    for (const n of this.created) pids.push(...nsPidsSync(n));
    for (const p of pids) killQuiet(p, 'SIGKILL');
    for (const n of this.created.splice(0).reverse()) {
      spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore', timeout: 5_000 });
      removeNetnsEtc(n);
    }
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}
