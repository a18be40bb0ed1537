/**
 * Bytes ⇄ lines for one direction of an FTP control connection.
 *
 * TCP hands us arbitrary chunks: a command may arrive one byte at a time, a
 * CRLF may be split across reads, several commands may come in one read
 * (pipelining). The framer keeps what it has not yet seen the end of and
 * returns whole lines, each with its raw bytes so that a line nobody rewrites
 * goes out exactly as it came in (CRLF or bare LF, Telnet IAC bytes, 8-bit
 * path names).
 *
 * A line longer than the cap is not buffered: its bytes are handed out as
 * `overflow` pieces as they arrive, so memory stays bounded whatever the peer
 * sends; the caller decides whether to relay or drop them.
 *
 * One line is repaired rather than passed as it came: ABOR, whose last
 * Telnet or line byte clients send as TCP urgent data (see abortLine).
 */

export type Eol = '\r\n' | '\n';

export interface FramedLine {
  kind: 'line';
  /** The line exactly as received, terminator included. */
  raw: Buffer;
  /** Latin-1 text without terminator and without Telnet command sequences: for parsing only. */
  text: string;
  eol: Eol;
  /**
   * Input bytes this line stands for, when not `raw.length`: an ABOR the
   * framer repaired, or the line after one whose delayed LF it swallowed.
   */
  received?: number;
}

export interface FramedOverflow {
  kind: 'overflow';
  /** Raw bytes of a line over the cap. */
  raw: Buffer;
  /** True on the piece that holds the terminating LF. */
  done: boolean;
}

export type Framed = FramedLine | FramedOverflow;

export const DEFAULT_MAX_LINE_BYTES = 4096;

const LF = 0x0a;
const CR = 0x0d;

export class LineFramer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private overflowing = false;
  /** An ABOR ended at a bare CR that closed its chunk: a leading LF next is its own. */
  private swallowLf = false;
  /** Input bytes swallowed since the last line, reported with the next one. */
  private carry = 0;

  constructor(
    readonly maxLineBytes: number = DEFAULT_MAX_LINE_BYTES,
    /** Repair ABOR lines whose urgent byte was lost: only a client sends ABOR. */
    private readonly repairAbort = true,
  ) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 8) {
      throw new RangeError(`maxLineBytes must be an integer ≥ 8, got ${maxLineBytes}`);
    }
  }

  /** Bytes received but not yet returned (an unterminated line). */
  get buffered(): number {
    return this.pendingBytes;
  }

  push(chunk: Buffer): Framed[] {
    const out: Framed[] = [];
    let start = 0;
    if (this.swallowLf && chunk.length > 0) {
      // The LF of an ABOR already sent on at its CR: it arrived after all.
      this.swallowLf = false;
      if (chunk[0] === LF) {
        start = 1;
        this.carry += 1;
      }
    }
    while (start < chunk.length) {
      const lf = chunk.indexOf(LF, start);
      const end = lf === -1 ? chunk.length : lf + 1;
      if (!this.overflowing && this.repairAbort) {
        const cr = chunk.indexOf(CR, start);
        if (cr !== -1 && cr < end && chunk[cr + 1] !== LF) {
          const abor = abortLine(this.peek(chunk.subarray(start, cr)), '\r\n');
          if (abor) {
            const received = this.pendingBytes + cr + 1 - start;
            this.pending = [];
            this.pendingBytes = 0;
            out.push(this.withCarry(abor, received));
            start = cr + 1;
            this.swallowLf = start === chunk.length;
            continue;
          }
        }
      }
      const piece = chunk.subarray(start, end);
      start = end;

      if (this.overflowing) {
        out.push({ kind: 'overflow', raw: piece, done: lf !== -1 });
        if (lf !== -1) this.overflowing = false;
        continue;
      }
      if (this.pendingBytes + piece.length > this.maxLineBytes) {
        const raw = this.take(piece);
        out.push({ kind: 'overflow', raw, done: lf !== -1 });
        this.overflowing = lf === -1;
        continue;
      }
      if (lf === -1) {
        this.pending.push(piece);
        this.pendingBytes += piece.length;
        continue;
      }
      const raw = this.take(piece);
      const line = lineFromRaw(raw);
      const abor = this.repairAbort ? abortLine(raw.subarray(0, raw.length - line.eol.length), line.eol) : undefined;
      out.push(this.withCarry(abor ?? line, raw.length));
    }
    return out;
  }

  /** At end of stream: the unterminated rest, if any, so that nothing is lost. */
  end(): Buffer | undefined {
    if (this.pendingBytes === 0) return undefined;
    return this.take(Buffer.alloc(0));
  }

  /** The line so far with `more` appended, without consuming it. */
  private peek(more: Buffer): Buffer {
    return this.pending.length === 0 ? more : Buffer.concat([...this.pending, more]);
  }

  /** Marks how many input bytes a line stands for when that is not its length. */
  private withCarry(line: FramedLine, received: number): FramedLine {
    const total = received + this.carry;
    this.carry = 0;
    return total === line.raw.length ? line : { ...line, received: total };
  }

  private take(last: Buffer): Buffer {
    const raw = this.pending.length === 0 ? Buffer.from(last) : Buffer.concat([...this.pending, last]);
    this.pending = [];
    this.pendingBytes = 0;
    return raw;
  }
}

/** Builds a FramedLine from bytes that end in LF. */
export function lineFromRaw(raw: Buffer): FramedLine {
  const crlf = raw.length >= 2 && raw[raw.length - 2] === CR;
  const bodyEnd = raw.length - (crlf ? 2 : 1);
  return {
    kind: 'line',
    raw,
    text: stripTelnet(raw.subarray(0, bodyEnd)),
    eol: crlf ? '\r\n' : '\n',
  };
}

