/**
 * ftp-alg(8) comes from the one flag table (src/flags.ts): the committed
 * page is what the generator writes today, and every option `--help`
 * shows is in it, and the other way round.
 */
import { expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { renderManPage } from '../../src/man.js';
import { run } from '../helpers/tools.js';
import { CLI } from './ops-process.js';

const page = readFileSync('docs/ftp-alg.8', 'utf8');
const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

test('docs/ftp-alg.8 is current (regenerate with npm run man)', () => {
  expect(page).toBe(renderManPage(version));
});

/** Options named in a --help text or in the roff source (where "-" is written "\-"). */
const optionsIn = (text: string) => new Set([...text.replace(/\\-/g, '-').matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)].map((m) => m[1]!));

test('every option of every gateway command --help is in the man page, and the other way round', async () => {
  const inHelp = new Set<string>();
  for (const command of ['reverse', 'forward', 'run']) {
    const r = await run(process.execPath, [CLI, command, '--help']);
    expect(r.code).toBe(0);
    for (const o of optionsIn(r.stdout.toString())) inHelp.add(o);
  }
  inHelp.delete('help');
  inHelp.delete('version');
  const inPage = new Set([...optionsIn(page)].filter((o) => page.includes(`.B \\-\\-${o.replace(/-/g, '\\-')}`)));
  expect([...inHelp].sort()).toEqual([...inPage].sort());
});

const haveGroff = spawnSync('groff', ['--version']).status === 0;
test(`the page renders without a groff warning${haveGroff ? '' : ' [skipped: needs groff]'}`, ({ skip }) => {
  if (!haveGroff) skip();
  const r = spawnSync('groff', ['-man', '-ww', '-z', '-Tutf8', 'docs/ftp-alg.8'], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(r.stderr).toBe('');
});
