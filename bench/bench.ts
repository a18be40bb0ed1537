/**
 * `npm run bench`: every benchmark of issue 7 in one run on one machine,
 * side by side, ending in one table where each figure stands next to its
 * target and, where it applies, its ratio to the direct path measured in
 * the same run.
 *
 *   throughput  1 GiB down + up with curl on loopback: direct, ftp-alg reverse,
 *               SuSE ftp-proxy, ftp-alg reverse --data-path kernel (if the build has it)
 *   ftps        1 GiB down + up over explicit FTPS (PROT P): direct to vsftpd (ssl_enable,
 *               require_ssl_reuse) vs ftp-alg reverse --tls terminate --server-tls explicit
 *   netns       the same through a NAT box of namespaces: NAT only, kernel FTP
 *               helper, ftp-alg forward/reverse (and --data-path kernel if available)
 *   sessions    login + PASV + LIST + QUIT, direct vs gateway (and the control relayed alone by a bare
 *               Node relay and by HAProxy, the floor): median, p99, sessions/s
 *   latency     NOOP round trips on one session, direct vs gateway
 *   idle        2,000 idle logged-in sessions through one gateway: memory per session, errors
 *   transfers   200 concurrent downloads through one gateway: CPU s per GiB
 *   engine      LineFramer + ControlTranslator on a synthetic control stream, no sockets
 *   small-files lftp mirror of 400 × 4 KiB and per-RETR latency: direct, relay, kernel data path,
 *               the control relayed alone (bare Node, HAProxy), kernel FTP helper (vsftpd, namespaces)
 *
 *   npm run build && npm run bench [-- --quick] [-- --only sessions,latency] [-- --json]
 *
 * `npm run bench` compiles bench/ with the sources it imports (tsc -p
 * bench/tsconfig.json, into .bench-build/) and runs .bench-build/bench/bench.js.
 *
 * Run `sh bench/install.sh` (root) once for ftp-proxy and nftables. Parts
 * that cannot run here (no root, no ftp-proxy) print n/a with the reason.
 * Everything stays on 127.0.0.0/8 or in namespaces this run creates
 * (100.64.0.0/10 inside, 198.18.0.0/15 outside). Every loop is bounded in
 * count and time; all children are killed by PID and the namespaces deleted
 * by name, also on a signal or the --max-seconds hard stop.
 *
 * Exit: 0 when every measurement ran (whether or not its target was met),
 * 1 when something failed (a transfer, a session, a check), 2 on bad flags.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { KiB, MiB, ROOT, drainTimeWait, loadavgText, procCpuSeconds, sleep } from './lib/common.js';
import { descendants, killAll } from './lib/procs.js';
import { destroyAllLabsSync, removeStaleNamespaces } from './lib/namespaces.js';
import { detectKernelDataPath } from './lib/helpers.js';
import { ftpProxyAvailable, ftpProxyVersion } from './lib/ftp-proxy.js';
import { buildTable, printTable, type BenchResults } from './lib/report.js';
import type { BenchContext, BenchFlags } from './lib/context.js';
import type { DataMode } from './lib/curl.js';
import { runEngine } from './parts/engine.js';
import { runFtps } from './parts/ftps.js';
import { runHostile } from './parts/hostile.js';
import { runNetns } from './parts/netns.js';
import { runIdle, runTransfers } from './parts/scale.js';
import { runSessions } from './parts/sessions.js';
import { runSmallFiles } from './parts/small-files.js';
import { runThroughput } from './parts/throughput.js';

const PARTS = ['throughput', 'ftps', 'netns', 'small-files', 'sessions', 'latency', 'idle', 'transfers', 'hostile', 'engine'] as const;
type Part = (typeof PARTS)[number];
const ALIASES: Record<string, readonly Part[]> = { scale: ['idle', 'transfers'], all: PARTS, loopback: ['throughput'], namespaces: ['netns'] };
const isPart = (p: string): p is Part => (PARTS as readonly string[]).includes(p);

const HELP = `npm run bench [-- FLAGS]     (build first: npm run build; ftp-proxy etc.: sh bench/install.sh)

  --only LIST          parts to run, comma-separated: ${PARTS.join(', ')}
                       (also: scale = idle,transfers); default all
  --quick              small sizes and counts for a fast look (explicit flags still win)
  --json               print one JSON document on stdout at the end (progress and table go to stderr);
                       with npm use \`npm run -s bench -- --json\`
  --json-out FILE      also write the JSON document to FILE
  --size BYTES         throughput and ftps file size (1073741824; quick 134217728)
  --runs N             throughput and ftps runs per row, median reported (3; quick 1)
  --mode M             curl data mode on loopback: PASV, EPSV, PORT, EPRT (PASV)
  --sessions N         sessions per path for the session cost (1000; quick 200)
  --concurrency C      sessions at once for sessions/s (16)
  --rounds N           NOOP rounds per path (5; quick 2), each of --noops round trips (200)
  --idle N             idle sessions through one gateway (2000; quick 1000)
  --idle-seconds S     how long each half of them idles before its memory figure (10; below ~8 s
                       V8's young generation has not shrunk back yet and the RSS per session reads high)
  --concurrent N       concurrent transfers through one gateway (200; quick 50)
  --transfer-size B    bytes per concurrent transfer (16777216; quick 4194304)
  --small-runs N       small-files runs per path, median reported (3; quick 1)
  --retrs N            sequential 4 KiB RETRs per small-files run (150; quick 50)
  --hostile N          hostile sessions of each kind (pipelined, owed, endless) through one gateway (50; quick 10)
  --engine-mb MB       control stream per engine pass (32; quick 8), --engine-reps N passes (5; quick 3)
  --dist DIR           the ftp-alg build whose command line (cli.js) runs the gateways started with
                       CLI flags (default ./dist); in-process parts run the sources built with the bench
  --max-seconds S      hard stop for the whole run (3600)
`;

function bad(msg: string): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

function parse() {
  return parseArgs({
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'json-out': { type: 'string' },
      size: { type: 'string' },
      runs: { type: 'string' },
      mode: { type: 'string', default: 'PASV' },
      sessions: { type: 'string' },
      concurrency: { type: 'string' },
      rounds: { type: 'string' },
      noops: { type: 'string' },
      idle: { type: 'string' },
      'idle-seconds': { type: 'string' },
      concurrent: { type: 'string' },
      'transfer-size': { type: 'string' },
      'small-runs': { type: 'string' },
      retrs: { type: 'string' },
      hostile: { type: 'string' },
      'engine-mb': { type: 'string' },
      'engine-reps': { type: 'string' },
      dist: { type: 'string' },
      'max-seconds': { type: 'string', default: '3600' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
}
function parsedOrBad(): ReturnType<typeof parse> {
  try {
    return parse();
  } catch (err) {
    return bad(`${err instanceof Error ? err.message : String(err)}\n\n${HELP}`);
  }
}
const raw = parsedOrBad().values;
if (raw.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const Q = raw.quick;
type NumberFlag = 'size' | 'runs' | 'sessions' | 'concurrency' | 'rounds' | 'noops' | 'idle' | 'idle-seconds' | 'concurrent' | 'transfer-size' | 'small-runs' | 'retrs' | 'hostile' | 'engine-mb' | 'engine-reps' | 'max-seconds';
const num = (name: NumberFlag, fallback: number, quickFallback: number, { integer = true } = {}): number => {
  const text = raw[name];
  if (text === undefined) return Q ? quickFallback : fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) bad(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got "${text}"`);
  return n;
};
const isMode = (m: string): m is DataMode => ['PASV', 'EPSV', 'PORT', 'EPRT'].includes(m);
const mode = raw.mode.toUpperCase();
if (!isMode(mode)) bad(`--mode must be PASV, EPSV, PORT or EPRT, got "${raw.mode}"`);
const flags: BenchFlags = {
  quick: Q,
  size: num('size', 1024 * MiB, 128 * MiB),
  runs: num('runs', 3, 1),
  mode,
  sessions: num('sessions', 1000, 200),
  concurrency: num('concurrency', 16, 16),
  rounds: num('rounds', 5, 2),
  noops: num('noops', 200, 200),
  idle: num('idle', 2000, 1000),
  idleSeconds: num('idle-seconds', 10, 10, { integer: false }),
  concurrent: num('concurrent', 200, 50),
  transferSize: num('transfer-size', 16 * MiB, 4 * MiB),
  smallRuns: num('small-runs', 3, 1),
  retrs: num('retrs', 150, 50),
  hostile: num('hostile', 50, 10),
  engineMb: num('engine-mb', 32, 8, { integer: false }),
  engineReps: num('engine-reps', 5, 3),
  maxSeconds: num('max-seconds', 3600, 3600),
  partSeconds: 900,
};
let only: Part[] = [...PARTS];
if (raw.only) {
  only = [];
  for (const p of raw.only.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)) {
    const alias = ALIASES[p];
    if (alias) only.push(...alias);
    else if (isPart(p)) only.push(p);
    else bad(`--only: unknown part "${p}" (parts: ${PARTS.join(', ')}; scale)`);
  }
}
const distDir = path.resolve(raw.dist ?? path.join(ROOT, 'dist'));
const cli = path.join(distDir, 'cli.js');
if (!existsSync(path.join(distDir, 'gateway', 'reverse.js'))) bad(`${distDir} has no build of ftp-alg: run \`npm run build\` first`);

// ---- output: with --json the human part goes to stderr ------------------------------------

const human = raw.json ? process.stderr : process.stdout;
const log = (text = ''): void => void human.write(`${text}\n`);

// ---- cleanup: children by PID, namespaces by name, the temp folder -------------------------

const dir = mkdtempSync(path.join(os.tmpdir(), 'ftp-alg-bench-'));
function cleanupSync(): void {
  killAll();
  destroyAllLabsSync();
  rmSync(dir, { recursive: true, force: true });
}
const exitCodes: [NodeJS.Signals, number][] = [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
];
for (const [sig, code] of exitCodes) {
  process.once(sig, () => {
    log(`\n${sig}: stopping; children killed by PID, namespaces deleted`);
    cleanupSync();
    process.exit(code);
  });
}
const hardStop = setTimeout(() => {
  log(`\nHARD STOP: --max-seconds ${flags.maxSeconds} reached`);
  cleanupSync();
  process.exit(1);
}, flags.maxSeconds * 1000);
hardStop.unref();

// ---- context shared by the parts -------------------------------------------------------------

const failures: string[] = [];
const m = machine();
const kernel = await detectKernelDataPath({ cli });
const ctx: BenchContext = {
  flags,
  log,
  dir,
  distDir,
  cli,
  failures,
  nftTable: `ftpalg_bench_${process.pid.toString(36)}`,
  kernel,
  load: () => loadavgText(),
  cpuOf: (pid) => procCpuSeconds(pid),
  async waitNoChildren(pid, ms) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && descendants(pid).length > 0) await sleep(20);
  },
  async attempt(label, fn) {
    try {
      return await fn();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      failures.push(`${label}: ${message}`);
      log(`    ${label}: FAILED ${message}`);
      return undefined;
    }
  },
};

function versionOf(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 5000 }).trim().split('\n')[0] ?? '';
  } catch {
    return 'not available';
  }
}

function machine() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    model: cpus[0]?.model,
    memGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    kernel: os.release(),
    node: process.version,
    curl: versionOf('curl', ['--version']).split(' ').slice(0, 2).join(' '),
    nft: versionOf('nft', ['--version']),
    ftpProxy: ftpProxyAvailable() ? ftpProxyVersion() : 'not installed (sh bench/install.sh)',
    root: process.getuid?.() === 0,
    ulimitN: versionOf('sh', ['-c', 'ulimit -n']),
  };
}

// ---- main -------------------------------------------------------------------------------------

const results: BenchResults = {};
const started = new Date();
const loadStart = loadavgText();
log(`ftp-alg bench ${started.toISOString()}: parts ${only.join(', ')}${Q ? ' (quick)' : ''}`);
log(`machine: ${m.cpus} × ${m.model}, ${m.memGiB} GiB, kernel ${m.kernel}, node ${m.node}, ${m.curl}, ${m.nft}, ftp-proxy ${m.ftpProxy}`);
log(`load average at start: ${loadStart}; build measured: ${distDir}`);
log(`kernel data path in this build: reverse ${kernel.reverse ? 'yes' : 'no'}, forward ${kernel.forward ? 'yes' : 'no'}${kernel.how.length ? ` (${kernel.how.join('; ')})` : ''}`);
if (m.root) {
  const stale = await removeStaleNamespaces();
  if (stale.length) log(`removed namespaces left by an earlier run: ${stale.join(' ')}`);
}

const partTimes: Partial<Record<Part, number>> = {};
async function part<K extends Part & keyof BenchResults>(name: K, fn: () => BenchResults[K] | Promise<BenchResults[K]>): Promise<void> {
  if (!only.includes(name)) return;
  log('');
  await drainTimeWait(log, name);
  const t0 = Date.now();
  results[name] = await ctx.attempt(name, async () => fn());
  partTimes[name] = (Date.now() - t0) / 1000;
}

try {
  await part('engine', () => runEngine(ctx));
  await part('throughput', () => runThroughput(ctx));
  await part('ftps', () => runFtps(ctx));
  await part('netns', () => runNetns(ctx));
  await part('small-files', () => runSmallFiles(ctx));
  if (only.includes('sessions') && only.includes('latency')) {
    // One server and gateway for both.
    await part('sessions', () => runSessions(ctx, { cost: true, latency: true }));
    if (results.sessions?.rtt) results.latency = { rtt: results.sessions.rtt, errors: results.sessions.errors };
  } else {
    await part('sessions', () => runSessions(ctx, { cost: true, latency: false }));
    await part('latency', () => runSessions(ctx, { cost: false, latency: true }));
  }
  await part('idle', () => runIdle(ctx));
  await part('transfers', () => runTransfers(ctx));
  await part('hostile', () => runHostile(ctx));
} finally {
  killAll();
  destroyAllLabsSync();
  rmSync(dir, { recursive: true, force: true });
}

const loadEnd = loadavgText();
const table = buildTable(results, { only });
log('');
log(`ftp-alg bench: results (load average ${loadStart} at start, ${loadEnd} at the end; ${((Date.now() - started.getTime()) / 60000).toFixed(1)} min)`);
printTable(table, log);
log('');
log(failures.length === 0 ? 'OK: every measurement ran' : `FAILURES:\n  ${failures.join('\n  ')}`);

const doc = { started: started.toISOString(), machine: m, loadStart, loadEnd, flags, parts: only, partSeconds: partTimes, kernelDataPath: kernel, results, table, failures, units: { 'MB': '10^6 bytes', KiB: KiB } };
if (raw.json) process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
if (raw['json-out']) writeFileSync(raw['json-out'], `${JSON.stringify(doc, null, 2)}\n`);
process.exit(failures.length === 0 ? 0 : 1);
