/**
 * ReplyOrder: local replies (refusals, EPSV ALL) reach the client in command
 * order, after every server reply owed for earlier commands.
 */
import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { ReplyOrder } from '../../src/alg/reply-order.js';
import type { SentCommand } from '../../src/alg/translator.js';

type Step =
  | { sent: string }
  /** A reply the gateway makes itself. */
  | { local: string }
  /** The server's final reply has gone out. */
  | { final: true };

interface Snapshot {
  /** What the step released to the client (local replies). */
  out: string[];
  awaiting: string | undefined;
  owed: number;
}

function run(steps: Step[]): Snapshot[] {
  const order = new ReplyOrder();
  return steps.map((s) => {
    let out: string[] = [];
    if ('sent' in s) order.sent({ verb: s.sent });
    else if ('local' in s) out = order.local(s.local);
    else out = order.finalReplied();
    return { out, awaiting: order.awaiting?.verb, owed: order.owed };
  });
}

const snap = (out: string[], awaiting: string | undefined, owed: number): Snapshot => ({ out, awaiting, owed });

describe('ReplyOrder', () => {
  test('the greeting is owed first', () => {
    const order = new ReplyOrder();
    expect(order.owed).toBe(1);
    expect(order.awaiting).toBeUndefined();
  });

  test('awaiting returns the SentCommand the next reply answers', () => {
    const order = new ReplyOrder();
    const pasv: SentCommand = { verb: 'PASV', passiveAsked: 'EPSV' };
    const retr: SentCommand = { verb: 'RETR' };
    order.sent(pasv);
    order.sent(retr);
    expect(order.awaiting).toBeUndefined(); // still the greeting
    order.finalReplied();
    expect(order.awaiting).toBe(pasv);
    order.finalReplied();
    expect(order.awaiting).toBe(retr);
    order.finalReplied();
    expect(order.awaiting).toBeUndefined();
    expect(order.owed).toBe(0);
  });

  test.each<{ title: string; input: Step[]; expected: Snapshot[] }>([
    {
      title: 'a local reply before the greeting waits for it',
      input: [{ local: '500 A' }, { final: true }],
      expected: [snap([], undefined, 1), snap(['500 A'], undefined, 0)],
    },
    {
      title: 'nothing owed: a local reply goes out at once',
      input: [{ final: true }, { local: '500 A' }],
      expected: [snap([], undefined, 0), snap(['500 A'], undefined, 0)],
    },
    {
      title: 'a local reply waits for the reply to the command before it',
      input: [{ final: true }, { sent: 'USER' }, { local: '501 PORT' }, { final: true }],
      expected: [snap([], undefined, 0), snap([], 'USER', 1), snap([], 'USER', 1), snap(['501 PORT'], undefined, 0)],
    },
    {
      title: 'pipelined: each local reply in its turn',
      input: [
        { sent: 'USER' },
        { local: '500 A' },
        { sent: 'PASS' },
        { local: '500 B' },
        { local: '500 C' },
        { sent: 'RETR' },
        { final: true }, // greeting
        { final: true }, // USER
        { final: true }, // PASS
        { final: true }, // RETR
      ],
      expected: [
        snap([], undefined, 2),
        snap([], undefined, 2),
        snap([], undefined, 3),
        snap([], undefined, 3),
        snap([], undefined, 3),
        snap([], undefined, 4),
        snap([], 'USER', 3),
        snap(['500 A'], 'PASS', 2),
        snap(['500 B', '500 C'], 'RETR', 1),
        snap([], undefined, 0),
      ],
    },
    {
      title: 'local replies after the last owed reply come out together',
      input: [{ final: true }, { sent: 'LIST' }, { local: '500 A' }, { local: '500 B' }, { final: true }, { local: '500 C' }],
      expected: [snap([], undefined, 0), snap([], 'LIST', 1), snap([], 'LIST', 1), snap([], 'LIST', 1), snap(['500 A', '500 B'], undefined, 0), snap(['500 C'], undefined, 0)],
    },
    {
      title: 'an unsolicited final reply with nothing owed changes nothing',
      input: [{ final: true }, { final: true }, { sent: 'NOOP' }],
      expected: [snap([], undefined, 0), snap([], undefined, 0), snap([], 'NOOP', 1)],
    },
  ])('$title', ({ input, expected }) => {
    expect(run(input)).toEqual(expected);
  });

  // Model: replies reach the client in the order the commands were issued.
  const stepArb = fc.oneof(
    fc.constant<'sent'>('sent'),
    fc.constant<'local'>('local'),
    fc.constant<'final'>('final'),
  );
  fcTest.prop([fc.array(stepArb, { maxLength: 40 })], { numRuns: 300 })('replies come out in command order', (kinds) => {
    const order = new ReplyOrder();
    const issued: string[] = ['greeting'];
    const delivered: string[] = [];
    let owed = 1;
    let n = 0;
    for (const k of kinds) {
      if (k === 'sent') {
        const id = `cmd${n++}`;
        order.sent({ verb: id });
        issued.push(id);
        owed++;
      } else if (k === 'local') {
        const id = `local${n++}`;
        issued.push(id);
        delivered.push(...order.local(id));
      } else if (owed > 0) {
        // The server answers the command the order says it is waiting for.
        delivered.push(order.awaiting?.verb ?? 'greeting');
        owed--;
        delivered.push(...order.finalReplied());
      }
    }
    // Everything delivered is a prefix of what was issued, in order.
    expect(delivered).toEqual(issued.slice(0, delivered.length));
    // Once the server owes nothing, nothing is held back.
    if (owed === 0) expect(delivered).toEqual(issued);
    expect(order.owed).toBe(owed);
  });
});

