import { expect, test } from 'vitest';
import { join } from 'node:path';
import { explainLine, formatExplanation } from '../../src/diagnose/explain.js';
import { run } from '../helpers/tools.js';

test.each([
  ['PORT 100,64,1,2,4,1', { kind: 'command', name: 'PORT', endpoint: { address: '100.64.1.2', port: 1025, class: 'shared' } }, /500 Illegal PORT command/],
  ['EPRT |2|fd00::2|5000|', { kind: 'command', name: 'EPRT', endpoint: { address: 'fd00::2', port: 5000, class: 'unique-local' } }, /ftp-alg forward/],
  ['PORT 198,18,0,1,0,21', { kind: 'command', endpoint: { port: 21 }, problem: expect.stringMatching(/privileged/) }, /public|benchmarking/],
  ['227 Entering Passive Mode (100,64,2,2,195,80).', { kind: 'reply', name: '227', endpoint: { address: '100.64.2.2', port: 50000 } }, /ftp-alg reverse/],
  ['229 Entering Extended Passive Mode (|||6446|)', { kind: 'reply', name: '229', endpoint: { port: 6446 } }, /NAT-friendly/],
  ['234 AUTH TLS successful', { kind: 'reply', name: '234' }, /blind|no ALG/],
  ['227 Logout.', { kind: 'reply', problem: expect.stringMatching(/no endpoint/) }, undefined],
  ['PORT 1,2,3', { kind: 'command', problem: expect.stringMatching(/does not parse/) }, undefined],
  ['PASS secret', { line: 'PASS ****' }, undefined],
  ['hello world', { kind: 'unknown' }, undefined],
] as const)('%s', (line, expected, nat) => {
  const x = explainLine(line);
  expect(x).toMatchObject(expected);
  if (nat) expect(x.nat).toMatch(nat);
  expect(formatExplanation(x)).not.toMatch(/secret/);
});

test.each([[''], ['garbage'], ['   ']])('the CLI refuses %j with exit 2 and one line', async (line) => {
  const r = await run(process.execPath, [join(process.cwd(), 'dist/cli.js'), 'explain', line]);
  expect(r.code).toBe(2);
  expect(r.stdout.toString()).toBe('');
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(/^ftp-alg: line: /);
});
