/**
 * The NAT box of namespaces for end-to-end tests (root only), built in the
 * project's one lab (scenarios/lib/lab.ts, scenarios/lib/nat-box.ts):
 *
 *   client ns                 gateway ns                      server ns
 *   100.64.1.2/24  ── veth ── 100.64.1.1/24 │ 198.18.0.1/24 ── veth ── 198.18.0.2/24
 *   fd00:1::2/64              fd00:1::1/64  │                          (no route back
 *   default via gateway       forward + masquerade on WAN              to 100.64/10)
 *
 * This file only gives tests their view of it: real namespace names, a
 * Buffer-valued exec, skip reasons, and vsftpd in the server namespace.
 * The lab kills what the test started there and deletes the namespaces on
 * destroy() (also on process exit and on a signal, so a crashed worker does
 * not leave namespaces behind). Only loopback and these namespaces are ever
 * addressed (DESIGN.md "Network rules for tests").
 */
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type RunResult } from './tools.js';
import { installCleanupHooks, Lab, labUnavailable } from '../../scenarios/lib/lab.js';
import { addKernelHelper, buildNatBox, NAT_BOX, NAT_BOX_ADDR } from '../../scenarios/lib/nat-box.js';
import { descendants, isAlive, killAndWait, killQuiet, pollUntil } from '../../scenarios/lib/process.js';
import { vsftpdConfigText } from '../../scenarios/lib/vsftpd-config.js';

export { isAlive };

/** Root, iproute2 and nftables: what buildNatTopology() needs. */
export const CAN_NETNS: boolean = labUnavailable() === undefined;
/** '' or the reason shown in a skipped test's name. */
export const NETNS_SKIP: string = CAN_NETNS
  ? ''
  : ' [skipped: needs root and nftables (iproute2 + nft): run as root after scripts/install-debian-packages.sh]';
/** vsftpd is installed (startVsftpd). */
export const CAN_VSFTPD: boolean = existsSync('/usr/sbin/vsftpd');
export const VSFTPD_SKIP: string = CAN_VSFTPD ? '' : ' [skipped: needs vsftpd: run scripts/install-debian-packages.sh as root]';

export const ADDR = NAT_BOX_ADDR;

export interface NatTopology {
  prefix: string;
  /** Real namespace names. */
  ns: { client: string; gateway: string; server: string };
  addr: typeof ADDR;
  /** The gateway's interface names (for nftables iifname/oifname). */
  lanIf: string;
  wanIf: string;
  /** The client's interface. */
  clientIf: string;
  /** The gateway's forward chain is in this table (`nft add rule inet filter forward …`). */
  filterTable: { family: string; name: string };
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
  /** Kills tracked processes and everything in `ip netns pids`, deletes the namespaces; idempotent; throws what went wrong. */
  destroy(): Promise<void>;
}

/** Turns the gateway into a kernel ALG (nf_conntrack_ftp + nf_nat_ftp) for control connections from the LAN to port 21. */
export async function enableKernelFtpHelper(topo: NatTopology): Promise<void> {
  await addKernelHelper(labOf(topo));
}

const labs = new WeakMap<NatTopology, Lab>();
function labOf(topo: NatTopology): Lab {
  const lab = labs.get(topo);
  if (!lab) throw new Error('not a topology from buildNatTopology()');
  return lab;
}

export async function buildNatTopology(): Promise<NatTopology> {
  const why = labUnavailable();
  if (why) throw new Error(`buildNatTopology: ${why}`);
  // vitest's pool SIGTERMs a worker: namespaces still go, and the signal still ends it.
  installCleanupHooks(undefined, 'reraise');
  const lab = new Lab();
  const short = (n: string): string => {
    if (!n.startsWith(`${lab.prefix}-`)) throw new Error(`not a namespace of ${lab.prefix}: ${n}`);
    return n.slice(lab.prefix.length + 1);
  };
  const topo: NatTopology = {
    prefix: lab.prefix,
    ns: { client: lab.ns(NAT_BOX.ns.client), gateway: lab.ns(NAT_BOX.ns.gateway), server: lab.ns(NAT_BOX.ns.server) },
    addr: ADDR,
    lanIf: NAT_BOX.lanIf,
    wanIf: NAT_BOX.wanIf,
    clientIf: NAT_BOX.clientIf,
    filterTable: { family: 'inet', name: 'filter' },
    exec: (n, cmd, args, opts = {}) =>
      run('ip', ['netns', 'exec', lab.ns(short(n)), cmd, ...args], { timeoutMs: opts.timeoutMs ?? 30_000, ...(opts.input !== undefined ? { input: opts.input } : {}) }),
    spawn: (n, cmd, args, opts = {}) => lab.start(short(n), cmd, args, opts),
    nft: (n, ruleset) => lab.nft(short(n), ruleset),
    waitListening: (n, port, timeoutMs = 10_000) => lab.waitListening(short(n), port, `listener on ${port}`, undefined, timeoutMs),
    addCleanup: (fn) => lab.addCleanup(fn),
    tempDir: (prefix = 'ftp-alg-netns-') => lab.tempDir(prefix),
    async destroy() {
      const errors = await lab.destroy();
      if (errors.length) throw new Error(`destroy ${lab.prefix}: ${errors.join('; ')}`);
    },
  };
  labs.set(topo, lab);
  try {
    await buildNatBox(lab);
  } catch (e) {
    await lab.destroy();
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
