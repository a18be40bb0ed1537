/**
 * The four FTP servers of the interop matrix, each started three times in
 * the matrix's own network namespace (loopback only):
 *
 *   plain   127.0.1.N:21  what clients reach directly (the "direct" column)
 *   masq    127.0.2.N:21  announces 100.64.0.2 in its 227, an address nobody
 *                         listens on (unreachable in the namespace: fails at
 *                         once): what the gateways front, so that only their
 *                         rewrite makes a strict PASV client work
 *   v6      [::1]:21N0    IPv6, for IPv6 clients direct and behind reverse
 *
 * All serve one root: pub/ (read-only test files) and incoming/ (owned by
 * the `ftp` user, where anonymous uploads go). ProFTPD and Pure-FTPd come
 * from scripts/install-ftp-peers.sh (unpacked next to vsftpd).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { pollUntil, type Lab, type Proc } from '../../scenarios/lib/lab.js';
import { vsftpdConfigText } from '../../scenarios/lib/vsftpd-config.js';
import { SYSTEM_PYTHON } from '../helpers/tools.js';

export const PEERS_DIR = process.env.FTP_ALG_PEERS ?? '/opt/ftp-alg-peers';
const PEER_LIBS = join(PEERS_DIR, 'usr/lib/x86_64-linux-gnu');
const PROFTPD = join(PEERS_DIR, 'usr/sbin/proftpd');
const PURE_FTPD = join(PEERS_DIR, 'usr/sbin/pure-ftpd');

export const SERVER_KINDS = ['vsftpd', 'proftpd', 'pure-ftpd', 'pyftpdlib'] as const;
export type ServerKind = (typeof SERVER_KINDS)[number];
export type Instance = 'plain' | 'masq' | 'v6';

/** The address the masquerading instances announce: in the plan, routed nowhere in the namespace. */
export const MASQUERADE = '100.64.0.2';

export interface Place {
  host: string;
  port: number;
}

export function placeOf(kind: ServerKind, instance: Instance): Place {
  const n = SERVER_KINDS.indexOf(kind) + 1;
  if (instance === 'v6') return { host: '::1', port: 2100 + 10 * n };
  return { host: `127.0.${instance === 'plain' ? 1 : 2}.${n}`, port: 21 };
}

/** Passive ranges below the ephemeral range (LAB.md), disjoint per instance. */
function passiveRange(kind: ServerKind, instance: Instance): [number, number] {
  const lo = 20_000 + 1000 * SERVER_KINDS.indexOf(kind) + 100 * ['plain', 'masq', 'v6'].indexOf(instance);
  return [lo, lo + 99];
}

/** '' when every server can run here, else the reason (shown in the skipped tests' names). */
export function peersMissing(): string {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  if (!existsSync('/usr/sbin/vsftpd')) missing.push('vsftpd');
  if (spawnSync(SYSTEM_PYTHON, ['-c', 'import pyftpdlib'], { stdio: 'ignore', timeout: 10_000 }).status !== 0) missing.push('python3-pyftpdlib');
  if (!existsSync(PROFTPD) || !existsSync(PURE_FTPD)) missing.push(`ProFTPD and Pure-FTPd in ${PEERS_DIR}`);
  for (const t of ['unshare', 'mount', 'ip', 'ss']) if (spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0) missing.push(t);
  return missing.join(', ');
}

export interface RunningPeer {
  kind: ServerKind;
  instance: Instance;
  place: Place;
  /** The server's own protocol log, where it keeps one (Pure-FTPd logs to syslog only). */
  logPath?: string;
  outPath: string;
  proc: Proc;
}

/**
 * pyftpdlib as `python3 -m pyftpdlib -w -D -n … -r …` configures it, but with
 * one thread per session. Its default single event loop, under this
 * matrix's concurrent sessions, now and then stops serving one of them (no
 * 220, no reply to EPRT, no EOF seen on an upload's data connection; the
 * kernel has ACKed the bytes), directly as through the gateway: the same
 * pyftpdlib 1.5.7 quirk scenarios/README.md notes under load.
 */
const PYFTPDLIB_THREADED = `
import logging, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import ThreadedFTPServer
host, port, root, ports, masquerade = sys.argv[1:6]
authorizer = DummyAuthorizer()
authorizer.add_anonymous(root, perm='elradfmwMT')
FTPHandler.authorizer = authorizer
lo, hi = map(int, ports.split('-'))
FTPHandler.passive_ports = list(range(lo, hi + 1))
if masquerade:
    FTPHandler.masquerade_address = masquerade
logging.basicConfig(level=logging.DEBUG, format='[%(levelname)1.1s %(asctime)s] %(message)s')
ThreadedFTPServer((host, int(port)), FTPHandler).serve_forever()
`;

function proftpdConfig(dir: string, place: Place, root: string, masquerade: boolean, range: [number, number]): string {
  return `ServerType standalone
ServerName "ftp-alg interop"
DefaultAddress ${place.host}
Port ${place.port}
SocketBindTight on
UseIPv6 on
User nobody
Group nogroup
PidFile ${dir}/proftpd.pid
ScoreboardFile ${dir}/proftpd.scoreboard
DelayTable none
WtmpLog off
UseReverseDNS off
AllowOverwrite on
AllowStoreRestart on
PassivePorts ${range[0]} ${range[1]}
${masquerade ? `MasqueradeAddress ${MASQUERADE}\n` : ''}LogFormat protocol "%{iso8601} %a:%{remote-port} %r -> %s %S"
ExtendedLog ${dir}/protocol.log ALL protocol
<Anonymous ${root}>
  User ftp
  Group nogroup
  UserAlias anonymous ftp
  RequireValidShell off
  <Directory incoming>
    <Limit WRITE>
      AllowAll
    </Limit>
  </Directory>
</Anonymous>
`;
}

