/**
 * Explicit proxy login: `USER name@host[:port]`, the convention of lftp's
 * ftp:proxy, FileZilla's "USER@HOST" proxy type and many others. The last
 * '@' separates the destination, so user names that contain '@' (e-mail
 * addresses) still work.
 */
import { parseIp } from '../protocol/address.js';
import { PROXY_V1_MAX_BYTES } from '../protocol/proxy-header.js';
import { REASON } from '../codes.js';
import type { Refusal } from './policy.js';

export interface ProxyDestination {
  user: string;
  host: string;
  port: number;
}

export type ProxyUserResult = { ok: true; destination: ProxyDestination } | { ok: false; reason: string };

/**
 * Client text quoted back in a reply: printable ASCII only, and short. A
 * reply line may not carry CR, LF or NUL (the encoder refuses them, and a
 * refusal inside a socket handler would end the process), and echoing more
 * than a host name's worth helps nobody.
 */
export function quoteForReply(text: string, max = 64): string {
  const shown = text.length > max ? `${text.slice(0, max)}...` : text;
  return `"${printableReply(shown)}"`;
}

/** A reply the gateway writes before there is a server: one line of printable ASCII, whatever went into it. */
export function printableReply(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

/** Bytes that end or split a line: a command carrying one is refused, never parsed further. */
const LINE_BREAKING = /[\r\n\0]/;
/** The answer to such a command, also for one the command grammar already marked malformed. */
export const LINE_BREAKING_REPLY = '501 CR, LF or NUL inside a command line; refused';

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

export function parseProxyUser(arg: string): ProxyUserResult {
  const at = arg.lastIndexOf('@');
  if (at <= 0 || at === arg.length - 1) return { ok: false, reason: 'log in as USER name@host[:port]' };
  const user = arg.slice(0, at);
  const dest = arg.slice(at + 1);
  // The user name is sent on to the server: nothing that could end the line.
  if (/[\x00-\x1f\x7f]/.test(user)) return { ok: false, reason: 'control characters in the user name' };
  const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(dest) ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(dest);
  if (!m) return { ok: false, reason: `${quoteForReply(dest)} is not host[:port]` };
  const host = m[1]!;
  const port = m[2] === undefined ? 21 : Number(m[2]);
  if (port < 1 || port > 65535) return { ok: false, reason: `port ${m[2]} is out of range` };
  const ip = parseIp(host);
  if (!ip && !HOSTNAME.test(host)) return { ok: false, reason: `${quoteForReply(host)} is not a host name or IP address` };
  return { ok: true, destination: { user, host: ip ? ip.address : host, port } };
}

export type PreLoginStep =
  | { type: 'login'; destination: ProxyDestination }
  | { type: 'reply'; reply: string }
  | { type: 'quit'; reply: string };

/**
 * The explicit proxy's answers before there is a server. Clients probe with
 * FEAT, SYST or AUTH before USER; they get a harmless answer so that they go
 * on to USER, where the destination is named.
 */
export function preLoginStep(verb: string, arg: string): PreLoginStep {
  // A bare CR or a NUL inside a line: some servers end the command there,
  // others do not; nothing built from such a line is safe to send or echo.
  if (LINE_BREAKING.test(verb) || LINE_BREAKING.test(arg)) {
    return { type: 'reply', reply: LINE_BREAKING_REPLY };
  }
  switch (verb) {
    case 'USER': {
      const parsed = parseProxyUser(arg.trim());
      return parsed.ok ? { type: 'login', destination: parsed.destination } : { type: 'reply', reply: `530 ${parsed.reason}` };
    }
    case 'QUIT':
      return { type: 'quit', reply: '221 Goodbye' };
    case 'AUTH':
      return { type: 'reply', reply: '534 TLS is not available through this FTP gateway' };
    case 'FEAT':
      return { type: 'reply', reply: '211 No features before login' };
    case 'SYST':
      return { type: 'reply', reply: '215 UNIX Type: L8' };
    case 'NOOP':
      return { type: 'reply', reply: '200 NOOP ok' };
    default:
      return { type: 'reply', reply: '530 Log in with USER name@host[:port] first' };
  }
}

const SAFE_BEFORE_LOGIN = new Set(['QUIT', 'AUTH', 'FEAT', 'SYST', 'NOOP']);

/**
 * A reverse gateway that picks the backend by user name answers until USER
 * itself; the name is passed on unchanged (no @host in it). `host` and
 * `port` stay empty: the balancer, not the client, names the server.
 */
export function balancerLoginStep(verb: string, arg: string): PreLoginStep {
  if (verb === 'USER') {
    const user = arg.trim();
    return user ? { type: 'login', destination: { user, host: '', port: 0 } } : { type: 'reply', reply: '501 USER needs a name' };
  }
  if (SAFE_BEFORE_LOGIN.has(verb)) return preLoginStep(verb, arg);
  return { type: 'reply', reply: '530 Log in with USER first' };
}

/** The client's last words when it opens with a PROXY header the gateway does not take. */
export const UNTRUSTED_PROXY_HEADER_REPLY = '500 PROXY protocol header refused: this address is not a trusted load balancer';

/**
 * A PROXY header from a client not in --proxy-protocol-from (a trusted
 * balancer's is read before any FTP dialogue starts). Passed on, it would
 * be a 500 from the server at best, a QUIT at worst (the v2 signature holds
 * one). The session ends rather than going on: what follows comes from a
 * balancer that believes its header was read, so every later line would be
 * put down to the balancer's address; a close is what its health check sees.
 */
export function untrustedProxyHeader(version: 1 | 2, client: string): Refusal {
  return { code: REASON.PROXY_HEADER_UNTRUSTED, message: `PROXY v${version} header from ${client}, which is not in --proxy-protocol-from; closed` };
}

/** The header as a refusal event's line: v1 up to its CR, v2 by name (it is binary). */
export function proxyHeaderLine(version: 1 | 2, start: Buffer): string {
  if (version === 2) return 'PROXY v2 signature';
  const cr = start.indexOf(0x0d);
  return start.subarray(0, cr < 0 ? PROXY_V1_MAX_BYTES : Math.min(cr, PROXY_V1_MAX_BYTES)).toString('latin1');
}
