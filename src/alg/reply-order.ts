/**
 * Keeps replies in command order when the gateway answers some commands
 * itself. A client may pipeline `PORT …` and `RETR …`; if the gateway refuses
 * the PORT while the server still owes a reply to an earlier command, the
 * refusal must wait its turn, or the client pairs replies with the wrong
 * commands. Each command forwarded to the server owes one final reply
 * (1xx replies are preliminary and owe nothing).
 */
import type { SentCommand } from './translator.js';

type Entry = { kind: 'server'; sent: SentCommand | undefined } | { kind: 'local'; reply: string };

export class ReplyOrder {
  // The greeting is owed before any command is answered.
  private queue: Entry[] = [{ kind: 'server', sent: undefined }];

  /** The command the next server reply answers (undefined: greeting or nothing owed). */
  get awaiting(): SentCommand | undefined {
    const head = this.queue[0];
    return head?.kind === 'server' ? head.sent : undefined;
  }

  get owed(): number {
    return this.queue.filter((e) => e.kind === 'server').length;
  }

  sent(cmd: SentCommand): void {
    this.queue.push({ kind: 'server', sent: cmd });
  }

  /** A local reply: returned when due now, otherwise queued (returns []). */
  local(reply: string): string[] {
    if (this.queue.length === 0) return [reply];
    this.queue.push({ kind: 'local', reply });
    return [];
  }

  /** The server's final reply has gone out: the local replies now due. */
  finalReplied(): string[] {
    if (this.queue[0]?.kind === 'server') this.queue.shift();
    const due: string[] = [];
    while (this.queue[0]?.kind === 'local') due.push((this.queue.shift() as { reply: string }).reply);
    return due;
  }
}
