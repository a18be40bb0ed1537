/**
 * Part 3: one ftp-alg process under many sessions.
 *
 *   idle       N control sessions through one gateway process, logged in,
 *              then idle for a while; the gateway's RSS and V8 heap (after a
 *              forced GC: it runs with --expose-gc) before and after, per
 *              session; every session must still answer NOOP at the end, and
 *              all must close cleanly (zero errors)
 *   transfers  M concurrent downloads through one gateway process, started
 *              together once all are logged in: the gateway's CPU seconds
 *              (user + sys from /proc/PID/stat) per GiB relayed
 *
 * The gateway's caps (--max-sessions 1000, --max-sessions-per-client 50 by
 * default) are raised for this; the built-in server runs in a process of its
 * own. Clients (FtpClient from src/client) are in this process.
 */
import net from 'node:net';
import { FtpClient, FtpError } from '../../src/client/ftp-client.js';
import { find227 } from '../../src/protocol/endpoint.js';
import { KiB, MiB, procCpuSeconds, procMemory, sleep, withTimeout } from '../lib/common.js';
import type { BenchContext, GatewayChildStats, GatewayMemory } from '../lib/context.js';
import { startGateway, startServer } from '../lib/helpers.js';
import { stopHelper, type Helper } from '../lib/procs.js';

type Mem = GatewayMemory['mem'];

export interface IdleResult {
  sessions: number;
  idleSeconds: number;
  caps: Record<string, number>;
  errors: Record<string, number>;
  errorCount: number;
  loginSeconds?: number;
  before?: GatewayMemory;
  after?: GatewayMemory;
  mid?: GatewayMemory & { clients: number };
  gatewaySessionsIdle?: number;
  cpuSecondsForLogins?: number;
  perSession?: Record<'rss' | 'rssTrimmed' | 'heapUsed' | 'external' | 'arrayBuffers', number>;
  marginalPerSession?: Record<'rss' | 'rssTrimmed' | 'heapUsed', number>;
  hwm?: number;
  answeredNoop?: number;
  sessionsAfterQuit?: number | undefined;
  gatewayEvents?: Record<string, number> | undefined;
}

export interface TransfersResult {
  concurrent: number;
  size: number;
  errors: number;
  errorExamples: string[];
  complete?: number;
  bytes?: number;
  seconds?: number;
  mbPerS?: number;
  cpuSeconds?: number;
  cpuPerGiB?: number;
  gatewayHwmBefore?: number;
  gatewayHwm?: number;
}

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

const HOST = '127.0.0.1';
const OP_TIMEOUT_MS = 30_000;

