/**
 * Command lines for the real FTP clients, each with its protocol trace on
 * (the trace is the client log that reasons are matched against), and with
 * its own timeouts shorter than the runner's hard one.
 */
import type { ClientName, TargetSpec, Transfer } from './spec.js';
import { isIpv6 } from './spec.js';
import { SYSTEM_PYTHON } from './servers.js';
import { splitFtpsMode } from './ftps-modes.js';

export interface ClientCommand {
  cmd: string;
  args: string[];
  input?: string;
  /**
   * tnftp exits 0 whatever happened to the transfer: for it the checksum
   * alone decides. Everyone else must also exit 0.
   */
  exitCodeMeaningful: boolean;
}

export interface ClientJob {
  client: ClientName;
  mode: string;
  transfer: Transfer;
  target: TargetSpec;
  /** Path on the server, relative to its root (no leading slash). */
  remote: string;
  /** Local file: the download's destination or the upload's source. */
  local: string;
  /** The client's own address of the control connection's family (curl -P). */
  clientAddress: string;
  timeoutS: number;
}

const url = (t: TargetSpec, path: string) => `ftp://${isIpv6(t.host) ? `[${t.host}]` : t.host}:${t.port}/${path}`;

function curl(j: ClientJob): ClientCommand {
  const { tls, mode: base } = splitFtpsMode(j.mode);
  const mode: Record<string, string[]> = {
    // Strict passive: PASV only, and the 227 address honoured (curl's default ignores it).
    pasv: ['--disable-epsv', '--no-ftp-skip-pasv-ip'],
    // curl's defaults: EPSV first, PASV (address ignored) if EPSV fails.
    epsv: [],
    port: ['-P', j.clientAddress, '--disable-eprt'],
    eprt: ['-P', j.clientAddress],
  };
  const args = ['-sS', '-v', '--connect-timeout', '5', '--max-time', String(j.timeoutS), ...mode[base]!, ...(tls ? ['--ssl-reqd', '-k'] : []), '-u', `${j.target.user}:${j.target.password}`];
  if (isIpv6(j.target.host)) args.push('-g');
  if (j.transfer === 'get') args.push('-o', j.local, url(j.target, j.remote));
  else args.push('-T', j.local, url(j.target, j.remote));
  return { cmd: 'curl', args, exitCodeMeaningful: true };
}

/** An argument of an lftp command, quoted for lftp's own parser. */
export const lftpQuote = (s: string) => `"${s.replace(/(["\\])/g, '\\$1')}"`;

/** lftp bounded as every test and scenario runs it: one retry at most, short network timeouts, overwrite. */
export const LFTP_BOUNDED = [
  'set net:max-retries 1',
  'set net:timeout 8',
  'set net:reconnect-interval-base 1',
  'set net:reconnect-interval-max 1',
  'set xfer:clobber on',
] as const;

function lftp(j: ClientJob): ClientCommand {
  const { tls, mode } = splitFtpsMode(j.mode);
  const script = [
    ...LFTP_BOUNDED,
    // "default": lftp's own defaults (passive, honours the 227 address, PASV before EPSV on IPv4).
    // "active": PORT/EPRT only. lftp's default ftp:auto-passive-mode would switch
    // to passive after "500 Illegal PORT command" and hide the failure.
    ...(mode === 'active' ? ['set ftp:passive-mode off', 'set ftp:auto-passive-mode no'] : []),
    // FTPS on control and data, also for anonymous (lftp sends no AUTH for it otherwise).
    ...(tls ? ['set ftp:ssl-force yes', 'set ftp:ssl-protect-data yes', 'set ftp:ssl-allow-anonymous yes', 'set ssl:verify-certificate no'] : []),
    `open -u ${lftpQuote(`${j.target.user},${j.target.password}`)} ${url(j.target, '')}`,
    j.transfer === 'get' ? `get ${lftpQuote(j.remote)} -o ${lftpQuote(j.local)}` : `put ${lftpQuote(j.local)} -o ${lftpQuote(j.remote)}`,
  ].join('; ');
  return { cmd: 'lftp', args: ['-d', '-c', script], exitCodeMeaningful: true };
}

