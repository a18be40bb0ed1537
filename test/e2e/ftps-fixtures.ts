/**
 * What the FTPS tests share: a throw-away certificate made by openssl, and
 * real FTPS clients (curl, Python's FTP_TLS, lftp) that check what they got
 * by sha256.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { vsftpdConfigText } from '../../scenarios/lib/vsftpd-config.js';
import { freePort } from './ops-process.js';
import { HAVE, SYSTEM_PYTHON, python, run, type RunResult } from '../helpers/tools.js';

export interface TestCertificate {
  cert: string;
  key: string;
}

/** A self-signed certificate for 127.0.0.1, as the README's example makes it. */
export async function makeCertificate(dir: string, name = 'gateway'): Promise<TestCertificate> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const r = await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', key, '-out', cert,
  ]);
  if (r.code !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { cert, key };
}

/**
 * What a gateway-in-front-of-vsftpd test starts from: certificates for the
 * gateway and the server, and vsftpd's anonymous root (root-owned, mode
 * 755) with an `up/` folder the ftp user may write to.
 */
export async function vsftpdTlsSetup(dir: string): Promise<{ gatewayCert: TestCertificate; serverCert: TestCertificate; root: string }> {
  const gatewayCert = await makeCertificate(dir, 'gateway');
  const serverCert = await makeCertificate(dir, 'server');
  const root = join(dir, 'anon');
  mkdirSync(root, { mode: 0o755 });
  mkdirSync(join(root, 'up'), { mode: 0o755 });
  chownSync(join(root, 'up'), 102, 105);
  return { gatewayCert, serverCert, root };
}

/** curl over explicit FTPS (AUTH TLS, PROT P), certificate not checked. */
export function curlFtps(args: string[]): Promise<RunResult> {
  return run('curl', ['-sS', '--max-time', '60', '--ssl-reqd', '-k', ...args]);
}

/**
 * Python's FTP_TLS: AUTH TLS, login, PROT P (or not), RETR and STOR in the
 * given mode; prints the sha256 of what it downloaded. With `implicit`, the
 * control connection is TLS from its first byte.
 */
const FTPLIB_TLS = `
import ftplib, hashlib, io, ssl, sys
port, passive, name, upload, as_name, prot, implicit = int(sys.argv[1]), sys.argv[2] == 'passive', sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7] == 'implicit'
user, prot_first = sys.argv[8], sys.argv[9] == 'prot-first'
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
class Implicit(ftplib.FTP_TLS):
    def connect(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        import socket
        self.sock = self.context.wrap_socket(socket.create_connection((host, port), timeout), server_hostname=host)
        self.af = self.sock.family
        self.file = self.sock.makefile('r', encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome
ftp = (Implicit if implicit else ftplib.FTP_TLS)(context=ctx)
ftp.connect('127.0.0.1', port, timeout=30)
if prot_first:
    ftp.auth()
    ftp.prot_p()
    ftp.login(user, 'test@example.org')
elif implicit:
    ftp.login(user, 'test@example.org', secure=False)
    ftp.voidcmd('PBSZ 0')
    if prot == 'P':
        ftp.voidcmd('PROT P')
        ftp._prot_p = True
else:
    ftp.login(user, 'test@example.org')
    if prot == 'P':
        ftp.prot_p()
ftp.set_pasv(passive)
buf = io.BytesIO()
ftp.retrbinary('RETR ' + name, buf.write)
with open(upload, 'rb') as f:
    ftp.storbinary('STOR ' + as_name, f)
ftp.quit()
print(hashlib.sha256(buf.getvalue()).hexdigest())
`;

/**
 * `user`: the login name (a forward proxy's `anonymous@host:port`);
 * `protFirst`: AUTH, PBSZ and PROT P before USER, as a client of an explicit
 * proxy may send them.
 */
export function ftplibTls(
  port: number,
  mode: 'passive' | 'active',
  name: string,
  upload: string,
  asName: string,
  opts: { prot?: 'P' | 'C'; implicit?: boolean; user?: string; protFirst?: boolean } = {},
): Promise<RunResult> {
  return python(FTPLIB_TLS, [String(port), mode, name, upload, asName, opts.prot ?? 'P', opts.implicit ? 'implicit' : 'explicit', opts.user ?? 'anonymous', opts.protFirst ? 'prot-first' : '-']);
}

