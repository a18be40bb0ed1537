/**
 * Part: hostile sessions (issue 12, "bounded memory per session").
 *
 * N sessions of each of three kinds against one gateway process:
 *   pipelined  AUTH TLS again and again, never reading a reply (the gateway
 *              answers each itself: 534)
 *   owed       the same after PASV + RETR whose data connection never comes,
 *              so every refusal must wait behind the RETR's reply
 *   endless    one line that never ends (dropped as it comes, past --max-line)
 * Each client writes until the gateway stops reading it (nothing flushed for
 * a second) or its budget is spent. Then a normal client downloads a file.
 * Figures: the gateway's RSS and V8 heap after forced GCs, before and after,
 * per hostile session.
 */
import net from 'node:net';
import { FtpClient } from '../../src/client/ftp-client.js';
import { MiB } from '../lib/common.js';
import type { BenchContext, GatewayMemory } from '../lib/context.js';
import { startGateway, startServer } from '../lib/helpers.js';
import { stopHelper, type Helper } from '../lib/procs.js';

interface HostileKind {
  prelude: string[];
  unit: string;
  budget: number;
}

interface FloodOutcome {
  written: number;
  stalled: boolean;
  error?: boolean;
}

export interface HostileResult {
  sessionsPerKind: number;
  kinds: Record<string, { sessions: number; stalled: number; writtenMiB: number }>;
  served: boolean;
  servedMs: number | undefined;
  before: GatewayMemory['mem'];
  after: GatewayMemory['mem'];
  perSession: { rss: number; heapUsed: number };
}

const HOST = '127.0.0.1';
const KINDS: Record<'pipelined' | 'owed' | 'endless', HostileKind> = {
  pipelined: { prelude: [], unit: 'AUTH TLS\r\n', budget: 32 * MiB },
  owed: { prelude: ['USER anonymous', 'PASS x', 'PASV', 'RETR /pub/a.bin'], unit: 'AUTH TLS\r\n', budget: 32 * MiB },
  endless: { prelude: ['USER anonymous', 'PASS x'], unit: 'A', budget: 8 * MiB },
};

async function memory(gw: Helper): Promise<GatewayMemory['mem']> {
  gw.proc.stdin.write('mem\n');
  const r = await gw.nextJson<Partial<GatewayMemory>>(30_000);
  if (!r?.mem) throw new Error('gateway did not report its memory');
  return r.mem;
}

/** Floods without reading; resolves with the bytes written once stalled or done. */
function flood(socket: net.Socket, unit: string, budget: number): Promise<FloodOutcome> {
  const chunk = Buffer.alloc(64 * 1024, unit, 'latin1');
  return new Promise((resolve) => {
    let written = 0;
    let stall: NodeJS.Timeout | undefined;
    const more = () => {
      clearTimeout(stall);
      while (written < budget) {
        written += chunk.length;
        if (!socket.write(chunk)) {
          socket.once('drain', more);
          stall = setTimeout(() => resolve({ written, stalled: true }), 1000);
          return;
        }
      }
      resolve({ written, stalled: false });
    };
    socket.on('error', () => resolve({ written, stalled: true, error: true }));
    more();
  });
}

/**
 * Hostile clients come from 127.0.0.2, the normal one from 127.0.0.1: the
 * per-address caps (sessions, data listeners) are meant to keep one address
 * from starving the others, and they do.
 */
async function hostile(port: number, kind: HostileKind): Promise<{ socket: net.Socket; flooded: Promise<FloodOutcome> }> {
  const socket = net.connect({ host: HOST, port, localAddress: '127.0.0.2' });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  socket.pause();
  for (const line of kind.prelude) socket.write(`${line}\r\n`);
  return { socket, flooded: flood(socket, kind.unit, kind.budget) };
}

export async function runHostile(ctx: BenchContext): Promise<HostileResult> {
  const { flags, log } = ctx;
  const N = flags.hostile;
  const caps = { 'max-sessions': 3 * N + 50, 'max-sessions-per-client': 3 * N + 50 };
  const server = await startServer({ generate: ['/pub/a.bin:1048576'] });
  const gw = await startGateway({ serverPort: server.port, flags: caps, exposeGc: true });
  const sockets: net.Socket[] = [];
  try {
    log(`hostile sessions: ${N} of each kind (${Object.keys(KINDS).join(', ')}) through one ftp-alg process (load ${ctx.load()})`);
    const warm = await FtpClient.connect(HOST, gw.port);
    await warm.login();
    await warm.transfer('PASV', 'RETR /pub/a.bin');
    await warm.quit();
    const before = await memory(gw);
    const kinds: HostileResult['kinds'] = {};
    for (const [name, kind] of Object.entries(KINDS)) {
      const floods: Promise<FloodOutcome>[] = [];
      for (let i = 0; i < N; i++) {
        const h = await hostile(gw.port, kind);
        sockets.push(h.socket);
        floods.push(h.flooded);
      }
      const outcomes = await Promise.all(floods);
      const k = { sessions: N, stalled: outcomes.filter((o) => o.stalled).length, writtenMiB: outcomes.reduce((n, o) => n + o.written, 0) / MiB };
      kinds[name] = k;
      log(`  ${name}: ${k.stalled} of ${N} stalled (the gateway stopped reading them); ${k.writtenMiB.toFixed(1)} MiB written in all`);
    }
    const after = await memory(gw);
    // A normal client meanwhile, with patience: the gateway is still chewing
    // through what the floods left in its socket buffers.
    const t0 = Date.now();
    let served = false;
    let servedMs: number | undefined;
    try {
      const c = await FtpClient.connect(HOST, gw.port, 60_000);
      await c.login();
      const r = await c.transfer('PASV', 'RETR /pub/a.bin');
      await c.quit();
      served = r.final.code === 226 && r.data.length === 1048576;
      servedMs = Date.now() - t0;
    } catch (err) {
      log(`  the normal client failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    const sessions = 3 * N;
    const perSession = { rss: (after.rss - before.rss) / sessions, heapUsed: (after.heapUsed - before.heapUsed) / sessions };
    log(`  a normal client during the flood: ${served ? `served (226, 1 MiB) in ${servedMs} ms` : 'NOT served'}`);
    log(`  gateway RSS ${(before.rss / MiB).toFixed(1)} → ${(after.rss / MiB).toFixed(1)} MiB, heap ${(before.heapUsed / MiB).toFixed(1)} → ${(after.heapUsed / MiB).toFixed(1)} MiB: ${(perSession.rss / 1024).toFixed(1)} KiB RSS per hostile session`);
    return { sessionsPerKind: N, kinds, served, servedMs, before, after, perSession };
  } finally {
    for (const s of sockets) s.destroy();
    await stopHelper(gw);
    await stopHelper(server);
  }
}
