/**
 * `ftp-alg probe URL`: from the client's side, log in and try each data mode
 * (PASV, EPSV, PORT, EPRT) on a fresh control connection, then say in plain
 * words what works, what does not, and why, with stable reason codes. Over
 * FTPS (ftpes://, ftps://) it reads what the server announces inside TLS,
 * which no capture and no kernel helper can see.
 */
import { FtpClient, FtpError, type ClientTlsOptions, type ControlTlsInfo, type DataModeName, type SimpleReply } from '../client/ftp-client.js';
import { classifyAddress, ipOf, isSiteLocal, sameAddress, type AddressClass } from '../protocol/address.js';

export const PROBE_CODES = {
  OK: 'OK',
  PASV_PRIVATE_ADDRESS: 'PASV_PRIVATE_ADDRESS',
  PASV_UNREACHABLE: 'PASV_UNREACHABLE',
  EPSV_UNSUPPORTED: 'EPSV_UNSUPPORTED',
  EPSV_UNREACHABLE: 'EPSV_UNREACHABLE',
  ACTIVE_REFUSED: 'ACTIVE_REFUSED',
  ACTIVE_NO_CONNECT: 'ACTIVE_NO_CONNECT',
  TRANSFER_FAILED: 'TRANSFER_FAILED',
  TLS_REQUIRED: 'TLS_REQUIRED',
  LOGIN_FAILED: 'LOGIN_FAILED',
  CONNECT_FAILED: 'CONNECT_FAILED',
} as const;
export type ProbeCode = (typeof PROBE_CODES)[keyof typeof PROBE_CODES];

export interface ProbeTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  /** FTPS: ftpes:// (explicit) or ftps:// (implicit); absent for ftp://. */
  tls?: ClientTlsOptions;
}

/** The JSON shape of `probe --json` (stable; README documents it). */
export interface ProbeReport {
  target: { host: string; port: number; user: string; scheme: ProbeScheme };
  control?: { address: string; class: AddressClass; local: string };
  /** The control connection's TLS (ftpes://, ftps://), once its handshake is done. */
  tls?: ControlTlsInfo;
  greeting?: SimpleReply;
  login?: { ok: boolean; reply?: SimpleReply; error?: string };
  modes: ProbeModeResult[];
  verdict: { codes: ProbeCode[]; summary: string[] };
}

export interface ProbeModeResult {
  mode: DataModeName;
  /** Reply to PASV/EPSV/PORT/EPRT. */
  setup?: SimpleReply;
  /** Where the server said it listens (passive), or where we listened (active). */
  announced?: { address: string; port: number; class: AddressClass; differsFromControl: boolean };
  dataConnected: boolean;
  bytes?: number;
  final?: SimpleReply;
  durationMs: number;
  error?: string;
  codes: ProbeCode[];
}

export type ProbeScheme = 'ftp' | 'ftpes' | 'ftps';

/** Each scheme's TLS and default port: ftpes is explicit FTPS on 21, ftps implicit on 990. */
const SCHEMES: Record<ProbeScheme, { tls?: ClientTlsOptions['mode']; port: number }> = {
  ftp: { port: 21 },
  ftpes: { tls: 'explicit', port: 21 },
  ftps: { tls: 'implicit', port: 990 },
};

export function schemeOf(target: ProbeTarget): ProbeScheme {
  return target.tls?.mode === 'explicit' ? 'ftpes' : target.tls?.mode === 'implicit' ? 'ftps' : 'ftp';
}

export function parseProbeUrl(text: string, opts: { insecure?: boolean } = {}): ProbeTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`"${text}" is not a URL; use ftp://, ftpes:// or ftps://[user[:pass]@]host[:port]/`);
  }
  const scheme = url.protocol.slice(0, -1);
  if (!Object.hasOwn(SCHEMES, scheme)) throw new Error(`"${text}" is not an ftp:// URL (nor ftpes:// for explicit FTPS, ftps:// for implicit FTPS)`);
  const { tls, port } = SCHEMES[scheme as ProbeScheme];
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : port,
    user: url.username ? decodeURIComponent(url.username) : 'anonymous',
    password: url.password ? decodeURIComponent(url.password) : 'ftp-alg-probe@example.org',
    ...(tls ? { tls: { mode: tls, insecure: opts.insecure ?? false } } : {}),
  };
}

const MODES: DataModeName[] = ['PASV', 'EPSV', 'PORT', 'EPRT'];