/** lftp forced to TLS on control and data, as an admin would set it. */
export function lftpTls(port: number, script: string, user = 'anonymous'): Promise<RunResult> {
  const settings = 'set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set ftp:ssl-allow-anonymous yes; set ssl:verify-certificate no; set net:max-retries 1; set net:timeout 20; set cmd:fail-exit yes;';
  return run('lftp', ['-c', `${settings} open -u ${user},test@example.org ftp://127.0.0.1:${port}; ${script}`], { timeoutMs: 90_000 });
}

/** Polls (bounded) until something accepts on port: vsftpd's listener takes any number of connections. */
async function waitAccepting(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`vsftpd did not listen on ${port}`);
}

export interface TlsServer {
  port: number;
  stop: () => void;
}

/**
 * vsftpd (root) on 127.0.0.1 with TLS required for anonymous logins and
 * data, require_ssl_reuse=YES (its default, stated), announcing
 * `pasvAddress`; serves `root` (root-owned, mode 755).
 */
export async function startTlsVsftpd(opts: { dir: string; root: string; cert: TestCertificate; pasvAddress: string; extra?: Record<string, string> }): Promise<TlsServer> {
  const empty = join(opts.dir, 'vsftpd-empty');
  mkdirSync(empty, { mode: 0o755, recursive: true });
  const port = await freePort();
  const conf = join(opts.dir, `vsftpd-${port}.conf`);
  writeFileSync(
    conf,
    vsftpdConfigText(
      { address: '127.0.0.1', port, root: opts.root, emptyDir: empty, logPath: join(opts.dir, `vsftpd-${port}.log`) },
      {
        pasv_address: opts.pasvAddress,
        ssl_enable: 'YES',
        rsa_cert_file: opts.cert.cert,
        rsa_private_key_file: opts.cert.key,
        allow_anon_ssl: 'YES',
        force_anon_logins_ssl: 'YES',
        force_anon_data_ssl: 'YES',
        require_ssl_reuse: 'YES',
        ...opts.extra,
      },
    ),
    { mode: 0o600 },
  );
  // Its own process group: it forks a process per session, all killed by the group's id.
  const vsftpd = spawn('/usr/sbin/vsftpd', [conf], { stdio: 'ignore', detached: true });
  const stop = () => {
    try {
      if (vsftpd.pid) process.kill(-vsftpd.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  try {
    await waitAccepting(port);
  } catch (err) {
    stop();
    throw err;
  }
  return { port, stop };
}

export const HAVE_PYOPENSSL = HAVE.pyftpdlib && spawnSync(SYSTEM_PYTHON, ['-c', 'import OpenSSL'], { stdio: 'ignore' }).status === 0;

const PYFTPDLIB_TLS = `
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer
root, cert, key, masquerade = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
auth = DummyAuthorizer()
auth.add_anonymous(root, perm='elradfmwMT')
TLS_FTPHandler.certfile = cert
TLS_FTPHandler.keyfile = key
TLS_FTPHandler.tls_control_required = True
TLS_FTPHandler.tls_data_required = True
TLS_FTPHandler.authorizer = auth
TLS_FTPHandler.masquerade_address = masquerade
server = FTPServer(('127.0.0.1', 0), TLS_FTPHandler)
print('port', server.socket.getsockname()[1], flush=True)
server.serve_forever(timeout=0.5)
`;

/**
 * pyftpdlib's TLS handler (needs python3-openssl) on 127.0.0.1: TLS
 * required on control and data, `masquerade` in its 227.
 */
export async function startTlsPyftpdlib(root: string, cert: TestCertificate, masquerade: string): Promise<TlsServer> {
  const server: ChildProcess = spawn(SYSTEM_PYTHON, ['-c', PYFTPDLIB_TLS, root, cert.cert, cert.key, masquerade], { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise<number>((resolve, reject) => {
    let seen = '';
    server.stdout!.on('data', (d: Buffer) => {
      seen += d.toString();
      const m = /port (\d+)/.exec(seen);
      if (m) resolve(Number(m[1]));
    });
    server.once('exit', (code) => reject(new Error(`pyftpdlib exited (${code})`)));
  });
  return { port, stop: () => server.kill('SIGKILL') };
}
