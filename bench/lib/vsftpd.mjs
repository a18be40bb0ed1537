/**
 * vsftpd for the bench, optionally inside a namespace: anonymous, read-only,
 * serving one folder, in the foreground (its PID tracked). The settings
 * follow scenarios/lib/vsftpd-config.ts without the protocol log (logging
 * every reply would be part of what is measured).
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startDaemon, stopDaemon } from './procs.mjs';
import { waitListening } from './ftp-proxy.mjs';

export const VSFTPD = '/usr/sbin/vsftpd';

/**
 * Foreground (its PID tracked), anonymous read-only, no logging, no
 * per-address limits (the bench's clients all come from one address), no
 * sandbox or network isolation (its processes stay in the namespace).
 */
const FIXED = (
  'listen=YES listen_ipv6=NO background=NO anonymous_enable=YES no_anon_password=YES local_enable=NO write_enable=NO ' +
  'pasv_enable=YES port_enable=YES connect_from_port_20=NO xferlog_enable=NO syslog_enable=NO seccomp_sandbox=NO ' +
  'isolate_network=NO max_per_ip=0 max_clients=0'
).split(' ');

/**
 * `root` must be root-owned and not writable by the ftp user (vsftpd refuses
 * otherwise). `settings` replace or add keys (e.g. ssl_enable=YES): vsftpd
 * exits 2 without a word on a key it does not know.
 */
export async function startVsftpd({ dir, root, address, port, wrap = (cmd, args) => [cmd, args], netns, settings = {} }) {
  const empty = path.join(dir, 'vsftpd-empty');
  mkdirSync(empty, { recursive: true });
  chmodSync(empty, 0o755);
  const conf = path.join(dir, `vsftpd-${port}.conf`);
  const place = [`listen_address=${address}`, `listen_port=${port}`, `secure_chroot_dir=${empty}`, `anon_root=${root}`];
  const fixed = FIXED.filter((kv) => !Object.hasOwn(settings, kv.slice(0, kv.indexOf('='))));
  const extra = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  writeFileSync(conf, [...place, ...fixed, ...extra].map((kv) => `${kv}\n`).join(''), { mode: 0o600 });
  const [cmd, args] = wrap(VSFTPD, [conf]);
  const d = startDaemon(cmd, args);
  if (!(await waitListening(port, { netns, alive: () => !d.hasExited(), timeoutMs: 10_000 }))) {
    await stopDaemon(d);
    throw new Error(`vsftpd did not listen on ${address}:${port} (exit ${await d.exited})`);
  }
  return { ...d, stop: () => stopDaemon(d) };
}
