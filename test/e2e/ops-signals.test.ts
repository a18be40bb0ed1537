/**
 * Signals as an operator sends them (issue 12 item 8, issue 13): SIGHUP
 * never ends the process; a second SIGTERM during the drain closes every
 * session at once, removes what the process installed and exits 1.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { spawnSync } from 'node:child_process';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { HAVE, needs, randomFile } from '../helpers/tools.js';
import { heldDownload, listeningPort, startGatewayProcess } from './ops-process.js';

const BIG = randomFile(8 << 20);
let server: DemoServer;
beforeAll(async () => {
  server = await startDemoServer({ files: { '/big.bin': BIG, '/small.txt': 'small\r\n' } });
});
afterAll(async () => {
  await server?.close();
});

const reverseArgs = (...more: string[]) => ['reverse', '--listen', '127.0.0.1:0', '--server', `127.0.0.1:${server.address.port}`, '--public-address', '127.0.0.1', ...more];

describe('SIGHUP in single mode', () => {
  test('is logged (reopen), never ends the process, and sessions keep working', async () => {
    const gw = startGatewayProcess(reverseArgs());
    try {
      const port = await listeningPort(gw);
      const held = await heldDownload(port, '/big.bin');
      gw.child.kill('SIGHUP');
      await gw.waitFor((e) => e.event === 'reopen', 'reopen event');
      gw.child.kill('SIGHUP');
      await gw.waitFor((e) => e.event === 'reopen' && gw.events.filter((x) => x.event === 'reopen').length === 2, 'second reopen event');
      const { data, final } = await held.finish();
      expect(final).toBe(226);
      expect(data.equals(BIG)).toBe(true);
      const c = await FtpClient.connect('127.0.0.1', port);
      await c.login();
      await c.quit();
      held.client.close();
      expect(gw.child.exitCode).toBeNull();
      gw.child.kill('SIGTERM');
      expect((await gw.exited).code).toBe(0);
    } finally {
      await gw.kill();
    }
  });
});

describe('a second SIGTERM during the drain', () => {
  test('closes every session at once and exits 1', async () => {
    const gw = startGatewayProcess(reverseArgs('--drain', '600'));
    try {
      const port = await listeningPort(gw);
      const held = await heldDownload(port, '/big.bin');
      const idle = await FtpClient.connect('127.0.0.1', port);
      await idle.login();
      gw.child.kill('SIGTERM');
      await gw.waitFor((e) => e.event === 'shutdown', 'shutdown event');
      // Draining: sessions still up, for up to 600 s.
      expect(gw.events.filter((e) => e.event === 'session-close')).toHaveLength(0);
      const dataClosed = new Promise<void>((r) => held.data.once('close', () => r()));
      held.data.resume();
      gw.child.kill('SIGTERM');
      const { code } = await gw.exited;
      expect(code).toBe(1);
      await dataClosed;
      const closes = gw.events.filter((e) => e.event === 'session-close');
      expect(closes).toHaveLength(2);
      expect(closes.every((e) => e.reason === 'gateway shutting down')).toBe(true);
      expect(gw.events.filter((e) => e.event === 'shutdown').map((e) => e.reason)).toEqual(['SIGTERM', 'SIGTERM again: closing every session now']);
      idle.close();
      held.client.close();
    } finally {
      await gw.kill();
    }
  });

  const kernelSkip = HAVE.root && spawnSync('nft', ['--version']).status === 0 ? '' : ' [skipped: needs root and nft]';
  test(`removes the kernel data path's nftables table before exiting 1${kernelSkip || needs('root', 'needs root')}`, async ({ skip }) => {
    if (kernelSkip) skip();
    const table = `ops_sig_${process.pid}`;
    const gw = startGatewayProcess(reverseArgs('--drain', '600', '--data-path', 'kernel', '--nft-table', table));
    try {
      const port = await listeningPort(gw);
      expect(spawnSync('nft', ['list', 'table', 'inet', table]).status).toBe(0);
      const c = await FtpClient.connect('127.0.0.1', port);
      await c.login();
      gw.child.kill('SIGTERM');
      await gw.waitFor((e) => e.event === 'shutdown', 'shutdown event');
      gw.child.kill('SIGTERM');
      expect((await gw.exited).code, gw.stderr()).toBe(1);
      expect(spawnSync('nft', ['list', 'table', 'inet', table]).status).not.toBe(0);
      c.close();
    } finally {
      await gw.kill();
      spawnSync('nft', ['delete', 'table', 'inet', table]);
    }
  });
});
