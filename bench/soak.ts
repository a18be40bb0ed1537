/**
 * Soak: N concurrent FTP sessions for M minutes through the reverse gateway,
 * all in this one process on 127.0.0.1 (built-in server on port 0, gateway on
 * port 0 in front of it, clients dialling the gateway).
 *
 * Each worker loops until the deadline: connect, login, TYPE I, then
 * --retr downloads and --stor uploads interleaved, each in the next data mode
 * of --mode, the sha256 of every download and of every upload (read back from
 * the server's in-memory tree) checked, QUIT. Downloads use FtpClient.transfer;
 * uploads use stor() below (FtpClient has no upload), over plain net sockets.
 *
 * Reports every --report seconds and at the end. Exits 1 when any transfer
 * failed, a worker was still running at the hard stop (M minutes + 30 s), or
 * file descriptors / gateway sessions / data channels did not return to their
 * start values; 2 on bad flags.
 *
 *   npm run bench:build && node .bench-build/bench/soak.js [--sessions 20] [--minutes 2] [--size 1048576]
 *        [--mode PASV,EPSV,PORT,EPRT] [--retr 3] [--stor 2] [--report 10]
 *        [--passive-ports LO-HI] [--active-ports LO-HI] [--json]
 *
 * Re-executes itself with --expose-gc when started without it.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FtpClient, FtpError, type DataModeName, type SimpleReply } from '../src/client/ftp-client.js';
import { reverseFromFlags } from '../src/config.js';
import { startDemoServer, type DemoServer } from '../src/demo/server.js';
import type { GatewayEvent } from '../src/gateway/events.js';
import { startReverseGateway } from '../src/gateway/reverse.js';
import { ipOf, type Endpoint } from '../src/protocol/address.js';
import { find227, find229, formatEprtArg, formatPortArg } from '../src/protocol/endpoint.js';
import { fdCount, mb, mib, positiveNumber, sleep, timeWaitCount, withTimeout } from './lib/common.js';

/** How often something went wrong, and one example of it. */
type Tally = Map<string, { count: number; example: string }>;
type Counters = { transfers: number; retr: number; stor: number; bytes: number };

const DATA_MODES: readonly string[] = ['PASV', 'EPSV', 'PORT', 'EPRT'];
const isDataMode = (m: string): m is DataModeName => DATA_MODES.includes(m);
const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

const gc = globalThis.gc;
if (typeof gc !== 'function') {
  // Ctrl-C reaches both processes: the child stops cleanly and reports; this one waits for it.
  process.on('SIGINT', () => {});
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

const { values: flags } = parseArgs({
  options: {
    sessions: { type: 'string', default: '20' },
    minutes: { type: 'string', default: '2' },
    size: { type: 'string', default: String(1024 * 1024) },
    mode: { type: 'string', default: 'PASV,EPSV,PORT,EPRT' },
    retr: { type: 'string', default: '3' },
    stor: { type: 'string', default: '2' },
    report: { type: 'string', default: '10' },
    'passive-ports': { type: 'string' },
    'active-ports': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
  strict: true,
});

const SESSIONS = positiveNumber('sessions', flags.sessions);
const MINUTES = positiveNumber('minutes', flags.minutes, { integer: false });
const SIZE = positiveNumber('size', flags.size);
const RETR = Number(flags.retr);
const STOR = Number(flags.stor);
const REPORT_S = positiveNumber('report', flags.report, { integer: false });
const modeNames = flags.mode.split(',').map((m) => m.trim().toUpperCase()).filter(Boolean);
const limits: [string, number][] = [
  ['retr', RETR],
  ['stor', STOR],
];
for (const [name, n] of limits) {
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`bench: --${name} must be a non-negative integer\n`);
    process.exit(2);
  }
}
if (RETR + STOR === 0) {
  process.stderr.write('bench: --retr and --stor are both 0: nothing to transfer\n');
  process.exit(2);
}
const MODES = modeNames.filter(isDataMode);
if (MODES.length === 0 || MODES.length !== modeNames.length) {
  process.stderr.write(`bench: --mode must be a comma list of PASV, EPSV, PORT, EPRT; got "${flags.mode}"\n`);
  process.exit(2);
}

