/**
 * Part 2: what a session costs through the gateway.
 *
 *   session time   connect, log in, PASV + LIST, QUIT (until 221), one after
 *                  another, direct and through ftp-alg reverse, interleaved in
 *                  blocks so that load drift hits both; median and p99
 *   sessions/s     the same session, C at a time, N in all
 *   latency        NOOP → 200 round trips on one logged-in session, direct
 *                  and through the gateway, alternating rounds; medians and
 *                  the added time per round trip
 *
 * The client is the project's FtpClient (src/client) in this process (for
 * the round trips a bare socket, so the client adds as little as possible);
 * the server and the gateway each run in a process of their own. Two more
 * paths, where they can run, give the floor under the gateway's figures: the
 * control connection relayed by a bare Node relay and by HAProxy, nothing
 * parsed, the data connections going to the server directly
 * (lib/control-relays.ts).
 */
import { FtpClient } from '../../src/client/ftp-client.js';
import { drainTimeWait, median, percentile, withTimeout } from '../lib/common.js';
import type { BenchContext } from '../lib/context.js';
import { startGateway, startServer } from '../lib/helpers.js';
import { stopHelper } from '../lib/procs.js';
import { freePort } from '../lib/ftp-proxy.js';
import { CONTROL_RELAYS, controlRelayMissing, startControlRelay, type ControlRelay, type ControlRelayKey } from '../lib/control-relays.js';

const HOST = '127.0.0.1';
const OP_TIMEOUT_MS = 15_000;

type PathName = 'direct' | 'gateway' | ControlRelayKey;
/** The ports of the paths that run here: direct and gateway always. */
type Targets = Partial<Record<PathName, number>> & Record<'direct' | 'gateway', number>;
type Fail = (name: PathName, err: unknown) => void;

export interface SessionTime {
  n: number;
  median: number;
  p99: number;
  mean: number;
  sequentialPerS: number;
}

export interface SessionRate {
  sessions: number;
  seconds: number;
  perS: number;
}

export interface SessionCost {
  sessions: number;
  concurrency: number;
  time: Partial<Record<PathName, SessionTime>> & Record<'direct' | 'gateway', SessionTime>;
  rate: Partial<Record<PathName, SessionRate>> & Record<'direct' | 'gateway', SessionRate>;
}

export interface RoundTrips {
  direct: { n: number; median: number; p99: number };
  gateway: { n: number; median: number; p99: number };
  addedMedianMs: number;
  addedPerRoundMs: number[];
}

export interface SessionsResult extends Partial<SessionCost> {
  errors: Record<PathName, number>;
  errorExamples: string[];
  rtt?: RoundTrips;
  /** Floor paths that could not run here, and why. */
  missing?: Partial<Record<PathName, string>>;
}

const PATHS: readonly PathName[] = ['direct', 'gateway', ...CONTROL_RELAYS.map((r) => r.key)];

