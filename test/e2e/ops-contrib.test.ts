/** The shipped service files: the unit verifies and is hardened, the example configuration is valid. */
import { expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { run } from '../helpers/tools.js';
import { CLI } from './ops-process.js';

const UNIT = 'contrib/systemd/ftp-alg.service';
const haveSystemd = spawnSync('systemd-analyze', ['--version']).status === 0;

test(`systemd-analyze verify accepts the unit${haveSystemd ? '' : ' [skipped: needs systemd-analyze]'}`, ({ skip }) => {
  if (!haveSystemd) skip();
  // --man=no: the man page is not installed on the test host.
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', UNIT], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
});

test('the unit has the hardening issue 13 asks for, and reloads with SIGHUP', () => {
  const unit = readFileSync(UNIT, 'utf8');
  for (const line of ['DynamicUser=yes', 'AmbientCapabilities=CAP_NET_BIND_SERVICE', 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ExecReload=/bin/kill -HUP $MAINPID']) {
    expect(unit.split('\n')).toContain(line);
  }
});

test('the example /etc/ftp-alg/ftp-alg.yaml passes run --check', async () => {
  const r = await run(process.execPath, [CLI, 'run', '--config', 'contrib/systemd/ftp-alg.yaml', '--check']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
});
