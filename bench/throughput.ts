/**
 * Throughput: one large download with curl (a real client, a child process),
 * direct to the built-in server and through the reverse gateway, in each data
 * mode; then a slow reader (curl --limit-rate) through the gateway, to show
 * that the relay applies back-pressure instead of buffering the file.
 *
 * The built-in server (serving a temporary folder) and the gateway each run
 * in a child process of their own, started fresh for every case, so that
 * VmHWM (the kernel's peak RSS) of the gateway process is the peak of that
 * one transfer. Everything is on 127.0.0.1; every curl has --max-time and
 * the whole bench a --max-seconds bound.
 *
 *   npm run bench:build && node .bench-build/bench/throughput.js [--size 1073741824] [--runs 3]
 *        [--modes PASV,EPSV,PORT,EPRT] [--slow-size 268435456] [--slow-rate 5M]
 *        [--slow-modes EPSV,EPRT] [--skip-slow] [--skip-tcp] [--store memory|folder] [--max-seconds 1800] [--json]
 *
 * Each run also moves the same number of bytes over plain TCP, directly and
 * through a naive Node pipe relay (bench/lib/tcp-baseline.ts): an in-run
 * reference for what the gateway's relay costs beyond a bare pipe().
 *
 * --store memory (default) serves the file from the server's in-memory tree
 * (about 3× faster than reading the folder with 64 KiB FileHandle reads, so
 * the server is less of a limit); the slow-reader case always reads from disk.
 * MB/s = 10^6 bytes / curl's time_total (login and data set-up included).
 * Exits 1 when a transfer fails or is short, 2 on bad flags.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MB, median, mib, MiB, positiveNumber, procCpuSeconds, procMemory } from './lib/common.js';
import type { GatewayChildStats } from './lib/context.js';
import { curlModeArgs, type DataMode } from './lib/curl.js';
import { killAll, startHelper as startProcess, stopHelper, track, type Helper } from './lib/procs.js';
import { writeRandomFile as writeFile } from './parts/throughput.js';

interface CurlDownload {
  code: number | null;
  size?: number;
  time?: number;
  speed?: number;
  error: string;
}

interface FtpCase {
  via: 'direct' | 'gateway';
  mode: DataMode;
  ok: boolean;
  size: number;
  seconds: number;
  mbPerS: number;
  gatewayRssBefore: number | undefined;
  gatewayHwmAtStart: number | undefined;
  gatewayHwm: number | undefined;
  gatewayPeakSampled: number | undefined;
  gatewayCpuS: number;
  serverHwm: number;
  curlError: string | undefined;
}

interface TcpCase {
  via: 'tcp-direct' | 'tcp-relay';
  mode: 'TCP';
  ok: boolean;
  size: number;
  seconds: number;
  mbPerS: number;
  relayRssBefore: number | undefined;
  relayHwm: number | undefined;
  relayCpuS: number;
}

type Case = FtpCase | TcpCase;

const { values: flags } = parseArgs({
  options: {
    size: { type: 'string', default: String(1024 * MiB) },
    runs: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'PASV,EPSV,PORT,EPRT' },
    'slow-size': { type: 'string', default: String(256 * MiB) },
    'slow-rate': { type: 'string', default: '5M' },
    'slow-modes': { type: 'string', default: 'EPSV,EPRT' },
    'skip-slow': { type: 'boolean', default: false },
    'skip-tcp': { type: 'boolean', default: false },
    store: { type: 'string', default: 'memory' },
    'max-seconds': { type: 'string', default: '1800' },
    json: { type: 'boolean', default: false },
  },
  strict: true,
});

const SIZE = positiveNumber('size', flags.size);
const RUNS = positiveNumber('runs', flags.runs);
const SLOW_SIZE = positiveNumber('slow-size', flags['slow-size']);
const MAX_SECONDS = positiveNumber('max-seconds', flags['max-seconds']);
const SLOW_RATE = flags['slow-rate'];
const STORE = flags.store;
if (STORE !== 'memory' && STORE !== 'folder') {
  process.stderr.write(`bench: --store must be memory or folder, got "${STORE}"\n`);
  process.exit(2);
}
const isDataMode = (m: string): m is DataMode => ['PASV', 'EPSV', 'PORT', 'EPRT'].includes(m);
const parseModes = (name: string, text: string): DataMode[] => {
  const names = text.split(',').map((m) => m.trim().toUpperCase()).filter(Boolean);
  const modes = names.filter(isDataMode);
  if (modes.length === 0 || modes.length !== names.length) {
    process.stderr.write(`bench: --${name} must be a comma list of PASV, EPSV, PORT, EPRT; got "${text}"\n`);
    process.exit(2);
  }
  return modes;
};
const MODES = parseModes('modes', flags.modes);
const SLOW_MODES = parseModes('slow-modes', flags['slow-modes']);
const slowRateBytes = (() => {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)$/.exec(SLOW_RATE);
  if (!m) {
    process.stderr.write(`bench: --slow-rate must be like 5M (curl --limit-rate syntax), got "${SLOW_RATE}"\n`);
    process.exit(2);
  }
  const unit: Record<string, number> = { '': 1, k: 1024, m: MiB, g: 1024 * MiB };
  return Number(m[1]) * (unit[(m[2] ?? '').toLowerCase()] ?? 1);
})();

const HERE = path.dirname(fileURLToPath(import.meta.url));
const HOST = '127.0.0.1';

const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

function line(text = ''): void {
  process.stdout.write(`${text}\n`);
}

// ---- children -----------------------------------------------------------------------

const killChildren = killAll;

/** A helper script of bench/lib that prints {"port": N} first (procs.ts). */
function startHelper(script: string, args: string[]): Promise<Helper> {
  return startProcess(process.execPath, [path.join(HERE, 'lib', script), ...args], { what: script });
}

