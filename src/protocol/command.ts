/** An FTP command line split into verb and argument (RFC 959 §5.3). */
export interface Command {
  /** Upper-cased verb, e.g. `PORT`; '' for an empty line. */
  verb: string;
  /** Everything after the separator that follows the verb, verbatim; '' when absent. */
  arg: string;
  /**
   * Set when the line cannot be read as one command the same way by every
   * server: it must be refused (500, MALFORMED_COMMAND), never forwarded.
   */
  malformed?: string;
}

/**
 * The one command grammar of the gateway, as lenient as the most lenient
 * server it may stand in front of, so that nothing a server could execute as
 * PORT, EPRT, LPRT, PASV, EPSV or AUTH passes unvalidated:
 *
 * - the verb ends at the first byte that is not an ASCII letter (Pure-FTPd);
 * - any run of SP, HTAB, VT or FF separates it from the argument (ProFTPD
 *   splits on C isspace(): `PORT\t…`, `PORT\v…` are PORT there);
 * - a CR or NUL inside the line is refused: ProFTPD and Pure-FTPd take CR as
 *   a separator (`PORT\rh1,…`) and end the line at NUL (`PORT h1,…\0junk`),
 *   vsftpd reads a NUL as LF — no two servers agree on such a line;
 * - anything else after the verb is refused too: pyftpdlib upper-cases the
 *   UTF-8 text, so `PA\u017fV` (long s, bytes C5 BF) is PASV there.
 *
 * Leading separators are skipped, though no server accepts them: reading
 * such a line as its verb only makes the gateway check more.
 * The text comes from the framer with Telnet sequences already removed.
 */
export function parseCommand(text: string): Command {
  const lead = /^[ \t\v\f]*/.exec(text)![0].length;
  const letters = /^[A-Za-z]*/.exec(text.slice(lead))![0];
  const verb = letters.toUpperCase();
  const rest = text.slice(lead + letters.length);
  const separator = /^[ \t\v\f]*/.exec(rest)![0];
  const bad = /[\r\0]/.exec(text);
  if (bad) return { verb, arg: '', malformed: `${bad[0] === '\r' ? 'bare CR' : 'NUL'} inside the command line` };
  if (rest !== '' && separator === '') {
    const hex = rest.charCodeAt(0).toString(16).padStart(2, '0');
    return { verb, arg: '', malformed: `byte 0x${hex} where a verb letter or a separator belongs` };
  }
  return { verb, arg: rest.slice(separator.length) };
}

/** Commands whose completion reply closes a data transfer. */
export const TRANSFER_VERBS = new Set(['RETR', 'STOR', 'STOU', 'APPE', 'LIST', 'NLST', 'MLSD']);

/** Which way a transfer command moves data: to the client (download) or to the server (upload). */
export function transferDirection(verb: string): 'to-client' | 'to-server' | undefined {
  if (verb === 'STOR' || verb === 'STOU' || verb === 'APPE') return 'to-server';
  return TRANSFER_VERBS.has(verb) ? 'to-client' : undefined;
}

/** Masks the argument of commands that carry secrets, for logs. */
export function redactCommand(text: string): string {
  // Split on any whitespace here, not just the space parseCommand uses: a
  // `PASS\tsecret` the server rejects must still not reach the logs.
  const verb = text.trimStart().split(/\s/, 1)[0]!.toUpperCase();
  if (verb === 'PASS' || verb === 'ACCT') return `${verb} ****`;
  return text;
}