describe('awaitsTransfer: a transfer command still owes its final reply', () => {
  test('true from RETR until its final reply, whatever was pipelined before it', () => {
    const order = new ReplyOrder();
    order.finalReplied(); // the greeting
    expect(order.awaitsTransfer()).toBe(false);
    order.sent({ verb: 'EPSV' });
    order.sent({ verb: 'RETR' });
    expect(order.awaitsTransfer()).toBe(true);
    order.finalReplied(229); // answers EPSV
    expect(order.awaitsTransfer()).toBe(true);
    order.finalReplied(226); // answers RETR
    expect(order.awaitsTransfer()).toBe(false);
    order.sent({ verb: 'NOOP' });
    expect(order.awaitsTransfer()).toBe(false);
  });
});

describe('ABOR: one reply or two for the aborted transfer and ABOR', () => {
  /** Sends the verbs after the greeting, then feeds final reply codes; returns the verb each answered. */
  function answered(verbs: string[], codes: number[]): Array<string | undefined> {
    const order = new ReplyOrder();
    order.finalReplied(220);
    for (const verb of verbs) order.sent({ verb });
    return codes.map((code) => {
      const verb = order.answers(code)?.verb;
      order.finalReplied(code);
      return verb;
    });
  }

  test.each([
    { title: '426 for the transfer, 226 for ABOR', codes: [426, 226, 213], expected: ['RETR', 'ABOR', 'SIZE'] },
    { title: '226 for the transfer, 225 for ABOR (vsftpd)', codes: [226, 225, 213], expected: ['RETR', 'ABOR', 'SIZE'] },
    { title: 'one 226 for both (pyftpdlib once the transfer finished): the next reply is SIZE’s', codes: [226, 213], expected: ['RETR', 'SIZE'] },
    { title: 'an error to ABOR is still ABOR’s', codes: [426, 500, 213], expected: ['RETR', 'ABOR', 'SIZE'] },
  ])('$title', ({ codes, expected }) => {
    expect(answered(['RETR', 'ABOR', 'SIZE'], codes)).toEqual(expected);
  });

  test('after a folded ABOR nothing more is owed for it', () => {
    const order = new ReplyOrder();
    order.finalReplied(220);
    for (const verb of ['RETR', 'ABOR', 'NOOP']) order.sent({ verb });
    order.finalReplied(226);
    expect(order.local('500 refused')).toEqual([]);
    expect(order.finalReplied(200)).toEqual(['500 refused']);
    expect(order.owed).toBe(0);
  });
});
