/**
 * Network namespaces for the bench: a unique prefix per run, veths created
 * directly inside the namespaces (nothing appears in the host namespace),
 * processes killed by PID (`ip netns pids`) before `ip netns del`, and a
 * synchronous last-resort cleanup on exit. Same rules as scenarios/lib/lab.ts
 * (ideas copied, not imported: that is TypeScript).
 *
 * Addresses only from the plan: 100.64.0.0/10 inside, 198.18.0.0/15 outside.
 *
 *   client ns  eth0 100.64.0.2/24, default via 100.64.0.1
 *   gw ns      lan  100.64.0.1/24 | wan 198.18.0.1/24, forwarding, masquerade out of wan
 *   server ns  eth0 198.18.0.2/24, no route back to 100.64/10
 */
import { isAlive, runCommand, runSync } from './procs.mjs';
import { sleep } from './common.mjs';

/** Namespace names: `fabn<pid36>-<n>-<short>`; the owner pid lets a later run remove what a crashed one left. */
export const NS_PREFIX = 'fabn';
const OWNER = process.pid.toString(36);
let counter = 0;
const live = new Set();

function parsePids(text) {
  return text
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number)
    .filter((p) => p > 1 && p !== process.pid);
}

function killQuiet(pid) {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** SIGKILLs everything in a namespace until it is empty (bounded). */
async function killAllIn(ns, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await runCommand('ip', ['netns', 'pids', ns], { timeoutMs: 5000 });
    const alive = parsePids(r.stdout).filter(isAlive);
    if (alive.length === 0) return [];
    for (const p of alive) killQuiet(p);
    await sleep(50);
  }
  return parsePids((await runCommand('ip', ['netns', 'pids', ns])).stdout).filter(isAlive);
}

export class Netns {
  constructor() {
    this.prefix = `${NS_PREFIX}${OWNER}-${(counter++).toString(36)}`;
    this.created = [];
    live.add(this);
  }

  name(short) {
    return `${this.prefix}-${short}`;
  }

