/**
 * Regressions for defects an independent review reproduced: hostile or
 * broken servers must not crash the gateway or desynchronise a session.
 * Servers here are scripted (a few lines on a loopback socket) because the
 * faults — a reset right after the greeting, a NUL in a greeting, a 5 kB
 * reply line — are what no real server produces on demand.
 */
import { afterEach, describe, expect, test } from 'vitest';
import net from 'node:net';
import { FtpClient } from '../../src/client/ftp-client.js';
import { startDemoServer } from '../../src/demo/server.js';
import { PortPool } from '../../src/gateway/ports.js';
import { DataChannel } from '../../src/gateway/data.js';
import { ipOf } from '../../src/protocol/address.js';
import { startTestForward, startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { randomFile, sha256 } from '../helpers/tools.js';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A server that runs `onLine` for each line it receives; `greet` is written on connect. */
async function scripted(greet: Buffer | string, onLine: (line: string, s: net.Socket) => void = () => undefined): Promise<number> {
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.write(greet);
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        onLine(line, s);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  return (server.address() as net.AddressInfo).port;
}

async function gateway(start: () => Promise<TestGateway>): Promise<TestGateway> {
  const gw = await start();
  cleanups.push(() => gw.close());
  return gw;
}

/** A session that works end to end: the gateway is alive and unharmed. */
async function stillServes(): Promise<void> {
  const demo = await startDemoServer({ files: { '/a.txt': 'ok' } });
  cleanups.push(() => demo.close());
  const gw = await gateway(() => startTestReverse(demo.address.port));
  const c = await FtpClient.connect('127.0.0.1', gw.port);
  await c.login();
  expect((await c.transfer('EPSV', 'RETR /a.txt')).data.toString()).toBe('ok');
  await c.quit();
}

describe('explicit proxy against broken servers', () => {
  test('a server that resets right after its greeting: the client is closed, the process lives', async () => {
    // Reset as soon as the greeting is out: the gateway's USER then meets a dead socket.
    const resetting = net.createServer((s) => {
      s.on('error', () => undefined);
      s.write('220 hi\r\n', () => s.resetAndDestroy());
    });
    await new Promise<void>((r) => resetting.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => resetting.close(r)));
    const gw = await gateway(() => startTestForward());
    for (let i = 0; i < 5; i++) {
      const c = await FtpClient.connect('127.0.0.1', gw.port);
      expect((await c.read()).code).toBe(220);
      const closed = new Promise<void>((r) => c.socket.once('close', () => r()));
      c.socket.write(`USER anonymous@127.0.0.1:${(resetting.address() as net.AddressInfo).port}\r\n`);
      await closed;
    }
    await stillServes();
  });

  test('a NUL in a refused greeting reaches the client sanitised as a 421', async () => {
    const port = await scripted(Buffer.from('421 bad\0x\r\n', 'latin1'));
    const gw = await gateway(() => startTestForward());
    const c = await FtpClient.connect('127.0.0.1', gw.port);
    expect((await c.read()).code).toBe(220);
    const r = await c.send(`USER anonymous@127.0.0.1:${port}`);
    expect(r.code).toBe(421);
    expect(r.text).not.toContain('\0');
    await stillServes();
  });

  test('0.0.0.0 and the gateway\'s own addresses are not destinations', async () => {
    const gw = await gateway(() => startTestForward({ 'allow-destinations': '198.18.0.0/15' }));
    for (const dest of ['0.0.0.0:21', '127.0.0.1:21', '[::]:21']) {
      const c = await FtpClient.connect('127.0.0.1', gw.port);
      await c.read();
      const r = await c.send(`USER anonymous@${dest}`);
      expect(r.code, dest).toBe(530);
      c.close();
    }
    expect(gw.log.of('refuse').filter((e) => e.code === 'DESTINATION_NOT_ALLOWED')).toHaveLength(3);
  });
});

