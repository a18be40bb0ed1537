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

  /** Lines may not grow without bound in one reply; FEAT/HELP/STAT lists stay well below. */
  constructor(readonly maxLines: number = 10_000) {}

  get inReply(): boolean {
    return this.open !== undefined;
  }

  push(line: FramedLine): ReplyEvent | undefined {
    if (this.open) {
      this.open.lines.push(line);
      this.lineCount++;
      const t = line.text;
      const code = this.open.code;
      if ((t.length >= 4 && t[3] === ' ' && replyCode(t) === code) || (t.length === 3 && replyCode(t) === code)) {
        return this.close();
      }
      if (this.lineCount >= this.maxLines) return this.close();
      return undefined;
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

  private close(): ReplyEvent {
    const reply = this.open!;
    this.open = undefined;
    this.lineCount = 0;
    return { kind: 'reply', reply };
  }
}