const HOST = '127.0.0.1';
/** Per-reply and per-connect timeout of the client; a stuck transfer is cut at OP_TIMEOUT_MS. */
const REPLY_TIMEOUT_MS = 15_000;
const OP_TIMEOUT_MS = 60_000;
/** fds the bench may legitimately differ by between start and end; see RESULTS.md. */
const FD_TOLERANCE = 2;
/** How long after the last worker we wait for sockets to close before measuring. */
const SETTLE_MS = 10_000;

const sha256 = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');

// ---- fixtures -------------------------------------------------------------------

const FILE_COUNT = 4;
const files = Array.from({ length: FILE_COUNT }, (_, i) => {
  const content = randomBytes(SIZE);
  return { name: `/pub/f${i}.bin`, content, hash: sha256(content) };
});

// ---- the metrics ------------------------------------------------------------------

const totals = { sessions: 0, transfers: 0, retr: 0, stor: 0, bytes: 0, failedSessions: 0 };
const errors: Tally = new Map(); // kind → { count, example }
const byMode: Record<string, number> = Object.fromEntries(MODES.map((m) => [m, 0]));
const gatewayEvents = {
  sessionOpen: 0,
  sessionClose: new Map() as Tally, // reason → count
  dataListen: 0,
  dataOpen: 0,
  dataClose: new Map() as Tally,
  refuse: new Map() as Tally,
  warning: new Map() as Tally,
};

function bump(map: Tally, key: string, example: string): void {
  const e = map.get(key);
  if (e) e.count++;
  else map.set(key, { count: 1, example });
}

/** Groups errors by what went wrong, not by port numbers or byte counts. */
function errorKind(err: unknown, op: string): string {
  if (err instanceof FtpError && err.reply) return `${op}: reply ${err.reply.code}`;
  const msg = messageOf(err)
    .replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'ADDR')
    .replace(/\d+/g, 'N');
  return `${op}: ${msg}`.slice(0, 120);
}

function recordError(err: unknown, op: string): void {
  const message = messageOf(err);
  bump(errors, errorKind(err, op), message.slice(0, 300));
}

const sink = (e: GatewayEvent) => {
  switch (e.event) {
    case 'session-open':
      gatewayEvents.sessionOpen++;
      break;
    case 'session-close':
      bump(gatewayEvents.sessionClose, e.reason.replace(/\d+/g, 'N'), e.reason);
      break;
    case 'data-listen':
      gatewayEvents.dataListen++;
      break;
    case 'data-open':
      gatewayEvents.dataOpen++;
      break;
    case 'data-close':
      bump(gatewayEvents.dataClose, e.reason.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'ADDR').replace(/\d+/g, 'N'), e.reason);
      break;
    case 'refuse':
      bump(gatewayEvents.refuse, e.code, e.message);
      break;
    case 'warning':
      bump(gatewayEvents.warning, e.message.replace(/\d+/g, 'N'), e.message);
      break;
    default:
  }
};

// ---- uploads ------------------------------------------------------------------------

function dial(endpoint: Endpoint): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: endpoint.address, port: endpoint.port });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

function acceptOne(listener: net.Server): Promise<net.Socket> {
  return new Promise((resolve) => listener.once('connection', resolve));
}

/**
 * STOR `data` as `name` over a data connection set up in `mode`, through an
 * FtpClient that is logged in. Resolves with the final reply.
 */
