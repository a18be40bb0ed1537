/**
 * Directory listings and time stamps in the formats clients parse: `ls -l`
 * lines for LIST (what vsftpd and most Unix servers send, and what every
 * client's LIST parser expects), and RFC 3659 time-val for MDTM.
 */

export interface FileInfo {
  name: string;
  kind: 'file' | 'dir';
  size: number;
  mtime: Date;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const SIX_MONTHS_MS = 182 * 24 * 3600 * 1000;

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/**
 * `ls -l` shows the time of day for files from the last six months and the
 * year otherwise; day of month zero-padded like vsftpd (`Jan 01 00:00`).
 * UTC, so that listings do not depend on the host's time zone.
 */
export function formatListDate(mtime: Date, now: Date): string {
  const month = MONTHS[mtime.getUTCMonth()] ?? 'Jan';
  const day = pad2(mtime.getUTCDate());
  const age = now.getTime() - mtime.getTime();
  if (age < SIX_MONTHS_MS && age > -3600 * 1000) {
    return `${month} ${day} ${pad2(mtime.getUTCHours())}:${pad2(mtime.getUTCMinutes())}`;
  }
  return `${month} ${day}  ${mtime.getUTCFullYear()}`;
}

/** One LIST line: `-rw-r--r-- 1 ftp ftp <size> Jan 01 00:00 name`. */
export function formatListLine(info: FileInfo, now: Date): string {
  const mode = info.kind === 'dir' ? 'drwxr-xr-x' : '-rw-r--r--';
  const links = info.kind === 'dir' ? 2 : 1;
  return `${mode} ${links} ftp ftp ${info.size} ${formatListDate(info.mtime, now)} ${info.name}`;
}

/** Lines joined with CRLF, each one terminated (RFC 959: ASCII type lines end in CRLF). */
export function formatListing(lines: string[]): Buffer {
  return Buffer.from(lines.map((l) => `${l}\r\n`).join(''), 'utf8');
}

/** RFC 3659 §2.3 time-val, UTC: YYYYMMDDHHMMSS. */
export function formatMdtm(t: Date): string {
  return (
    String(t.getUTCFullYear()).padStart(4, '0') +
    pad2(t.getUTCMonth() + 1) +
    pad2(t.getUTCDate()) +
    pad2(t.getUTCHours()) +
    pad2(t.getUTCMinutes()) +
    pad2(t.getUTCSeconds())
  );
}
