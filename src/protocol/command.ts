/** An FTP command line split into verb and argument (RFC 959 §5.3). */
export interface Command {
  /** Upper-cased verb, e.g. `PORT`. */
  verb: string;
  /** Everything after the first space, verbatim; '' when absent. */
  arg: string;
}

export function parseCommand(text: string): Command {
  // Some clients send leading spaces or a trailing space after the verb.
  const trimmed = text.replace(/^[ \t]+/, '');
  const space = trimmed.indexOf(' ');
  if (space === -1) return { verb: trimmed.toUpperCase(), arg: '' };
  return { verb: trimmed.slice(0, space).toUpperCase(), arg: trimmed.slice(space + 1) };
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
