/**
 * Network-namespace NAT topology for end-to-end tests (root only).
 *
 *   client ns                 gateway ns                      server ns
 *   100.64.1.2/24  ── veth ── 100.64.1.1/24 │ 198.18.0.1/24 ── veth ── 198.18.0.2/24
 *   fd00:1::2/64              fd00:1::1/64  │                          (no route back
 *   default via gateway       forward + masquerade on WAN              to 100.64/10)
 *
 * Every namespace gets a per-run unique prefix; destroy() kills what the test
 * started there and deletes the namespaces (also registered for process exit,
 * so a crashed worker does not leave namespaces behind). Only loopback and
 * these namespaces are ever addressed (DESIGN.md "Network rules for tests").
 */
import { spawn as spawnChild, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { run, type RunResult } from './tools.js';
import { isAlive, pollUntil } from '../../scenarios/lib/process.js';
import { vsftpdConfigText } from '../../scenarios/lib/vsftpd-config.js';

export { isAlive };

function has(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
  return r.status === 0;
}

const IS_ROOT = process.getuid?.() === 0;
/** Root, iproute2 and nftables: what buildNatTopology() needs. */
export const CAN_NETNS: boolean = IS_ROOT && has('ip', ['-V']) && has('nft', ['-v']);
/** '' or the reason shown in a skipped test's name. */
export const NETNS_SKIP: string = CAN_NETNS
  ? ''
  : ' [skipped: needs root and nftables (iproute2 + nft): run as root after scripts/install-debian-packages.sh]';
/** vsftpd is installed (startVsftpd). */
export const CAN_VSFTPD: boolean = existsSync('/usr/sbin/vsftpd');
export const VSFTPD_SKIP: string = CAN_VSFTPD ? '' : ' [skipped: needs vsftpd: run scripts/install-debian-packages.sh as root]';

export const ADDR = {
  client: '100.64.1.2',
  gatewayLan: '100.64.1.1',
  gatewayWan: '198.18.0.1',
  server: '198.18.0.2',
  client6: 'fd00:1::2',
  gatewayLan6: 'fd00:1::1',
} as const;

export interface NatTopology {
  prefix: string;
  ns: { client: string; gateway: string; server: string };
  addr: typeof ADDR;
  /** The gateway's interface names (for nftables iifname/oifname). */
  lanIf: string;
  wanIf: string;
  /** `ip netns exec ns cmd args…` to completion (default timeout 30 s, then SIGKILL). */
  exec(ns: string, cmd: string, args: string[], opts?: { input?: string | Buffer; timeoutMs?: number }): Promise<RunResult>;
  /** Long-running process in ns; tracked and killed by destroy(). The ChildProcess pid is the command's own pid. */
  spawn(ns: string, cmd: string, args: string[], opts?: Pick<SpawnOptions, 'stdio' | 'cwd' | 'env'>): ChildProcess;
  /** `nft -f -` in ns; throws with nft's message. */
  nft(ns: string, ruleset: string): Promise<void>;
  /** Polls `ss -Hltn` in ns (never connects) until a TCP listener on port exists. */
  waitListening(ns: string, port: number, timeoutMs?: number): Promise<void>;
  /** Runs (in reverse order) on destroy(), before processes are killed and namespaces deleted. */
  addCleanup(fn: () => void | Promise<void>): void;
  /** A fresh temporary folder (mode 0755), removed on destroy() (and by the last-resort exit cleanup). */
  tempDir(prefix?: string): string;
  /** Kills tracked processes and everything in `ip netns pids`, deletes the namespaces; idempotent. */
  destroy(): Promise<void>;
}

/** The gateway's default "realistic NAT box": masquerade on WAN, forward only LAN→WAN and replies. */
export function gatewayRuleset(t: Pick<NatTopology, 'lanIf' | 'wanIf'>): string {
  return `table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "${t.wanIf}" masquerade
	}
}
table ip filter {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "${t.lanIf}" oifname "${t.wanIf}" accept
	}
}
`;
}

/**
 * Linux ≥ 6 assigns no helper automatically: an explicit ct helper object and
 * a rule for new control connections. Added to the gateway's `ip filter` table.
 */
export function kernelFtpHelperRuleset(t: Pick<NatTopology, 'lanIf'>): string {
  return `table ip filter {
	ct helper ftp-standard {
		type "ftp" protocol tcp
		l3proto ip
	}
	chain helpers {
		type filter hook prerouting priority filter; policy accept;
		iifname "${t.lanIf}" tcp dport 21 ct state new ct helper set "ftp-standard"
	}
}
`;
}

/** Turns the gateway into a kernel ALG (nf_conntrack_ftp + nf_nat_ftp) for control connections from the LAN to port 21. */
export async function enableKernelFtpHelper(topo: NatTopology): Promise<void> {
  await topo.nft(topo.ns.gateway, kernelFtpHelperRuleset(topo));
}

// ---------------------------------------------------------------------------

let counter = 0;
/** What a topology not yet destroyed holds, for the synchronous last-resort cleanup. */
interface Held {
  namespaces: string[];
  dirs: string[];
  pids: () => number[];
}
const held = new Map<string, Held>(); // by prefix
let hooksInstalled = false;

function emergencyCleanup(): void {
  for (const h of held.values()) {
    const pids = h.pids();
    for (const ns of h.namespaces) pids.push(...nsPidsSync(ns));
    for (const p of pids) killQuiet(p, 'SIGKILL');
    for (const ns of h.namespaces) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5_000 });
    for (const d of h.dirs) rmSync(d, { recursive: true, force: true });
  }
  held.clear();
}