async function stor(client: FtpClient, mode: DataModeName, name: string, data: Buffer): Promise<SimpleReply> {
  const local = ipOf(client.socket.localAddress ?? '');
  const remote = ipOf(client.socket.remoteAddress ?? '');
  let listener: net.Server | undefined;
  let dataSocket: Promise<net.Socket> | undefined;
  try {
    if (mode === 'PASV' || mode === 'EPSV') {
      const setup = await client.expect(mode, (c) => c === (mode === 'PASV' ? 227 : 229));
      const port = find229(setup.text)?.port;
      const target = mode === 'PASV' ? find227(setup.text)?.endpoint : port !== undefined ? { ...remote, port } : undefined;
      if (!target?.port) throw new Error(`${mode} reply has no endpoint: ${setup.text}`);
      dataSocket = dial(target);
    } else {
      const server = net.createServer();
      listener = server;
      await new Promise<void>((r) => server.listen(0, local.address, r));
      const me = { ...local, port: (server.address() as net.AddressInfo).port };
      await client.expect(`${mode} ${mode === 'PORT' ? formatPortArg(me) : formatEprtArg(me)}`, (c) => c === 200);
      dataSocket = acceptOne(server);
    }
    // Rejections of dataSocket are handled below; do not let one go unhandled meanwhile.
    dataSocket.catch(() => {});
    const first = await client.send(`STOR ${name}`, true);
    if (first.code >= 300) throw new FtpError(`STOR failed: ${first.code} ${first.text}`, first);
    const s = await dataSocket;
    listener?.close();
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.end(data, () => resolve());
    });
    const final = first.code < 200 ? await client.read() : first;
    s.destroy();
    if (final.code >= 300) throw new FtpError(`STOR failed: ${final.code} ${final.text}`, final);
    return final;
  } finally {
    listener?.close();
    dataSocket?.then((s) => s.destroy(), () => undefined);
  }
}

// ---- workers ------------------------------------------------------------------------

let deadline = 0;
let modeCursor = 0;
const nextMode = (): DataModeName => MODES[modeCursor++ % MODES.length] ?? 'PASV';
const opSeq = new Map<number, number>(); // worker → operations so far
const lastStored = new Map<number, number>(); // worker → index of the file it uploaded last

async function oneSession(server: DemoServer, gatewayPort: number, worker: number, counters: Counters = totals): Promise<boolean> {
  const client = await FtpClient.connect(HOST, gatewayPort, REPLY_TIMEOUT_MS);
  let ok = true;
  try {
    await client.login();
    await client.expect('TYPE I', (c) => c === 200);
    // Interleave: RETR, STOR, RETR, STOR, RETR, …
    const ops: ('RETR' | 'STOR')[] = [];
    for (let i = 0; i < Math.max(RETR, STOR); i++) {
      if (i < RETR) ops.push('RETR');
      if (i < STOR) ops.push('STOR');
    }
    for (const op of ops) {
      if (client.socket.destroyed) throw new Error('control connection closed');
      const mode = nextMode();
      let pick = (worker + (opSeq.get(worker) ?? 0)) % FILE_COUNT;
      opSeq.set(worker, (opSeq.get(worker) ?? 0) + 1);
      // An upload never repeats the worker's previous one: a stale file cannot pass.
      if (op === 'STOR' && pick === lastStored.get(worker)) pick = (pick + 1) % FILE_COUNT;
      const file = files[pick];
      if (!file) throw new Error(`no fixture file ${pick}`);
      try {
        if (op === 'RETR') {
          const { data } = await withTimeout(client.transfer(mode, `RETR ${file.name}`), OP_TIMEOUT_MS, 'RETR');
          if (data.length !== file.content.length) throw new Error(`short download: ${data.length} of ${file.content.length} bytes`);
          if (sha256(data) !== file.hash) throw new Error('sha256 mismatch on download');
          counters.retr++;
        } else {
          const name = `/up/w${worker}.bin`;
          await withTimeout(stor(client, mode, name, file.content), OP_TIMEOUT_MS, 'STOR');
          const stored = server.files.get(name);
          if (!stored || stored.length !== file.content.length) throw new Error(`short upload: ${stored?.length ?? 0} of ${file.content.length} bytes`);
          if (sha256(stored) !== file.hash) throw new Error('sha256 mismatch on upload');
          lastStored.set(worker, pick);
          counters.stor++;
        }
        counters.transfers++;
        counters.bytes += file.content.length;
        if (counters === totals) byMode[mode] = (byMode[mode] ?? 0) + 1;
      } catch (err) {
        ok = false;
        recordError(err, `${op} ${mode}`);
        // A failed transfer may leave the control connection out of step: end the session.
        break;
      }
    }
    await withTimeout(client.quit(), REPLY_TIMEOUT_MS, 'QUIT');
  } finally {
    client.close();
  }
  return ok;
}

