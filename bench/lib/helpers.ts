/**
 * Starting the project's own processes for the bench: the built-in server
 * (server-child.ts), the reverse gateway configured in-process
 * (gateway-child.ts), and the real `ftp-alg` command line (dist/cli.js) for
 * the cases that need its flags (forward --transparent, --data-path). Each
 * runs in a process of its own, optionally inside a namespace, tracked by PID.
 */
import { openSync, closeSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inNamespace, run, waitTcpListener } from '../../scenarios/lib/lab.js';
import { startDaemon, startHelper, stopDaemon, type Daemon, type Helper } from './procs.js';
import { procCpuSeconds } from './common.js';

const LIB = path.dirname(fileURLToPath(import.meta.url));

export interface ServerOptions {
  /** NAME:BYTES files generated in memory. */
  generate?: string[];
  host?: string;
  port?: number;
  /** Full namespace name to run in. */
  netns?: string | undefined;
  discardUploads?: boolean;
  nodelay?: boolean;
}

/** The built-in server; files: [NAME:BYTES, …] generated in memory; uploads discarded; TCP_NODELAY (see server-child.ts). */
export function startServer({ generate = [], host = '127.0.0.1', port = 0, netns, discardUploads = true, nodelay = true }: ServerOptions): Promise<Helper> {
  const args = [path.join(LIB, 'server-child.js'), ...generate.flatMap((g) => ['--generate', g]), '--host', host, '--port', String(port), ...(discardUploads ? ['--discard-uploads'] : []), ...(nodelay ? ['--nodelay'] : [])];
  const [cmd, full] = inNamespace(netns, process.execPath, args);
  return startHelper(cmd, full, { what: 'server-child.js', timeoutMs: 120_000 });
}

/** CLI flags by their command-line names, for gateway-child.ts. */
export type GatewayFlags = Record<string, string | number | boolean>;

/** The reverse gateway in-process-configured (no logging), with more CLI flags as an object. */
export function startGateway({ serverPort, flags = {}, exposeGc = false }: { serverPort: number; flags?: GatewayFlags; exposeGc?: boolean }): Promise<Helper> {
  const args = [...(exposeGc ? ['--expose-gc'] : []), path.join(LIB, 'gateway-child.js'), String(serverPort), JSON.stringify(flags)];
  return startHelper(process.execPath, args, { what: 'gateway-child.js' });
}

export interface CliGateway extends Daemon {
  cpuSeconds(): number;
  stop(): Promise<void>;
}

/**
 * `node dist/cli.js MODE …` (optionally in a namespace), warn-level log to
 * logPath; resolves when something listens on listenPort.
 */
export async function startCliGateway({ cli, netns, args, listenPort, logPath }: { cli: string; netns?: string | undefined; args: string[]; listenPort: number; logPath: string }): Promise<CliGateway> {
  const fd = openSync(logPath, 'a');
  let d: Daemon;
  try {
    const [cmd, full] = inNamespace(netns, process.execPath, [cli, ...args, '--log-level', 'warn', '--log-format', 'json', '--drain', '1']);
    d = startDaemon(cmd, full, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const ok = await waitTcpListener(listenPort, { netns, alive: () => !d.hasExited(), timeoutMs: 30_000 });
  if (!ok) {
    await stopDaemon(d);
    const tail = readFileSync(logPath, 'utf8').trim().split('\n').slice(-3).join(' | ');
    throw new Error(`ftp-alg ${args[0]} did not listen on port ${listenPort} (exit ${await d.exited}): ${tail || 'no output'}`);
  }
  return { ...d, cpuSeconds: () => procCpuSeconds(d.pid), stop: () => stopDaemon(d, { graceMs: 5000 }) };
}

export interface KernelDataPathSupport {
  reverse: boolean;
  forward: boolean;
  nftTable: boolean;
  how: string[];
}

/**
 * Does this build of ftp-alg have the kernel data path? Asked the way a
 * user would: `ftp-alg reverse --help` / `forward --help` mention
 * --data-path (and --nft-table).
 */
export async function detectKernelDataPath({ cli }: { cli: string }): Promise<KernelDataPathSupport> {
  const out: KernelDataPathSupport = { reverse: false, forward: false, nftTable: false, how: [] };
  for (const mode of ['reverse', 'forward'] as const) {
    const r = await run(process.execPath, [cli, mode, '--help'], { timeoutMs: 20_000 });
    const text = `${r.stdout}\n${r.stderr}`;
    if (/--data-path\b/.test(text)) {
      out[mode] = true;
      out.how.push(`${mode} --help lists --data-path`);
    }
    if (/--nft-table\b/.test(text)) out.nftTable = true;
  }
  return out;
}
