/**
 * `EPRT |2|::|port|` (lftp with an unbound data socket) and `PORT 0,0,0,0,…`
 * mean "the address this control connection comes from". They were refused
 * as bounces (BOUNCE_ADDRESS), and lftp fell back to passive for every file.
 * Through a real reverse gateway: accepted, rewritten for the server, and the
 * data reaches the client's own address.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import net from 'node:net';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { HAVE, needs, run } from '../helpers/tools.js';

const FILE = Buffer.from('through an unspecified address\n');

describe.each([
  { family: 6, loopback: '::1', command: (port: number) => `EPRT |2|::|${port}|`, kind: 'EPRT' },
  { family: 4, loopback: '127.0.0.1', command: (port: number) => `EPRT |1|0.0.0.0|${port}|`, kind: 'EPRT' },
  { family: 4, loopback: '127.0.0.1', command: (port: number) => `PORT 0,0,0,0,${port >> 8},${port & 255}`, kind: 'PORT' },
])('IPv$family: $kind with the unspecified address', ({ loopback, command, kind }) => {
  let server: DemoServer;
  let gw: TestGateway;
  beforeAll(async () => {
    server = await startDemoServer({ host: loopback, files: { '/f.txt': FILE } });
    const bracketed = loopback.includes(':') ? `[${loopback}]` : loopback;
    gw = await startTestReverse(server.address.port, { listen: `${bracketed}:0` }, loopback);
  });
  afterAll(async () => {
    await gw?.close();
    await server?.close();
  });

  test('is the client itself: accepted, rewritten, and the data arrives', async () => {
    const mine = net.createServer();
    await new Promise<void>((r) => mine.listen(0, loopback, r));
    const port = (mine.address() as net.AddressInfo).port;
    const accepted = new Promise<net.Socket>((r) => mine.once('connection', r));
    const c = await FtpClient.connect(loopback, gw.port);
    try {
      await c.login();
      expect((await c.send(command(port))).code).toBe(200);
      expect((await c.send('RETR /f.txt', true)).code).toBe(150);
      const data = await accepted;
      const chunks: Buffer[] = [];
      data.on('data', (d: Buffer) => chunks.push(d));
      await new Promise((r) => data.once('end', r));
      expect((await c.read()).code).toBe(226);
      expect(Buffer.concat(chunks)).toEqual(FILE);
      expect(gw.log.of('refuse')).toEqual([]);
      const rewrite = gw.log.of('rewrite').find((e) => e.kind === kind);
      expect(rewrite?.reason).toContain(loopback.includes(':') ? `[::1]:${port}` : `127.0.0.1:${port}`);
      data.destroy();
      await c.quit();
    } finally {
      c.close();
      mine.close();
    }
  });
});

test.skipIf(!HAVE.lftp)(`real lftp over IPv6, active mode: its EPRT |2|::| works, no fallback to passive${needs('lftp', 'needs lftp: run scripts/install-debian-packages.sh as root')}`, async () => {
  const server = await startDemoServer({ host: '::1', files: { '/f.txt': FILE } });
  const gw = await startTestReverse(server.address.port, { listen: '[::1]:0' }, '::1');
  try {
    const script = `set ftp:passive-mode off; set net:max-retries 1; set net:timeout 10; open -u anonymous,x ftp://[::1]:${gw.port}; cat f.txt; bye`;
    const r = await run('lftp', ['-c', script], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.toString()).toBe(FILE.toString());
    const sent = gw.log.of('control').filter((e) => e.direction === 'client->server').map((e) => e.line);
    expect(sent.some((l) => /^EPRT \|2\|::\|\d+\|$/.test(l))).toBe(true);
    expect(sent.some((l) => /^(PASV|EPSV)/.test(l))).toBe(false);
    expect(gw.log.of('refuse').filter((e) => e.code === 'BOUNCE_ADDRESS')).toEqual([]);
  } finally {
    await gw.close();
    await server.close();
  }
});
