/**
 * The reverse gateway in a process of its own, configured the way the CLI
 * does it (reverseFromFlags + startReverseGateway), without log output:
 *   node [--expose-gc] .bench-build/bench/lib/gateway-child.js SERVER_PORT ['{"max-sessions": 5000, ...}']
 * The optional JSON holds more CLI flags (names as on the command line) and
 * may override listen/server/public-address. It runs the sources compiled
 * with the bench (npm run bench builds both).
 *
 * Prints {"port": N} when listening. Then reads commands, one per line, on stdin:
 *   mem   → forces GC (when started with --expose-gc) and prints
 *           {"mem": {rss, heapUsed, external, arrayBuffers}, "sessions": N}
 * When stdin ends (or on SIGTERM) it closes the gateway and prints one JSON
 * line of event counts, then exits.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { reverseFromFlags, type ReverseFlags } from '../../src/config.js';
import type { GatewayEvent } from '../../src/gateway/events.js';
import type { GatewayChildStats, GatewayMemory } from './context.js';
import { startReverseGateway } from '../../src/gateway/reverse.js';

const [serverPort, extraJson] = process.argv.slice(2);
if (!serverPort) {
  process.stderr.write('usage: gateway-child.js SERVER_PORT [FLAGS_JSON]\n');
  process.exit(2);
}
const counts: Record<string, number> = {};
const dataCloses: GatewayChildStats['dataCloses'] = [];
const sink = (e: GatewayEvent) => {
  counts[e.event] = (counts[e.event] ?? 0) + 1;
  if (e.event === 'data-close') dataCloses.push({ mode: e.mode, bytes: e.bytes, durationMs: e.durationMs, reason: e.reason });
  if (e.event === 'refuse' || e.event === 'warning') process.stderr.write(`gateway: ${JSON.stringify(e)}\n`);
};
const cfg = reverseFromFlags({
  listen: '127.0.0.1:0',
  server: `127.0.0.1:${serverPort}`,
  'public-address': '127.0.0.1',
  ...(extraJson ? (JSON.parse(extraJson) as ReverseFlags) : {}),
});
const gateway = await startReverseGateway(cfg, sink);
process.stdout.write(`${JSON.stringify({ port: gateway.address.port })}\n`);

/** glibc's malloc_trim through koffi (a dependency of ftp-alg): undefined when unavailable. */
let mallocTrim: ((pad: number) => number) | undefined;
try {
  const { default: koffi } = await import('koffi');
  const trim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)');
  mallocTrim = (pad) => Number(trim(pad));
} catch {
  mallocTrim = undefined;
}

function vmRss(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) * 1024;
}

/**
 * Memory after forced full GCs (when started with --expose-gc): VmRSS, the
 * V8 heap, and VmRSS once more after malloc_trim(0), which hands the
 * allocator's free pages back to the kernel. Freed socket buffers of a burst
 * of logins otherwise stay in glibc's heap and swing the plain RSS by
 * ±10 MiB between two figures; the trimmed RSS is what is really held.
 */
async function memory(): Promise<GatewayMemory['mem']> {
  const gc = globalThis.gc;
  if (typeof gc === 'function') {
    for (let i = 0; i < 3; i++) {
      void gc();
      await new Promise((r) => setTimeout(r, 30));
    }
  }
  const m = process.memoryUsage();
  const rss = vmRss();
  const trimmed = mallocTrim ? (mallocTrim(0), vmRss()) : NaN;
  return { rss, rssTrimmed: trimmed, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, gc: typeof globalThis.gc === 'function' };
}

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 3000).unref();
  const sessionsAtStop = gateway.sessions.size;
  await gateway.close();
  process.stdout.write(`${JSON.stringify({ counts, dataCloses, sessionsAtStop })}\n`);
  process.exit(0);
}
const commands = createInterface({ input: process.stdin });
commands.on('line', (text) => {
  if (text.trim() === 'mem') {
    void memory().then((mem) => process.stdout.write(`${JSON.stringify({ mem, sessions: gateway.sessions.size })}\n`));
  }
});
commands.on('close', stop);
process.on('SIGTERM', stop);
