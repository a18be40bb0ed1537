/**
 * The explicit proxy's answers before login: whatever the client sends, the
 * reply is one encodable line that quotes nothing unprintable back.
 */
import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { parseProxyUser, preLoginStep } from '../../src/alg/proxy-login.js';
import { encodeLine } from '../../src/protocol/framer.js';

describe('preLoginStep', () => {
  test.each<{ title: string; input: [string, string]; expected: { type: string; reply?: RegExp } }>([
    { title: 'USER name@host', input: ['USER', 'anonymous@198.18.0.10'], expected: { type: 'login' } },
    { title: 'NUL as the destination', input: ['USER', 'a@\0'], expected: { type: 'reply', reply: /^501 / } },
    { title: 'bare CR inside the destination', input: ['USER', 'a@ftp\r.example'], expected: { type: 'reply', reply: /^501 / } },
    { title: 'NUL in the verb', input: ['NO\0OP', ''], expected: { type: 'reply', reply: /^501 / } },
    { title: 'a host with bytes above 0x7f is quoted as ?', input: ['USER', 'a@h\xe9st'], expected: { type: 'reply', reply: /^530 "h\?st" is not a host name or IP address$/ } },
    { title: 'a long destination is quoted short', input: ['USER', `a@${'x'.repeat(300)}:99999`], expected: { type: 'reply', reply: /^530 port 99999 is out of range$/ } },
    { title: 'an overlong host is cut', input: ['USER', `a@${'-'.repeat(300)}`], expected: { type: 'reply', reply: /^530 "-{64}\.\.\." is not a host name/ } },
  ])('$title', ({ input, expected }) => {
    const step = preLoginStep(...input);
    expect(step.type).toBe(expected.type);
    if (expected.reply) expect(step.type === 'reply' && step.reply).toMatch(expected.reply);
  });

  fcTest.prop([fc.string({ unit: 'binary-ascii', maxLength: 80 }), fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((n) => String.fromCharCode(n)), maxLength: 300 })], { numRuns: 2000 })(
    'any verb and argument: the reply is one printable line the encoder takes',
    (verb, arg) => {
      const step = preLoginStep(verb.toUpperCase(), arg);
      if (step.type === 'login') {
        expect(parseProxyUser(arg.trim()).ok).toBe(true);
        return;
      }
      expect(step.reply).toMatch(/^[1-5]\d\d [\x20-\x7e]*$/);
      expect(() => encodeLine(step.reply)).not.toThrow();
    },
  );
});
