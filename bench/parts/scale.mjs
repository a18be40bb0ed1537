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
 * own. Clients (FtpClient from dist/) are in this process.
 */
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { KiB, MiB, procCpuSeconds, procMemory, sleep, withTimeout } from '../lib/common.mjs';
import { startGateway, startServer } from '../lib/helpers.mjs';
import { stopHelper } from '../lib/procs.mjs';

const HOST = '127.0.0.1';
const OP_TIMEOUT_MS = 30_000;

/** Runs fn over items, `limit` at a time. */
async function pool(items, limit, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i], i);
      }
    }),
  );
}

async function gatewayMemory(gw) {
  gw.proc.stdin.write('mem\n');
  const r = await gw.nextJson(30_000);
  if (!r?.mem) throw new Error('gateway did not report its memory');
  return r;
}

export async function runIdle(ctx) {
  const { flags, log, distDir } = ctx;
  const { FtpClient, FtpError } = await import(pathToFileURL(path.join(distDir, 'client', 'ftp-client.js')).href);
  const N = flags.idle;
  const caps = { 'max-sessions': N + 100, 'max-sessions-per-client': N + 100, 'idle-timeout': 3600, 'login-timeout': 600 };
  const server = await startServer({ distDir, generate: ['/pub/a.txt:1000'] });
  const gw = await startGateway({ distDir, serverPort: server.port, flags: caps, exposeGc: true });
  const out = { sessions: N, idleSeconds: flags.idleSeconds, caps, errors: {}, errorCount: 0 };
  const err = (kind, e) => {
    out.errorCount++;
    const k = `${kind}: ${String(e?.message ?? e).replace(/\d+/g, 'N')}`.slice(0, 120);
    out.errors[k] = (out.errors[k] ?? 0) + 1;
  };
  const clients = [];
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
          if (!c.quitting) unexpectedCloses++;
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
    const per = (k) => (after.mem[k] - before.mem[k]) / Math.max(1, clients.length);
    out.perSession = { rss: per('rss'), rssTrimmed: per('rssTrimmed'), heapUsed: per('heapUsed'), external: per('external'), arrayBuffers: per('arrayBuffers') };
    const slope = (k) => (after.mem[k] - mid.mem[k]) / Math.max(1, clients.length - atMid);
    out.marginalPerSession = { rss: slope('rss'), rssTrimmed: slope('rssTrimmed'), heapUsed: slope('heapUsed') };
    out.hwm = procMemory(gw.pid).hwm;
    log(
      `  gateway (after GC): rss ${(before.mem.rss / MiB).toFixed(1)} → ${(after.mem.rss / MiB).toFixed(1)} MiB, heap ${(before.mem.heapUsed / MiB).toFixed(1)} → ${(after.mem.heapUsed / MiB).toFixed(1)} MiB, ` +
        `sessions ${after.sessions}; per session: rss ${(out.perSession.rss / KiB).toFixed(1)} KiB (after malloc_trim ${(out.perSession.rssTrimmed / KiB).toFixed(1)}), ` +
        `heap ${(out.perSession.heapUsed / KiB).toFixed(1)} KiB; second half alone: rss ${(out.marginalPerSession.rss / KiB).toFixed(1)} ` +
        `(trimmed ${(out.marginalPerSession.rssTrimmed / KiB).toFixed(1)}), heap ${(out.marginalPerSession.heapUsed / KiB).toFixed(1)} KiB per session`,
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
        err('NOOP after idle', e instanceof FtpError ? e : new Error(e?.message ?? String(e)));
      }
    });
    out.answeredNoop = alive;
    await pool(clients, 128, async (c) => {
      c.quitting = true;
      await c.quit().catch((e) => err('QUIT', e));
    });
    out.sessionsAfterQuit = await waitSessions(gw, 0, 30_000);
    if (out.sessionsAfterQuit !== 0) err('close', new Error(`gateway still holds ${out.sessionsAfterQuit} sessions 30 s after QUIT`));
    log(`  ${alive} of ${clients.length} answered NOOP after idling; gateway sessions after QUIT ${out.sessionsAfterQuit}; errors ${out.errorCount}`);
  } finally {
    for (const c of clients) c.close();
    const stats = await stopHelper(gw);
    out.gatewayEvents = stats?.counts;
    await stopHelper(server);
  }
  if (out.errorCount > 0 || clients.length < N) ctx.failures.push(`idle sessions: ${out.errorCount} errors (${JSON.stringify(out.errors)}), ${clients.length} of ${N} logged in`);
  return out;
}

