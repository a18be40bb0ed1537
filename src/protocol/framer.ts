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
 */

export type Eol = '\r\n' | '\n';

export interface FramedLine {
  kind: 'line';
  /** The line exactly as received, terminator included. */
  raw: Buffer;
  /** Latin-1 text without terminator and without Telnet command sequences: for parsing only. */
  text: string;
  eol: Eol;
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

  constructor(readonly maxLineBytes: number = DEFAULT_MAX_LINE_BYTES) {
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
    while (start < chunk.length) {
      const lf = chunk.indexOf(LF, start);
      const end = lf === -1 ? chunk.length : lf + 1;
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
      out.push(lineFromRaw(this.take(piece)));
    }
    return out;
  }

  /** At end of stream: the unterminated rest, if any, so that nothing is lost. */
  end(): Buffer | undefined {
    if (this.pendingBytes === 0) return undefined;
    return this.take(Buffer.alloc(0));
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