async function oneSession(port: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  const c = await FtpClient.connect(HOST, port, OP_TIMEOUT_MS);
  try {
    await c.login();
    await c.transfer('PASV', 'LIST /pub');
    await c.quit();
  } finally {
    c.close();
  }
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export async function runSessions(ctx: BenchContext, { cost = true, latency = true } = {}): Promise<SessionsResult> {
  const { flags } = ctx;
  const files = Array.from({ length: 20 }, (_, i) => `/pub/file-${String(i).padStart(2, '0')}.txt:${1000 + i * 37}`);
  const server = await startServer({ generate: files });
  // Raised caps: the concurrent phase opens C sessions from one address, each with a data listener at times.
  const gw = await startGateway({ serverPort: server.port, flags: { 'max-sessions': 10_000, 'max-sessions-per-client': 10_000, 'max-data-listeners-per-client': 10_000 } });
  const targets: Targets = { direct: server.port, gateway: gw.port };
  const out: SessionsResult = { errors: { direct: 0, gateway: 0, controlNode: 0, controlHaproxy: 0 }, errorExamples: [], missing: {} };
  const relays: ControlRelay[] = [];
  const fail: Fail = (name, err) => {
    out.errors[name]++;
    if (out.errorExamples.length < 5) out.errorExamples.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
  };
  const deadline = Date.now() + flags.partSeconds * 1000;
  try {
    if (cost) {
      for (const { key: name, kind } of CONTROL_RELAYS) {
        const missing = controlRelayMissing(kind);
        if (missing) {
          (out.missing ??= {})[name] = missing;
          continue;
        }
        const relay = await startControlRelay(kind, { dir: ctx.dir, listenPort: await freePort(), serverPort: server.port });
        relays.push(relay);
        targets[name] = relay.port;
      }
      Object.assign(out, await sessionCost(ctx, targets, deadline, fail));
    }
    if (latency) out.rtt = await roundTrips(ctx, { direct: targets.direct, gateway: targets.gateway }, deadline, fail);
  } finally {
    for (const r of relays) await r.stop();
    await stopHelper(gw);
    await stopHelper(server);
  }
  const failed = Object.values(out.errors).reduce((a, b) => a + b, 0);
  if (failed > 0) ctx.failures.push(`sessions: ${failed} failures (${JSON.stringify(out.errors)}), e.g. ${out.errorExamples.join('; ')}`);
  return out;
}

async function sessionCost(ctx: BenchContext, targets: Targets, deadline: number, fail: Fail): Promise<SessionCost> {
  const { flags, log } = ctx;
  const N = flags.sessions;
  const C = flags.concurrency;
  const present = PATHS.filter((name) => targets[name] !== undefined);
  log(`session cost: ${N} sessions each (connect, login, PASV + LIST, QUIT): ${present.join(', ')} (load ${ctx.load()})`);
  // Warm-up: JIT, lazy modules, first-touch of memory in every process.
  for (let i = 0; i < 20; i++) for (const name of present) await oneSession(targets[name] as number).catch(() => undefined);

  // One at a time, the paths in alternating blocks.
  const times: Partial<Record<PathName, number[]>> = Object.fromEntries(present.map((name) => [name, []]));
  const block = Math.max(1, Math.min(100, Math.ceil(N / 10)));
  for (let done = 0; done < N && Date.now() < deadline; done += block) {
    for (const name of present) {
      for (let i = 0; i < Math.min(block, N - done) && Date.now() < deadline; i++) {
        try {
          times[name]?.push(await withTimeout(oneSession(targets[name] as number), OP_TIMEOUT_MS * 2, 'session'));
        } catch (err) {
          fail(name, err);
        }
      }
    }
  }
  const timeOf = (name: PathName): SessionTime => {
    const xs = times[name] ?? [];
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const t = { n: xs.length, median: median(xs), p99: percentile(xs, 99), mean, sequentialPerS: 1000 / mean };
    log(`  ${name.padEnd(14)} ${xs.length} sessions one at a time: median ${t.median.toFixed(2)} ms, p99 ${t.p99.toFixed(2)} ms`);
    return t;
  };
  const time: SessionCost['time'] = { direct: timeOf('direct'), gateway: timeOf('gateway') };
  for (const name of present) time[name] ??= timeOf(name);

  await drainTimeWait(log, '  before the rate phase');
  // Sessions per second with C at a time, the paths taking turns in blocks:
  // TIME_WAIT sockets pile up as the phase goes on, and must not burden one path more.
  const none: SessionRate = { sessions: 0, seconds: 0, perS: 0 };
  const rate: SessionCost['rate'] = { direct: none, gateway: none };
  const totals = new Map(present.map((name) => [name, { ok: 0, seconds: 0 }]));
  const rateBlock = Math.max(C, Math.ceil(N / 5));
  for (let done = 0; done < N && Date.now() < deadline; done += rateBlock) {
    for (const name of present) {
      const port = targets[name] as number;
      const total = totals.get(name) as { ok: number; seconds: number };
      const count = Math.min(rateBlock, N - done);
      let next = 0;
      const t0 = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: C }, async () => {
          while (next < count && Date.now() < deadline) {
            next++;
            try {
              await withTimeout(oneSession(port), OP_TIMEOUT_MS * 2, 'session');
              total.ok++;
            } catch (err) {
              fail(name, err);
            }
          }
        }),
      );
      total.seconds += Number(process.hrtime.bigint() - t0) / 1e9;
    }
  }
  for (const [name, { ok, seconds }] of totals) {
    rate[name] = { sessions: ok, seconds, perS: ok / seconds };
    log(`  ${name.padEnd(14)} ${ok} sessions, ${C} at a time: ${(ok / seconds).toFixed(0)} sessions/s`);
  }
  return { sessions: N, concurrency: C, time, rate };
}