export async function probe(target: ProbeTarget, timeoutMs: number, progress: (line: string) => void = () => undefined): Promise<ProbeReport> {
  const report: ProbeReport = { target: { host: target.host, port: target.port, user: target.user, scheme: schemeOf(target) }, modes: [], verdict: { codes: [], summary: [] } };
  progress(`connecting to ${target.host}:${target.port} (timeout ${timeoutMs / 1000} s)…`);
  // A login that got no reply at all is tried once more on a fresh connection:
  // pyftpdlib now and then leaves a USER unanswered, which is no verdict on the login.
  for (let attempt = 0; attempt < 2; attempt++) {
    let first: FtpClient;
    try {
      first = await FtpClient.connect(target.host, target.port, timeoutMs, target.tls);
    } catch (err) {
      report.verdict = { codes: ['CONNECT_FAILED'], summary: [`Cannot open the control connection: ${(err as Error).message}.`] };
      return report;
    }
    const remote = ipOf(first.tcp.remoteAddress!);
    report.control = { address: remote.address, class: classifyAddress(remote), local: first.tcp.localAddress ?? '' };
    try {
      report.greeting = await first.read();
      await loginAfterGreeting(first, target, report);
    } catch (err) {
      report.login = { ok: false, error: (err as Error).message, ...(err instanceof FtpError && err.reply ? { reply: err.reply } : {}) };
    } finally {
      const tlsInfo = first.tlsInfo;
      if (tlsInfo) report.tls = tlsInfo;
      first.close();
    }
    if (report.login?.ok || report.login?.reply) break;
  }
  if (!report.login?.ok) {
    report.verdict = report.login?.reply && tlsRequired(report.login.reply)
      ? {
          codes: ['TLS_REQUIRED'],
          summary: [
            `The server requires TLS before login${report.target.scheme === 'ftp' ? `: probe it as ftpes://${hostPort(report.target)}/ to see what it announces inside TLS` : ''}. No ALG can rewrite an encrypted control channel it does not end: ` +
              'through a NAT, either the server announces a reachable address itself or a gateway terminates TLS (ftp-alg reverse --tls terminate).',
          ],
        }
      : { codes: ['LOGIN_FAILED'], summary: [`Login failed: ${report.login?.reply ? firstLine(report.login.reply) : report.login?.error}.`] };
    return report;
  }
  for (const mode of MODES) {
    progress(`trying ${mode} (waits up to ${timeoutMs / 1000} s for the data connection)…`);
    report.modes.push(await probeMode(target, mode, timeoutMs, report.control!.address));
  }
  report.verdict = verdict(report);
  return report;
}

/** A reply that refuses a plain session for want of TLS, by code and by the words real servers use. */
const TLS_WORDS = /\b(TLS|SSL|encrypt\w*|FTPS)\b/i;
const REQUIRED_WORDS = /\b(requir\w*|must|only|not allow\w*|not accepted|have to|need\w*|polic\w*|reconnect using)\b/i;

/**
 * Only a reply that says TLS is *required*: "530 Authentication failed."
 * (pyftpdlib), "530 Login incorrect." (vsftpd, ProFTPD) and "530 Login
 * authentication failed" (Pure-FTPd) are wrong credentials, while vsftpd's
 * "530 Non-anonymous sessions must use encryption.", ProFTPD's and
 * pyftpdlib's "550 SSL/TLS required on the control channel", Pure-FTPd's
 * "…Please reconnect using TLS security mechanisms." and IIS's "534 Policy
 * requires SSL." ask for TLS.
 */
export function tlsRequired(reply: SimpleReply): boolean {
  if (reply.code !== 530 && reply.code !== 534 && reply.code !== 550 && reply.code !== 522) return false;
  return TLS_WORDS.test(reply.text) && REQUIRED_WORDS.test(reply.text);
}

async function loginAfterGreeting(c: FtpClient, target: ProbeTarget, report: ProbeReport): Promise<void> {
  if (report.greeting!.code !== 220) throw new FtpError(`greeting ${report.greeting!.code}`, report.greeting);
  await c.startTls();
  const u = await c.send(`USER ${target.user}`);
  let final = u;
  if (u.code === 331) final = await c.send(`PASS ${target.password}`);
  report.login = { ok: final.code === 230 || final.code === 202, reply: final };
  // A server that takes the login but not PROT P cannot protect data: the session is no use to an FTPS client.
  if (report.login.ok) await c.protect();
}

/** How far a mode's attempt got before it failed. */
type ModePhase = 'connect' | 'login' | 'setup';

async function probeMode(target: ProbeTarget, mode: DataModeName, timeoutMs: number, controlAddress: string): Promise<ProbeModeResult> {
  const first = await attemptMode(target, mode, timeoutMs, controlAddress);
  // A fresh session that fails before the data set-up says nothing about the
  // mode (pyftpdlib now and then leaves a USER unanswered): try once more.
  if (first.phase === 'setup') return first.result;
  const second = await attemptMode(target, mode, timeoutMs, controlAddress);
  second.result.durationMs += first.result.durationMs;
  if (second.phase !== 'setup') second.result.error = `${second.result.error} (and on a first attempt: ${first.result.error})`;
  return second.result;
}

