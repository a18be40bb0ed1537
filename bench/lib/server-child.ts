/**
 * The built-in FTP server in a process of its own:
 *   node .bench-build/bench/lib/server-child.js ROOT [--memory NAME]      a folder, or ROOT/NAME loaded into the in-memory tree
 *   node .bench-build/bench/lib/server-child.js --generate NAME:BYTES [--generate …] [--discard-uploads] [--nodelay] [--host H] [--port P]
 * --generate puts a file of BYTES bytes (a repeated random 1 MiB block) into
 * the in-memory tree without touching the disk. --discard-uploads makes STOR
 * count the bytes and drop them: the in-memory tree would otherwise keep the
 * chunks and join them at the end, which for 1 GiB costs seconds (first
 * touch of fresh memory is slow on this VM) and would dominate an upload.
 * --nodelay sets TCP_NODELAY on every socket the server accepts. Without it
 * the server's "226" after a listing waits for the client's delayed ACK of
 * the "150" (Nagle): about 40 ms per transfer on loopback, which would bury
 * what the session-cost bench wants to see (the gateway sets TCP_NODELAY on
 * its own sockets).
 * It runs the sources compiled with the bench (npm run bench builds both).
 *
 * Prints one JSON line {"port": N} on stdout when listening; closes and exits
 * when stdin ends (the parent went away or closed it) or on SIGTERM, after
 * printing {"uploads": [{path, bytes}, …]} when uploads were discarded.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import net from 'node:net';
import { startDemoServer } from '../../src/demo/server.js';
import { MemoryStore } from '../../src/demo/store.js';

const usage: () => never = () => {
  process.stderr.write('usage: server-child.js ROOT [--memory NAME] | --generate NAME:BYTES [--discard-uploads] [--nodelay] [--host H] [--port P]\n');
  process.exit(2);
};
function parse() {
  return parseArgs({
    options: {
      memory: { type: 'string' },
      generate: { type: 'string', multiple: true },
      'discard-uploads': { type: 'boolean', default: false },
      nodelay: { type: 'boolean', default: false },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
    },
    allowPositionals: true,
    strict: true,
  });
}
function parsedOrUsage(): ReturnType<typeof parse> {
  try {
    return parse();
  } catch {
    return usage();
  }
}
const { values: flags, positionals } = parsedOrUsage();
const root = positionals[0];
if ((!root && !flags.generate) || (flags.memory && !root)) usage();

if (flags.nodelay) {
  // Bench only: the server module calls net.createServer(options, onConnection) at start.
  const original = net.createServer;
  const patched = (options?: net.ServerOpts | ((socket: net.Socket) => void), onConnection?: (socket: net.Socket) => void): net.Server => {
    const [opts, cb] = typeof options === 'function' ? [{}, options] : [options ?? {}, onConnection];
    return original.call(net, opts, (socket: net.Socket) => {
      socket.setNoDelay(true);
      cb?.(socket);
    });
  };
  net.createServer = patched as typeof net.createServer;
}

const uploads: { path: string; bytes: number }[] = [];
if (flags['discard-uploads']) {
  // Bench only: the demo store keeps uploads; here they are counted and dropped.
  MemoryStore.prototype.openWrite = async function openWrite(file: string): Promise<Writable> {
    let bytes = 0;
    return new Writable({
      write(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        cb();
      },
      final(cb) {
        uploads.push({ path: file, bytes });
        cb();
      },
    });
  };
}

const files: Record<string, Buffer> = {};
if (flags.memory && root) files[flags.memory] = await readFile(path.join(root, flags.memory));
for (const spec of flags.generate ?? []) {
  const [, name, bytes] = /^(.+):(\d+)$/.exec(spec) ?? usage();
  if (name === undefined) usage();
  const block = randomBytes(1024 * 1024);
  const buf = Buffer.allocUnsafe(Number(bytes));
  buf.fill(block);
  files[name] = buf;
}
const useFolder = root && !flags.memory && !flags.generate;
const server = await startDemoServer({
  host: flags.host,
  port: Number(flags.port),
  ...(useFolder ? { root } : { files }),
});
process.stdout.write(`${JSON.stringify({ port: server.address.port })}\n`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  // Bounded: a stuck session must not keep the bench waiting.
  setTimeout(() => process.exit(0), 3000).unref();
  await server.close();
  if (flags['discard-uploads']) process.stdout.write(`${JSON.stringify({ uploads })}\n`);
  process.exit(0);
}
process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