async function worker(server: DemoServer, gatewayPort: number, id: number): Promise<void> {
  while (Date.now() < deadline) {
    try {
      const ok = await oneSession(server, gatewayPort, id);
      if (ok) totals.sessions++;
      else totals.failedSessions++;
    } catch (err) {
      totals.failedSessions++;
      recordError(err, 'session');
      await sleep(100); // do not spin on a gateway that refuses everything
    }
  }
}

// ---- reporting ------------------------------------------------------------------------

function rss(): number {
  return process.memoryUsage().rss;
}

/** RSS, V8 heap in use and Buffer memory (arrayBuffers) after forced collections. */
async function gcMemory() {
  // Uploads stay in the server's in-memory tree (one per worker, size bytes
  // each): drop them so that start and end compare the same state.
  for (const name of [...server.files.keys()]) if (name.startsWith('/up/')) server.files.delete(name);
  for (let i = 0; i < 3; i++) {
    void gc?.();
    await sleep(50);
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers };
}

let peakRss = 0;
const rssSampler = setInterval(() => {
  peakRss = Math.max(peakRss, rss());
}, 200);

const loopDelay = monitorEventLoopDelay({ resolution: 10 });

function errorCount(): number {
  let n = 0;
  for (const e of errors.values()) n += e.count;
  return n;
}

function line(text: string): void {
  process.stdout.write(`${text}\n`);
}

// ---- main -------------------------------------------------------------------------------

const server = await startDemoServer({
  host: HOST,
  port: 0,
  files: Object.fromEntries(files.map((f) => [f.name, f.content])),
});
const cfg = reverseFromFlags({
  listen: `${HOST}:0`,
  server: `${HOST}:${server.address.port}`,
  'public-address': HOST,
  // Every soak session comes from HOST: their data listeners count against one client's cap.
  'max-data-listeners-per-client': 10_000,
  ...(flags['passive-ports'] ? { 'passive-ports': flags['passive-ports'] } : {}),
  ...(flags['active-ports'] ? { 'active-ports': flags['active-ports'] } : {}),
});
const gateway = await startReverseGateway(cfg, sink);
const gatewayPort = gateway.address.port;

// Installed before the start figures: the first signal handler makes libuv open its signal pipe.
let stopReason = 'deadline';
process.once('SIGINT', () => {
  stopReason = 'SIGINT';
  deadline = Date.now();
  line('SIGINT: no new sessions; finishing the running ones (Ctrl-C again kills)');
  process.once('SIGINT', () => process.exit(130));
});

// Warm-up: one session per mode, so that what Node opens lazily on first use
// is open before the start figures are taken (and not counted as a leak).
{
  const warm = { transfers: 0, retr: 0, stor: 0, bytes: 0 };
  for (let i = 0; i < MODES.length; i++) {
    const ok = await oneSession(server, gatewayPort, 0, warm).catch((err: unknown) => {
      recordError(err, 'warm-up');
      return false;
    });
    if (!ok) {
      line(`warm-up failed: ${JSON.stringify([...errors])}`);
      process.exit(1);
    }
  }
  for (let i = 0; i < 50 && gateway.sessions.size > 0; i++) await sleep(100);
}