/** Runs fn over items, `limit` at a time. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

async function gatewayMemory(gw: Helper): Promise<GatewayMemory> {
  gw.proc.stdin.write('mem\n');
  const r = await gw.nextJson<GatewayMemory>(30_000);
  if (!r?.mem) throw new Error('gateway did not report its memory');
  return r;
}

export async function runIdle(ctx: BenchContext): Promise<IdleResult> {
  const { flags, log } = ctx;
  const N = flags.idle;
  const caps = { 'max-sessions': N + 100, 'max-sessions-per-client': N + 100, 'idle-timeout': 3600, 'login-timeout': 600 };
  const server = await startServer({ generate: ['/pub/a.txt:1000'] });
  const gw = await startGateway({ serverPort: server.port, flags: caps, exposeGc: true });
  const out: IdleResult = { sessions: N, idleSeconds: flags.idleSeconds, caps, errors: {}, errorCount: 0 };
  const err = (kind: string, e: unknown) => {
    out.errorCount++;
    const k = `${kind}: ${messageOf(e).replace(/\d+/g, 'N')}`.slice(0, 120);
    out.errors[k] = (out.errors[k] ?? 0) + 1;
  };
  const clients: FtpClient[] = [];
  /** Clients that sent QUIT: their close is expected. */
  const quitting = new Set<FtpClient>();
  try {
    log(`idle sessions: ${N} logged-in control sessions through one ftp-alg process, in two halves, each idle ${flags.idleSeconds} s (load ${ctx.load()})`);
    // Warm-up: the code paths of a session are loaded and compiled before the "before" figure.
    for (let i = 0; i < 20; i++) {
      const c = await FtpClient.connect(HOST, gw.port, OP_TIMEOUT_MS);
      await c.login();
      await c.transfer('PASV', 'LIST /pub');
      await c.quit();
    }
    await waitSessions(gw, 0, 10_000);
    const before = await gatewayMemory(gw);
    const cpu0 = procCpuSeconds(gw.pid);
    const t0 = Date.now();
    let unexpectedCloses = 0;
    const open = async () => {
      try {
        const c = await FtpClient.connect(HOST, gw.port, OP_TIMEOUT_MS);
        await withTimeout(c.login(), OP_TIMEOUT_MS, 'login');
        c.socket.on('close', () => {
          if (!quitting.has(c)) unexpectedCloses++;
        });
        clients.push(c);
      } catch (e) {
        err('connect+login', e);
      }
    };
    // In two halves, each followed by the idle period, with a memory figure
    // after each: the slope over the second half leaves out one-time growth
    // that the average over all sessions includes. Both figures are taken
    // after idling: right after a burst of logins V8's young generation is
    // still grown (about 15 MiB more RSS); its memory reducer shrinks it
    // some seconds later.
    const half = Math.floor(N / 2);
    await pool(Array.from({ length: half }), 64, open);
    const firstHalfMs = Date.now() - t0;
    await sleep(flags.idleSeconds * 1000);
    const mid = await gatewayMemory(gw);
    const atMid = clients.length;
    const t1 = Date.now();
    await pool(Array.from({ length: N - half }), 64, open);
    const loginMs = firstHalfMs + (Date.now() - t1);
    // Time spent opening sessions (the idle period between the halves left out).
    out.loginSeconds = loginMs / 1000;
    log(`  ${clients.length} logged in after ${out.loginSeconds.toFixed(1)} s; idling`);
    await sleep(flags.idleSeconds * 1000);
    const after = await gatewayMemory(gw);
    out.before = before;
    out.after = after;
    out.gatewaySessionsIdle = after.sessions;
    out.cpuSecondsForLogins = procCpuSeconds(gw.pid) - cpu0;
    out.mid = { ...mid, clients: atMid };
    const per = (k: keyof Mem) => (Number(after.mem[k]) - Number(before.mem[k])) / Math.max(1, clients.length);
    const perSession = { rss: per('rss'), rssTrimmed: per('rssTrimmed'), heapUsed: per('heapUsed'), external: per('external'), arrayBuffers: per('arrayBuffers') };
    const slope = (k: keyof Mem) => (Number(after.mem[k]) - Number(mid.mem[k])) / Math.max(1, clients.length - atMid);
    const marginalPerSession = { rss: slope('rss'), rssTrimmed: slope('rssTrimmed'), heapUsed: slope('heapUsed') };
    out.perSession = perSession;
    out.marginalPerSession = marginalPerSession;
    out.hwm = procMemory(gw.pid).hwm;
    log(
      `  gateway (after GC): rss ${(before.mem.rss / MiB).toFixed(1)} → ${(after.mem.rss / MiB).toFixed(1)} MiB, heap ${(before.mem.heapUsed / MiB).toFixed(1)} → ${(after.mem.heapUsed / MiB).toFixed(1)} MiB, ` +
        `sessions ${after.sessions}; per session: rss ${(perSession.rss / KiB).toFixed(1)} KiB (after malloc_trim ${(perSession.rssTrimmed / KiB).toFixed(1)}), ` +
        `heap ${(perSession.heapUsed / KiB).toFixed(1)} KiB; second half alone: rss ${(marginalPerSession.rss / KiB).toFixed(1)} ` +
        `(trimmed ${(marginalPerSession.rssTrimmed / KiB).toFixed(1)}), heap ${(marginalPerSession.heapUsed / KiB).toFixed(1)} KiB per session`,
    );
    if (unexpectedCloses) err('idle', new Error(`${unexpectedCloses} sessions closed while idle`));
    if (after.sessions !== clients.length) err('count', new Error(`gateway holds ${after.sessions} sessions, ${clients.length} clients are logged in`));

    // Still alive? Every session answers NOOP, then QUITs.
    let alive = 0;
    await pool(clients, 128, async (c) => {
      try {
        await c.expect('NOOP', (code) => code === 200);
        alive++;
      } catch (e) {
        err('NOOP after idle', e instanceof FtpError ? e : new Error(messageOf(e)));
      }
    });
    out.answeredNoop = alive;
    await pool(clients, 128, async (c) => {
      quitting.add(c);
      await c.quit().catch((e: unknown) => err('QUIT', e));
    });
    out.sessionsAfterQuit = await waitSessions(gw, 0, 30_000);
    if (out.sessionsAfterQuit !== 0) err('close', new Error(`gateway still holds ${out.sessionsAfterQuit} sessions 30 s after QUIT`));
    log(`  ${alive} of ${clients.length} answered NOOP after idling; gateway sessions after QUIT ${out.sessionsAfterQuit}; errors ${out.errorCount}`);
  } finally {
    for (const c of clients) c.close();
    const stats = await stopHelper<GatewayChildStats>(gw);
    out.gatewayEvents = stats?.counts;
    await stopHelper(server);
  }
  if (out.errorCount > 0 || clients.length < N) ctx.failures.push(`idle sessions: ${out.errorCount} errors (${JSON.stringify(out.errors)}), ${clients.length} of ${N} logged in`);
  return out;
}

