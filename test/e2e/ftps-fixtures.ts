/**
 * What the FTPS tests share: a throw-away certificate made by openssl, and
 * real FTPS clients (curl, Python's FTP_TLS, lftp) that check what they got
 * by sha256.
 */
import { join } from 'node:path';
import { python, run, type RunResult } from '../helpers/tools.js';

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
if implicit:
    ftp.login('anonymous', 'test@example.org', secure=False)
    ftp.voidcmd('PBSZ 0')
    if prot == 'P':
        ftp.voidcmd('PROT P')
        ftp._prot_p = True
else:
    ftp.login('anonymous', 'test@example.org')
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

export function ftplibTls(port: number, mode: 'passive' | 'active', name: string, upload: string, asName: string, opts: { prot?: 'P' | 'C'; implicit?: boolean } = {}): Promise<RunResult> {
  return python(FTPLIB_TLS, [String(port), mode, name, upload, asName, opts.prot ?? 'P', opts.implicit ? 'implicit' : 'explicit']);
}

/** lftp forced to TLS on control and data, as an admin would set it. */
export function lftpTls(port: number, script: string): Promise<RunResult> {
  const settings = 'set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set ftp:ssl-allow-anonymous yes; set ssl:verify-certificate no; set net:max-retries 1; set net:timeout 20; set cmd:fail-exit yes;';
  return run('lftp', ['-c', `${settings} open -u anonymous,test@example.org ftp://127.0.0.1:${port}; ${script}`], { timeoutMs: 90_000 });
}