const start = { ...(await gcMemory()), fds: fdCount(), gatewaySessions: gateway.sessions.size };
const cpuStart = process.cpuUsage();
line(
  `soak: ${SESSIONS} sessions × ${MINUTES} min, ${SIZE} B files, modes ${MODES.join('/')}, ${RETR} RETR + ${STOR} STOR per session; ` +
    `server :${server.address.port}, gateway :${gatewayPort}; node ${process.version}, ${os.cpus().length} cpus, pid ${process.pid}, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
);
line(`start: rss ${mib(start.rss)} MiB, heap ${mib(start.heapUsed)} MiB, buffers ${mib(start.arrayBuffers)} MiB (after gc), fds ${start.fds}, gateway sessions ${start.gatewaySessions}`);

const t0 = Date.now();
deadline = stopReason === 'SIGINT' ? t0 : t0 + MINUTES * 60_000;
const hardStop = deadline + 30_000;

loopDelay.enable();
let last = { t: t0, cpu: process.cpuUsage(), ...totals };
function report(final = false): void {
  const now = Date.now();
  const dt = (now - last.t) / 1000 || 1;
  const cpu = process.cpuUsage(last.cpu);
  const d = (k: keyof typeof totals) => totals[k] - last[k];
  const p99 = loopDelay.percentile(99) / 1e6;
  const max = loopDelay.max / 1e6;
  line(
    `${final ? 'interval (last)' : `t=${Math.round((now - t0) / 1000)}s`}: ` +
      `${(d('sessions') / dt).toFixed(1)} sessions/s, ${(d('transfers') / dt).toFixed(1)} transfers/s, ${(d('bytes') / 1e6 / dt).toFixed(1)} MB/s | ` +
      `total ${totals.sessions} sessions (${totals.failedSessions} failed), ${totals.transfers} transfers, ${mb(totals.bytes)} MB, ${errorCount()} errors | ` +
      `rss ${mib(rss())} MiB (peak ${mib(peakRss)}), fds ${fdCount()}, gateway sessions ${gateway.sessions.size}, loop delay p99 ${p99.toFixed(1)} ms max ${max.toFixed(1)} ms, ` +
      `cpu user ${((cpu.user / 1e6 / dt) * 100).toFixed(0)}% sys ${((cpu.system / 1e6 / dt) * 100).toFixed(0)}%, TIME-WAIT ${timeWaitCount()}`,
  );
  if (errors.size > 0) line(`  errors so far: ${[...errors].map(([kind, e]) => `${e.count} × ${kind}`).join('; ')}`);
  loopDelay.reset();
  last = { t: now, cpu: process.cpuUsage(), ...totals };
}
const reporter = setInterval(report, REPORT_S * 1000);

const workers = Array.from({ length: SESSIONS }, (_, i) => worker(server, gatewayPort, i + 1));
const allDone = Promise.all(workers).then(() => true);
const finishedInTime = await Promise.race([allDone, sleep(Math.max(0, hardStop - Date.now())).then(() => false)]);
const elapsed = (Date.now() - t0) / 1000;
clearInterval(reporter);
report(true);
loopDelay.disable();

const problems: string[] = [];
if (!finishedInTime) problems.push('HARD STOP: workers still running 30 s after the deadline');

// Sockets close asynchronously (FIN handshakes, the gateway's data channels,
// the server's lingering data sockets): give them time, then measure.
const settleStart = Date.now();
while (Date.now() - settleStart < SETTLE_MS && (gateway.sessions.size > 0 || fdCount() > start.fds + FD_TOLERANCE)) await sleep(100);
const settleMs = Date.now() - settleStart;
const end = { ...(await gcMemory()), fds: fdCount(), gatewaySessions: gateway.sessions.size };
const openChannels = gatewayEvents.dataListen - [...gatewayEvents.dataClose.values()].reduce((n, e) => n + e.count, 0);
clearInterval(rssSampler);

const summary = {
  sessions: SESSIONS,
  minutes: MINUTES,
  size: SIZE,
  modes: MODES,
  elapsedS: Number(elapsed.toFixed(1)),
  stopReason,
  completedSessions: totals.sessions,
  failedSessions: totals.failedSessions,
  transfers: totals.transfers,
  retr: totals.retr,
  stor: totals.stor,
  byMode,
  bytes: totals.bytes,
  cpuUserS: Number((process.cpuUsage(cpuStart).user / 1e6).toFixed(1)),
  cpuSystemS: Number((process.cpuUsage(cpuStart).system / 1e6).toFixed(1)),
  timeWaitEnd: timeWaitCount(),
  loadAverageEnd: os.loadavg(),
  sessionsPerS: Number((totals.sessions / elapsed).toFixed(2)),
  transfersPerS: Number((totals.transfers / elapsed).toFixed(2)),
  mbPerS: Number((totals.bytes / 1e6 / elapsed).toFixed(1)),
  errors: Object.fromEntries([...errors].map(([k, v]) => [k, v])),
  peakRssMiB: Number(mib(peakRss)),
  maxRssMiB: Number(mib(process.resourceUsage().maxRSS * 1024)),
  startRssMiB: Number(mib(start.rss)),
  endRssMiB: Number(mib(end.rss)),
  startHeapMiB: Number(mib(start.heapUsed)),
  endHeapMiB: Number(mib(end.heapUsed)),
  startBuffersMiB: Number(mib(start.arrayBuffers)),
  endBuffersMiB: Number(mib(end.arrayBuffers)),
  startFds: start.fds,
  endFds: end.fds,
  settleMs,
  gatewaySessionsEnd: end.gatewaySessions,
  gatewayDataChannelsOpenEnd: openChannels,
  gateway: {
    sessionOpen: gatewayEvents.sessionOpen,
    sessionClose: Object.fromEntries(gatewayEvents.sessionClose),
    dataListen: gatewayEvents.dataListen,
    dataOpen: gatewayEvents.dataOpen,
    dataClose: Object.fromEntries(gatewayEvents.dataClose),
    refuse: Object.fromEntries(gatewayEvents.refuse),
    warning: Object.fromEntries(gatewayEvents.warning),
  },
};

if (errorCount() > 0 || totals.failedSessions > 0) problems.push(`${errorCount()} failed operations in ${totals.failedSessions} sessions`);
if (totals.transfers === 0) problems.push('no transfer completed');
if (Math.abs(end.fds - start.fds) > FD_TOLERANCE) problems.push(`fds ${start.fds} → ${end.fds} (tolerance ±${FD_TOLERANCE})`);
if (end.gatewaySessions !== 0) problems.push(`gateway still holds ${end.gatewaySessions} sessions`);
if (openChannels !== 0) problems.push(`gateway data channels not closed: ${openChannels}`);

line('');
line(`end after ${elapsed.toFixed(1)} s (${stopReason}), settled in ${settleMs} ms; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
line(
  `  ${totals.sessions} sessions (${summary.sessionsPerS}/s), ${totals.transfers} transfers (${summary.transfersPerS}/s: ${totals.retr} RETR, ${totals.stor} STOR; ` +
    `${Object.entries(byMode).map(([m, n]) => `${m} ${n}`).join(', ')}), ${mb(totals.bytes)} MB (${summary.mbPerS} MB/s)`,
);
line(`  cpu: user ${summary.cpuUserS} s, system ${summary.cpuSystemS} s over ${elapsed.toFixed(1)} s; TCP TIME-WAIT at end ${summary.timeWaitEnd}`);
line(`  errors: ${errorCount() === 0 ? 'none' : ''}`);
for (const [kind, e] of errors) line(`    ${e.count} × ${kind}   e.g. ${e.example}`);
line(
  `  rss: start ${summary.startRssMiB} MiB, end ${summary.endRssMiB} MiB (after gc), peak sampled ${summary.peakRssMiB} MiB, maxRSS ${summary.maxRssMiB} MiB; ` +
    `heap used ${summary.startHeapMiB} → ${summary.endHeapMiB} MiB, buffers ${summary.startBuffersMiB} → ${summary.endBuffersMiB} MiB`,
);
line(`  fds: start ${start.fds}, end ${end.fds}; gateway sessions at end ${end.gatewaySessions}; data channels open at end ${openChannels}`);
line(`  gateway: ${gatewayEvents.sessionOpen} sessions opened, ${gatewayEvents.dataListen} data listeners, ${gatewayEvents.dataOpen} relays`);
const tallies: [string, Tally][] = [
  ['session-close', gatewayEvents.sessionClose],
  ['data-close', gatewayEvents.dataClose],
  ['refuse', gatewayEvents.refuse],
  ['warning', gatewayEvents.warning],
];
for (const [name, map] of tallies) {
  for (const [k, e] of map) line(`    ${name} ${e.count} × ${k}`);
}
if (flags.json) line(`JSON ${JSON.stringify(summary)}`);

// Bounded: after a hard stop something may still hang on to a session.
const closed = await Promise.race([Promise.all([gateway.close(), server.close()]).then(() => true), sleep(5000).then(() => false)]);
if (!closed) problems.push('gateway or server did not close within 5 s');
line(problems.length === 0 ? 'OK' : `FAIL: ${problems.join('; ')}`);
process.exit(problems.length === 0 ? 0 : 1);