async function waitSessions(gw: Helper, want: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let n: number;
  do {
    n = (await gatewayMemory(gw)).sessions;
    if (n === want) return n;
    await sleep(200);
  } while (Date.now() < deadline);
  return n;
}

/** One download over PASV with FtpClient for control and a bare socket for data; resolves with the byte count. */
async function retrCount(client: FtpClient, name: string): Promise<number> {
  const setup = await client.expect('PASV', (c) => c === 227);
  const target = find227(setup.text)?.endpoint;
  if (!target) throw new Error(`PASV reply without endpoint: ${setup.text}`);
  const sock = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host: target.address, port: target.port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
  let bytes = 0;
  const done = new Promise<void>((resolve, reject) => {
    sock.on('data', (c: Buffer) => (bytes += c.length));
    sock.once('end', () => resolve());
    sock.once('error', reject);
  });
  try {
    const first = await client.send(`RETR ${name}`, true);
    if (first.code >= 300) throw new Error(`RETR: ${first.code} ${first.text}`);
    await done;
    const final = first.code < 200 ? await client.read() : first;
    if (final.code !== 226) throw new Error(`RETR final reply ${final.code} ${final.text}`);
    return bytes;
  } finally {
    sock.destroy();
  }
}

export async function runTransfers(ctx: BenchContext): Promise<TransfersResult> {
  const { flags, log } = ctx;
  const M = flags.concurrent;
  const SIZE = flags.transferSize;
  // All M clients share one address: their data listeners count against one --max-data-listeners-per-client.
  const caps = { 'max-sessions': M + 100, 'max-sessions-per-client': M + 100, 'max-data-listeners-per-client': M + 100 };
  const server = await startServer({ generate: [`/big.bin:${SIZE}`] });
  const gw = await startGateway({ serverPort: server.port, flags: caps });
  const out: TransfersResult = { concurrent: M, size: SIZE, errors: 0, errorExamples: [] };
  const clients: FtpClient[] = [];
  try {
    log(`concurrent transfers: ${M} downloads of ${(SIZE / MiB).toFixed(0)} MiB at once through one ftp-alg process (load ${ctx.load()})`);
    // Warm-up transfer (not counted).
    {
      const c = await FtpClient.connect(HOST, gw.port, OP_TIMEOUT_MS);
      await c.login();
      await c.expect('TYPE I', (code) => code === 200);
      await retrCount(c, '/big.bin');
      await c.quit();
    }
    await pool(Array.from({ length: M }), 64, async () => {
      try {
        const c = await FtpClient.connect(HOST, gw.port, OP_TIMEOUT_MS);
        await c.login();
        await c.expect('TYPE I', (code) => code === 200);
        clients.push(c);
      } catch (e) {
        out.errors++;
        if (out.errorExamples.length < 5) out.errorExamples.push(`login: ${messageOf(e)}`);
      }
    });
    const hwm0 = procMemory(gw.pid).hwm;
    const cpu0 = procCpuSeconds(gw.pid);
    const t0 = process.hrtime.bigint();
    let bytes = 0;
    let complete = 0;
    const maxMs = Math.max(60_000, (M * SIZE) / 5e6 * 1000);
    await Promise.all(
      clients.map(async (c) => {
        try {
          const n = await withTimeout(retrCount(c, '/big.bin'), maxMs, 'RETR');
          bytes += n;
          if (n === SIZE) complete++;
          else throw new Error(`short download: ${n} of ${SIZE}`);
        } catch (e) {
          out.errors++;
          if (out.errorExamples.length < 5) out.errorExamples.push(messageOf(e));
        }
      }),
    );
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = procCpuSeconds(gw.pid) - cpu0;
    const figures = {
      complete,
      bytes,
      seconds,
      mbPerS: bytes / 1e6 / seconds,
      cpuSeconds: cpu,
      cpuPerGiB: cpu / (bytes / 2 ** 30),
      gatewayHwmBefore: hwm0,
      gatewayHwm: procMemory(gw.pid).hwm,
    };
    Object.assign(out, figures);
    log(
      `  ${complete} of ${M} complete, ${(bytes / 2 ** 30).toFixed(2)} GiB in ${seconds.toFixed(1)} s (${figures.mbPerS.toFixed(0)} MB/s aggregate); ` +
        `gateway cpu ${cpu.toFixed(2)} s = ${figures.cpuPerGiB.toFixed(2)} s/GiB, peak rss ${(figures.gatewayHwm / MiB).toFixed(0)} MiB`,
    );
    await pool(clients, 64, (c) => c.quit().catch(() => undefined));
  } finally {
    for (const c of clients) c.close();
    await stopHelper(gw);
    await stopHelper(server);
  }
  if (out.errors > 0) ctx.failures.push(`concurrent transfers: ${out.errors} errors, e.g. ${out.errorExamples.join('; ')}`);
  return out;
}