/** Starts one server instance serving `root`; resolves once `ss` shows its listener on its own address. */
export async function startPeer(lab: Lab, ns: string, kind: ServerKind, instance: Instance, root: string, runDir: string): Promise<RunningPeer> {
  const place = placeOf(kind, instance);
  const range = passiveRange(kind, instance);
  const masquerade = instance === 'masq';
  const masq: Record<string, string> = masquerade ? { pasv_address: MASQUERADE } : {};
  const dir = join(runDir, `${kind}-${instance}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const outPath = join(dir, `${kind}.out`);
  // vsftpd and ProFTPD write a protocol log; pyftpdlib logs to its output, Pure-FTPd only to syslog.
  const logPath = kind === 'vsftpd' || kind === 'proftpd' ? join(dir, 'protocol.log') : undefined;
  let proc: Proc;
  switch (kind) {
    case 'vsftpd': {
      const emptyDir = join(dir, 'empty');
      mkdirSync(emptyDir, { mode: 0o755 });
      const conf = join(dir, 'vsftpd.conf');
      const v6: Record<string, string> = instance === 'v6' ? { listen: 'NO', listen_ipv6: 'YES', listen_address6: place.host } : {};
      const text = vsftpdConfigText(
        { address: place.host, port: place.port, root, emptyDir, logPath: join(dir, 'protocol.log') },
        {
          ...v6,
          // Anonymous uploads into incoming/ (owned by ftp): STOR, APPE, MKD for mirror -R.
          write_enable: 'YES',
          anon_upload_enable: 'YES',
          anon_mkdir_write_enable: 'YES',
          anon_other_write_enable: 'YES',
          anon_umask: '022',
          pasv_min_port: String(range[0]),
          pasv_max_port: String(range[1]),
          ...masq,
        },
      );
      writeFileSync(conf, text, { mode: 0o600 });
      proc = lab.spawn(ns, '/usr/sbin/vsftpd', [conf], outPath);
      break;
    }
    case 'proftpd': {
      const conf = join(dir, 'proftpd.conf');
      writeFileSync(conf, proftpdConfig(dir, place, root, masquerade, range), { mode: 0o644 });
      proc = lab.spawn(ns, PROFTPD, ['-n', '-q', '-c', conf], outPath, { env: { ...process.env, LD_LIBRARY_PATH: PEER_LIBS } });
      break;
    }
    case 'pure-ftpd': {
      // Pure-FTPd serves anonymous users from the ftp user's home: our root is
      // bind-mounted there in a private mount namespace, never on the host.
      const args = ['-S', `${place.host},${place.port}`, '-p', `${range[0]}:${range[1]}`, '-e', '-M', '-H', '-f', 'none', ...(masquerade ? ['-P', MASQUERADE] : [])];
      const script = `mount --bind "$1" "$2" && shift 2 && exec "$@"`;
      proc = lab.spawn(ns, 'unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', root, ftpHome(), PURE_FTPD, ...args], outPath, {
        env: { ...process.env, LD_LIBRARY_PATH: PEER_LIBS },
      });
      break;
    }
    case 'pyftpdlib':
      proc = lab.spawn(ns, SYSTEM_PYTHON, ['-c', PYFTPDLIB_THREADED, place.host, String(place.port), root, `${range[0]}-${range[1]}`, masquerade ? MASQUERADE : ''], outPath);
      break;
  }
  const hostInSs = place.host.includes(':') ? `[${place.host}]` : place.host;
  const up = await pollUntil(async () => {
    if (proc.hasExited()) return true;
    const r = await lab.exec(ns, 'ss', ['-Hltn', 'src', `${hostInSs}:${place.port}`], 5_000);
    return r.code === 0 && r.stdout.trim() !== '';
  }, 10_000);
  if (proc.hasExited()) throw new Error(`${kind} (${instance}) exited before listening (exit ${await proc.exited}); see ${outPath}`);
  if (!up) throw new Error(`${kind} (${instance}): nothing listening on ${hostInSs}:${place.port} after 10 s; see ${outPath}`);
  return { kind, instance, place, outPath, proc, ...(logPath ? { logPath } : {}) };
}

function ftpHome(): string {
  const r = spawnSync('getent', ['passwd', 'ftp'], { encoding: 'utf8' });
  const home = r.stdout.split(':')[5];
  if (!home) throw new Error('no "ftp" user (vsftpd\'s package creates it): Pure-FTPd serves anonymous users from its home');
  return home;
}

/** The uid of the `ftp` user, owner of incoming/ (anonymous uploads run as it). */
export function ftpUid(): number {
  const r = spawnSync('id', ['-u', 'ftp'], { encoding: 'utf8' });
  const uid = Number(r.stdout.trim());
  if (!Number.isInteger(uid) || r.status !== 0) throw new Error('no "ftp" user');
  return uid;
}
