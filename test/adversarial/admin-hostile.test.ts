/**
 * The admin endpoint faces whoever reaches its address. Hostile peers —
 * malformed requests, huge headers, a request never completed (slowloris),
 * many connections, a client that vanishes mid-answer — get a clear HTTP
 * error or are cut off, and the gateway keeps serving FTP and /metrics.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import net from 'node:net';
import { ADMIN_LIMITS } from '../../src/gateway/admin.js';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { freePort, httpGet, startGatewayProcess, type GatewayProcess } from '../e2e/ops-process.js';

let server: DemoServer;
let gw: GatewayProcess;
let ftpPort: number;
let admin: number;

beforeAll(async () => {
  server = await startDemoServer({ files: { '/f.txt': 'x\r\n' } });
  admin = await freePort();
  gw = startGatewayProcess(['reverse', '--listen', '127.0.0.1:0', '--server', `127.0.0.1:${server.address.port}`, '--public-address', '127.0.0.1', '--admin-listen', `127.0.0.1:${admin}`]);
  ftpPort = Number((await gw.waitFor((e) => e.event === 'listening', 'listening')).port);
});
afterAll(async () => {
  await gw?.kill();
  await server?.close();
});

/** Sends raw bytes; resolves with all the peer answered before it closed (or after `waitMs` of silence is not used: close is the signal). */
function raw(bytes: string | Buffer, opts: { end?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(admin, '127.0.0.1');
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? resolve(got) : reject(err)));
    s.on('close', () => resolve(got));
    s.write(bytes);
    if (opts.end) s.end();
  });
}

async function stillFine(): Promise<void> {
  expect((await httpGet(admin, '/healthz')).status).toBe(200);
  const c = await FtpClient.connect('127.0.0.1', ftpPort);
  await c.login();
  await c.quit();
  expect(gw.child.exitCode).toBeNull();
}

describe('answers', () => {
  test.each([
    ['/metrics', 200, /# TYPE ftp_alg_sessions_total counter/],
    ['/healthz', 200, /^serving/],
    ['/readyz', 200, /^ready/],
    ['/nothing', 404, /not found/],
    ['/metrics?x=1', 200, /process_resident_memory_bytes/],
  ])('GET %s → %i', async (path, status, body) => {
    const r = await httpGet(admin, path);
    expect(r.status).toBe(status);
    expect(r.body).toMatch(body);
  });

  test('POST → 405 with Allow, connection closed', async () => {
    const answer = await raw('POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc');
    expect(answer).toMatch(/^HTTP\/1\.1 405 /);
    expect(answer).toMatch(/Allow: GET, HEAD/i);
  });
});

describe('hostile peers', () => {
  test.each([
    ['garbage', 'GARBAGE\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['NUL bytes in the request line', 'GET /\0metrics HTTP/1.1\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['a bare LF header injection attempt', 'GET /healthz HTTP/1.1\r\nHost: a\rX: b\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['HTTP/9', 'GET /healthz HTTP/9.9\r\n\r\n', /^HTTP\/1\.1 (400|505) /],
    ['a header over the limit', `GET /healthz HTTP/1.1\r\nX: ${'a'.repeat(ADMIN_LIMITS.maxHeaderBytes * 4)}\r\n\r\n`, /^HTTP\/1\.1 (431|400) /],
    ['10,000 small headers', `GET /healthz HTTP/1.1\r\n${'A: b\r\n'.repeat(10_000)}\r\n`, /^HTTP\/1\.1 (431|400) /],
  ])('%s: a clear 4xx, then closed; the gateway is fine', async (_title, bytes, status) => {
    expect(await raw(bytes)).toMatch(status);
    await stillFine();
  });

  test('slowloris: a request never completed is cut off after the header timeout', async () => {
    const s = net.connect(admin, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    // One more header line now and then never the end: the server must
    // close on its own (the test's own timeout is the bound).
    s.write('X-Slow: 1\r\n');
    let answer = '';
    await new Promise<void>((resolve) => {
      s.on('data', (d: Buffer) => (answer += d.toString()));
      s.on('error', () => undefined);
      s.once('close', () => resolve());
    });
    expect(answer).toMatch(/^(HTTP\/1\.1 408 |$)/);
    await stillFine();
  });

  test('many connections at once: those over the cap are dropped, the gateway is fine, and scrapers get in again', async () => {
    const over = ADMIN_LIMITS.maxConnections * 2;
    let dropped = 0;
    let allDropped: () => void = () => undefined;
    const droppedEnough = new Promise<void>((r) => (allDropped = r));
    const sockets = await Promise.all(
      Array.from({ length: ADMIN_LIMITS.maxConnections + over }, () => {
        const s = net.connect(admin, '127.0.0.1');
        s.on('error', () => undefined);
        s.on('close', () => ++dropped >= over && allDropped());
        return new Promise<net.Socket>((r) => s.once('connect', () => r(s)));
      }),
    );
    await droppedEnough;
    // The FTP side does not share the admin endpoint's limit.
    const c = await FtpClient.connect('127.0.0.1', ftpPort);
    await c.login();
    await c.quit();
    for (const s of sockets) s.destroy();
    // Once they are gone, a scraper gets in again (closes are asynchronous: retry a bounded number of times).
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = await httpGet(admin, '/healthz').then((r) => r.status, () => 0);
      if (status !== 200) await new Promise((r) => setImmediate(r));
    }
    expect(status).toBe(200);
  });

  test('a client that asks for /metrics and vanishes before reading', async () => {
    for (let i = 0; i < 20; i++) {
      const s = net.connect(admin, '127.0.0.1');
      s.on('error', () => undefined);
      await new Promise((r) => s.once('connect', r));
      s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
      s.destroy();
    }
    await stillFine();
  });

  test('a client that never reads a pipelined flood of requests is bounded', async () => {
    const s = net.connect(admin, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.pause();
    const flood = 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(2000);
    s.write(flood);
    await stillFine();
    s.destroy();
  });
});