/** Samples VmRSS of some processes while `work` runs; resolves with work's value and the sampled peaks. */
async function sampled<T>(pids: number[], intervalMs: number, work: Promise<T>, onTick?: () => void): Promise<{ value: T; peaks: Record<number, number> }> {
  const peaks: Record<number, number> = Object.fromEntries(pids.map((p) => [p, 0]));
  const tick = () => {
    for (const p of pids) {
      try {
        peaks[p] = Math.max(peaks[p] ?? 0, procMemory(p).rss);
      } catch {
        // gone
      }
    }
    onTick?.();
  };
  const timer = setInterval(tick, intervalMs);
  try {
    return { value: await work, peaks };
  } finally {
    clearInterval(timer);
    tick();
  }
}

/** Runs curl for one download; never rejects. */
function curl(port: number, mode: DataMode, file: string, extra: string[], maxTimeS: number): Promise<CurlDownload> {
  const args = ['-sS', '-o', '/dev/null', '--max-time', String(maxTimeS), '-w', '%{size_download} %{time_total} %{speed_download}', ...curlModeArgs(mode, HOST), ...extra, `ftp://${HOST}:${port}/${file}`];
  return new Promise((resolve) => {
    const proc = track(spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
    proc.once('error', (e) => resolve({ code: -1, error: e.message }));
    proc.once('close', (code) => {
      const [size, time, speed] = out.trim().split(' ').map(Number);
      resolve({ code, size, time, speed, error: err.trim() });
    });
  });
}

/**
 * Where the bytes wait: Recv-Q/Send-Q of the established TCP sockets of these
 * processes (ss -tnp), one line each. Best effort: ss may be missing.
 */
function socketQueues(pids: Record<string, number | undefined>): string[] {
  let out: string;
  try {
    out = execFileSync('ss', ['-tnpH', 'state', 'established'], { encoding: 'utf8', timeout: 5000 });
  } catch {
    return ['(ss not available)'];
  }
  const rows: string[] = [];
  for (const text of out.split('\n')) {
    const who = Object.entries(pids).find(([, pid]) => text.includes(`pid=${pid},`))?.[0] ?? (text.includes('"curl"') ? 'curl' : undefined);
    if (!who) continue;
    const [recvQ = '', sendQ = '', local, peer = ''] = text.trim().split(/\s+/);
    if (!local?.startsWith(`${HOST}:`)) continue;
    rows.push(`${who.padEnd(7)} ${local.padEnd(21)} → ${peer.padEnd(21)} Recv-Q ${recvQ.padStart(9)}  Send-Q ${sendQ.padStart(9)}`);
  }
  return rows.sort();
}

// ---- cases ---------------------------------------------------------------------------------

const failures: string[] = [];

interface CaseSpec {
  via: FtpCase['via'];
  mode: DataMode;
  file: string;
  size: number;
  store: string;
  extra?: string[];
  maxTimeS: number;
  progressEveryS?: number;
  queuesAtS?: number;
}

/** One download, direct or through a fresh gateway; both helpers fresh. */
async function runCase({ via, mode, file, size, store, extra = [], maxTimeS, progressEveryS, queuesAtS }: CaseSpec): Promise<FtpCase> {
  const server = await startHelper('server-child.js', [dir, ...(store === 'memory' ? ['--memory', file] : [])]);
  const gateway = via === 'gateway' ? await startHelper('gateway-child.js', [String(server.port)]) : undefined;
  const port = gateway ? gateway.port : server.port;
  const before = gateway ? procMemory(gateway.pid) : undefined;
  const cpuBefore = gateway ? procCpuSeconds(gateway.pid) : 0;
  const t0 = Date.now();
  let nextProgress = progressEveryS ? t0 + progressEveryS * 1000 : Infinity;
  let queuesAt = queuesAtS ? t0 + queuesAtS * 1000 : Infinity;
  const pids = [server.pid, ...(gateway ? [gateway.pid] : [])];
  const { value: r, peaks } = await sampled(pids, 100, curl(port, mode, file, extra, maxTimeS), () => {
    if (Date.now() >= queuesAt) {
      queuesAt = Infinity;
      line(`    socket queues at t=${Math.round((Date.now() - t0) / 1000)}s (bytes; ss -tnp):`);
      for (const row of socketQueues({ gateway: gateway?.pid, server: server.pid })) line(`      ${row}`);
    }
    if (Date.now() < nextProgress) return;
    nextProgress += (progressEveryS ?? 0) * 1000;
    const g = gateway ? procMemory(gateway.pid) : undefined;
    const s = procMemory(server.pid);
    line(`    t=${Math.round((Date.now() - t0) / 1000)}s gateway rss ${g ? mib(g.rss) : '-'} MiB, server rss ${mib(s.rss)} MiB`);
  });
  const after = gateway ? procMemory(gateway.pid) : undefined;
  const cpu = gateway ? procCpuSeconds(gateway.pid) - cpuBefore : 0;
  const serverMem = procMemory(server.pid);
  const gwStats = gateway ? await stopHelper<GatewayChildStats>(gateway) : undefined;
  await stopHelper(server);
  const ok = r.code === 0 && r.size === size;
  if (!ok) failures.push(`${via} ${mode} ${file}: curl exit ${r.code}, ${r.size} of ${size} bytes ${r.error ?? ''}`);
  const relayed = gwStats?.dataCloses?.reduce((n, d) => n + d.bytes, 0);
  if (gateway && ok && relayed !== size) failures.push(`${via} ${mode}: gateway data-close reports ${relayed} bytes, expected ${size}`);
  return {
    via,
    mode,
    ok,
    size,
    seconds: r.time ?? 0,
    mbPerS: r.time ? size / MB / r.time : 0,
    gatewayRssBefore: before?.rss,
    gatewayHwmAtStart: before?.hwm,
    gatewayHwm: after?.hwm,
    gatewayPeakSampled: gateway ? peaks[gateway.pid] : undefined,
    gatewayCpuS: cpu,
    serverHwm: serverMem.hwm,
    curlError: r.error || undefined,
  };
}

/**
 * In-run reference without FTP: SIZE bytes over plain TCP, source → sink
 * directly, or through a naive Node relay (a.pipe(b); b.pipe(a)) in a process
 * of its own: what the gateway's data relay is, minus everything FTP.
 */
async function runTcp(via: 'direct' | 'relay', maxTimeS: number): Promise<TcpCase> {
  const source = await startHelper('tcp-baseline.js', ['source', String(SIZE)]);
  const relay = via === 'relay' ? await startHelper('tcp-baseline.js', ['relay', String(source.port)]) : undefined;
  const cpuBefore = relay ? procCpuSeconds(relay.pid) : 0;
  const rssBefore = relay ? procMemory(relay.pid).rss : undefined;
  const r = await new Promise<{ code: number | null; bytes: number; seconds: number }>((resolve) => {
    const proc = track(
      spawn(process.execPath, [path.join(HERE, 'lib', 'tcp-baseline.js'), 'sink', String((relay ?? source).port)], {
        stdio: ['ignore', 'pipe', 'inherit'],
        timeout: maxTimeS * 1000,
        killSignal: 'SIGKILL',
      }),
    );
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proc.once('close', (code) => {
      try {
        resolve({ code, ...(JSON.parse(out) as { bytes: number; seconds: number }) });
      } catch {
        resolve({ code, bytes: 0, seconds: 0 });
      }
    });
  });
  const cpu = relay ? procCpuSeconds(relay.pid) - cpuBefore : 0;
  const hwm = relay ? procMemory(relay.pid).hwm : undefined;
  if (relay) await stopHelper(relay);
  await stopHelper(source);
  const ok = r.code === 0 && r.bytes === SIZE;
  if (!ok) failures.push(`tcp ${via}: exit ${r.code}, ${r.bytes} of ${SIZE} bytes`);
  return { via: `tcp-${via}`, mode: 'TCP', ok, size: SIZE, seconds: r.seconds, mbPerS: r.seconds ? SIZE / MB / r.seconds : 0, relayRssBefore: rssBefore, relayHwm: hwm, relayCpuS: cpu };
}

/** Runs one case; a case that cannot even start (a helper too slow on a loaded machine) is a failure, not a crash. */
async function attempt<T>(label: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    failures.push(`${label}: ${message}`);
    line(`    ${label}: FAILED ${message}`);
    killChildren();
    return undefined;
  }
}

