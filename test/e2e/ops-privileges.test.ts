/**
 * Least privilege (issue 13): --user/--group drop root after binding; they
 * are refused with the kernel data path; a port below 1024 without the
 * capability fails with one line naming CAP_NET_BIND_SERVICE.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { HAVE, needs, run } from '../helpers/tools.js';
import { CLI, listeningPort, startGatewayProcess } from './ops-process.js';

let server: DemoServer;
beforeAll(async () => {
  server = await startDemoServer({ files: { '/f.txt': 'dropped\r\n' } });
});
afterAll(async () => {
  await server?.close();
});

const reverseArgs = (...more: string[]) => ['reverse', '--listen', '127.0.0.1:0', '--server', `127.0.0.1:${server.address.port}`, '--public-address', '127.0.0.1', ...more];
const ftpAlg = (args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 30_000 });

test(`--user nobody --group nogroup: the process runs as them once bound, and serves${needs('root', 'needs root to drop privileges')}`, async ({ skip }) => {
  if (!HAVE.root) skip();
  const gw = startGatewayProcess(reverseArgs('--user', 'nobody', '--group', 'nogroup'));
  try {
    const port = await listeningPort(gw);
    const c = await FtpClient.connect('127.0.0.1', port);
    await c.login();
    await c.quit();
    const status = readFileSync(`/proc/${gw.child.pid}/status`, 'utf8');
    const ids = (key: string) => /^(\w+):\s*(.*)$/m.exec(status.split('\n').find((l) => l.startsWith(`${key}:`)) ?? '')?.[2]?.split(/\s+/).filter(Boolean);
    expect(ids('Uid')).toEqual(['65534', '65534', '65534', '65534']);
    expect(ids('Gid')).toEqual(['65534', '65534', '65534', '65534']);
    expect(ids('Groups')).toEqual(['65534']);
    gw.child.kill('SIGTERM');
    expect((await gw.exited).code).toBe(0);
  } finally {
    await gw.kill();
  }
});

test.each([
  [['--user', 'nobody', '--data-path', 'kernel'], /^ftp-alg: --data-path: kernel cannot be combined with --user: .*CAP_NET_ADMIN/],
  [['--user', 'no-such-user-ftp-alg'], /^ftp-alg: --user: "no-such-user-ftp-alg" is not a user on this host$/],
  [['--user', 'nobody', '--group', 'no-such-group-ftp-alg'], /^ftp-alg: --group: "no-such-group-ftp-alg" is not a group on this host$/],
  [['--group', 'nogroup'], /^ftp-alg: --group: needs --user as well$/],
  [['--admin-listen', '0.0.0.0:9121'], /^ftp-alg: --admin-listen: "0.0.0.0:9121" is a wildcard/],
  [['--admin-listen', '[::]:9121'], /^ftp-alg: --admin-listen: "\[::\]:9121" is a wildcard/],
  [['--admin-listen', 'metrics.example.org:9121'], /^ftp-alg: --admin-listen: "metrics.example.org" is not an IP address$/],
])('%j: exit 2, one line', async (extra, message) => {
  const r = await ftpAlg(reverseArgs(...extra));
  expect(r.code).toBe(2);
  expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(message)]);
});

test(`a port below 1024 without CAP_NET_BIND_SERVICE: exit 1, one line naming the capability${needs('root', 'needs root (setpriv) to take the capability away')}`, async ({ skip }) => {
  if (!HAVE.root) skip();
  // As root, drop the capability from the bounding set: what a plain user gets.
  const r = await run('setpriv', ['--bounding-set', '-net_bind_service', '--', process.execPath, CLI, 'reverse', '--listen', '127.0.0.1:1021', '--server', `127.0.0.1:${server.address.port}`, '--public-address', '127.0.0.1'], { timeoutMs: 30_000 });
  expect(r.code).toBe(1);
  expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^ftp-alg: cannot listen: .*EACCES.*127\.0\.0\.1:1021: ports below 1024 need root or CAP_NET_BIND_SERVICE$/)]);
});