async function attemptMode(target: ProbeTarget, mode: DataModeName, timeoutMs: number, controlAddress: string): Promise<{ result: ProbeModeResult; phase: ModePhase }> {
  const started = Date.now();
  const result: ProbeModeResult = { mode, dataConnected: false, durationMs: 0, codes: [] };
  let phase: ModePhase = 'connect';
  let c: FtpClient | undefined;
  try {
    c = await FtpClient.connect(target.host, target.port, timeoutMs, target.tls);
    phase = 'login';
    await c.login(target.user, target.password);
    phase = 'setup';
    const r = await c.transfer(mode, 'LIST', (setup, announced) => {
      result.setup = setup;
      if (announced) {
        const ip = ipOf(announced.address);
        result.announced = { address: ip.address, port: announced.port, class: classifyAddress(ip), differsFromControl: !sameAddress(ip, ipOf(controlAddress)) };
      }
    });
    result.dataConnected = true;
    result.bytes = r.data.length;
    result.final = r.final;
    // Say goodbye like a real client: pyftpdlib 1.5.7, cut off right after an
    // active transfer, can unregister a reused file descriptor and leave the
    // next session's USER unanswered.
    await c.quit();
  } catch (err) {
    result.error = (err as Error).message;
    if (phase === 'setup') {
      if (err instanceof FtpError && err.reply && !result.setup) result.setup = err.reply;
      if (err instanceof FtpError && err.reply && result.setup && err.reply !== result.setup) result.final = err.reply;
      if (err instanceof FtpError && err.dataConnected) result.dataConnected = true;
    }
  } finally {
    c?.close();
  }
  result.durationMs = Date.now() - started;
  result.codes = phase === 'connect' ? ['CONNECT_FAILED'] : phase === 'login' ? ['LOGIN_FAILED'] : modeCodes(result);
  return { result, phase };
}

function modeCodes(r: ProbeModeResult): ProbeCode[] {
  const codes: ProbeCode[] = [];
  const setupFailed = !r.setup || r.setup.code >= 400;
  if (r.mode === 'PASV' || r.mode === 'EPSV') {
    if (r.announced && r.mode === 'PASV' && r.announced.differsFromControl && isSiteLocal({ family: r.announced.address.includes(':') ? 6 : 4, address: r.announced.address })) {
      codes.push('PASV_PRIVATE_ADDRESS');
    }
    if (r.mode === 'EPSV' && r.setup && setupFailed) codes.push('EPSV_UNSUPPORTED');
    else if (!r.dataConnected && r.setup && !setupFailed) codes.push(r.mode === 'PASV' ? 'PASV_UNREACHABLE' : 'EPSV_UNREACHABLE');
  } else if (r.setup?.code === 425) {
    // A server that dials at PORT time (pyftpdlib) says 425 when it could not reach us.
    codes.push('ACTIVE_NO_CONNECT');
  } else if (setupFailed && r.setup) {
    codes.push('ACTIVE_REFUSED');
  } else if (!r.dataConnected) {
    codes.push('ACTIVE_NO_CONNECT');
  }
  // The data connection opened, but the listing did not arrive whole.
  if (r.dataConnected && r.error !== undefined) codes.push('TRANSFER_FAILED');
  if (codes.length > 0) return codes;
  return r.dataConnected ? ['OK'] : [];
}