const mibOf = (bytes: number | undefined) => mib(bytes ?? NaN);

function describe(c: Case): string {
  if (c.mode === 'TCP') {
    const base = `${c.via.padEnd(10)} ${c.ok ? `${c.mbPerS.toFixed(0).padStart(5)} MB/s  ${c.seconds.toFixed(2)} s` : 'FAILED'}`;
    return c.via === 'tcp-relay' ? `${base}  relay rss ${mibOf(c.relayRssBefore)} MiB before, peak ${mibOf(c.relayHwm)} MiB, cpu ${(c.relayCpuS / (c.size / 2 ** 30)).toFixed(2)} s/GiB` : base;
  }
  const base = `${c.via.padEnd(7)} ${c.mode}  ${c.ok ? `${c.mbPerS.toFixed(0).padStart(5)} MB/s  ${c.seconds.toFixed(2)} s` : `FAILED ${c.curlError ?? ''}`}`;
  if (c.via !== 'gateway') return `${base}  (server peak rss ${mib(c.serverHwm)} MiB)`;
  return (
    `${base}  gateway rss ${mibOf(c.gatewayRssBefore)} MiB before, peak ${mibOf(c.gatewayHwm)} MiB (VmHWM; sampled ${mibOf(c.gatewayPeakSampled)}), ` +
    `cpu ${c.gatewayCpuS.toFixed(2)} s = ${(c.gatewayCpuS / (c.size / 2 ** 30)).toFixed(2)} s/GiB; server peak rss ${mib(c.serverHwm)} MiB`
  );
}

