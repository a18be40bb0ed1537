/**
 * vsftpd for the bench, optionally inside a namespace: anonymous, read-only,
 * serving one folder, in the foreground (its PID tracked), configured as in
 * the scenarios (scenarios/lib/vsftpd-config.ts) without the protocol log.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { inNamespace, waitTcpListener } from '../../scenarios/lib/lab.js';
import { vsftpdConfigText } from '../../scenarios/lib/vsftpd-config.js';
import { startDaemon, stopDaemon, type Daemon } from './procs.js';

export const VSFTPD = '/usr/sbin/vsftpd';

export interface BenchVsftpd extends Daemon {
  stop(): Promise<void>;
}

/**
 * `root` must be root-owned and not writable by the ftp user (vsftpd refuses
 * otherwise). `settings` replace or add keys (e.g. ssl_enable=YES): vsftpd
 * exits 2 without a word on a key it does not know. No per-address limits:
 * the bench's clients all come from one address.
 */
export async function startVsftpd({
  dir,
  root,
  address,
  port,
  netns,
  settings = {},
}: {
  dir: string;
  root: string;
  address: string;
  port: number;
  /** Full namespace name to run in. */
  netns?: string | undefined;
  settings?: Record<string, string>;
}): Promise<BenchVsftpd> {
  const empty = path.join(dir, 'vsftpd-empty');
  mkdirSync(empty, { recursive: true });
  chmodSync(empty, 0o755);
  const conf = path.join(dir, `vsftpd-${port}.conf`);
  writeFileSync(conf, vsftpdConfigText({ address, port, root, emptyDir: empty, logPath: undefined }, { max_per_ip: '0', max_clients: '0', ...settings }), { mode: 0o600 });
  const [cmd, args] = inNamespace(netns, VSFTPD, [conf]);
  const d = startDaemon(cmd, args);
  if (!(await waitTcpListener(port, { netns, alive: () => !d.hasExited(), timeoutMs: 10_000 }))) {
    await stopDaemon(d);
    throw new Error(`vsftpd did not listen on ${address}:${port} (exit ${await d.exited})`);
  }
  return { ...d, stop: () => stopDaemon(d) };
}
