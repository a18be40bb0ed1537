/**
 * `ftp-alg explain 'LINE'`: decode one FTP command or reply for a person —
 * what it means, the endpoint inside, the address class, and what a NAT does
 * to it. Pure: reuses the protocol core's codecs.
 */
import { parseCommand } from '../protocol/command.js';
import { replyCode } from '../protocol/reply.js';
import { classifyAddress, formatEndpoint, isSiteLocal, type AddressClass, type Endpoint } from '../protocol/address.js';
import { find227, find228, find229, parseEprtArg, parseLprtArg, parsePortArg } from '../protocol/endpoint.js';

export interface Explanation {
  line: string;
  kind: 'command' | 'reply' | 'unknown';
  /** Verb or reply code. */
  name: string;
  meaning: string;
  endpoint?: { address?: string; port: number; family?: 4 | 6; class?: AddressClass; text: string };
  /** What a NAT between client and server does to this line, and what to do about it. */
  nat?: string;
  problem?: string;
}

const VERBS: Record<string, string> = {
  USER: 'log in: user name',
  PASS: 'log in: password',
  ACCT: 'account information',
  CWD: 'change working directory',
  CDUP: 'change to the parent directory',
  QUIT: 'end the session',
  REIN: 'reinitialise the session',
  PORT: 'active mode: "connect to me at this IPv4 address and port for the next transfer" (RFC 959)',
  EPRT: 'extended active mode: "connect to me at this address and port", IPv4 or IPv6 (RFC 2428)',
  LPRT: 'long active mode: "connect to me at this address and port" (RFC 1639)',
  PASV: 'passive mode: "listen for my data connection and tell me where" — answered by 227 with an IPv4 address (RFC 959)',
  EPSV: 'extended passive mode: answered by 229 with a port only; the client reuses the control connection\'s address (RFC 2428)',
  LPSV: 'long passive mode: answered by 228 (RFC 1639)',
  TYPE: 'representation type (A = ASCII, I = binary)',
  MODE: 'transfer mode',
  STRU: 'file structure',
  RETR: 'download a file over the data connection',
  STOR: 'upload a file over the data connection',
  STOU: 'upload under a unique name',
  APPE: 'append to a file over the data connection',
  LIST: 'directory listing over the data connection',
  NLST: 'name list over the data connection',
  MLSD: 'machine-readable listing over the data connection (RFC 3659)',
  REST: 'restart the next transfer at this offset',
  ABOR: 'abort the running transfer (often preceded by Telnet IP and Synch)',
  DELE: 'delete a file',
  MKD: 'make a directory',
  RMD: 'remove a directory',
  PWD: 'print working directory',
  SYST: 'ask the server\'s system type',
  FEAT: 'list the server\'s extensions (RFC 2389)',
  OPTS: 'set an option, e.g. OPTS UTF8 ON',
  SIZE: 'file size (RFC 3659)',
  MDTM: 'modification time (RFC 3659)',
  NOOP: 'do nothing (keep-alive)',
  AUTH: 'switch the control connection to TLS (RFC 4217): from then on no ALG can read or rewrite it',
  PBSZ: 'TLS protection buffer size (RFC 4217)',
  PROT: 'data channel protection level (RFC 4217)',
  STAT: 'status',
  HELP: 'help',
};

const CODES: Record<number, string> = {
  110: 'restart marker',
  120: 'service ready in a few minutes',
  125: 'data connection already open; transfer starting',
  150: 'about to open the data connection',
  200: 'command okay',
  202: 'command not implemented, superfluous here',
  211: 'system status / FEAT list',
  213: 'file status',
  214: 'help message',
  215: 'system type',
  220: 'service ready (greeting)',
  221: 'closing the control connection',
  225: 'data connection open, no transfer in progress',
  226: 'transfer complete; closing the data connection',
  227: 'entering passive mode: the server listens at the address and port inside',
  228: 'entering long passive mode (RFC 1639)',
  229: 'entering extended passive mode: the server listens at the port inside, on the control connection\'s address (RFC 2428)',
  230: 'logged in',
  234: 'TLS accepted: the control connection is encrypted from here on',
  250: 'file action okay, completed',
  257: 'path created / current directory',
  331: 'user name okay, need password',
  332: 'need account',
  350: 'pending further information (REST, RNFR)',
  421: 'service not available, closing the control connection',
  425: 'cannot open the data connection',
  426: 'connection closed; transfer aborted',
  450: 'file unavailable (busy)',
  451: 'local error in processing',
  452: 'insufficient storage',
  500: 'syntax error, command unrecognised (vsftpd also says "500 Illegal PORT command" for a PORT it refuses)',
  501: 'syntax error in parameters',
  502: 'command not implemented',
  503: 'bad sequence of commands',
  504: 'command not implemented for that parameter',
  522: 'network protocol not supported (EPRT family); the supported ones are listed (RFC 2428)',
  530: 'not logged in',
  532: 'need account for storing files',
  534: 'request denied for policy reasons (e.g. TLS required or refused)',
  550: 'file unavailable (not found, no access)',
  552: 'exceeded storage allocation',
  553: 'file name not allowed',
};

function describeEndpoint(e: Endpoint, text: string): Explanation['endpoint'] {
  return { address: e.address, port: e.port, family: e.family, class: classifyAddress(e), text };
}