function tnftp(j: ClientJob): ClientCommand {
  const lines = [
    `user ${j.target.user} ${j.target.password}`,
    'binary',
    // IPv4: PASV/PORT only, with the 227 address honoured (a strict client). IPv6 needs EPSV/EPRT.
    ...(isIpv6(j.target.host) ? [] : ['epsv4 off']),
    // "on", not "auto": no silent fallback from passive to active.
    `passive ${j.mode === 'passive' ? 'on' : 'off'}`,
    j.transfer === 'get' ? `get ${j.remote} ${j.local}` : `put ${j.local} ${j.remote}`,
    'quit',
    '',
  ];
  // -d: every command sent ("---> PORT …"); -v: every reply.
  return { cmd: 'tnftp', args: ['-n', '-v', '-d', j.target.host, String(j.target.port)], input: lines.join('\n'), exitCodeMeaningful: false };
}

function ncftp(j: ClientJob): ClientCommand {
  const common = ['-d', 'stdout', '-t', String(Math.min(j.timeoutS, 15)), '-V', '-r', '0', '-u', j.target.user, '-p', j.target.password, '-P', String(j.target.port), j.mode === 'active' ? '-E' : '-F'];
  if (j.transfer === 'get') return { cmd: 'ncftpget', args: [...common, '-C', j.target.host, j.remote, j.local], exitCodeMeaningful: true };
  return { cmd: 'ncftpput', args: [...common, '-C', j.target.host, j.local, j.remote], exitCodeMeaningful: true };
}

/**
 * Python's ftplib. Since 3.9.3 (bpo-43285) it ignores the 227 address and
 * dials the control host ("passive"); "pasv-strict" turns trust back on.
 * "ftps-…": FTP_TLS with prot_p(); it never resumes the control session on
 * a data connection (vsftpd's require_ssl_reuse refuses it directly).
 */
const FTPLIB_SCRIPT = `
import ftplib, sys
host, port, user, pw, mode, op, remote, local, timeout = sys.argv[1:10]
tls = mode.startswith('ftps-')
mode = mode[len('ftps-'):] if tls else mode
if tls:
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    f = ftplib.FTP_TLS(timeout=float(timeout), context=ctx)
else:
    f = ftplib.FTP(timeout=float(timeout))
f.set_debuglevel(1)
if mode == 'pasv-strict':
    f.trust_server_pasv_ipv4_address = True
f.connect(host, int(port))
f.login(user, pw)
if tls:
    f.prot_p()
f.set_pasv(mode != 'active')
if op == 'get':
    with open(local, 'wb') as out:
        f.retrbinary('RETR ' + remote, out.write, blocksize=1 << 20)
else:
    with open(local, 'rb') as src:
        f.storbinary('STOR ' + remote, src, blocksize=1 << 20)
f.quit()
`;

function ftplib(j: ClientJob): ClientCommand {
  return {
    cmd: SYSTEM_PYTHON,
    args: ['-u', '-c', FTPLIB_SCRIPT, j.target.host, String(j.target.port), j.target.user, j.target.password, j.mode, j.transfer, j.remote, j.local, String(Math.min(j.timeoutS, 15))],
    exitCodeMeaningful: true,
  };
}

export function clientCommand(j: ClientJob): ClientCommand {
  switch (j.client) {
    case 'curl':
      return curl(j);
    case 'lftp':
      return lftp(j);
    case 'tnftp':
      return tnftp(j);
    case 'ncftp':
      return ncftp(j);
    case 'ftplib':
      return ftplib(j);
  }
}

/** Executables each client needs (checked before the run starts). */
export const CLIENT_BINARIES: Record<ClientName, string> = {
  curl: 'curl',
  lftp: 'lftp',
  tnftp: 'tnftp',
  ncftp: 'ncftpget',
  ftplib: SYSTEM_PYTHON,
};