const IAC = 0xff;
const IP = 0xf4;
const DM = 0xf2;
const SB = 0xfa;
const SE = 0xf0;
const WILL = 0xfb;
const DONT = 0xfe;

/**
 * RFC 959 runs the control connection over Telnet: clients send IAC IP IAC DM
 * (Synch) before ABOR, and IAC IAC stands for a literal 0xFF. For parsing we
 * drop command sequences and undouble IAC; the raw bytes are kept elsewhere.
 */
export function stripTelnet(body: Buffer): string {
  if (body.indexOf(IAC) === -1) return body.toString('latin1');
  const out: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const b = body[i]!;
    if (b !== IAC) {
      out.push(b);
      continue;
    }
    const cmd = body[i + 1];
    if (cmd === undefined) break;
    if (cmd === IAC) {
      out.push(IAC);
      i += 1;
    } else if (cmd < SE) {
      // Not a Telnet command: the byte after a lone IAC is data. Happens when
      // a client sends Synch and the DM byte travels as urgent data that the
      // socket API drops, leaving `IAC IP IAC ABOR`.
      continue;
    } else if (cmd >= WILL && cmd <= DONT) {
      i += 2; // option negotiation carries one option byte
    } else if (cmd === SB) {
      const se = body.indexOf(Buffer.from([IAC, SE]), i + 2);
      i = se === -1 ? body.length : se + 1;
    } else {
      i += 1;
    }
  }
  return Buffer.from(out).toString('latin1');
}

/**
 * Encodes a line the gateway writes itself. Refuses CR, LF and NUL so that no
 * value taken from a peer can smuggle a second command into the stream.
 */
export function encodeLine(text: string, eol: Eol = '\r\n'): Buffer {
  if (/[\r\n\0]/.test(text)) throw new Error('refusing to encode a line containing CR, LF or NUL');
  // Buffer's 'latin1' keeps only the low byte of each UTF-16 unit, so U+010A
  // would go out as LF: refuse anything that is not Latin-1 instead.
  if (/[^\x00-\xff]/.test(text)) throw new Error('refusing to encode a line containing a character above U+00FF');
  return Buffer.from(text + eol, 'latin1');
}

/** The line as the peer sent it, Telnet bytes included, without terminator: for rewriting in place. */
export function rawBody(line: FramedLine): string {
  return line.raw.subarray(0, line.raw.length - line.eol.length).toString('latin1');
}

/**
 * Encodes a peer's line after an in-place rewrite. The peer's own bytes go
 * out as they came (a server may well put a NUL or a bare CR in its text);
 * the values the gateway inserted were checked by encodeLine's rules before.
 * Only what would split the line is refused.
 */
export function encodeRewrittenLine(body: string, eol: Eol): Buffer {
  if (body.includes('\n') || /[^\x00-\xff]/.test(body)) throw new Error('refusing to encode a rewritten line containing LF or a character above U+00FF');
  return Buffer.from(body + eol, 'latin1');
}

/** What may stand before ABOR: Telnet IAC IP IAC DM, with any one byte of it lost. */
const ABOR_BODY = /^([\xff\xf4\xf2]{0,8})(abor)$/i;
const SYNCH = Buffer.from([IAC, IP, IAC, DM]);

/**
 * ABOR as the server must see it, or undefined when `body` (a line without
 * its terminator) is not an ABOR.
 *
 * RFC 959 §4.1.3 has clients send Telnet IP and Synch (IAC IP IAC DM, the DM
 * as TCP urgent data) before ABOR; Python's ftplib sends `ABOR\r\n` itself as
 * urgent data. A receiver without SO_OOBINLINE loses the urgent byte: lftp's
 * DM (`IAC IP IAC ABOR`), BSD ftp's second IAC (`IAC IP DM ABOR`, which
 * ProFTPD reads as `\xf2ABOR`), ftplib's LF (`ABOR\r`, which the client
 * never completes: it waits for the reply). Those become the whole Synch and
 * ABOR again, and a bare CR ends the line, so that the next command is never
 * glued to it.
 */
export function abortLine(body: Buffer, eol: Eol): FramedLine | undefined {
  if (body.length > 12) return undefined;
  const m = ABOR_BODY.exec(body.toString('latin1'));
  if (!m || (m[1] !== '' && !m[1]!.includes('\xff'))) return undefined;
  const verb = Buffer.from(m[2]!, 'latin1');
  const raw = Buffer.concat([m[1] === '' ? Buffer.alloc(0) : SYNCH, verb, Buffer.from(eol, 'latin1')]);
  return { kind: 'line', raw, text: m[2]!, eol };
}

/**
 * An ABOR line as its client sent it on the wire, in three parts: bytes
 * before the urgent one, the part whose last byte goes as urgent data, and
 * the rest. Telnet Synch makes its DM urgent (RFC 854, lftp); a plain ABOR
 * goes urgent whole, as Python's ftplib sends it. Servers differ in which
 * form they take (ProFTPD hangs on a plain ABOR whose LF is urgent,
 * Pure-FTPd ignores a line with Telnet bytes), so the client's form is kept.
 */
export function abortUrgentParts(raw: Buffer): [Buffer, Buffer, Buffer] {
  if (raw.subarray(0, SYNCH.length).equals(SYNCH)) return [raw.subarray(0, 3), raw.subarray(3, 4), raw.subarray(4)];
  return [raw.subarray(0, 0), raw, raw.subarray(raw.length)];
}
