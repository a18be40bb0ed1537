/**
 * Forward mode, explicit proxy (`USER name@host`), on loopback: real curl,
 * lftp with ftp:proxy and Python ftplib, passive relay and active rewriting,
 * against the built-in server. Destinations on loopback are allowed
 * explicitly (the default policy refuses the LAN's own networks).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { startTestForward, type TestGateway } from '../helpers/gateway.js';
import { HAVE, needs, python, randomFile, run, sha256, tempDir } from '../helpers/tools.js';
import { CURL_MODES } from './reverse-matrix.js';

const FILE = randomFile(5 << 20);
let dir: ReturnType<typeof tempDir>;
let server: DemoServer;
let gw: TestGateway;
let serverHostPort: string;

beforeAll(async () => {
  dir = tempDir();
  writeFileSync(join(dir.path, 'f.bin'), FILE);
  server = await startDemoServer({ root: dir.path });
  serverHostPort = `127.0.0.1:${server.address.port}`;
  gw = await startTestForward();
});
afterAll(async () => {
  await gw?.close();
  await server?.close();
  dir?.remove();
});

describe('explicit proxy with curl (USER name@host:port)', () => {
  for (const { mode, args, kind } of CURL_MODES) {
    test.skipIf(!HAVE.curl)(`curl ${mode}: download and upload 5 MiB`, async () => {
      const base = `ftp://anonymous%40${serverHostPort.replace(":", "%3A")}:x@127.0.0.1:${gw.port}`;
      const down = await run('curl', ['-sS', '--max-time', '30', ...args, `${base}/f.bin`]);
      expect(down.stderr).toBe('');
      expect(sha256(down.stdout)).toBe(sha256(FILE));
      const name = `up-${mode.replace(/\W/g, '')}.bin`;
      const up = await run('curl', ['-sS', '--max-time', '30', ...args, '-T', join(dir.path, 'f.bin'), `${base}/${name}`]);
      expect(up.stderr).toBe('');
      expect(sha256(readFileSync(join(dir.path, name)))).toBe(sha256(FILE));
      expect(gw.log.of('rewrite').some((e) => e.kind === kind)).toBe(true);
      expect(gw.log.of('rewrite').some((e) => e.kind === 'USER' && e.after === 'USER anonymous')).toBe(true);
    });
  }
});

test.skipIf(!HAVE.lftp)(`lftp with ftp:proxy, passive and active${needs('lftp', 'needs lftp: run scripts/install-debian-packages.sh as root')}`, async () => {
  const out = join(dir.path, 'lftp-out');
  for (const passive of ['on', 'off']) {
    const script = [
      `set ftp:proxy ftp://127.0.0.1:${gw.port}`,
      `set ftp:passive-mode ${passive}`,
      'set net:max-retries 1',
      'set net:timeout 10',
      'set xfer:clobber on',
      `open -u anonymous,x ftp://${serverHostPort}`,
      `get f.bin -o ${out}-${passive}`,
      `put ${join(dir.path, 'f.bin')} -o lftp-${passive}.bin`,
      'bye',
    ].join('; ');
    const r = await run('lftp', ['-c', script], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(sha256(readFileSync(`${out}-${passive}`))).toBe(sha256(FILE));
    expect(sha256(readFileSync(join(dir.path, `lftp-${passive}.bin`)))).toBe(sha256(FILE));
  }
});

test.skipIf(!HAVE.python)('Python ftplib through the explicit proxy, passive and active', async () => {
  const script = `
import ftplib, hashlib, io, sys
for passive in (True, False):
    ftp = ftplib.FTP()
    ftp.connect('127.0.0.1', int(sys.argv[1]), timeout=30)
    ftp.login('anonymous@' + sys.argv[2], 'x')
    ftp.set_pasv(passive)
    buf = io.BytesIO()
    ftp.retrbinary('RETR f.bin', buf.write)
    ftp.storbinary('STOR ftplib-%s.bin' % passive, io.BytesIO(buf.getvalue()))
    ftp.quit()
    print(hashlib.sha256(buf.getvalue()).hexdigest())
`;
  const r = await python(script, [String(gw.port), serverHostPort]);
  expect(r.stderr).toBe('');
  expect(r.stdout.toString().trim().split('\n')).toEqual([sha256(FILE), sha256(FILE)]);
  expect(sha256(readFileSync(join(dir.path, 'ftplib-False.bin')))).toBe(sha256(FILE));
});

describe('explicit proxy refusals', () => {
  async function greet(g = gw): Promise<FtpClient> {
    const c = await FtpClient.connect('127.0.0.1', g.port);
    const hello = await c.read();
    expect(hello.code).toBe(220);
    return c;
  }

  test('commands before USER name@host get 530; a bare USER gets a hint', async () => {
    const c = await greet();
    expect((await c.send('PWD')).code).toBe(530);
    const r = await c.send('USER anonymous');
    expect(r.code).toBe(530);
    expect(r.text).toMatch(/name@host/);
    await c.quit();
  });

  test('a destination that refuses connections gets 421, not a hang', async () => {
    const c = await greet();
    const dead = await import('node:net').then((net) => {
      const s = net.createServer();
      return new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as import('node:net').AddressInfo).port;
        s.close(() => resolve(p));
      }));
    });
    const r = await c.send(`USER anonymous@127.0.0.1:${dead}`);
    expect(r.code).toBe(421);
    expect(r.text).toMatch(/ECONNREFUSED/);
    await gw.log.waitFor('refuse', (e) => e.code === 'SERVER_UNREACHABLE');
    c.close();
  });

  test('a destination inside the LAN networks is refused with 530 unless allowed', async () => {
    const strict = await startTestForward({ 'allow-destinations': undefined });
    try {
      const c = await greet(strict);
      const r = await c.send(`USER anonymous@${serverHostPort}`);
      expect(r.code).toBe(530);
      await strict.log.waitFor('refuse', (e) => e.code === 'DESTINATION_NOT_ALLOWED');
      c.close();
    } finally {
      await strict.close();
    }
  });

  test('a client outside --allow-clients gets 421 and CLIENT_NOT_ALLOWED', async () => {
    const closed = await startTestForward({ 'allow-clients': '100.64.0.0/10' });
    try {
      const c = await FtpClient.connect('127.0.0.1', closed.port);
      const r = await c.read();
      expect(r.code).toBe(421);
      await closed.log.waitFor('refuse', (e) => e.code === 'CLIENT_NOT_ALLOWED');
      c.close();
    } finally {
      await closed.close();
    }
  });

  test('transparent mode refuses a connection that was not redirected', async () => {
    const t = await startTestForward({ transparent: true });
    try {
      const c = await FtpClient.connect('127.0.0.1', t.port);
      const r = await c.read();
      expect(r.code).toBe(421);
      expect(r.text).toMatch(/transparent/);
      await t.log.waitFor('refuse', (e) => e.code === 'NOT_REDIRECTED');
      c.close();
    } finally {
      await t.close();
    }
  });
});

test.skipIf(!HAVE.root)(`--active-source-port 20: the client sees active data from port 20${needs('root', 'binding port 20 needs root')}`, async () => {
  const g = await startTestForward({ 'active-source-port': 20 });
  try {
    const c = await FtpClient.connect('127.0.0.1', g.port);
    expect((await c.read()).code).toBe(220);
    expect((await c.send(`USER anonymous@${serverHostPort}`)).code).toBe(331);
    expect((await c.send('PASS x')).code).toBe(230);
    const mine = (await import('node:net')).createServer();
    await new Promise<void>((r) => mine.listen(0, '127.0.0.1', r));
    const port = (mine.address() as import('node:net').AddressInfo).port;
    const accepted = new Promise<import('node:net').Socket>((r) => mine.once('connection', r));
    expect((await c.send(`EPRT |1|127.0.0.1|${port}|`)).code).toBe(200);
    expect((await c.send('RETR f.bin', true)).code).toBe(150);
    const data = await accepted;
    expect(data.remotePort).toBe(20);
    const chunks: Buffer[] = [];
    data.on('data', (d: Buffer) => chunks.push(d));
    await new Promise((r) => data.once('end', r));
    expect((await c.read()).code).toBe(226);
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(FILE));
    data.destroy();
    mine.close();
    await c.quit();
  } finally {
    await g.close();
  }
});

test('explicit proxy: rewrite offsets and deltas count the login dialogue', async () => {
  const g = await startTestForward();
  try {
    const c = await FtpClient.connect('127.0.0.1', g.port);
    expect((await c.read()).code).toBe(220);
    const feat = 'FEAT\r\n';
    const user = `USER anonymous@${serverHostPort}\r\n`;
    expect((await c.send('FEAT')).code).toBe(211);
    expect((await c.send(user.trim())).code).toBe(331);
    expect((await c.send('PASS x')).code).toBe(230);
    const pass = 'PASS x\r\n';
    const port = (await import('node:net')).createServer();
    await new Promise<void>((r) => port.listen(0, '127.0.0.1', r));
    const p = (port.address() as import('node:net').AddressInfo).port;
    const eprt = `EPRT |1|127.0.0.1|${p}|`;
    expect((await c.send(eprt)).code).toBe(200);
    const userEvent = g.log.of('rewrite').find((e) => e.kind === 'USER')!;
    expect(userEvent.offset).toBe(feat.length);
    expect(userEvent.delta).toBe('USER anonymous\r\n'.length - user.length - feat.length);
    const eprtEvent = g.log.of('rewrite').find((e) => e.kind === 'EPRT')!;
    // The client's stream: FEAT, USER, PASS, then EPRT.
    expect(eprtEvent.offset).toBe(feat.length + user.length + pass.length);
    expect(eprtEvent.delta).toBe(userEvent.delta + (eprtEvent.after.length - eprtEvent.before.length));
    port.close();
    await c.quit();
  } finally {
    await g.close();
  }
});