/**
 * Last resort when a worker ends without afterAll (a forgotten destroy(), or
 * vitest's pool SIGTERMing the worker): kill, delete, remove synchronously.
 * A signal is re-raised afterwards, so the default action still happens.
 */
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once('exit', emergencyCleanup);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = () => {
      emergencyCleanup();
      process.removeListener(sig, onSignal);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

function nsPidsSync(ns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5_000 });
  return parsePids(r.stdout ?? '');
}

function parsePids(text: string): number[] {
  return text
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number)
    .filter((p) => p > 1 && p !== process.pid);
}

function killQuiet(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** SIGKILLs pids and waits (bounded) until none is alive. */
async function killAndWait(pids: number[], timeoutMs = 3_000): Promise<number[]> {
  for (const p of pids) killQuiet(p, 'SIGKILL');
  await pollUntil(() => pids.every((p) => !isAlive(p)), timeoutMs);
  return pids.filter(isAlive);
}

async function must(cmd: string, args: string[], input?: string): Promise<RunResult> {
  const r = await run(cmd, args, { timeoutMs: 15_000, ...(input !== undefined ? { input } : {}) });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r;
}

export async function buildNatTopology(): Promise<NatTopology> {
  if (!CAN_NETNS) throw new Error('buildNatTopology needs root, ip and nft');
  installExitHooks();
  // Unique per run: pid (+ worker thread if vitest runs threads) + counter; `-` separates the counter.
  const prefix = `fa${process.pid.toString(36)}${threadId ? `t${threadId.toString(36)}` : ''}-${(counter++).toString(36)}`;
  const ns = { client: `${prefix}c`, gateway: `${prefix}g`, server: `${prefix}s` };
  const cIf = `${prefix}c`; // client side of the LAN veth
  const lanIf = `${prefix}l`; // gateway side of the LAN veth
  const wanIf = `${prefix}w`; // gateway side of the WAN veth
  const sIf = `${prefix}s`; // server side of the WAN veth
  for (const n of [cIf, lanIf, wanIf, sIf]) if (n.length > 15) throw new Error(`interface name too long: ${n}`);

  const tracked = new Set<ChildProcess>();
  const cleanups: (() => void | Promise<void>)[] = [];
  const created: string[] = [];
  const dirs: string[] = [];
  held.set(prefix, { namespaces: created, dirs, pids: () => [...tracked].map((c) => c.pid).filter((p): p is number => typeof p === 'number') });
  let destroying: Promise<void> | undefined;

  const exec: NatTopology['exec'] = (n, cmd, args, opts = {}) =>
    run('ip', ['netns', 'exec', n, cmd, ...args], { timeoutMs: opts.timeoutMs ?? 30_000, ...(opts.input !== undefined ? { input: opts.input } : {}) });

  const topo: NatTopology = {
    prefix,
    ns,
    addr: ADDR,
    lanIf,
    wanIf,
    exec,
    spawn(n, cmd, args, opts = {}) {
      if (destroying) throw new Error('topology destroyed');
      // `ip netns exec` execs in place (no fork): child.pid is the command's pid.
      const child = spawnChild('ip', ['netns', 'exec', n, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
      tracked.add(child);
      child.once('exit', () => tracked.delete(child));
      return child;
    },
    async nft(n, ruleset) {
      const r = await exec(n, 'nft', ['-f', '-'], { input: ruleset, timeoutMs: 15_000 });
      if (r.code !== 0) throw new Error(`nft -f - in ${n} failed (${r.code}): ${r.stderr.trim()}\n--- ruleset ---\n${ruleset}`);
    },
    async waitListening(n, port, timeoutMs = 10_000) {
      const ok = await pollUntil(async () => {
        const r = await exec(n, 'ss', ['-Hltn', `sport = :${port}`], { timeoutMs: 5_000 });
        return r.code === 0 && r.stdout.toString().trim() !== '';
      }, timeoutMs);
      if (!ok) throw new Error(`nothing listening on TCP port ${port} in ${n} after ${timeoutMs} ms`);
    },
    addCleanup(fn) {
      cleanups.push(fn);
    },
    tempDir(p = 'ftp-alg-netns-') {
      if (destroying) throw new Error('topology destroyed');
      const d = mkdtempSync(join(tmpdir(), p));
      dirs.push(d);
      chmodSync(d, 0o755); // mkdtemp gives 0700; daemons dropping to another user must traverse it
      return d;
    },
    destroy() {
      destroying ??= (async () => {
        const errors: string[] = [];
        for (const fn of cleanups.splice(0).reverse()) {
          try {
            await fn();
          } catch (e) {
            errors.push(String(e));
          }
        }
        const pids = [...tracked].map((c) => c.pid).filter((p): p is number => typeof p === 'number');
        for (const n of created) pids.push(...nsPidsSync(n));
        const survivors = await killAndWait([...new Set(pids)]);
        if (survivors.length) errors.push(`processes still alive after SIGKILL: ${survivors.join(' ')}`);
        for (const n of created.splice(0).reverse()) {
          const r = await run('ip', ['netns', 'del', n], { timeoutMs: 10_000 });
          if (r.code !== 0 && !/No such file/.test(r.stderr)) errors.push(`ip netns del ${n}: ${r.stderr.trim()}`);
        }
        for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
        held.delete(prefix);
        if (errors.length) throw new Error(`destroy ${prefix}: ${errors.join('; ')}`);
      })();
      return destroying;
    },
  };

  try {
    for (const n of [ns.client, ns.gateway, ns.server]) {
      await must('ip', ['netns', 'add', n]);
      created.push(n);
      // Before the veths exist, so they inherit "default"; also set on "all" (effective = max).
      await must('ip', ['netns', 'exec', n, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
      await must('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
    }
    await must('ip', ['netns', 'exec', ns.gateway, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    // Created directly inside the namespaces: nothing ever appears in the host namespace.
    await must('ip', ['link', 'add', cIf, 'netns', ns.client, 'type', 'veth', 'peer', 'name', lanIf, 'netns', ns.gateway]);
    await must('ip', ['link', 'add', wanIf, 'netns', ns.gateway, 'type', 'veth', 'peer', 'name', sIf, 'netns', ns.server]);

    const batch = (n: string, lines: string[]) => must('ip', ['-n', n, '-batch', '-'], lines.join('\n') + '\n');
    await batch(ns.client, [
      `addr add ${ADDR.client}/24 dev ${cIf}`,
      `addr add ${ADDR.client6}/64 dev ${cIf} nodad`,
      `link set ${cIf} up`,
    ]);
    await batch(ns.gateway, [
      `addr add ${ADDR.gatewayLan}/24 dev ${lanIf}`,
      `addr add ${ADDR.gatewayLan6}/64 dev ${lanIf} nodad`,
      `addr add ${ADDR.gatewayWan}/24 dev ${wanIf}`,
      `link set ${lanIf} up`,
      `link set ${wanIf} up`,
    ]);
    // The server gets only its connected /24: no route back to 100.64/10.
    await batch(ns.server, [`addr add ${ADDR.server}/24 dev ${sIf}`, `link set ${sIf} up`]);
    await batch(ns.client, [`route add default via ${ADDR.gatewayLan}`, `route add ::/0 via ${ADDR.gatewayLan6}`]);
    await topo.nft(ns.gateway, gatewayRuleset(topo));
  } catch (e) {
    await topo.destroy().catch(() => undefined);
    throw e;
  }
  return topo;
}

// ---------------------------------------------------------------------------
// vsftpd in the server namespace

export interface Vsftpd {
  pid: number;
  logPath: string;
  /** The whole protocol log so far (log_ftp_protocol=YES: every command and reply). */
  log(): string;
  /** Polls the log (bounded) until re matches; returns the log; throws with the log on timeout. */
  waitLog(re: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

/** Children, grandchildren… of pid, from /proc (bounded: one pass per depth level, at most 8 levels). */
function descendants(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(d), Number(fields[1]));
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

/**
 * vsftpd on 198.18.0.2:21 in the server namespace, anonymous read-only, with
 * `files` in its anon_root. Default strictness: PORT must name the control
 * peer ("500 Illegal PORT command."), passive data must come from the control
 * peer. `config` adds or overrides settings (e.g. { pasv_address: '…' }).
 */
export async function startVsftpd(
  topo: NatTopology,
  opts: { files: Record<string, Buffer>; config?: Record<string, string>; /** Default: the server namespace at ADDR.server. */ at?: { ns: string; address: string } },
): Promise<Vsftpd> {
  const at = opts.at ?? { ns: topo.ns.server, address: ADDR.server };
  const dir = topo.tempDir('ftp-alg-vsftpd-');
  const empty = join(dir, 'empty');
  const root = join(dir, 'anon');
  mkdirSync(empty, { mode: 0o755 });
  mkdirSync(root, { mode: 0o755 });
  for (const [name, data] of Object.entries(opts.files)) {
    if (name.includes('/') || name.startsWith('.')) throw new Error(`startVsftpd: plain file names only: ${name}`);
    writeFileSync(join(root, name), data, { mode: 0o644 });
  }
  const logPath = join(dir, 'vsftpd.log');
  writeFileSync(logPath, '');
  const confPath = join(dir, 'vsftpd.conf');
  writeFileSync(confPath, vsftpdConfigText({ address: at.address, port: 21, root, emptyDir: empty, logPath }, opts.config), { mode: 0o600 });

  const child = topo.spawn(at.ns, '/usr/sbin/vsftpd', [confPath]);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const pid = child.pid;

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (pid === undefined) return;
      // Freeze the tree first (a stopped process cannot fork), collect it, then kill it all.
      const all = new Set<number>([pid]);
      killQuiet(pid, 'SIGSTOP');
      for (let round = 0; round < 5; round++) {
        const found = descendants(pid).concat(...[...all].map(descendants)).filter((p) => !all.has(p));
        if (!found.length) break;
        for (const p of found) {
          all.add(p);
          killQuiet(p, 'SIGSTOP');
        }
      }
      const survivors = await killAndWait([...all]);
      if (survivors.length) throw new Error(`vsftpd processes still alive: ${survivors.join(' ')}`);
    })();
    return stopping;
  };
  topo.addCleanup(stop);

  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, sig) => reject(new Error(`vsftpd exited early (${code ?? sig}): ${output.trim()}`))),
  );
  exited.catch(() => undefined); // only observed through the race below
  try {
    await Promise.race([topo.waitListening(at.ns, 21), exited]);
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }

  const log = () => readFileSync(logPath, 'utf8');
  return {
    pid: pid!,
    logPath,
    log,
    async waitLog(re, timeoutMs = 5_000) {
      if (await pollUntil(() => re.test(log()), timeoutMs, 25)) return log();
      throw new Error(`vsftpd log did not match ${re} within ${timeoutMs} ms:\n${log()}`);
    },
    stop,
  };
}