async function roundTrips(ctx: BenchContext, targets: Targets, deadline: number, fail: Fail): Promise<RoundTrips> {
  const { flags, log } = ctx;
  log(`control round trips: ${flags.rounds} × ${flags.noops} NOOPs on one session each, alternating direct / gateway (load ${ctx.load()})`);
  const samples: Record<'direct' | 'gateway', number[]> = { direct: [], gateway: [] };
  const perRound: number[] = [];
  for (let round = 0; round < flags.rounds && Date.now() < deadline; round++) {
    const r: Partial<Record<PathName, number>> = {};
    for (const name of ['direct', 'gateway'] as const) {
      try {
        const xs = await withTimeout(noopRounds(targets[name], flags.noops), OP_TIMEOUT_MS * 4, 'NOOP round');
        samples[name].push(...xs);
        r[name] = median(xs);
      } catch (err) {
        fail(name, err);
      }
    }
    if (r.direct !== undefined && r.gateway !== undefined) perRound.push(r.gateway - r.direct);
  }
  const summary = (xs: number[]) => ({ n: xs.length, median: median(xs), p99: percentile(xs, 99) });
  const direct = summary(samples.direct);
  const gateway = summary(samples.gateway);
  const rtt: RoundTrips = { direct, gateway, addedMedianMs: gateway.median - direct.median, addedPerRoundMs: perRound };
  log(`  NOOP round trip: direct median ${rtt.direct.median.toFixed(3)} ms, gateway ${rtt.gateway.median.toFixed(3)} ms, added ${rtt.addedMedianMs.toFixed(3)} ms (per round: ${perRound.map((x) => x.toFixed(3)).join(', ')})`);
  return rtt;
}

/**
 * Logs in with FtpClient, then hands the socket to a bare reader: each NOOP
 * is written and timed until the "200 " line arrives. Returns ms per trip.
 */
async function noopRounds(port: number, count: number): Promise<number[]> {
  const c = await FtpClient.connect(HOST, port, OP_TIMEOUT_MS);
  try {
    await c.login();
    const sock = c.socket;
    sock.removeAllListeners('data');
    const samples: number[] = [];
    let buf = '';
    let waiting: { resolve: () => void; reject: (err: Error) => void } | undefined;
    let closed = false;
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      if (waiting && /(^|\n)200 [^\n]*\n/.test(buf)) {
        buf = '';
        const w = waiting;
        waiting = undefined;
        w.resolve();
      }
    });
    sock.on('close', () => {
      closed = true;
      waiting?.reject(new Error('control connection closed'));
    });
    // a few unmeasured trips first
    for (let i = 0; i < count + 10; i++) {
      if (closed) throw new Error('control connection closed');
      const t0 = process.hrtime.bigint();
      await new Promise<void>((resolve, reject) => {
        waiting = { resolve, reject };
        sock.write('NOOP\r\n');
      });
      if (i >= 10) samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    sock.end('QUIT\r\n');
    return samples;
  } finally {
    c.close();
  }
}

