/**
 * The kernel data path (--data-path kernel): data connections are
 * translated by an nftables table of the gateway's own, not relayed. On
 * loopback the table's output chain does the work; the namespace tests and
 * scenarios cover the prerouting chain.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import net from 'node:net';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { KernelNat, renderMapping, renderTable } from '../../src/gateway/kernel-nat.js';
import { parseIp, type Endpoint } from '../../src/protocol/address.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { HAVE, needs, quietPort, randomFile, run, sha256, startPyftpdlib } from '../helpers/tools.js';
import { reverseMatrix } from './reverse-matrix.js';
import { pausedRetr } from '../helpers/slow-reader.js';

const ip = (s: string) => parseIp(s)!;
/** The build (test/global-setup.ts makes it), for a gateway process of its own. */
const DIST_KERNEL_NAT = join(process.cwd(), 'dist/gateway/kernel-nat.js');
const ep = (s: string, port: number): Endpoint => ({ ...ip(s), port });

describe('nftables text of the kernel data path', () => {
  test('an IPv4 mapping with SNAT: both elements are keyed by the source and our address and port', () => {
    const m = { source: ip('100.64.1.2'), via: ep('198.18.0.1', 40001), target: ep('198.18.0.2', 2121), snatTo: ip('198.18.0.1') };
    expect(renderMapping('t', m, 'add', 30_000)).toBe(
      'add element inet t dnat4 { 100.64.1.2 . 198.18.0.1 . 40001 timeout 30s : 198.18.0.2 . 2121 }\n' +
        'add element inet t snat4 { 100.64.1.2 . 198.18.0.1 . 40001 timeout 30s : 198.18.0.1 }\n',
    );
    expect(renderMapping('t', m, 'delete', 0)).toBe(
      'delete element inet t dnat4 { 100.64.1.2 . 198.18.0.1 . 40001 }\ndelete element inet t snat4 { 100.64.1.2 . 198.18.0.1 . 40001 }\n',
    );
  });

  test('an IPv6 mapping without SNAT, and a timeout rounded up to whole seconds', () => {
    const m = { source: ip('fd00::2'), via: ep('fd00::1', 40002), target: ep('fd00:1::2', 50000) };
    expect(renderMapping('t', m, 'add', 1_500)).toBe('add element inet t dnat6 { fd00::2 . fd00::1 . 40002 timeout 2s : fd00:1::2 . 50000 }\n');
  });

  test('a mapping that would change the address family is refused', () => {
    expect(() => renderMapping('t', { source: ip('::1'), via: ep('127.0.0.1', 1), target: ep('127.0.0.1', 2) }, 'add', 1000)).toThrow(/family/);
  });

  test.skipIf(!HAVE.root)(`the table loads in nft's check mode${needs('root', 'nft -c needs root')}`, async () => {
    const r = await run('nft', ['-c', '-f', '-'], { input: renderTable('ftp_alg_test_check', 1) });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe.skipIf(!HAVE.root)(`nft batches${needs('root', 'programs nftables: run as root')}`, () => {
  for (const channel of ['libnftables', 'nft process'] as const) {
    test(`${channel}: a burst is batched; an item at fault (an expired element) fails alone and the others still land`, async () => {
      const table = `ftp_alg_test_batch_${channel === 'libnftables' ? 'lib' : 'proc'}`;
      const nat = await KernelNat.create(table, { channel });
      expect(nat.channelKind).toBe(channel);
      try {
        const m = (port: number) => ({ source: ip('127.0.0.1'), via: ep('127.0.0.1', port), target: ep('127.0.0.1', port + 1) });
        // Never added: its delete fails inside the batch; remove() treats that as done.
        await Promise.all([nat.add(m(40100), 30_000), nat.remove(m(40200)), nat.add(m(40300), 30_000)]);
        const listed = (await nft('list', 'map', 'inet', table, 'dnat4')).stdout.toString();
        expect(listed).toMatch(/127\.0\.0\.1 \. 127\.0\.0\.1 \. 40100 .*: 127\.0\.0\.1 \. 40101/);
        expect(listed).toMatch(/40300/);
        await expect(nat.add({ ...m(40400), target: ep('::1', 1) }, 1000)).rejects.toThrow(/family/);
        // After a failed batch the channel goes on (libnftables: on a fresh context).
        await nat.remove(m(40100));
        expect((await nft('list', 'map', 'inet', table, 'dnat4')).stdout.toString()).not.toMatch(/40100/);
      } finally {
        await nat.close();
      }
      expect((await nft('list', 'table', 'inet', table)).code).not.toBe(0);
    });
  }

  test('a burst of maps and unmaps from one turn of the event loop is one transaction', async () => {
    const table = 'ftp_alg_test_burst';
    const nat = await KernelNat.create(table);
    try {
      const m = (port: number) => ({ source: ip('127.0.0.1'), via: ep('127.0.0.1', port), target: ep('127.0.0.1', 21) });
      const ports = Array.from({ length: 20 }, (_, i) => 41000 + i);
      const before = nat.transactionCount;
      await Promise.all(ports.map((p) => nat.add(m(p), 30_000)));
      expect(nat.transactionCount - before).toBe(1);
      const listed = (await nft('list', 'map', 'inet', table, 'dnat4')).stdout.toString();
      for (const p of ports) expect(listed).toContain(`. ${p} `);
      await Promise.all(ports.map((p) => nat.remove(m(p))));
      expect(nat.transactionCount - before).toBe(2);
      expect((await nft('list', 'map', 'inet', table, 'dnat4')).stdout.toString()).not.toMatch(/410\d\d/);
    } finally {
      await nat.close();
    }
  });

  test('a gateway process that exits without closing leaves no table behind', async () => {
    const table = 'ftp_alg_test_exit';
    const script = `const { KernelNat } = await import(${JSON.stringify(DIST_KERNEL_NAT)}); await KernelNat.create('${table}'); process.stdout.write('created'); process.exit(3);`;
    try {
      const r = await run(process.execPath, ['--input-type=module', '-e', script]);
      expect(r.stdout.toString()).toBe('created');
      expect(r.code).toBe(3);
      expect((await nft('list', 'table', 'inet', table)).code).not.toBe(0);
    } finally {
      await nft('delete', 'table', 'inet', table);
    }
  });
});

const rootAndPyftpdlib = needs('root', 'the kernel data path programs nftables: run as root') || needs('pyftpdlib', 'needs python3-pyftpdlib: run scripts/install-debian-packages.sh as root');

reverseMatrix('pyftpdlib announcing 100.64.0.2, kernel data path', rootAndPyftpdlib, (dir) => startPyftpdlib(dir, '100.64.0.2'), {
  gatewayFlags: { 'data-path': 'kernel', 'nft-table': 'ftp_alg_test_matrix' },
  dataPath: 'kernel',
});

async function nft(...args: string[]) {
  return run('nft', args);
}

describe.skipIf(!HAVE.root)(`kernel data path: table, mappings, strays${needs('root', 'the kernel data path programs nftables: run as root')}`, () => {
  const TABLE = 'ftp_alg_test_kernel';
  const FILE = randomFile(5 << 20);
  let server: DemoServer;
  let gw: TestGateway;

  beforeAll(async () => {
    server = await startDemoServer({ files: { '/f.bin': FILE }, announceAddress: '100.64.0.2' });
    gw = await startTestReverse(server.address.port, { 'data-path': 'kernel', 'nft-table': TABLE });
  });
  afterAll(async () => {
    await gw?.close();
    await server?.close();
    await nft('delete', 'table', 'inet', TABLE); // only if a failed test left it
  });

  test('the table exists while the gateway runs, and a transfer leaves no element behind', async () => {
    expect((await nft('list', 'table', 'inet', TABLE)).code).toBe(0);
    const client = await FtpClient.connect('127.0.0.1', gw.port);
    await client.login();
    await client.expect('TYPE I', (c) => c === 200);
    const { data } = await client.transfer('PASV', 'RETR /f.bin');
    expect(sha256(data)).toBe(sha256(FILE));
    const maps = (await nft('list', 'table', 'inet', TABLE)).stdout.toString();
    expect(maps).not.toContain('elements');
    await client.quit();
    const unmap = gw.log.of('data-nat').filter((e) => e.action === 'unmap');
    expect(unmap.at(-1)?.reason).toBe('transfer ended with 226');
  });

  test('a data connection from another source does not match: it reaches our port, is closed and reported, and the real one still works', async () => {
    const client = await FtpClient.connect('127.0.0.1', gw.port);
    await client.login();
    await client.expect('TYPE I', (c) => c === 200);
    const pasv = await client.send('PASV');
    const [, hi, lo] = /\((?:\d+,){4}(\d+),(\d+)\)/.exec(pasv.text)!;
    const port = Number(hi) * 256 + Number(lo);
    const refused = gw.log.waitFor('refuse', (e) => e.code === 'DATA_PEER_MISMATCH');
    const stray = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    stray.on('error', () => undefined);
    const e = await refused;
    expect(e.message).toMatch(/^data connection from 127\.0\.0\.2:\d+ did not match the kernel mapping/);
    stray.destroy();
    // The mapping is still there for the real client.
    const data = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = net.connect({ host: '127.0.0.1', port });
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => resolve(Buffer.concat(chunks)));
      s.on('error', reject);
      s.once('connect', () => void client.send('RETR /f.bin', true));
    });
    expect((await client.read()).code).toBe(226);
    expect(sha256(data)).toBe(sha256(FILE));
    await client.quit();
  });

  test('an IPv6 client to an IPv4 server cannot be translated by the kernel: that session is relayed', async () => {
    const v6 = await startTestReverse(server.address.port, { listen: '[::1]:0', 'data-path': 'kernel', 'nft-table': 'ftp_alg_test_v6' });
    try {
      const r = await run('curl', ['-sS', '-g', v6.url('/f.bin')]);
      expect(r.stderr).toBe('');
      expect(sha256(r.stdout)).toBe(sha256(FILE));
      expect(v6.log.of('data-listen')).toHaveLength(1);
      expect(v6.log.of('data-nat')).toEqual([]);
    } finally {
      await v6.close();
    }
  });

  test('a transfer on the kernel path keeps the control connection from idling out', async () => {
    const quiet = await startTestReverse(server.address.port, { 'data-path': 'kernel', 'nft-table': 'ftp_alg_test_idle', 'idle-timeout': 1 });
    try {
      const c = await FtpClient.connect('127.0.0.1', quiet.port);
      await c.login();
      // 1 s idle periods: shorter ones fire during the login on a loaded machine.
      const { data, final } = await pausedRetr(c, '/f.bin', 2_500, () => expect(quiet.log.of('session-close')).toHaveLength(0));
      expect(final).toBe(226);
      expect(sha256(data)).toBe(sha256(FILE));
      await c.quit();
    } finally {
      await quiet.close();
    }
  });

  test('nft failing at run time (our table deleted behind our back): 425 KERNEL_NAT_FAILED, and the session goes on', async () => {
    const other = await startTestReverse(server.address.port, { 'data-path': 'kernel', 'nft-table': 'ftp_alg_test_gone' });
    try {
      expect((await nft('delete', 'table', 'inet', 'ftp_alg_test_gone')).code).toBe(0);
      const c = await FtpClient.connect('127.0.0.1', other.port);
      await c.login();
      const r = await c.send('EPSV');
      expect(r.code).toBe(425);
      expect(r.text).toMatch(/kernel mapping failed/);
      const refusal = await other.log.waitFor('refuse', (e) => e.code === 'KERNEL_NAT_FAILED');
      expect(refusal.message).toMatch(/^kernel mapping failed: .*No such file or directory/);
      expect((await c.send('NOOP')).code).toBe(200);
      await c.quit();
    } finally {
      await other.close(); // the table is already gone: no error
    }
  });

  test('EPSV and RETR sent together: the transfer still counts as running for the idle timer', async () => {
    const quiet = await startTestReverse(server.address.port, { 'data-path': 'kernel', 'nft-table': 'ftp_alg_test_pipelined', 'idle-timeout': 1 });
    try {
      const c = await FtpClient.connect('127.0.0.1', quiet.port);
      await c.login();
      // The RETR reaches the gateway before the channel exists.
      c.socket.write('EPSV\r\nRETR /f.bin\r\n');
      // Keep preliminary replies: the server may send its 150 before the data connection is up.
      const epsv = await c.read(true);
      const preliminary = c.read(true);
      const data = net.connect({ host: '127.0.0.1', port: Number(/\|\|\|(\d+)\|/.exec(epsv.text)![1]) });
      await new Promise<void>((r) => data.once('connect', () => r()));
      data.pause();
      expect((await preliminary).code).toBe(150);
      // Time passing is the stimulus: idle periods with the transfer open.
      await new Promise((r) => setTimeout(r, 2_500));
      expect(quiet.log.of('session-close')).toHaveLength(0);
      const chunks: Buffer[] = [];
      data.on('data', (d: Buffer) => chunks.push(d));
      const ended = new Promise((r) => data.once('end', r));
      data.resume();
      await ended;
      expect((await c.read()).code).toBe(226);
      expect(sha256(Buffer.concat(chunks))).toBe(sha256(FILE));
      await c.quit();
    } finally {
      await quiet.close();
    }
  });

  test('an unused mapping gives up its port after --data-timeout, as the relay does', async () => {
    const p = await quietPort();
    const tight = await startTestReverse(server.address.port, { 'data-path': 'kernel', 'nft-table': 'ftp_alg_test_window', 'passive-ports': `${p}-${p}`, 'data-timeout': 1 });
    try {
      const a = await FtpClient.connect('127.0.0.1', tight.port);
      await a.login();
      expect((await a.send('EPSV')).text).toMatch(new RegExp(`\\|\\|\\|${p}\\|`));
      const unmapped = await tight.log.waitFor('data-nat', (e) => e.action === 'unmap');
      expect(unmapped.reason).toBe('accept window over');
      const b = await FtpClient.connect('127.0.0.1', tight.port);
      await b.login();
      expect((await b.send('EPSV')).text).toMatch(new RegExp(`\\|\\|\\|${p}\\|`));
      await Promise.all([a.quit(), b.quit()]);
    } finally {
      await tight.close();
    }
  });

  test('pipelined PASV and PORT: each new channel replaces the last, none is left open', async () => {
    const c = await FtpClient.connect('127.0.0.1', gw.port);
    await c.login();
    const mine = net.createServer();
    await new Promise<void>((r) => mine.listen(0, '127.0.0.1', r));
    const port = (mine.address() as net.AddressInfo).port;
    const before = gw.log.of('data-nat').length;
    const portArg = `127,0,0,1,${port >> 8},${port & 255}`;
    c.socket.write(Array.from({ length: 4 }, () => `PASV\r\nPORT ${portArg}\r\n`).join(''));
    for (let i = 0; i < 8; i++) expect((await c.read()).code).toBeLessThan(300);
    const events = gw.log.of('data-nat').slice(before);
    expect(events.filter((e) => e.action === 'map')).toHaveLength(8);
    // All but the last were replaced; the last goes with the session.
    expect(events.filter((e) => e.action === 'unmap' && e.reason === 'replaced by a new data channel')).toHaveLength(7);
    await c.quit();
    mine.close();
  });

  test('a table of the same name that is not ours, or is held by a live ftp-alg, is left alone', async () => {
    expect((await run('nft', ['-f', '-'], { input: 'table inet ftp_alg_test_foreign { }\n' })).code).toBe(0);
    expect((await run('nft', ['-f', '-'], { input: `table inet ftp_alg_test_held { comment "ftp-alg pid ${process.ppid}"; }\n` })).code).toBe(0);
    try {
      await expect(startTestReverse(server.address.port, { 'data-path': 'kernel', 'nft-table': 'ftp_alg_test_foreign' })).rejects.toThrow(/table inet ftp_alg_test_foreign exists and is not ftp-alg's/);
      await expect(startTestReverse(server.address.port, { 'data-path': 'kernel', 'nft-table': 'ftp_alg_test_held' })).rejects.toThrow(new RegExp(`in use by ftp-alg \\(pid ${process.ppid}\\)`));
      expect((await nft('list', 'table', 'inet', 'ftp_alg_test_foreign')).code).toBe(0);
      expect((await nft('list', 'table', 'inet', 'ftp_alg_test_held')).code).toBe(0);
    } finally {
      await nft('delete', 'table', 'inet', 'ftp_alg_test_foreign');
      await nft('delete', 'table', 'inet', 'ftp_alg_test_held');
    }
  });

  test('a table a dead ftp-alg left behind is replaced', async () => {
    const gone = await run('sh', ['-c', 'echo $$']);
    const deadPid = Number(gone.stdout.toString().trim());
    expect((await run('nft', ['-f', '-'], { input: `table inet ftp_alg_test_stale { comment "ftp-alg pid ${deadPid}"; }\n` })).code).toBe(0);
    const g = await startTestReverse(server.address.port, { 'data-path': 'kernel', 'nft-table': 'ftp_alg_test_stale' });
    try {
      expect((await nft('list', 'table', 'inet', 'ftp_alg_test_stale')).stdout.toString()).toContain(`ftp-alg pid ${process.pid}`);
    } finally {
      await g.close();
    }
  });

  test('closing the gateway deletes its table', async () => {
    const other = await startTestReverse(server.address.port, { 'data-path': 'kernel', 'nft-table': 'ftp_alg_test_close' });
    expect((await nft('list', 'table', 'inet', 'ftp_alg_test_close')).code).toBe(0);
    await other.close();
    const after = await nft('list', 'table', 'inet', 'ftp_alg_test_close');
    expect(after.code).not.toBe(0);
  });
});