async function waitSessions(gw, want, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let n;
  do {
    n = (await gatewayMemory(gw)).sessions;
    if (n === want) return n;
    await sleep(200);
  } while (Date.now() < deadline);
  return n;
}

/** One download over PASV with FtpClient for control and a bare socket for data; resolves with the byte count. */
async function retrCount(client, name, find227) {
  const setup = await client.expect('PASV', (c) => c === 227);
  const target = find227(setup.text)?.endpoint;
  if (!target) throw new Error(`PASV reply without endpoint: ${setup.text}`);
  const sock = await new Promise((resolve, reject) => {
    const s = net.connect({ host: target.address, port: target.port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
  let bytes = 0;
  const done = new Promise((resolve, reject) => {
    sock.on('data', (c) => (bytes += c.length));
    sock.once('end', resolve);
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

export async function runTransfers(ctx) {
  const { flags, log, distDir } = ctx;
  const { FtpClient } = await import(pathToFileURL(path.join(distDir, 'client', 'ftp-client.js')).href);
  const endpoint = await import(pathToFileURL(path.join(distDir, 'protocol', 'endpoint.js')).href);
  const M = flags.concurrent;
  const SIZE = flags.transferSize;
  // All M clients share one address: their data listeners count against one --max-data-listeners-per-client.
  const caps = { 'max-sessions': M + 100, 'max-sessions-per-client': M + 100, 'max-data-listeners-per-client': M + 100 };
  const server = await startServer({ distDir, generate: [`/big.bin:${SIZE}`] });
  const gw = await startGateway({ distDir, serverPort: server.port, flags: caps });
  const out = { concurrent: M, size: SIZE, errors: 0, errorExamples: [] };
  const clients = [];
  try {
    log(`concurrent transfers: ${M} downloads of ${(SIZE / MiB).toFixed(0)} MiB at once through one ftp-alg process (load ${ctx.load()})`);
    // Warm-up transfer (not counted).
    {
      const c = await FtpClient.connect(HOST, gw.port, OP_TIMEOUT_MS);
      await c.login();
      await c.expect('TYPE I', (code) => code === 200);
      await retrCount(c, '/big.bin', endpoint.find227);
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
        if (out.errorExamples.length < 5) out.errorExamples.push(`login: ${e.message}`);
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
          const n = await withTimeout(retrCount(c, '/big.bin', endpoint.find227), maxMs, 'RETR');
          bytes += n;
          if (n === SIZE) complete++;
          else throw new Error(`short download: ${n} of ${SIZE}`);
        } catch (e) {
          out.errors++;
          if (out.errorExamples.length < 5) out.errorExamples.push(e.message);
        }
      }),
    );
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = procCpuSeconds(gw.pid) - cpu0;
    Object.assign(out, {
      complete,
      bytes,
      seconds,
      mbPerS: bytes / 1e6 / seconds,
      cpuSeconds: cpu,
      cpuPerGiB: cpu / (bytes / 2 ** 30),
      gatewayHwmBefore: hwm0,
      gatewayHwm: procMemory(gw.pid).hwm,
    });
    log(
      `  ${complete} of ${M} complete, ${(bytes / 2 ** 30).toFixed(2)} GiB in ${seconds.toFixed(1)} s (${out.mbPerS.toFixed(0)} MB/s aggregate); ` +
        `gateway cpu ${cpu.toFixed(2)} s = ${out.cpuPerGiB.toFixed(2)} s/GiB, peak rss ${(out.gatewayHwm / MiB).toFixed(0)} MiB`,
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
