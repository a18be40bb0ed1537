import { describe, expect, it } from 'vitest';
import { OobAbortRepair } from '../../src/demo/oob-abort.js';

/** Feeds chunks, returns everything that comes out as latin1 text. */
function feed(chunks: string[]): string {
  const r = new OobAbortRepair();
  return chunks.map((c) => r.push(Buffer.from(c, 'latin1')).toString('latin1')).join('');
}

describe('OobAbortRepair', () => {
  it.each([
    { title: 'ABOR whose LF went out of band gets it back', chunks: ['ABOR\r'], expected: 'ABOR\r\n' },
    { title: 'lower case too', chunks: ['abor\r'], expected: 'abor\r\n' },
    { title: 'after other commands in the same read', chunks: ['NOOP\r\nABOR\r'], expected: 'NOOP\r\nABOR\r\n' },
    { title: 'split before the CR', chunks: ['AB', 'OR\r'], expected: 'ABOR\r\n' },
    { title: 'after Telnet IP and DM', chunks: ['\xff\xf4\xff\xf2ABOR\r'], expected: '\xff\xf4\xff\xf2ABOR\r\n' },
    { title: 'a late LF is dropped, not doubled', chunks: ['ABOR\r', '\nNOOP\r\n'], expected: 'ABOR\r\nNOOP\r\n' },
    { title: 'a complete ABOR is untouched', chunks: ['ABOR\r\n'], expected: 'ABOR\r\n' },
    { title: 'other commands split at CR are untouched', chunks: ['NOOP\r', '\n'], expected: 'NOOP\r\n' },
    { title: 'ABOR inside a longer line is untouched', chunks: ['RETR ABOR\r'], expected: 'RETR ABOR\r' },
    { title: 'a long line ending in ABOR is untouched', chunks: ['X'.repeat(40), 'ABOR\r'], expected: `${'X'.repeat(40)}ABOR\r` },
  ])('$title', ({ chunks, expected }) => {
    expect(feed(chunks)).toBe(expected);
  });
});
