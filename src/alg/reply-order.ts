/**
 * Keeps replies in command order when the gateway answers some commands
 * itself. A client may pipeline `PORT …` and `RETR …`; if the gateway refuses
 * the PORT while the server still owes a reply to an earlier command, the
 * refusal must wait its turn, or the client pairs replies with the wrong
 * commands. Each command forwarded to the server owes one final reply
 * (1xx replies are preliminary and owe nothing).
 */
import type { SentCommand } from './translator.js';
import { TRANSFER_VERBS } from '../protocol/command.js';

type Entry = { kind: 'server'; sent: SentCommand | undefined } | { kind: 'local'; reply: string };

export class ReplyOrder {
  // The greeting is owed before any command is answered.
  private queue: Entry[] = [{ kind: 'server', sent: undefined }];
  private locals = 0;

  /** The command the next server reply answers (undefined: greeting or nothing owed). */
  get awaiting(): SentCommand | undefined {
    const head = this.queue[0];
    return head?.kind === 'server' ? head.sent : undefined;
  }

  get owed(): number {
    return this.queue.length - this.locals;
  }

  /** Replies of the gateway's own waiting for their turn. */
  get waitingLocals(): number {
    return this.locals;
  }

  /** A transfer command (RETR, STOR, LIST, …) still waits for its final reply. */
  awaitsTransfer(): boolean {
    return this.queue.some((e) => e.kind === 'server' && e.sent !== undefined && TRANSFER_VERBS.has(e.sent.verb));
  }

  sent(cmd: SentCommand): void {
    this.queue.push({ kind: 'server', sent: cmd });
  }

  /** A local reply: returned when due now, otherwise queued (returns []). */
  local(reply: string): string[] {
    if (this.queue.length === 0) return [reply];
    this.queue.push({ kind: 'local', reply });
    this.locals++;
    return [];
  }

  /**
   * Which queued command a final reply with `code` answers. Normally the
   * oldest; but STAT may be sent while a transfer runs (RFC 959 §4.1.3) and
   * its 211/212/213 comes before the transfer's own completion reply.
   */
  private answeredIndex(code: number | undefined): number {
    const head = this.queue[0];
    if (head?.kind !== 'server') return -1;
    if (code !== undefined && code >= 211 && code <= 213 && head.sent && TRANSFER_VERBS.has(head.sent.verb)) {
      const stat = this.queue.findIndex((e) => e.kind === 'server' && e.sent?.verb === 'STAT');
      if (stat > 0) return stat;
    }
    if (this.abortFolded(code)) return 1;
    return 0;
  }

  /**
   * ABOR is owed a reply, but this one cannot be ABOR's (only 225, 226 or an
   * error can): the server answered the aborted transfer and ABOR with one
   * reply. pyftpdlib does when the transfer had already finished ("226 ABOR
   * command successful" and nothing else), so this reply is the next command's.
   */
  private abortFolded(code: number | undefined): boolean {
    const [head, next] = this.queue;
    if (code === undefined || head?.kind !== 'server' || head.sent?.verb !== 'ABOR' || next?.kind !== 'server') return false;
    return code !== 225 && code !== 226 && code < 400;
  }

  /** The command a final reply with this code answers (undefined: the greeting, or nothing owed). */
  answers(code: number): SentCommand | undefined {
    const i = this.answeredIndex(code);
    const e = this.queue[i];
    return i >= 0 && e?.kind === 'server' ? e.sent : undefined;
  }

  /** The server's final reply (with its code) has gone out: the local replies now due. */
  finalReplied(code?: number): string[] {
    const folded = this.abortFolded(code);
    const i = this.answeredIndex(code);
    if (i >= 0) this.queue.splice(i, 1);
    if (folded) this.queue.shift(); // ABOR's reply was folded into the transfer's: nothing more comes for it
    const due: string[] = [];
    while (this.queue[0]?.kind === 'local') {
      due.push((this.queue.shift() as { reply: string }).reply);
      this.locals--;
    }
    return due;
  }
}
