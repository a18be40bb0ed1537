/**
 * Reply assembly (RFC 959 §4.2): a reply is one line `ddd text`, or several
 * lines from `ddd-text` up to a line that starts with the same code and a
 * space. Lines between may be anything, including other digits.
 */
import type { FramedLine } from './framer.js';

export interface Reply {
  code: number;
  lines: FramedLine[];
}

export type ReplyEvent =
  | { kind: 'reply'; reply: Reply }
  /** A line outside any reply that has no code: relayed unchanged. */
  | { kind: 'stray'; line: FramedLine };

export function replyCode(text: string): number | undefined {
  const m = /^([1-5]\d\d)(?:[ -]|$)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

export function isFinalCode(code: number): boolean {
  return code >= 200;
}

export function replyText(reply: Reply): string {
  return reply.lines.map((l) => l.text).join('\n');
}

export class ReplyAssembler {
  private open: Reply | undefined;
  private lineCount = 0;

  /**
   * A multi-line reply may be long (STAT of a big directory) and must still
   * end where the server ends it, or replies and commands fall out of step.
   * Only its first `maxStoredLines` lines and its last are kept: memory stays
   * bounded, and nobody needs the middle of a long reply.
   */
  constructor(readonly maxStoredLines: number = 256) {}

  get inReply(): boolean {
    return this.open !== undefined;
  }

  /** Lines of the open reply so far, stored or not. */
  get openLines(): number {
    return this.lineCount;
  }

  push(line: FramedLine): ReplyEvent | undefined {
    if (this.open) {
      this.lineCount++;
      const t = line.text;
      const code = this.open.code;
      const last = (t.length >= 4 && t[3] === ' ' && replyCode(t) === code) || (t.length === 3 && replyCode(t) === code);
      if (last || this.open.lines.length < this.maxStoredLines) this.open.lines.push(line);
      return last ? this.close() : undefined;
    }
    const code = replyCode(line.text);
    if (code === undefined) return { kind: 'stray', line };
    if (line.text[3] === '-') {
      this.open = { code, lines: [line] };
      this.lineCount = 1;
      return undefined;
    }
    return { kind: 'reply', reply: { code, lines: [line] } };
  }

  /**
   * A line over the cap was relayed in pieces: it still counts. Its first
   * bytes say whether it ends the open reply or is a one-line reply itself.
   */
  pushOverlong(head: Buffer): ReplyEvent | undefined {
    const text = head.toString('latin1');
    const synthetic: FramedLine = { kind: 'line', raw: Buffer.alloc(0), text: text.slice(0, 4), eol: '\r\n' };
    return this.push(synthetic);
  }

  private close(): ReplyEvent {
    const reply = this.open!;
    this.open = undefined;
    this.lineCount = 0;
    return { kind: 'reply', reply };
  }
}
