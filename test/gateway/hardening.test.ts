/**
 * Limits, timeouts and faults: each has a test that fails without it, and
 * none leaves a listener, socket or session behind.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import net from 'node:net';
import { readdirSync } from 'node:fs';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { quietPort, randomFile, sha256 } from '../helpers/tools.js';
import { pausedRetr } from '../helpers/slow-reader.js';

const BIG = randomFile(16 << 20);
let server: DemoServer;

beforeAll(async () => {
  server = await startDemoServer({ files: { '/big.bin': BIG, '/small.txt': 'hello\r\n' } });
});
afterAll(async () => {
  await server?.close();
});

async function withGateway(flags: Parameters<typeof startTestReverse>[1], fn: (gw: TestGateway) => Promise<void>): Promise<void> {
  const gw = await startTestReverse(server.address.port, flags);
  try {
    await fn(gw);
  } finally {
    await gw.close();
  }
}

async function login(gw: TestGateway): Promise<FtpClient> {
  const c = await FtpClient.connect('127.0.0.1', gw.port);
  await c.login();
  return c;
}

function portOf229(text: string): number {
  return Number(/\|\|\|(\d+)\|/.exec(text)![1]);
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

describe('session limits', () => {
  test('over the per-client cap: 421 and TOO_MANY_SESSIONS; a freed slot is usable again', () =>
    withGateway({ 'max-sessions-per-client': 2 }, async (gw) => {
      const a = await login(gw);
      const b = await login(gw);
      const c = await FtpClient.connect('127.0.0.1', gw.port);
      const r = await c.read();
      expect(r.code).toBe(421);
      expect(r.text).toMatch(/Too many sessions/);
      await gw.log.waitFor('refuse', (e) => e.code === 'TOO_MANY_SESSIONS');
      c.close();
      const bClosed = [...gw.gateway.sessions].map((s) => s.closed);
      await a.quit();
      await Promise.race(bClosed);
      const d = await login(gw);
      expect((await d.send('NOOP')).code).toBe(200);
      await Promise.all([b.quit(), d.quit()]);
    }));

  test('over the global cap: 421', () =>
    withGateway({ 'max-sessions': 1 }, async (gw) => {
      const a = await login(gw);
      const c = await FtpClient.connect('127.0.0.1', gw.port);
      expect((await c.read()).code).toBe(421);
      c.close();
      await a.quit();
    }));
});

describe('timeouts', () => {
  test('no login within --login-timeout: 421 and LOGIN_TIMEOUT', () =>
    withGateway({ 'login-timeout': 0.3 }, async (gw) => {
      const c = await FtpClient.connect('127.0.0.1', gw.port);
      expect((await c.read()).code).toBe(220);
      const r = await c.read();
      expect(r.code).toBe(421);
      expect(r.text).toMatch(/Login timeout/);
      await gw.log.waitFor('refuse', (e) => e.code === 'LOGIN_TIMEOUT');
      await gw.log.waitFor('session-close', (e) => e.reason === 'login timeout');
    }));

  test('an idle control connection is closed with 421 after --idle-timeout', () =>
    withGateway({ 'idle-timeout': 0.3 }, async (gw) => {
      const c = await login(gw);
      const r = await c.read();
      expect(r.code).toBe(421);
      expect(r.text).toMatch(/Idle timeout/);
      await gw.log.waitFor('session-close', (e) => e.reason === 'idle timeout');
    }));

  test('a running transfer keeps the control connection from idling out', () =>
    withGateway({ 'idle-timeout': 0.2 }, async (gw) => {
      const c = await login(gw);
      // Several idle periods with a slow reader's transfer open.
      const { data, final } = await pausedRetr(c, '/big.bin', 1_000, () => expect(gw.log.of('session-close')).toHaveLength(0));
      expect(final).toBe(226);
      expect(sha256(data)).toBe(sha256(BIG));
      c.close();
    }));

  test('the client never connects in passive mode: the listener closes after --data-timeout', () =>
    withGateway({ 'data-timeout': 0.3 }, async (gw) => {
      const c = await login(gw);
      const port = portOf229((await c.send('EPSV')).text);
      const closed = await gw.log.waitFor('data-close');
      expect(closed.reason).toBe('accept timeout');
      await expect(connect(port)).rejects.toThrow(/ECONNREFUSED/);
      expect((await c.send('NOOP')).code).toBe(200);
      await c.quit();
    }));

  test('the server never connects back in active mode: the listener closes after --data-timeout', () =>
    withGateway({ 'data-timeout': 0.3 }, async (gw) => {
      const c = await login(gw);
      const mine = net.createServer();
      await new Promise<void>((r) => mine.listen(0, '127.0.0.1', r));
      const port = (mine.address() as net.AddressInfo).port;
      expect((await c.send(`EPRT |1|127.0.0.1|${port}|`)).code).toBe(200);
      const closed = await gw.log.waitFor('data-close', (e) => e.mode === 'active');
      expect(closed.reason).toBe('accept timeout');
      mine.close();
      await c.quit();
    }));
});

describe('port pool', () => {
  test('exhaustion answers 425 with PORTS_EXHAUSTED and recovers when the port is free', async () => {
    const p = await quietPort();
    await withGateway({ 'passive-ports': `${p}-${p}` }, async (gw) => {
      const a = await login(gw);
      const first = await a.send('EPSV');
      expect(portOf229(first.text)).toBe(p);
      const b = await login(gw);
      const refused = await b.send('EPSV');
      expect(refused.code).toBe(425);
      await gw.log.waitFor('refuse', (e) => e.code === 'PORTS_EXHAUSTED');
      // Use the one port for a transfer; afterwards it goes back to the pool.
      const data = await connect(p);
      const got: Buffer[] = [];
      data.on('data', (d: Buffer) => got.push(d));
      const ended = new Promise((r) => data.once('end', r));
      expect((await a.send('RETR /small.txt', true)).code).toBe(150);
      await ended;
      expect((await a.read()).code).toBe(226);
      await gw.log.waitFor('data-close', (e) => e.reason === 'complete');
      const again = await b.send('EPSV');
      expect(again.code).toBe(229);
      expect(portOf229(again.text)).toBe(p);
      await Promise.all([a.quit(), b.quit()]);
    });
  });

  test('a new EPSV before the previous one was used closes the old listener', () =>
    withGateway({}, async (gw) => {
      const c = await login(gw);
      const old = portOf229((await c.send('EPSV')).text);
      const fresh = portOf229((await c.send('EPSV')).text);
      await gw.log.waitFor('data-close', (e) => e.reason === 'replaced by a new data channel');
      await expect(connect(old)).rejects.toThrow(/ECONNREFUSED/);
      const data = await connect(fresh);
      const ended = new Promise((r) => data.once('end', r));
      data.resume();
      expect((await c.send('RETR /small.txt', true)).code).toBe(150);
      await ended;
      expect((await c.read()).code).toBe(226);
      await c.quit();
    }));
});

describe('transfers that stop and resume', () => {
  test('ABOR with Telnet IP and Synch during a transfer: 426 then 226, the session goes on', () =>
    withGateway({}, async (gw) => {
      const c = await login(gw);
      const data = await connect(portOf229((await c.send('EPSV')).text));
      data.pause();
      data.on('error', () => undefined);
      expect((await c.send('RETR /big.bin', true)).code).toBe(150);
      await gw.log.waitFor('data-open');
      c.socket.write(Buffer.concat([Buffer.from([0xff, 0xf4, 0xff, 0xf2]), Buffer.from('ABOR\r\n')]));
      const replies = [await c.read(), await c.read()];
      expect(replies.map((r) => r.code)).toEqual([426, 226]);
      data.destroy();
      expect((await c.send('NOOP')).code).toBe(200);
      await c.quit();
    }));

  test('plain ABOR (no Telnet bytes) during a transfer: 426 then 226', () =>
    withGateway({}, async (gw) => {
      const c = await login(gw);
      const data = await connect(portOf229((await c.send('EPSV')).text));
      data.pause();
      data.on('error', () => undefined);
      expect((await c.send('RETR /big.bin', true)).code).toBe(150);
      await gw.log.waitFor('data-open');
      c.socket.write('ABOR\r\n');
      expect([(await c.read()).code, (await c.read()).code]).toEqual([426, 226]);
      data.destroy();
      await c.quit();
    }));

  test('REST + RETR resumes at the offset', () =>
    withGateway({}, async (gw) => {
      const c = await login(gw);
      expect((await c.send('TYPE I')).code).toBe(200);
      expect((await c.send('REST 1000000')).code).toBe(350);
      const { data } = await c.transfer('PASV', 'RETR /big.bin');
      expect(sha256(data)).toBe(sha256(BIG.subarray(1_000_000)));
      await c.quit();
    }));
});

describe('resources', () => {
  test('1,000 sessions opened and closed leave file descriptors and sessions where they started', () =>
    withGateway({}, async (gw) => {
      const fds = () => readdirSync('/proc/self/fd').length;
      // Warm-up: lazily created handles (DNS, timers) are not leaks.
      await (await login(gw)).quit();
      const before = fds();
      const total = 1000;
      const parallel = 20;
      let started = 0;
      const worker = async () => {
        while (started < total) {
          started++;
          const c = await login(gw);
          if (started % 10 === 0) await c.transfer('EPSV', 'RETR /small.txt');
          await c.quit();
        }
      };
      await Promise.all(Array.from({ length: parallel }, worker));
      await Promise.all([...gw.gateway.sessions].map((s) => s.closed));
      expect(gw.gateway.sessions.size).toBe(0);
      expect(gw.log.of('session-close').length).toBeGreaterThanOrEqual(total);
      expect(gw.log.of('data-listen').length).toBe(gw.log.of('data-close').length);
      // Sockets of the last sessions may still be closing in the server: allow a few.
      expect(fds() - before).toBeLessThanOrEqual(4);
    }), 120_000);
});

describe('AUTH TLS passthrough', () => {
  test('--tls passthrough forwards AUTH, then relays every byte blindly both ways', async () => {
    // A scripted server: what follows 234 would be a TLS handshake; here,
    // bytes that would be rewritten if the gateway still parsed them.
    const scripted = net.createServer((s) => {
      s.write('220 ready\r\n');
      let authed = false;
      s.on('data', (d: Buffer) => {
        if (!authed && d.toString().startsWith('AUTH TLS')) {
          authed = true;
          s.write('234 Proceed with negotiation.\r\n');
        } else if (authed) {
          s.write(Buffer.concat([Buffer.from('echo:'), d]));
        }
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => scripted.listen(0, '127.0.0.1', r));
    const gw = await startTestReverse((scripted.address() as net.AddressInfo).port, { tls: 'passthrough' });
    try {
      const c = await FtpClient.connect('127.0.0.1', gw.port);
      expect((await c.read()).code).toBe(220);
      expect((await c.send('AUTH TLS')).code).toBe(234);
      await gw.log.waitFor('warning', (e) => /no more rewriting/.test(e.message));
      const opaque = Buffer.from('227 Entering Passive Mode (100,64,0,2,4,1)\r\n\x16\x03\x01\xff\x00');
      const echoed = new Promise<Buffer>((resolve) => {
        const chunks: Buffer[] = [];
        c.socket.on('data', (d: Buffer) => {
          chunks.push(d);
          const all = Buffer.concat(chunks);
          if (all.length >= opaque.length + 5) resolve(all);
        });
      });
      c.socket.write(opaque);
      expect((await echoed).equals(Buffer.concat([Buffer.from('echo:'), opaque]))).toBe(true);
      expect(gw.log.of('rewrite')).toHaveLength(0);
      c.close();
    } finally {
      await gw.close();
      scripted.close();
    }
  });
});

test('live trace: every control line both ways as a control event, PASS masked', () =>
  withGateway({}, async (gw) => {
    const c = await FtpClient.connect('127.0.0.1', gw.port);
    await c.login('anonymous', 'secret-password');
    await c.quit();
    const lines = gw.log.of('control').map((e) => `${e.direction} ${e.line}`);
    expect(lines).toContain('client->server PASS ****');
    expect(lines.some((l) => l.startsWith('server->client 230'))).toBe(true);
    expect(JSON.stringify(gw.log.events)).not.toContain('secret-password');
  }));