describe('AUTH under --tls passthrough', () => {
  test('a refused AUTH leaves the session parsed: a bounce PORT afterwards is still refused', async () => {
    const seen: string[] = [];
    const port = await scripted('220 ready\r\n', (line, s) => {
      seen.push(line);
      if (line.startsWith('AUTH')) s.write('504 Security mechanism not understood\r\n');
      else s.write('200 ok\r\n');
    });
    const gw = await gateway(() => startTestReverse(port, { tls: 'passthrough' }));
    const c = await FtpClient.connect('127.0.0.1', gw.port);
    expect((await c.read()).code).toBe(220);
    expect((await c.send('AUTH TLS')).code).toBe(504);
    expect((await c.send('PORT 127,0,0,2,200,10')).code).toBe(500);
    await gw.log.waitFor('refuse', (e) => e.code === 'BOUNCE_ADDRESS');
    expect(seen.some((l) => l.startsWith('PORT'))).toBe(false);
    c.close();
  });

  test('after a 234 the login timer stops: the encrypted session is not cut at --login-timeout', async () => {
    const port = await scripted('220 ready\r\n', (line, s) => {
      if (line.startsWith('AUTH')) s.write('234 go ahead\r\n');
    });
    const gw = await gateway(() => startTestReverse(port, { tls: 'passthrough', 'login-timeout': 0.2 }));
    const c = await FtpClient.connect('127.0.0.1', gw.port);
    expect((await c.read()).code).toBe(220);
    expect((await c.send('AUTH TLS')).code).toBe(234);
    // Time passing is the stimulus: several login timeouts go by.
    await new Promise((r) => setTimeout(r, 800));
    expect(gw.log.of('session-close')).toHaveLength(0);
    c.close();
  });
});

test('a reply line over --max-line still counts: later replies stay paired with their commands', async () => {
  const port = await scripted('220 ready\r\n', (line, s) => {
    if (line.startsWith('CWD')) s.write(`550 ${'x'.repeat(5000)}\r\n`);
    else s.write('200 ok\r\n');
  });
  const gw = await gateway(() => startTestReverse(port, { 'max-line': 1024 }));
  const c = await FtpClient.connect('127.0.0.1', gw.port);
  expect((await c.read()).code).toBe(220);
  c.socket.write('CWD /nowhere\r\nPORT 127,0,0,9,4,1\r\nNOOP\r\n');
  const raw = await new Promise<string>((resolve) => {
    let got = '';
    c.socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if ((got.match(/\r\n/g) ?? []).length >= 3) resolve(got);
    });
  });
  expect(raw.split('\r\n').slice(0, 3).map((l) => l.slice(0, 3))).toEqual(['550', '500', '200']);
  c.close();
});

test('the completion reply waits for the download even when the client half-closes its idle side first', async () => {
  const big = randomFile(8 << 20);
  const demo = await startDemoServer({ files: { '/big.bin': big } });
  cleanups.push(() => demo.close());
  const gw = await gateway(() => startTestReverse(demo.address.port));
  const c = await FtpClient.connect('127.0.0.1', gw.port);
  await c.login();
  const epsv = await c.send('EPSV');
  const data = net.connect({ host: '127.0.0.1', port: Number(/\|\|\|(\d+)\|/.exec(epsv.text)![1]), allowHalfOpen: true });
  await new Promise<void>((r) => data.once('connect', () => r()));
  data.pause();
  data.end(); // the client's own, empty, direction is done
  expect((await c.send('RETR /big.bin', true)).code).toBe(150);
  let completed = false;
  const final = c.read().then((r) => ((completed = true), r));
  // Time passing is the stimulus: the data is stuck in a paused reader, so no 226 yet.
  await new Promise((r) => setTimeout(r, 500));
  expect(completed).toBe(false);
  const chunks: Buffer[] = [];
  data.on('data', (d: Buffer) => chunks.push(d));
  const ended = new Promise((r) => data.once('end', r));
  data.resume();
  await ended;
  expect((await final).code).toBe(226);
  expect(sha256(Buffer.concat(chunks))).toBe(sha256(big));
  c.close();
});

test('a passive port returns to the pool when its listener stops, while the relayed connection still runs', async () => {
  const target = net.createServer((s) => s.on('error', () => undefined));
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => target.close(r)));
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const p = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const pool = new PortPool({ lo: p, hi: p });
  let relaying!: () => void;
  const opened = new Promise<void>((r) => (relaying = r));
  const channel = await DataChannel.open({
    session: 't',
    mode: 'passive',
    listenHost: '127.0.0.1',
    pool,
    acceptFrom: () => true,
    acceptLabel: '127.0.0.1',
    dialTarget: { ...ipOf('127.0.0.1'), port: (target.address() as net.AddressInfo).port },
    acceptTimeoutMs: 5_000,
    idleTimeoutMs: 5_000,
    sink: (e) => {
      if (e.event === 'data-open') relaying();
    },
  });
  cleanups.push(() => channel.close('test over'));
  expect(pool.used).toBe(1);
  const client = net.connect({ host: '127.0.0.1', port: p });
  cleanups.push(() => void client.destroy());
  client.on('error', () => undefined);
  await new Promise<void>((r) => client.once('connect', () => r()));
  // Accepted and relaying: the listener is gone, its port free again.
  await opened;
  expect(pool.used).toBe(0);
  const again = net.createServer();
  await expect(pool.listen(again, '127.0.0.1')).resolves.toBe(p);
  again.close();
});