// ---- main -------------------------------------------------------------------------------

const deadlineTimer = setTimeout(() => {
  line(`HARD STOP: --max-seconds ${MAX_SECONDS} reached`);
  killChildren();
  void rm(dir, { recursive: true, force: true }).finally(() => process.exit(1));
}, MAX_SECONDS * 1000);
deadlineTimer.unref();
process.once('SIGINT', () => {
  killChildren();
  void rm(dir, { recursive: true, force: true }).finally(() => process.exit(130));
});

const dir = await mkdtemp(path.join(os.tmpdir(), 'ftp-alg-bench-'));
const results: { machine: Record<string, unknown>; throughput: (Case & { run: number })[]; slow: FtpCase[] } = {
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, date: new Date().toISOString() },
  throughput: [],
  slow: [],
};
const isFtp = <C extends Case>(c: C): c is C & FtpCase => c.mode !== 'TCP';
const isTcp = <C extends Case>(c: C): c is C & TcpCase => c.mode === 'TCP';
try {
  line(`throughput: ${mib(SIZE)} MiB, ${RUNS} run(s) per case, modes ${MODES.join('/')}, server store ${STORE}; ${os.cpus().length} cpus, node ${process.version}, load average ${loadavg()}; files in ${dir}`);
  await writeFile(path.join(dir, 'big.bin'), SIZE);
  // Throughput figures must not include reading the file from disk: warm the page cache.
  {
    const warm = await attempt('warm-up', () => runCase({ via: 'direct', mode: 'EPSV', file: 'big.bin', size: SIZE, store: STORE, maxTimeS: Math.ceil(SIZE / 20e6) + 30 }));
    if (warm) line(`  warm-up (page cache): ${describe(warm)}`);
  }
  for (let run = 1; run <= RUNS; run++) {
    line(`  run ${run}`);
    for (const mode of MODES) {
      for (const via of ['direct', 'gateway'] as const) {
        const c = await attempt(`${via} ${mode}`, () => runCase({ via, mode, file: 'big.bin', size: SIZE, store: STORE, maxTimeS: Math.ceil(SIZE / 20e6) + 30 }));
        if (!c) continue;
        results.throughput.push({ run, ...c });
        line(`    ${describe(c)}`);
      }
    }
    if (!flags['skip-tcp']) {
      for (const via of ['direct', 'relay'] as const) {
        const c = await attempt(`tcp ${via}`, () => runTcp(via, Math.ceil(SIZE / 20e6) + 30));
        if (!c) continue;
        results.throughput.push({ run, ...c });
        line(`    ${describe(c)}`);
      }
    }
  }
  line();
  line(`summary (median of ${RUNS}, load average now ${loadavg()}, min–max; MB = 10^6 bytes)`);
  for (const mode of MODES) {
    const pick = (via: FtpCase['via']) => results.throughput.filter(isFtp).filter((c) => c.mode === mode && c.via === via && c.ok);
    const fmt = (cs: Case[]) => (cs.length ? `${median(cs.map((c) => c.mbPerS)).toFixed(0)} (${Math.min(...cs.map((c) => c.mbPerS)).toFixed(0)}–${Math.max(...cs.map((c) => c.mbPerS)).toFixed(0)})` : 'n/a');
    const d = pick('direct');
    const g = pick('gateway');
    const ratio = d.length && g.length ? median(g.map((c) => c.mbPerS)) / median(d.map((c) => c.mbPerS)) : NaN;
    const hwm = g.length ? Math.max(...g.map((c) => c.gatewayHwm ?? NaN)) : NaN;
    const cpu = g.length ? median(g.map((c) => c.gatewayCpuS / (c.size / 2 ** 30))) : NaN;
    line(`  ${mode}: direct ${fmt(d)} MB/s, gateway ${fmt(g)} MB/s (${(ratio * 100).toFixed(0)}% of direct); gateway peak rss ${mib(hwm)} MiB, cpu ${cpu.toFixed(2)} s/GiB`);
  }
  if (!flags['skip-tcp']) {
    const pick = (via: TcpCase['via']) => results.throughput.filter(isTcp).filter((c) => c.via === via && c.ok);
    const d = pick('tcp-direct');
    const r = pick('tcp-relay');
    const m = (cs: Case[]) => (cs.length ? median(cs.map((c) => c.mbPerS)) : NaN);
    const fmt = (cs: Case[]) => `${m(cs).toFixed(0)} (${Math.min(...cs.map((c) => c.mbPerS)).toFixed(0)}–${Math.max(...cs.map((c) => c.mbPerS)).toFixed(0)})`;
    if (d.length && r.length) {
      line(
        `  TCP, no FTP: direct ${fmt(d)} MB/s, naive Node pipe relay ${fmt(r)} MB/s (${((m(r) / m(d)) * 100).toFixed(0)}% of direct); ` +
          `relay peak rss ${mib(Math.max(...r.map((c) => c.relayHwm ?? NaN)))} MiB, cpu ${median(r.map((c) => c.relayCpuS / (c.size / 2 ** 30))).toFixed(2)} s/GiB`,
      );
    }
  }

  if (!flags['skip-slow']) {
    await writeFile(path.join(dir, 'slow.bin'), SLOW_SIZE);
    line();
    line(`slow reader: ${mib(SLOW_SIZE)} MiB at curl --limit-rate ${SLOW_RATE} (≈ ${(SLOW_SIZE / slowRateBytes).toFixed(0)} s each), through the gateway; load average ${loadavg()}`);
    for (const mode of SLOW_MODES) {
      line(`  ${mode}`);
      const c = await attempt(`slow ${mode}`, () => runCase({
        via: 'gateway',
        mode,
        file: 'slow.bin',
        size: SLOW_SIZE,
        // From disk: the server's own rss then shows whether bytes pile up on its side.
        store: 'folder',
        extra: ['--limit-rate', SLOW_RATE],
        maxTimeS: Math.ceil((SLOW_SIZE / slowRateBytes) * 1.5) + 30,
        progressEveryS: 10,
        queuesAtS: Math.round(SLOW_SIZE / slowRateBytes / 2),
      }));
      if (!c) continue;
      results.slow.push(c);
      line(`    ${describe(c)}`);
      line(`    gateway peak rss grew ${mib((c.gatewayHwm ?? NaN) - (c.gatewayRssBefore ?? NaN))} MiB over its idle rss, for a ${mib(SLOW_SIZE)} MiB file`);
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

if (flags.json) line(`JSON ${JSON.stringify(results)}`);
line(failures.length === 0 ? 'OK' : `FAIL:\n  ${failures.join('\n  ')}`);
process.exit(failures.length === 0 ? 0 : 1);
