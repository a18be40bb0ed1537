#!/usr/bin/env node
/**
 * The built-in FTP server in a process of its own, serving a folder, or with
 * --memory NAME the file ROOT/NAME loaded into its in-memory tree:
 *   node bench/lib/server-child.mjs ROOT [--memory NAME]
 * Prints one JSON line {"port": N} on stdout when listening; closes and exits
 * when stdin ends (the parent went away or closed it) or on SIGTERM.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startDemoServer } from '../../dist/demo/server.js';

const [root, flag, name] = process.argv.slice(2);
if (!root || (flag !== undefined && (flag !== '--memory' || !name))) {
  process.stderr.write('usage: server-child.mjs ROOT [--memory NAME]\n');
  process.exit(2);
}
const server = await startDemoServer({
  host: '127.0.0.1',
  port: 0,
  ...(flag === '--memory' ? { files: { [name]: await readFile(path.join(root, name)) } } : { root }),
});
process.stdout.write(`${JSON.stringify({ port: server.address.port })}\n`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  // Bounded: a stuck session must not keep the bench waiting.
  setTimeout(() => process.exit(0), 3000).unref();
  await server.close();
  process.exit(0);
}
process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