  /** A command on the host; throws with its stderr when it fails. */
  async must(cmd, args, input) {
    const r = await runCommand(cmd, args, { timeoutMs: 15_000, input });
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}${input ? `\n--- input ---\n${input}` : ''}`);
    return r;
  }

  mustIn(short, cmd, args, input) {
    return this.must('ip', ['netns', 'exec', this.name(short), cmd, ...args], input);
  }

  execIn(short, cmd, args, timeoutMs = 15_000) {
    return runCommand('ip', ['netns', 'exec', this.name(short), cmd, ...args], { timeoutMs });
  }

  /** argv prefix to run a command inside a namespace. */
  wrap(short, cmd, args) {
    return ['ip', ['netns', 'exec', this.name(short), cmd, ...args]];
  }

  async add(short) {
    const name = this.name(short);
    this.created.push(name);
    await this.must('ip', ['netns', 'add', name]);
    // Before any veth exists, so they inherit "default" (LAB.md: set rp_filter=0 explicitly).
    await this.mustIn(short, 'sysctl', ['-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
    await this.must('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  }

  /** A veth pair created directly inside both namespaces (names ≤ 15 characters). */
  async veth(a, aIf, b, bIf) {
    await this.must('ip', ['link', 'add', aIf, 'netns', this.name(a), 'type', 'veth', 'peer', 'name', bIf, 'netns', this.name(b)]);
  }

  async ipBatch(short, lines) {
    await this.must('ip', ['-n', this.name(short), '-batch', '-'], `${lines.join('\n')}\n`);
  }

  /** Replaces the namespace's whole nftables ruleset. */
  async nft(short, ruleset) {
    await this.mustIn(short, 'nft', ['-f', '-'], `flush ruleset\n${ruleset}`);
  }

  /** Kills what runs in the namespaces, deletes them; idempotent; resolves with errors (empty if clean). */
  async destroy() {
    const errors = [];
    for (const n of [...this.created].reverse()) {
      const left = await killAllIn(n);
      if (left.length) errors.push(`processes still alive in ${n}: ${left.join(' ')}`);
    }
    for (const n of this.created.splice(0).reverse()) {
      const r = await runCommand('ip', ['netns', 'del', n], { timeoutMs: 10_000 });
      if (r.code !== 0 && !/No such file/.test(r.stderr)) errors.push(`ip netns del ${n}: ${r.stderr.trim()}`);
    }
    live.delete(this);
    return errors;
  }

  /** The synchronous last resort (exit, signal): SIGKILL by PID, delete by name. */
  destroySync() {
    for (const n of this.created) for (const p of parsePids(runSync('ip', ['netns', 'pids', n]).stdout ?? '')) killQuiet(p);
    for (const n of this.created.splice(0).reverse()) runSync('ip', ['netns', 'del', n]);
    live.delete(this);
  }
}

export function destroyAllSync() {
  for (const t of [...live]) t.destroySync();
}
process.on('exit', destroyAllSync);

/** Namespaces of an earlier bench run whose owner pid is gone: processes killed by PID, namespaces deleted by name. */
export async function removeStaleNamespaces() {
  const r = await runCommand('ip', ['netns', 'list'], { timeoutMs: 5000 });
  const stale = r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => {
      const m = new RegExp(`^${NS_PREFIX}([0-9a-z]+)-`).exec(n);
      return m !== null && m[1] !== OWNER && !isAlive(parseInt(m[1], 36));
    });
  for (const n of stale) {
    await killAllIn(n);
    await runCommand('ip', ['netns', 'del', n], { timeoutMs: 10_000 });
  }
  return stale;
}

/** Whether namespaces can be made here (root, ip, nft). */
export async function netnsSupport() {
  if (process.getuid?.() !== 0) return 'not root';
  for (const [cmd, args] of [['ip', ['-V']], ['nft', ['--version']]]) {
    const r = await runCommand(cmd, args, { timeoutMs: 5000 });
    if (r.code !== 0) return `${cmd} not available (install with bench/install.sh)`;
  }
  return undefined;
}

export const ADDR = {
  client: '100.64.0.2',
  gwLan: '100.64.0.1',
  gwWan: '198.18.0.1',
  server: '198.18.0.2',
};

/** client — gw (NAT box) — server. Resolves with the Netns; the caller destroys it. */
export async function buildNatTopology() {
  const t = new Netns();
  try {
    for (const n of ['c', 'g', 's']) await t.add(n);
    await t.veth('c', 'eth0', 'g', 'lan');
    await t.veth('g', 'wan', 's', 'eth0');
    await t.ipBatch('c', [`addr add ${ADDR.client}/24 dev eth0`, 'link set eth0 up', `route add default via ${ADDR.gwLan}`]);
    await t.ipBatch('g', [`addr add ${ADDR.gwLan}/24 dev lan`, 'link set lan up', `addr add ${ADDR.gwWan}/24 dev wan`, 'link set wan up']);
    await t.ipBatch('s', [`addr add ${ADDR.server}/24 dev eth0`, 'link set eth0 up']);
    await t.mustIn('g', 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    // "The outside never routes back to the inside" (LAB.md): checked, not assumed.
    const r = await t.execIn('s', 'ip', ['route', 'get', ADDR.client]);
    if (r.code === 0) throw new Error(`topology: the server namespace has a route to ${ADDR.client}: ${r.stdout.trim()}`);
    return t;
  } catch (err) {
    await t.destroy();
    throw err;
  }
}

/** One namespace with only lo (up): a private loopback for cases that change nftables. */
export async function buildLoopbackNamespace() {
  const t = new Netns();
  try {
    await t.add('k');
    return t;
  } catch (err) {
    await t.destroy();
    throw err;
  }
}

/**
 * The NAT box's ruleset (LAB.md: forward policy drop, established/related
 * accepted, only lan → wan opened, and wan → lan only for connections a DNAT
 * rule sent there; Linux ≥ 6 assigns no helper by itself,
 * so the kernel FTP helper is a `ct helper` object plus a rule for new
 * control connections; nft 1.0.6 wants one `redirect` rule per line).
 *   helper: true            kernel FTP helper on lan tcp/21
 *   redirectTo: PORT        lan tcp/21 redirected to a local ftp-alg (forward --transparent)
 */
export function gatewayRuleset({ helper = false, redirectTo } = {}) {
  const out = [
    'table ip nat {',
    '\tchain prerouting {',
    '\t\ttype nat hook prerouting priority dstnat; policy accept;',
    ...(redirectTo ? [`\t\tiifname "lan" tcp dport 21 redirect to :${redirectTo}`] : []),
    '\t}',
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    '\t\toifname "wan" masquerade',
    '\t}',
    '}',
    'table inet filter {',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy drop;',
    '\t\tct state established,related accept',
    '\t\tiifname "lan" oifname "wan" accept',
    // Connections from outside that a NAT rule sent inside (what any port
    // forward needs): only the kernel data path of ftp-alg makes such DNATs here.
    '\t\tiifname "wan" oifname "lan" ct status dnat accept',
    '\t}',
    '}',
  ];
  if (helper) {
    out.push(
      'table ip ftphelper {',
      '\tct helper ftp-standard {',
      '\t\ttype "ftp" protocol tcp',
      '\t\tl3proto ip',
      '\t}',
      '\tchain prerouting {',
      '\t\ttype filter hook prerouting priority filter; policy accept;',
      '\t\tiifname "lan" tcp dport 21 ct state new ct helper set "ftp-standard"',
      '\t}',
      '}',
    );
  }
  return `${out.join('\n')}\n`;
}
