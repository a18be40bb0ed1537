/**
 * Reply assembly (RFC 959 §4.2) and command parsing.
 */
import { describe, expect, test } from 'vitest';
import { lineFromRaw, type FramedLine } from '../../src/protocol/framer.js';
import {
  ReplyAssembler,
  isFinalCode,
  replyCode,
  replyText,
  type ReplyEvent,
} from '../../src/protocol/reply.js';
import { TRANSFER_VERBS, redactCommand } from '../../src/protocol/command.js';

const line = (text: string): FramedLine => lineFromRaw(Buffer.from(`${text}\r\n`, 'latin1'));

/** Feeds lines and returns, for each, what came out (as plain values). */
function run(
  texts: string[],
  assembler = new ReplyAssembler(),
): Array<{ code: number; lines: string[] } | { stray: string } | undefined> {
  return texts.map((t) => describeEvent(assembler.push(line(t))));
}

function describeEvent(e: ReplyEvent | undefined): { code: number; lines: string[] } | { stray: string } | undefined {
  if (e === undefined) return undefined;
  if (e.kind === 'stray') return { stray: e.line.text };
  return { code: e.reply.code, lines: e.reply.lines.map((l) => l.text) };
}

describe('replyCode', () => {
  test.each([
    { title: 'code and space', input: '220 Service ready', expected: 220 },
    { title: 'code and dash', input: '211-Features:', expected: 211 },
    { title: 'code alone', input: '200', expected: 200 },
    { title: 'lowest class', input: '100 x', expected: 100 },
    { title: 'highest class', input: '599 x', expected: 599 },
    { title: 'four digits', input: '2200 x', expected: undefined },
    { title: 'two digits', input: '22', expected: undefined },
    { title: 'class 6', input: '600 x', expected: undefined },
    { title: 'class 0', input: '020 x', expected: undefined },
    { title: 'leading space', input: ' 220 x', expected: undefined },
    { title: 'letter after code', input: '220x', expected: undefined },
    { title: 'tab after code', input: '220\tx', expected: undefined },
    { title: 'no digits', input: 'Features', expected: undefined },
    { title: 'empty', input: '', expected: undefined },
  ])('$title: $input', ({ input, expected }) => {
    expect(replyCode(input)).toBe(expected);
  });
});

describe('isFinalCode', () => {
  test.each([
    { code: 125, expected: false },
    { code: 150, expected: false },
    { code: 199, expected: false },
    { code: 200, expected: true },
    { code: 226, expected: true },
    { code: 350, expected: true },
    { code: 421, expected: true },
    { code: 550, expected: true },
  ])('$code → $expected', ({ code, expected }) => {
    expect(isFinalCode(code)).toBe(expected);
  });
});