function activeNat(e: Endpoint): { nat: string; problem?: string } {
  const cls = classifyAddress(e);
  if (isSiteLocal(e)) {
    return {
      problem: `the client announces ${e.address} (${cls}), an address that only exists inside its own network`,
      nat:
        `Behind a NAT without an FTP ALG the server sees the control connection from the NAT's public address, not ${e.address}: ` +
        'a strict server (vsftpd) refuses this with "500 Illegal PORT command", a lenient one tries to connect to it and fails (425). ' +
        'Fix: ftp-alg forward on the client\'s gateway (it rewrites this to its outside address and relays), the kernel FTP helper, or passive mode.',
    };
  }
  return {
    nat: `${e.address} is ${cls === 'public' ? 'a public address' : `a ${cls} address`}: this works if it is the client's own address as the server sees it and the client accepts incoming connections on port ${e.port} (no NAT or firewall in the way).`,
  };
}

function passiveNat(e: Endpoint): { nat: string; problem?: string } {
  const cls = classifyAddress(e);
  if (isSiteLocal(e)) {
    return {
      problem: `the server announces ${e.address} (${cls}), an address that only exists inside its own network`,
      nat:
        `A server behind a NAT announcing its inside address: clients that honour the 227 address (lftp, tnftp, ncftp, curl --no-ftp-skip-pasv-ip) dial ${formatEndpoint(e)} and fail; ` +
        'curl by default and some libraries use the control connection\'s address instead and may work. ' +
        'Fix: ftp-alg reverse in front of the server, or configure the server\'s public address (vsftpd pasv_address, pyftpdlib -n), or EPSV (229 carries no address).',
    };
  }
  return { nat: `${e.address} is ${cls === 'public' ? 'a public address' : `a ${cls} address`}: clients must be able to reach it on port ${e.port} (passive port range open in the server's firewall).` };
}

export function explainLine(input: string): Explanation {
  const line = input.replace(/\r?\n$/, '');
  const code = replyCode(line);
  if (code !== undefined) {
    const meaning = CODES[code] ?? `${code >= 500 ? 'permanent failure' : code >= 400 ? 'transient failure' : code >= 300 ? 'intermediate: more input needed' : code >= 200 ? 'success' : 'preliminary'}`;
    const base: Explanation = { line, kind: 'reply', name: String(code), meaning };
    if (code === 227 || code === 228) {
      const found = code === 227 ? find227(line) : find228(line);
      if (!found) return { ...base, problem: `no endpoint found in this ${code} reply (RFC 1123: clients scan for the first six numbers)` };
      return { ...base, endpoint: describeEndpoint(found.endpoint, line.slice(found.start, found.end)), ...passiveNat(found.endpoint) };
    }
    if (code === 229) {
      const found = find229(line);
      if (!found) return { ...base, problem: 'no (|||port|) found in this 229 reply (RFC 2428 §3)' };
      return {
        ...base,
        endpoint: { port: found.port, text: line.slice(found.start, found.end) },
        nat: `No address inside: the client connects to the server's control address on port ${found.port}. NAT-friendly; only that port must be forwarded to the server (a passive port range).`,
      };
    }
    if (code === 234) return { ...base, nat: 'From here the control connection is TLS: no ALG (kernel helper or ftp-alg) can read or rewrite PORT/227 any more.' };
    return base;
  }
  if (line.trim() === '') return { line, kind: 'unknown', name: '', meaning: "empty line: give one FTP command or reply, e.g. 'PORT 100,64,1,2,4,1'" };
  const { verb, arg } = parseCommand(line);
  if (!/^[A-Z]{3,4}$/.test(verb)) {
    return { line, kind: 'unknown', name: verb, meaning: `"${line.slice(0, 60)}" is neither an FTP command (3–4 letters) nor a reply (3 digits)` };
  }
  const meaning = VERBS[verb] ?? 'an FTP command this tool does not describe';
  const base: Explanation = { line, kind: 'command', name: verb, meaning };
  if (verb === 'PASS') return { ...base, line: 'PASS ****' };
  if (verb === 'PORT' || verb === 'EPRT' || verb === 'LPRT') {
    const e = verb === 'PORT' ? parsePortArg(arg) : verb === 'EPRT' ? parseEprtArg(arg) : parseLprtArg(arg);
    if (!e) return { ...base, problem: `the ${verb} argument "${arg}" does not parse` };
    const privileged = e.port < 1024 ? { problem: `port ${e.port} is privileged: gateways and many servers refuse it as a bounce attempt (RFC 2577)` } : {};
    return { ...base, endpoint: describeEndpoint(e, arg.trim()), ...activeNat(e), ...privileged };
  }
  if (verb === 'AUTH') return { ...base, nat: 'If the server answers 234, the control connection is encrypted: ALGs go blind and active mode through a NAT breaks. ftp-alg refuses AUTH by default (534) so that clients fall back to plain FTP.' };
  if (verb === 'EPSV' && arg.trim().toUpperCase() === 'ALL') {
    return { ...base, meaning: 'EPSV ALL: from now on only EPSV may set up data connections (RFC 2428 §4)' };
  }
  return base;
}

export function formatExplanation(x: Explanation): string {
  const out = [`${x.line}`, `  ${x.kind === 'reply' ? 'reply' : x.kind === 'command' ? 'command' : '?'} ${x.name}: ${x.meaning}`];
  if (x.endpoint) {
    const e = x.endpoint;
    out.push(`  endpoint: ${e.address ? formatEndpoint({ address: e.address, port: e.port, family: e.family ?? 4 }) : `port ${e.port} (address: the control connection's)`}${e.class ? `  [${e.class}]` : ''}`);
  }
  if (x.problem) out.push(`  problem: ${x.problem}`);
  if (x.nat) out.push(`  behind a NAT: ${x.nat}`);
  return out.join('\n') + '\n';
}
