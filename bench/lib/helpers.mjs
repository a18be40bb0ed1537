/**
 * Starting the project's own processes for the bench: the built-in server
 * (server-child.mjs), the reverse gateway configured in-process
 * (gateway-child.mjs), and the real `ftp-alg` command line (dist/cli.js) for
 * the cases that need its flags (forward --transparent, --data-path). Each
 * runs in a process of its own, optionally inside a namespace, tracked by PID.
 */
import { openSync, closeSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startDaemon, startHelper, stopDaemon, runCommand } from './procs.mjs';
import { waitListening } from './ftp-proxy.mjs';
import { procCpuSeconds } from './common.mjs';

const LIB = path.dirname(fileURLToPath(import.meta.url));

function wrap(netns, cmd, args) {
  return netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, args];
}

/** The built-in server; files: [NAME:BYTES, …] generated in memory; uploads discarded; TCP_NODELAY (see server-child.mjs). */
export function startServer({ distDir, generate = [], host = '127.0.0.1', port = 0, netns, discardUploads = true, nodelay = true }) {
  const args = [path.join(LIB, 'server-child.mjs'), ...generate.flatMap((g) => ['--generate', g]), '--host', host, '--port', String(port), ...(discardUploads ? ['--discard-uploads'] : []), ...(nodelay ? ['--nodelay'] : [])];
  const [cmd, full] = wrap(netns, process.execPath, args);
  return startHelper(cmd, full, { env: { ...process.env, FTP_ALG_DIST: distDir }, what: 'server-child.mjs', timeoutMs: 120_000 });
}

/** The reverse gateway in-process-configured (no logging), with more CLI flags as an object. */
export function startGateway({ distDir, serverPort, flags = {}, exposeGc = false }) {
  const args = [...(exposeGc ? ['--expose-gc'] : []), path.join(LIB, 'gateway-child.mjs'), String(serverPort), JSON.stringify(flags)];
  return startHelper(process.execPath, args, { env: { ...process.env, FTP_ALG_DIST: distDir }, what: 'gateway-child.mjs' });
}

/**
 * `node dist/cli.js MODE …` (optionally in a namespace), warn-level log to
 * logPath; resolves when something listens on listenPort.
 */
export async function startCliGateway({ cli, netns, args, listenPort, logPath }) {
  const fd = openSync(logPath, 'a');
  let d;
  try {
    const [cmd, full] = wrap(netns, process.execPath, [cli, ...args, '--log-level', 'warn', '--log-format', 'json', '--drain', '1']);
    d = startDaemon(cmd, full, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const ok = await waitListening(listenPort, { netns, alive: () => !d.hasExited(), timeoutMs: 30_000 });
  if (!ok) {
    await stopDaemon(d);
    const tail = readFileSync(logPath, 'utf8').trim().split('\n').slice(-3).join(' | ');
    throw new Error(`ftp-alg ${args[0]} did not listen on port ${listenPort} (exit ${await d.exited}): ${tail || 'no output'}`);
  }
  return { ...d, cpuSeconds: () => procCpuSeconds(d.pid), stop: () => stopDaemon(d, { graceMs: 5000 }) };
}

/**
 * Does this build of ftp-alg have the kernel data path? Asked the way a
 * user would: `ftp-alg reverse --help` / `forward --help` mention
 * --data-path (and --nft-table); failing that, the config function keeps a
 * 'data-path' flag it was given.
 */
export async function detectKernelDataPath({ cli, distDir }) {
  const out = { reverse: false, forward: false, nftTable: false, how: [] };
  for (const mode of ['reverse', 'forward']) {
    const r = await runCommand(process.execPath, [cli, mode, '--help'], { timeoutMs: 20_000 });
    const text = `${r.stdout}\n${r.stderr}`;
    if (/--data-path\b/.test(text)) {
      out[mode] = true;
      out.how.push(`${mode} --help lists --data-path`);
    }
    if (/--nft-table\b/.test(text)) out.nftTable = true;
  }
  if (!out.reverse) {
    try {
      const { reverseFromFlags } = await import(pathToFileURL(path.join(distDir, 'config.js')).href);
      const cfg = reverseFromFlags({ listen: '127.0.0.1:0', server: '127.0.0.1:21', 'public-address': '127.0.0.1', 'data-path': 'kernel' });
      if (Object.entries(cfg).some(([k, v]) => /data.?path/i.test(k) && v === 'kernel')) {
        out.reverse = true;
        out.how.push("reverseFromFlags keeps 'data-path'");
      }
    } catch {
      // a build that rejects it has no such option
    }
  }
  return out;
}
