/**
 * SuSE's ftp-proxy (Debian package ftp-proxy, proxy-suite 1.9.2.4) as a
 * reverse proxy in front of one fixed FTP server, run by the bench itself:
 *   /usr/sbin/ftp-proxy -d -n -f DIR/ftp-proxy.conf
 * -d standalone (a listener that forks one child per session), -n stay in
 * the foreground (so the PID we spawn is the daemon's), -f our own config
 * in a temporary folder (the system's /etc/proxy-suite/ftp-proxy.conf is not
 * read). It listens on a loopback port (never 21), drops to nobody/nogroup
 * per session, and is stopped with SIGTERM (it then ends its children), its
 * descendants SIGKILLed by PID after a grace period.
 *
 * The log folder must belong to nobody: the children reopen (and may
 * remove) the log file after dropping privileges.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { waitTcpListener } from '../../scenarios/lib/lab.js';
import { procCpuSecondsWithChildren } from './common.js';
import { startDaemon, stopDaemon } from './procs.js';

export const FTP_PROXY = '/usr/sbin/ftp-proxy';

export function ftpProxyAvailable(): boolean {
  return existsSync(FTP_PROXY);
}

export function ftpProxyVersion(): string {
  // -V prints to stderr.
  const r = spawnSync(FTP_PROXY, ['-V'], { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] || `unknown (${r.error?.message ?? `exit ${r.status}`})`;
}

/** A free TCP port on host (bound, read, released: a small race, fine on loopback). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function numericId(cmd: string, args: string[], field?: number): number | undefined {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', timeout: 5000 }).trim();
    const n = Number(field === undefined ? out : out.split(':')[field]);
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The config file the bench writes (also printed in the report). */
export function ftpProxyConfig({ listen, port, destAddress, destPort, logDir }: { listen: string; port: number; destAddress: string; destPort: number; logDir: string }): string {
  return [
    '# written by bench/lib/ftp-proxy.mjs for one bench run',
    'ServerType              standalone',
    `Listen                  ${listen}`,
    `Port                    ${port}`,
    `DestinationAddress      ${destAddress}`,
    `DestinationPort         ${destPort}`,
    'DestinationTransferMode client',
    'User                    nobody',
    'Group                   nogroup',
    `LogDestination          ${path.join(logDir, 'ftp-proxy.log')}`,
    'LogLevel                WRN',
    // Default 40 new sessions per minute and 64 clients: the bench makes few, but never let a cap decide a figure.
    'ForkLimit               100000',
    'MaxClients              512',
    'TimeOut                 300',
    '',
  ].join('\n');
}

/** Starts ftp-proxy in front of destAddress:destPort; resolves with a handle { port, pid, cpuSeconds(), stop(), config }. */
export interface FtpProxy {
  port: number;
  pid: number;
  config: string;
  confPath: string;
  logPath: string;
  cpuSeconds(): number;
  stop(): Promise<void>;
}

export async function startFtpProxy({ dir, listen = '127.0.0.1', port, destAddress = '127.0.0.1', destPort }: { dir: string; listen?: string; port?: number; destAddress?: string; destPort: number }): Promise<FtpProxy> {
  // The session children run as nobody and must reach the log folder: the
  // bench's own temp folder (0700) becomes traversable, not listable (0711).
  chmodSync(dir, 0o711);
  const own = path.join(dir, 'ftp-proxy');
  const logDir = path.join(own, 'log');
  mkdirSync(logDir, { recursive: true, mode: 0o755 });
  chmodSync(own, 0o755);
  const uid = numericId('id', ['-u', 'nobody']);
  const gid = numericId('getent', ['group', 'nogroup'], 2);
  if (uid !== undefined && gid !== undefined) chownSync(logDir, uid, gid);
  const listenPort = port ?? (await freePort(listen));
  const config = ftpProxyConfig({ listen, port: listenPort, destAddress, destPort, logDir });
  const confPath = path.join(own, 'ftp-proxy.conf');
  writeFileSync(confPath, config);
  const d = startDaemon(FTP_PROXY, ['-d', '-n', '-f', confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  d.proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const ok = await waitTcpListener(listenPort, { alive: () => !d.hasExited() });
  if (!ok) {
    await stopDaemon(d);
    throw new Error(`ftp-proxy did not listen on ${listen}:${listenPort}: ${stderr.trim() || 'no output'}`);
  }
  return {
    port: listenPort,
    pid: d.pid,
    config,
    confPath,
    logPath: path.join(logDir, 'ftp-proxy.log'),
    /** The daemon's CPU plus that of the session children it has reaped. */
    cpuSeconds: () => procCpuSecondsWithChildren(d.pid),
    stop: () => stopDaemon(d),
  };
}
