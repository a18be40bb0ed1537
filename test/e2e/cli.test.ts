/**
 * The ftp-alg binary as users run it: usage errors (exit 2, one line naming
 * the flag), runtime errors (exit 1), the demo's self-check, --print-nft,
 * and a graceful SIGTERM that lets a running transfer finish (exit 0).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { randomFile, run, sha256, tempDir } from '../helpers/tools.js';
import { writeFileSync } from 'node:fs';

const CLI = join(process.cwd(), 'dist/cli.js');
const ftpAlg = (args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 30_000 });

describe('usage and configuration errors: exit 2, one line naming the flag', () => {
  test.each([
    [['reverse', '--server', '127.0.0.1:21', '--public-address', '127.0.0.1'], /listen/],
    [['reverse', '--listen', 'nonsense', '--server', '127.0.0.1:21', '--public-address', '127.0.0.1'], /^ftp-alg: --listen: "nonsense" is not ADDRESS:PORT/],
    [['reverse', '--listen', '127.0.0.1:0', '--server', '127.0.0.1:21', '--public-address', '::1'], /^ftp-alg: --public-address: ::1 is IPv6/],
    [['reverse', '--listen', '127.0.0.1:0', '--server', '127.0.0.1:21', '--public-address', '127.0.0.1', '--passive-ports', '9-3'], /^ftp-alg: --passive-ports:/],
    [['forward', '--listen', '127.0.0.1:0', '--allow-clients', '100.64.0.0/99'], /^ftp-alg: --allow-clients: "100.64.0.0\/99" is not a CIDR block/],
    [['forward', '--listen', '127.0.0.1:0', '--passive', 'maybe'], /passive/],
    [['reverse', '--listen', '127.0.0.1:0', '--server', '127.0.0.1:21', '--public-address', '127.0.0.1', '--data-path', 'teleport'], /data-path.*"teleport"/],
    [['reverse', '--listen', '127.0.0.1:0', '--server', '127.0.0.1:21', '--public-address', '127.0.0.1', '--nft-table', 'a-b'], /^ftp-alg: --nft-table: "a-b" is not an nftables table name/],
    [['forward', '--listen', '127.0.0.1:0', '--transparent', '--tls', 'terminate', '--tls-cert', 'a.crt', '--tls-key', 'a.key'], /^ftp-alg: --tls: terminate needs explicit forward mode/],
    [
      ['reverse', '--listen', '127.0.0.1:0', '--server', '127.0.0.1:21', '--public-address', '127.0.0.1', '--tls', 'terminate', '--tls-cert', 'a.crt', '--tls-key', 'a.key', '--implicit-tls', '--proxy-protocol-from', '127.0.0.2/32'],
      /^ftp-alg: --proxy-protocol-from: cannot be used with --implicit-tls/,
    ],
    [['frobnicate'], /frobnicate/],
  ])('%j', async (args, message) => {
    const r = await ftpAlg(args);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
  });

  test('a port that is taken: exit 1, one line saying so', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const r = await ftpAlg(['reverse', '--listen', `127.0.0.1:${port}`, '--server', '127.0.0.1:21', '--public-address', '127.0.0.1']);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/cannot listen: .*EADDRINUSE/);
    } finally {
      taken.close();
    }
  });
});

test('--data-path kernel without the right to program nftables: exit 1, one line saying why', async () => {
  // As root, drop CAP_NET_ADMIN from the bounding set (util-linux setpriv):
  // the same failure a newcomer without root gets. Not another user: the
  // checkout may not be readable by one.
  const args = [CLI, 'reverse', '--listen', '127.0.0.1:0', '--server', '127.0.0.1:21', '--public-address', '127.0.0.1', '--data-path', 'kernel'];
  const r =
    process.getuid?.() === 0
      ? await run('setpriv', ['--bounding-set', '-net_admin', '--', process.execPath, ...args], { timeoutMs: 30_000 })
      : await run(process.execPath, args, { timeoutMs: 30_000 });
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^ftp-alg: --data-path kernel: (cannot program nftables: .*needs root or CAP_NET_ADMIN|cannot program nftables: nft not found)/);
});

test('run --config: a bad file exits 2 and a listener that cannot start exits 1, one line each', async () => {
  const dir = tempDir();
  try {
    const bad = join(dir.path, 'bad.yaml');
    writeFileSync(bad, 'listeners:\n  - mode: reverse\n    listen: 127.0.0.1:0\n');
    const r1 = await ftpAlg(['run', '--config', bad]);
    expect(r1.code).toBe(2);
    expect(r1.stderr.trim().split('\n')).toEqual([`ftp-alg: ${bad}: listeners[0].server: is required`]);
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    try {
      const busy = join(dir.path, 'busy.yaml');
      writeFileSync(busy, `listeners:\n  - mode: forward\n    listen: 127.0.0.1:0\n  - mode: forward\n    listen: 127.0.0.1:${(taken.address() as net.AddressInfo).port}\n`);
      const r2 = await ftpAlg(['run', '--config', busy, '--log-level', 'error']);
      expect(r2.code).toBe(1);
      expect(r2.stderr.trim().split('\n')).toHaveLength(1);
      expect(r2.stderr).toMatch(/^ftp-alg: cannot listen: .*EADDRINUSE/);
    } finally {
      taken.close();
    }
  } finally {
    dir.remove();
  }
});

test('demo --self-check-only transfers through the gateway and exits 0', async () => {
  const r = await ftpAlg(['demo', '--self-check-only', '--listen', '127.0.0.1:0', '--log-level', 'warn']);
  expect(r.code).toBe(0);
  const out = r.stdout.toString();
  expect(out).toMatch(/rewrite 227: "227 Entering Passive Mode \(100,64,0,2,\d+,\d+\)\."\s+->\s+"227 Entering Passive Mode \(127,0,0,1,\d+,\d+\)\."/);
  expect(out).toMatch(/OK: matches the served file/);
});

test('forward --print-nft prints a redirect for the LAN interface and port', async () => {
  const r = await ftpAlg(['forward', '--print-nft', '--lan-interface', 'eth1', '--listen', '0.0.0.0:2121']);
  expect(r.code).toBe(0);
  expect(r.stdout.toString()).toMatch(/iifname "eth1" tcp dport 21 redirect to :2121/);
});

test('forward --print-nft --data-path kernel also says which table ftp-alg manages and what the filter must accept', async () => {
  const r = await ftpAlg(['forward', '--print-nft', '--data-path', 'kernel', '--nft-table', 'fa_data', '--listen', '0.0.0.0:2121']);
  expect(r.code).toBe(0);
  const out = r.stdout.toString();
  expect(out).toMatch(/creates and deletes "table inet fa_data" itself/);
  expect(out).toMatch(/ct status dnat accept/);
});

describe('graceful shutdown', () => {
  const BIG = randomFile(8 << 20);
  let server: DemoServer;
  beforeAll(async () => {
    server = await startDemoServer({ files: { '/big.bin': BIG } });
  });
  afterAll(async () => {
    await server?.close();
  });

  test('SIGTERM: stop accepting, let the running transfer finish, exit 0', async () => {
    const child = spawn(process.execPath, [CLI, 'reverse', '--listen', '127.0.0.1:0', '--server', `127.0.0.1:${server.address.port}`, '--public-address', '127.0.0.1', '--log-format', 'json', '--drain', '20'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    let stderr = '';
    const seen = (re: RegExp) =>
      new Promise<RegExpMatchArray>((resolve, reject) => {
        const check = () => {
          const m = re.exec(stderr);
          if (m) {
            child.stderr!.off('data', onData);
            resolve(m);
          }
        };
        const onData = (d: Buffer) => {
          stderr += d.toString();
          check();
        };
        child.stderr!.on('data', onData);
        child.once('exit', () => reject(new Error(`exited before ${re}: ${stderr}`)));
        check();
      });
    try {
      const port = Number((await seen(/"event":"listening".*?"port":(\d+)/))[1]);
      const c = await FtpClient.connect('127.0.0.1', port);
      await c.login();
      const epsv = await c.send('EPSV');
      const data = net.connect({ host: '127.0.0.1', port: Number(/\|\|\|(\d+)\|/.exec(epsv.text)![1]) });
      await new Promise<void>((r) => data.once('connect', () => r()));
      data.pause();
      const chunks: Buffer[] = [];
      data.on('data', (d: Buffer) => chunks.push(d));
      expect((await c.send('RETR /big.bin', true)).code).toBe(150);
      child.kill('SIGTERM');
      await seen(/"event":"shutdown"/);
      // New clients are no longer accepted while the running session drains.
      await expect(FtpClient.connect('127.0.0.1', port, 2_000)).rejects.toThrow(/ECONNREFUSED/);
      const ended = new Promise((r) => data.once('end', r));
      data.resume();
      await ended;
      expect((await c.read()).code).toBe(226);
      expect(sha256(Buffer.concat(chunks))).toBe(sha256(BIG));
      await c.quit();
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