function verdict(report: ProbeReport): ProbeReport['verdict'] {
  const codes = new Set<ProbeCode>();
  const summary: string[] = [];
  const by = (m: DataModeName) => report.modes.find((x) => x.mode === m)!;
  const pasv = by('PASV');
  const epsv = by('EPSV');
  for (const m of report.modes) for (const c of m.codes) if (c !== 'OK') codes.add(c);
  if (pasv.codes.includes('PASV_PRIVATE_ADDRESS')) {
    summary.push(
      report.target.scheme === 'ftp'
        ? `PASV: the server announces ${pasv.announced!.address} (${pasv.announced!.class}), not the address you reached it at (${report.control!.address}): it is behind a NAT and announces its inside address. ` +
            'Clients that honour the 227 address fail; fix it with ftp-alg reverse in front of the server or the server\'s masquerade address setting.'
        : `PASV: inside TLS the server announces ${pasv.announced!.address} (${pasv.announced!.class}), not the address you reached it at (${report.control!.address}): it is behind a NAT and announces its inside address, ` +
            'where no capture and no kernel FTP helper can see it. Clients that honour the 227 address fail; fix it with the server\'s masquerade address setting or ftp-alg reverse --tls terminate --server-tls explicit in front of it.',
    );
  }
  if (pasv.codes.includes('PASV_UNREACHABLE')) summary.push(`PASV: the data connection to ${pasv.announced ? `${pasv.announced.address}:${pasv.announced.port}` : 'the announced endpoint'} failed (${pasv.error ?? 'no connection'}).`);
  if (epsv.codes.includes('EPSV_UNSUPPORTED')) summary.push(`EPSV: not supported (${firstLine(epsv.setup!)}); clients fall back to PASV.`);
  if (epsv.codes.includes('EPSV_UNREACHABLE')) summary.push(`EPSV: the data connection to the control address on port ${epsv.announced?.port} failed: the passive port range is not reachable (firewall or missing port forward).`);
  for (const m of [by('PORT'), by('EPRT')]) {
    if (m.codes.includes('ACTIVE_REFUSED')) {
      summary.push(`${m.mode}: refused by the server (${firstLine(m.setup!)}): it does not accept our address ${report.control!.local} — typical for a client behind a NAT without an FTP ALG (the server sees the NAT's address).`);
    }
    if (m.codes.includes('ACTIVE_NO_CONNECT')) {
      summary.push(`${m.mode}: the server accepted the command but never connected back (${m.final ? firstLine(m.final) : m.error ?? 'timeout'}): a NAT or firewall in front of this client blocks incoming data connections.`);
    }
  }
  for (const m of report.modes) {
    if (m.codes.includes('TRANSFER_FAILED')) {
      summary.push(`${m.mode}: the data connection opened but the listing did not complete (${m.error}): the server, or a gateway between, stalled or dropped the transfer.`);
    }
    if (m.codes.includes('LOGIN_FAILED') || m.codes.includes('CONNECT_FAILED')) {
      summary.push(`${m.mode}: not tested, the fresh session for it failed twice before the data set-up (${m.error}).`);
    }
  }
  if (codes.size === 0) {
    codes.add('OK');
    summary.push('All four data modes work from here.');
  } else {
    const working = report.modes.filter((m) => m.codes.includes('OK')).map((m) => m.mode);
    summary.push(working.length ? `Working from here: ${working.join(', ')}.` : 'No data mode works from here.');
  }
  return { codes: [...codes], summary };
}

/** Reply text already starts with its code. */
function firstLine(r: SimpleReply): string {
  return r.text.split('\n')[0]!;
}

function hostPort(t: ProbeReport['target']): string {
  return `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}

export function formatProbeReport(r: ProbeReport): string {
  const out: string[] = [];
  out.push(`ftp-alg probe ${r.target.scheme}://${hostPort(r.target)}/ as ${r.target.user}`);
  if (r.control) out.push(`control: ${r.control.address}:${r.target.port} (${r.control.class}) from ${r.control.local}`);
  if (r.greeting) out.push(`greeting: ${firstLine(r.greeting)}`);
  if (r.tls) {
    const check = r.tls.verified ? 'certificate verified' : `certificate NOT verified (--insecure${r.tls.verifyError ? `: ${r.tls.verifyError}` : ''})`;
    out.push(`tls: ${r.target.scheme === 'ftps' ? 'implicit' : 'explicit (AUTH TLS)'}, ${r.tls.protocol} ${r.tls.cipher}${r.tls.subject ? `, CN=${r.tls.subject}` : ''}, ${check}; data PROT P`);
  }
  if (r.login) out.push(`login: ${r.login.ok ? 'ok' : 'FAILED'}${r.login.reply ? ` (${firstLine(r.login.reply)})` : r.login.error ? ` (${r.login.error})` : ''}`);
  if (r.modes.length) {
    const rows = [['mode', 'reply', 'endpoint', 'class', 'data', 'bytes', 'time', 'codes']];
    for (const m of r.modes) {
      rows.push([
        m.mode,
        m.setup ? firstLine(m.setup).slice(0, 60) : '-',
        m.announced ? `${m.announced.address.includes(':') ? `[${m.announced.address}]` : m.announced.address}:${m.announced.port}` : '-',
        m.announced ? m.announced.class + (m.announced.differsFromControl ? '≠ctl' : '') : '-',
        m.dataConnected ? 'ok' : 'FAIL',
        m.bytes !== undefined ? String(m.bytes) : '-',
        `${m.durationMs}ms`,
        m.codes.join(' '),
      ]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    for (const row of rows) out.push(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  }
  out.push(`verdict: ${r.verdict.codes.join(' ')}`);
  for (const s of r.verdict.summary) out.push(`  - ${s}`);
  return out.join('\n') + '\n';
}
