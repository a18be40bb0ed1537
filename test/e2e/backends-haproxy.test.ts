/**
 * Real HAProxy (TCP mode, send-proxy-v2, check-send-proxy) in front of
 * three ftp-alg instances on loopback, each with its own passive range,
 * each fronting the same two built-in servers. HAProxy connects to the
 * instances from 127.0.0.2 (the trusted balancer); clients come from other
 * loopback addresses and open their data connections to the instances
 * directly, as with layer-3 forwarding (DNAT) of the passive ranges: a data
 * connection from the balancer's own address would need a PROXY header.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { HAVE, needs, randomFile, run, sha256, tempDir } from '../helpers/tools.js';
import { freeLoopbackPort } from '../helpers/proxy-protocol.js';
import { HAPROXY, haproxyTcpDefaults } from '../../scenarios/lib/haproxy.js';

const HAVE_HAPROXY = existsSync(HAPROXY);
const SKIP = HAVE_HAPROXY ? needs('curl', 'needs curl') : ' [skipped: needs haproxy: apt-get install haproxy]';
const FILE = randomFile(4 << 20);
const CAP = 2;

describe.skipIf(!HAVE_HAPROXY || !HAVE.curl)(`HAProxy in front of three instances${SKIP}`, () => {
  let backends: DemoServer[] = [];
  const instances: TestGateway[] = [];
  let haproxy: ChildProcess | undefined;
  let front = 0;
  let haproxyLog = '';
  let dir: ReturnType<typeof tempDir>;

  beforeAll(async () => {
    dir = tempDir();
    backends = await Promise.all([0, 1].map(() => startDemoServer({ files: { '/f.bin': FILE } })));
    const servers = backends.map((b) => `127.0.0.1:${b.address.port}`).join(',');
    for (let i = 0; i < 3; i++) {
      const lo = 41000 + 100 * i + (process.pid % 20) * 300;
      instances.push(
        await startTestReverse(0, {
          server: servers,
          balance: 'source',
          'proxy-protocol-from': '127.0.0.2/32',
          'passive-ports': `${lo}-${lo + 99}`,
          'max-sessions-per-client': CAP,
        }),
      );
    }
    front = await freeLoopbackPort();
    const cfg = join(dir.path, 'haproxy.cfg');
    writeFileSync(
      cfg,
      [
        ...haproxyTcpDefaults(1000),
        'frontend ftp',
        `  bind 127.0.0.1:${front}`,
        '  default_backend algs',
        'backend algs',
        '  balance roundrobin',
        '  source 127.0.0.2',
        '  option tcp-check',
        '  tcp-check expect string 220',
        ...instances.map((g, i) => `  server alg${i} 127.0.0.1:${g.port} send-proxy-v2 check check-send-proxy inter 500 fall 3 rise 1`),
        '',
      ].join('\n'),
    );
    haproxy = spawn(HAPROXY, ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    haproxy.stderr!.on('data', (d: Buffer) => (haproxyLog += d.toString()));
    haproxy.stdout!.on('data', (d: Buffer) => (haproxyLog += d.toString()));
    // Ready when every instance has had a health check: a session from the balancer itself (v2 LOCAL).
    await Promise.all(instances.map((g) => g.log.waitFor('session-open', (e) => e.client.startsWith('127.0.0.2:'), 20_000)));
  }, 60_000);

  afterAll(async () => {
    haproxy?.kill('SIGKILL');
    await Promise.all(instances.map((g) => g.close()));
    await Promise.all(backends.map((b) => b.close()));
    dir?.remove();
  });

  const realSessions = (g: TestGateway) => g.log.of('session-open').filter((e) => !e.client.startsWith('127.0.0.2:'));

  test('60 concurrent curl sessions from thirty client addresses, passive and active, byte-exact, spread over all instances', async () => {
    // Two sessions per address: within the cap whichever instances they land on.
    const jobs = Array.from({ length: 60 }, (_, i) => {
      const from = `127.0.0.${100 + (i % 30)}`;
      const mode = i % 2 ? ['--disable-epsv', '--no-ftp-skip-pasv-ip'] : ['-P', from];
      return run('curl', ['-sS', '--max-time', '40', '--interface', from, ...mode, `ftp://127.0.0.1:${front}/f.bin`], { timeoutMs: 60_000 });
    });
    const results = await Promise.all(jobs);
    for (const r of results) {
      expect(r.stderr.toString(), `haproxy said: ${haproxyLog.slice(-2000)}`).toBe('');
      expect(sha256(r.stdout)).toBe(sha256(FILE));
    }
    const clients = instances.flatMap((g) => realSessions(g).map((e) => e.client.split(':')[0]));
    expect(instances.map((g) => realSessions(g).length > 0)).toEqual([true, true, true]);
    // Every session is known by its real address, never the balancer's.
    expect(new Set(clients)).toEqual(new Set(Array.from({ length: 30 }, (_, i) => `127.0.0.${100 + i}`)));
  }, 120_000);

  test('per-client caps apply to the real client address on each instance', async () => {
    const sockets: net.Socket[] = [];
    const greet = (from: string) =>
      new Promise<string>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: front, localAddress: from });
        sockets.push(s);
        const timer = setTimeout(() => resolve('no greeting'), 10_000);
        s.once('data', (d) => (clearTimeout(timer), resolve(d.toString().slice(0, 3))));
        s.once('error', (e) => (clearTimeout(timer), resolve(e.message)));
      });
    try {
      const codes: string[] = [];
      // Three instances, CAP each from one address: at most 3 × CAP are let in, whatever the spread.
      for (let i = 0; i < 3 * CAP + 1; i++) codes.push(await greet('127.0.0.30'));
      expect(codes.filter((c) => c !== '220' && c !== '421')).toEqual([]);
      expect(codes.filter((c) => c === '421').length).toBeGreaterThanOrEqual(1);
      // Another address is not affected.
      expect(await greet('127.0.0.31')).toBe('220');
    } finally {
      for (const s of sockets) s.destroy();
    }
    const refused = instances.flatMap((g) => g.log.of('refuse').filter((e) => e.code === 'TOO_MANY_SESSIONS'));
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const e of refused) expect(e.message).toBe(`over the limit of ${CAP} sessions from 127.0.0.30`);
  });

  test('an instance dies mid-run: its sessions end, transfers elsewhere finish intact, new sessions go to the survivors', async () => {
    // One logged-in session per instance (round-robin), known by which instance logged it.
    const sessions: Array<{ c: FtpClient; on: number }> = [];
    const logins = (g: TestGateway) => g.log.of('control').filter((e) => e.direction === 'client->server' && e.line.startsWith('USER ')).length;
    for (let i = 0; i < 3; i++) {
      const before = instances.map(logins);
      const c = await FtpClient.connect('127.0.0.1', front);
      await c.login();
      const on = instances.findIndex((g, k) => logins(g) > before[k]!);
      sessions.push({ c, on });
    }
    expect(new Set(sessions.map((s) => s.on)).size).toBe(3);
    const victim = sessions.find((s) => s.on === 0)!;
    const survivors = sessions.filter((s) => s.on !== 0);
    const transfers = survivors.map((s) => s.c.transfer('PASV', 'RETR /f.bin'));
    const victimClosed = victim.c.read().then(
      (r) => r.code,
      () => 'closed',
    );
    await instances[0]!.close();
    expect(await victimClosed).toMatch(/^(421|closed)$/);
    for (const t of await Promise.all(transfers)) expect(sha256(t.data)).toBe(sha256(FILE));
    // New sessions: HAProxy's redispatch and checks keep them off the dead instance.
    for (let i = 0; i < 4; i++) {
      const r = await run('curl', ['-sS', '--max-time', '20', '--interface', '127.0.0.40', '--disable-epsv', '--no-ftp-skip-pasv-ip', `ftp://127.0.0.1:${front}/f.bin`], { timeoutMs: 30_000 });
      expect(r.stderr.toString()).toBe('');
      expect(sha256(r.stdout)).toBe(sha256(FILE));
    }
    for (const s of sessions) s.c.close();
  }, 120_000);
});
