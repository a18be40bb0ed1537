#!/usr/bin/env node
/**
 * The reverse gateway in a process of its own, configured the way the CLI
 * does it (reverseFromFlags + startReverseGateway), without log output:
 *   node bench/lib/gateway-child.mjs SERVER_PORT
 * Prints {"port": N} when listening. When stdin ends (or on SIGTERM) it
 * closes the gateway and prints one JSON line of event counts, then exits.
 */
import { reverseFromFlags } from '../../dist/config.js';
import { startReverseGateway } from '../../dist/gateway/reverse.js';

const serverPort = process.argv[2];
if (!serverPort) {
  process.stderr.write('usage: gateway-child.mjs SERVER_PORT\n');
  process.exit(2);
}
const counts = {};
const dataCloses = [];
const sink = (e) => {
  counts[e.event] = (counts[e.event] ?? 0) + 1;
  if (e.event === 'data-close') dataCloses.push({ mode: e.mode, bytes: e.bytes, durationMs: e.durationMs, reason: e.reason });
  if (e.event === 'refuse' || e.event === 'warning') process.stderr.write(`gateway: ${JSON.stringify(e)}\n`);
};
const cfg = reverseFromFlags({ listen: '127.0.0.1:0', server: `127.0.0.1:${serverPort}`, 'public-address': '127.0.0.1' });
const gateway = await startReverseGateway(cfg, sink);
process.stdout.write(`${JSON.stringify({ port: gateway.address.port })}\n`);

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
process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
