/**
 * parseCommand: the one command grammar. What real servers read from the
 * same lines is in test/adversarial/grammar.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { parseCommand } from '../../src/protocol/command.js';

describe('parseCommand', () => {
  test.each([
    { title: 'verb and argument', input: 'USER anonymous', expected: { verb: 'USER', arg: 'anonymous' } },
    { title: 'verb upper-cased', input: 'user anonymous', expected: { verb: 'USER', arg: 'anonymous' } },
    { title: 'mixed-case verb', input: 'ePsV', expected: { verb: 'EPSV', arg: '' } },
    { title: 'no argument', input: 'NOOP', expected: { verb: 'NOOP', arg: '' } },
    { title: 'leading spaces', input: '   pwd', expected: { verb: 'PWD', arg: '' } },
    { title: 'leading tab', input: '\tCDUP', expected: { verb: 'CDUP', arg: '' } },
    { title: 'trailing space after the verb', input: 'CWD ', expected: { verb: 'CWD', arg: '' } },
    { title: 'argument verbatim, case kept', input: 'RETR Some File.TXT', expected: { verb: 'RETR', arg: 'Some File.TXT' } },
    { title: 'a run of spaces separates; trailing ones stay in the argument', input: 'PORT  192,0,2,1,4,1 ', expected: { verb: 'PORT', arg: '192,0,2,1,4,1 ' } },
    { title: 'argument with Latin-1 bytes', input: 'STOR caf\xe9', expected: { verb: 'STOR', arg: 'caf\xe9' } },
    { title: 'EPRT argument', input: 'EPRT |2|fd00::1|6446|', expected: { verb: 'EPRT', arg: '|2|fd00::1|6446|' } },
    { title: 'empty line', input: '', expected: { verb: '', arg: '' } },
    { title: 'only separators', input: ' \t', expected: { verb: '', arg: '' } },
    // ProFTPD separates on C isspace(): these are PORT, EPRT, AUTH, EPSV ALL there.
    { title: 'HTAB separates', input: 'PORT\t192,0,2,1,4,1', expected: { verb: 'PORT', arg: '192,0,2,1,4,1' } },
    { title: 'VT separates', input: 'PORT\v192,0,2,1,4,1', expected: { verb: 'PORT', arg: '192,0,2,1,4,1' } },
    { title: 'FF separates', input: 'EPRT\f|1|192.0.2.1|1025|', expected: { verb: 'EPRT', arg: '|1|192.0.2.1|1025|' } },
    { title: 'mixed run separates', input: 'AUTH \t\v\fTLS', expected: { verb: 'AUTH', arg: 'TLS' } },
    { title: 'EPSV\\tALL', input: 'EPSV\tALL', expected: { verb: 'EPSV', arg: 'ALL' } },
    { title: 'separators inside the argument stay', input: 'RETR a\tb', expected: { verb: 'RETR', arg: 'a\tb' } },
  ])('$title', ({ input, expected }) => {
    expect(parseCommand(input)).toEqual(expected);
  });

  test.each([
    // A bare CR: ProFTPD and Pure-FTPd take it as a separator, vsftpd keeps it in the verb.
    { title: 'bare CR as separator', input: 'PORT\r192,0,2,1,4,1', verb: 'PORT', why: /bare CR/ },
    { title: 'bare CR between two commands', input: 'NOOP\rPORT 192,0,2,1,4,1', verb: 'NOOP', why: /bare CR/ },
    { title: 'bare CR at the end', input: 'PASV\r', verb: 'PASV', why: /bare CR/ },
    { title: 'bare CR in the argument', input: 'RETR a\rb', verb: 'RETR', why: /bare CR/ },
    // NUL ends the line in ProFTPD and Pure-FTPd, is LF to vsftpd.
    { title: 'NUL after the verb', input: 'PASV\0', verb: 'PASV', why: /NUL/ },
    { title: 'NUL in the argument', input: 'PORT 192,0,2,1,4,1\0junk', verb: 'PORT', why: /NUL/ },
    // pyftpdlib upper-cases UTF-8: long s (C5 BF) is S there.
    { title: 'UTF-8 long s in the verb', input: 'PA\xc5\xbfV', verb: 'PA', why: /0xc5/ },
    { title: 'dotless i in the verb', input: 'S\xc4\xb1TE', verb: 'S', why: /0xc4/ },
    { title: 'digit after the verb', input: 'PORT1,2,3,4,5,6', verb: 'PORT', why: /0x31/ },
    { title: '@ after the verb (Pure-FTPd takes @ as a verb letter)', input: 'PASV@', verb: 'PASV', why: /0x40/ },
    { title: 'no-break space is no separator', input: 'PASV\xa0', verb: 'PASV', why: /0xa0/ },
    { title: 'line starting with a quote', input: '"PASV"', verb: '', why: /0x22/ },
    { title: 'line starting with a digit', input: '227 x', verb: '', why: /0x32/ },
  ])('refuses $title', ({ input, verb, why }) => {
    const cmd = parseCommand(input);
    expect(cmd.verb).toBe(verb);
    expect(cmd.malformed).toMatch(why);
  });
});
