/**
 * How four real FTP servers split a control stream into lines and pick the
 * verb of each, as small models. Each is written from the server's parser
 * and checked against what the server answered on loopback (the table in
 * grammar.test.ts), so a fuzzer can compare the gateway with all of them.
 */

export type ServerName = 'vsftpd' | 'proftpd' | 'pureftpd' | 'pyftpdlib';

/** One command as a server reads it: where its line starts in the stream, and its verb. */
export interface ServerCommand {
  offset: number;
  verb: string;
}

const CR = 0x0d;
const LF = 0x0a;
const IAC = 0xff;

/** C isspace() in the C locale. */
const isSpace = (b: number | undefined) => b === 0x20 || (b !== undefined && b >= 0x09 && b <= 0x0d);
const asciiUpper = (bytes: Buffer) => bytes.toString('latin1').replace(/[a-z]/g, (c) => c.toUpperCase());

/** Lines ended by LF (vsftpd, Pure-FTPd) or only by CRLF (ProFTPD 1.3.8, pyftpdlib: a bare LF stays inside the line). */
function lines(stream: Buffer, crlfOnly: boolean): Array<{ offset: number; body: Buffer }> {
  const out: Array<{ offset: number; body: Buffer }> = [];
  let start = 0;
  for (let i = 0; i < stream.length; i++) {
    if (stream[i] !== LF || (crlfOnly && stream[i - 1] !== CR)) continue;
    out.push({ offset: start, body: stream.subarray(start, crlfOnly ? i - 1 : i) });
    start = i + 1;
  }
  return out;
}

/**
 * vsftpd 3.0.3 (ftpcmdio.c): NUL becomes LF, trailing CRs go, the verb is
 * everything up to the first space, upper-cased.
 */
function vsftpdVerb(body: Buffer): string {
  const line = Buffer.from(body.map((b) => (b === 0 ? LF : b)));
  let end = line.length;
  while (end > 0 && line[end - 1] === CR) end--;
  const space = line.subarray(0, end).indexOf(0x20);
  return asciiUpper(line.subarray(0, space === -1 ? end : space));
}

/**
 * ProFTPD 1.3.8 (netio.c pr_netio_telnet_gets2, cmd.c make_ftp_cmd): Telnet
 * WILL/WONT/DO/DONT drop their option byte, IP and DM vanish, IAC IAC is
 * 0xFF, any other IAC pair stays as data; the line ends at NUL, trailing CR
 * and LF go; leading whitespace is refused; the verb is the first run of
 * non-isspace bytes.
 */
function proftpdVerb(body: Buffer): string {
  const out: number[] = [];
  let mode = 0;
  for (const b of body) {
    if (mode === IAC) {
      if (b === 0xfb || b === 0xfc || b === 0xfd || b === 0xfe || b === 0xf4 || b === 0xf2) {
        mode = b;
        continue;
      }
      if (b !== IAC) out.push(IAC);
      mode = 0;
      out.push(b);
      continue;
    }
    if (mode >= 0xfb) {
      mode = 0; // the option byte of WILL/WONT/DO/DONT
      continue;
    }
    if (b === IAC) {
      mode = IAC;
      continue;
    }
    mode = 0;
    out.push(b);
  }
  let line = Buffer.from(out);
  const nul = line.indexOf(0);
  if (nul !== -1) line = line.subarray(0, nul);
  let end = line.length;
  while (end > 0 && (line[end - 1] === CR || line[end - 1] === LF)) end--;
  if (end === 0 || isSpace(line[0])) return '';
  let i = 0;
  while (i < end && !isSpace(line[i])) i++;
  return asciiUpper(line.subarray(0, i));
}

/**
 * Pure-FTPd (ftp_parser.c), read leniently: the line ends at NUL, one CR
 * before the LF goes, the verb is a run of letters and '@', followed by the
 * end or by any isspace() byte. Debian's 1.0.50 is stricter than this model
 * (it silently ignores a line with a control byte or a leading space); the
 * model keeps upstream's reading so that the fuzzer covers both.
 */
function pureftpdVerb(body: Buffer): string {
  let line = body;
  const nul = line.indexOf(0);
  if (nul !== -1) line = line.subarray(0, nul);
  if (line[line.length - 1] === CR) line = line.subarray(0, -1);
  let i = 0;
  while (i < line.length && (/[A-Za-z@]/.test(String.fromCharCode(line[i]!)))) i++;
  if (i === 0 || (i < line.length && !isSpace(line[i]))) return '';
  return asciiUpper(line.subarray(0, i));
}

const PYFTPDLIB_PROTO_SUFFIXES = ['ABOR', 'STAT', 'QUIT'];

/**
 * pyftpdlib 1.5 (handlers.py found_terminator): UTF-8 with replacement, the
 * verb is the text up to the first space, upper-cased by Python's Unicode
 * rules (U+017F long s is S); an unknown verb ending in ABOR/STAT/QUIT is
 * that command (clients that put Telnet bytes before it).
 */
function pyftpdlibVerb(body: Buffer): string {
  const text = new TextDecoder('utf-8').decode(body);
  const verb = text.split(' ')[0]!.toUpperCase();
  // Only an unknown verb is cut down, and no known verb is longer than 4 and ends so.
  const suffix = verb.slice(-4);
  return verb.length > 4 && PYFTPDLIB_PROTO_SUFFIXES.includes(suffix) ? suffix : verb;
}

const MODELS: Record<ServerName, { crlfOnly: boolean; verb: (body: Buffer) => string }> = {
  vsftpd: { crlfOnly: false, verb: vsftpdVerb },
  proftpd: { crlfOnly: true, verb: proftpdVerb },
  pureftpd: { crlfOnly: false, verb: pureftpdVerb },
  pyftpdlib: { crlfOnly: true, verb: pyftpdlibVerb },
};

export const SERVERS = Object.keys(MODELS) as ServerName[];

/** The commands `server` reads from a control stream, in order. */
export function serverCommands(server: ServerName, stream: Buffer): ServerCommand[] {
  const model = MODELS[server];
  return lines(stream, model.crlfOnly).map(({ offset, body }) => ({ offset, verb: model.verb(body) }));
}