describe('ReplyAssembler', () => {
  test.each([
    {
      title: 'single-line reply',
      input: ['220 Service ready'],
      expected: [{ code: 220, lines: ['220 Service ready'] }],
    },
    {
      title: 'bare code',
      input: ['200'],
      expected: [{ code: 200, lines: ['200'] }],
    },
    {
      title: 'FEAT',
      input: ['211-Features:', ' EPSV', ' MDTM', ' UTF8', '211 End'],
      expected: [undefined, undefined, undefined, undefined, { code: 211, lines: ['211-Features:', ' EPSV', ' MDTM', ' UTF8', '211 End'] }],
    },
    {
      title: 'inner lines starting with other codes and with the same code and a dash',
      input: ['214-The following commands are recognized:', '200 not the end', '214-still not the end', '500 neither', '214 Help OK.'],
      expected: [
        undefined,
        undefined,
        undefined,
        undefined,
        {
          code: 214,
          lines: ['214-The following commands are recognized:', '200 not the end', '214-still not the end', '500 neither', '214 Help OK.'],
        },
      ],
    },
    {
      title: 'same code indented does not close',
      input: ['211-Status', ' 211 not yet', '211 End'],
      expected: [undefined, undefined, { code: 211, lines: ['211-Status', ' 211 not yet', '211 End'] }],
    },
    {
      title: 'same code followed by more digits does not close',
      input: ['211-Status', '2110 not yet', '211 End'],
      expected: [undefined, undefined, { code: 211, lines: ['211-Status', '2110 not yet', '211 End'] }],
    },
    {
      title: 'closed by the bare code',
      input: ['211-Status', 'line', '211'],
      expected: [undefined, undefined, { code: 211, lines: ['211-Status', 'line', '211'] }],
    },
    {
      title: 'multi-line 227',
      input: ['227-Entering Passive Mode (192,0,2,1,4,1)', '227 OK'],
      expected: [undefined, { code: 227, lines: ['227-Entering Passive Mode (192,0,2,1,4,1)', '227 OK'] }],
    },
    {
      title: 'stray lines outside a reply',
      input: ['Welcome to the lab', '', '220 Ready'],
      expected: [{ stray: 'Welcome to the lab' }, { stray: '' }, { code: 220, lines: ['220 Ready'] }],
    },
    {
      title: 'lines without a code inside a reply belong to it',
      input: ['230-Welcome', 'no code here', '', '230 Login successful.'],
      expected: [undefined, undefined, undefined, { code: 230, lines: ['230-Welcome', 'no code here', '', '230 Login successful.'] }],
    },
    {
      title: 'invalid codes are stray',
      input: ['600 nope', '099 nope', '2200 nope'],
      expected: [{ stray: '600 nope' }, { stray: '099 nope' }, { stray: '2200 nope' }],
    },
    {
      title: 'consecutive replies are independent',
      input: ['150 Opening', '226-Transfer complete', '226 Bye', '221 Goodbye'],
      expected: [
        { code: 150, lines: ['150 Opening'] },
        undefined,
        { code: 226, lines: ['226-Transfer complete', '226 Bye'] },
        { code: 221, lines: ['221 Goodbye'] },
      ],
    },
  ])('$title', ({ input, expected }) => {
    expect(run(input)).toEqual(expected);
  });

  test('inReply while a multi-line reply is open', () => {
    const a = new ReplyAssembler();
    expect(a.inReply).toBe(false);
    a.push(line('211-Features:'));
    expect(a.inReply).toBe(true);
    a.push(line(' EPSV'));
    expect(a.inReply).toBe(true);
    a.push(line('211 End'));
    expect(a.inReply).toBe(false);
  });

  test('keeps the FramedLine objects, raw bytes included', () => {
    const a = new ReplyAssembler();
    const first = line('211-Features:');
    const last = lineFromRaw(Buffer.from('211 End\n', 'latin1'));
    a.push(first);
    const event = a.push(last);
    expect(event?.kind).toBe('reply');
    if (event?.kind !== 'reply') return;
    expect(event.reply.lines[0]).toBe(first);
    expect(event.reply.lines[1]).toBe(last);
    expect(event.reply.lines[1]?.raw.toString('latin1')).toBe('211 End\n');
  });

  test('a long reply ends where the server ends it; only the first lines and the last are stored', () => {
    expect(run(['211-a', 'b', 'c', 'd', '211 e'], new ReplyAssembler(2))).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      { code: 211, lines: ['211-a', 'b', '211 e'] },
    ]);
  });

  test('an over-long line still counts: a final one closes the reply, a lone one is a reply', () => {
    const a = new ReplyAssembler();
    expect(a.push(line('211-Status'))).toBeUndefined();
    const closed = a.pushOverlong(Buffer.from('211 xxxxxxxxxxxx'));
    expect(closed?.kind === 'reply' && closed.reply.code).toBe(211);
    const lone = a.pushOverlong(Buffer.from('550 yyyyyyyy'));
    expect(lone?.kind === 'reply' && lone.reply.code).toBe(550);
  });

  test('replyText joins line texts', () => {
    const a = new ReplyAssembler();
    a.push(line('211-Features:'));
    a.push(line(' EPSV'));
    const event = a.push(line('211 End'));
    expect(event?.kind === 'reply' && replyText(event.reply)).toBe('211-Features:\n EPSV\n211 End');
  });
});

describe('redactCommand', () => {
  test.each([
    { title: 'PASS masked', input: 'PASS s3cret', expected: 'PASS ****' },
    { title: 'lower-case pass masked', input: 'pass s3cret', expected: 'PASS ****' },
    { title: 'leading spaces', input: '  PASS s3cret', expected: 'PASS ****' },
    { title: 'password with spaces', input: 'PASS a b c', expected: 'PASS ****' },
    { title: 'empty password', input: 'PASS', expected: 'PASS ****' },
    { title: 'tab separator still masked', input: 'PASS\ts3cret', expected: 'PASS ****' },
    { title: 'ACCT masked', input: 'ACCT billing-7', expected: 'ACCT ****' },
    { title: 'USER kept', input: 'USER anonymous', expected: 'USER anonymous' },
    { title: 'other verb kept verbatim', input: 'RETR PASS s3cret', expected: 'RETR PASS s3cret' },
    { title: 'PASV is not PASS', input: 'PASV', expected: 'PASV' },
    { title: 'longer verb starting with PASS kept', input: 'PASSX y', expected: 'PASSX y' },
  ])('$title', ({ input, expected }) => {
    expect(redactCommand(input)).toBe(expected);
  });
});

test('TRANSFER_VERBS', () => {
  expect([...TRANSFER_VERBS].sort()).toEqual(['APPE', 'LIST', 'MLSD', 'NLST', 'RETR', 'STOR', 'STOU']);
});
