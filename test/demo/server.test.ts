/**
 * The demo FTP server against real clients (Python's ftplib, curl) and a raw
 * control connection for exact replies. Loopback only.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { RawFtpClient, connectError, connectTo, ftpUrl, readAll, runCurl, runPython, sha256 } from './clients.js';

const MiB = 1024 * 1024;

/** Login, PWD, CWD, LIST, NLST, RETR, STOR, SIZE with ftplib; prints what it saw as JSON. */
const FTPLIB_SESSION = `
import ftplib, hashlib, io, json, os, sys
host, port, mode, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
out = {}
ftp = ftplib.FTP()
ftp.connect(host, port, timeout=15)
out['welcome'] = ftp.getwelcome()
out['login'] = ftp.login(user, password)
ftp.set_pasv(mode == 'passive')
out['cwd'] = ftp.cwd('/pub')
out['pwd'] = ftp.pwd()
lines = []
ftp.retrlines('LIST', lines.append)
out['list'] = lines
out['nlst'] = ftp.nlst()
h = hashlib.sha256()
ftp.retrbinary('RETR random.bin', h.update)
out['retr'] = h.hexdigest()
up = os.urandom(1 << 20)
out['stor_reply'] = ftp.storbinary('STOR up-' + mode + '.bin', io.BytesIO(up))
out['stor'] = hashlib.sha256(up).hexdigest()
out['size'] = ftp.size('up-' + mode + '.bin')
out['quit'] = ftp.quit()
print(json.dumps(out))
`;

/** Raw replies to PASV and EPSV via ftplib's sendcmd (no data connection is made). */
const FTPLIB_PASSIVE_REPLIES = `
import ftplib, json, sys
ftp = ftplib.FTP()
ftp.connect(sys.argv[1], int(sys.argv[2]), timeout=15)
ftp.login()
out = {'pasv': ftp.sendcmd('PASV'), 'epsv': ftp.sendcmd('EPSV')}
ftp.quit()
print(json.dumps(out))
`;

interface FtplibSession {
  welcome: string;
  login: string;
  cwd: string;
  pwd: string;
  list: string[];
  nlst: string[];
  retr: string;
  stor_reply: string;
  stor: string;
  size: number;
  quit: string;
}

describe('demo server, in-memory tree, real clients', () => {
  const random = randomBytes(MiB);
  let server: DemoServer;
  let host: string;
  let port: number;
  let work: string;

  beforeAll(async () => {
    server = await startDemoServer({
      files: { '/pub/hello.txt': 'hello world\n', '/pub/random.bin': random, '/big.bin': Buffer.alloc(32 * MiB, 7) },
      users: { alice: 'secret' },
    });
    ({ host, port } = server.address);
    work = await mkdtemp(path.join(tmpdir(), 'ftp-alg-demo-'));
  });

  afterAll(async () => {
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it.each(['passive', 'active'])('ftplib %s: login, LIST, NLST, RETR and STOR (1 MiB, sha256)', async (mode) => {
    const r = await runPython<FtplibSession>(FTPLIB_SESSION, [host, port, mode, 'alice', 'secret']);
    expect(r.welcome).toMatch(/^220 /);
    expect(r.login).toMatch(/^230 /);
    expect(r.pwd).toBe('/pub');
    expect(r.list).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^-rw-r--r-- 1 ftp ftp 12 [A-Z][a-z]{2} \d\d (\d\d:\d\d| \d{4}) hello\.txt$/),
        expect.stringMatching(/^-rw-r--r-- 1 ftp ftp 1048576 [A-Z][a-z]{2} \d\d (\d\d:\d\d| \d{4}) random\.bin$/),
      ]),
    );
    expect(r.nlst).toEqual(expect.arrayContaining(['hello.txt', 'random.bin']));
    expect(r.retr).toBe(sha256(random));
    expect(r.stor_reply).toMatch(/^226 /);
    const stored = server.files.get(`/pub/up-${mode}.bin`);
    expect(stored?.length).toBe(MiB);
    expect(sha256(stored!)).toBe(r.stor);
    expect(r.size).toBe(MiB);
    expect(r.quit).toMatch(/^221 /);
  });

  it('ftplib sees a well-formed 227 and 229 on an IPv4 connection', async () => {
    const r = await runPython<{ pasv: string; epsv: string }>(FTPLIB_PASSIVE_REPLIES, [host, port]);
    expect(r.pasv).toMatch(/^227 Entering Passive Mode \(127,0,0,1,\d{1,3},\d{1,3}\)\.$/);
    expect(r.epsv).toMatch(/^229 Entering Extended Passive Mode \(\|\|\|\d+\|\)$/);
  });

  it.each([
    ['EPSV (curl default)', []],
    ['PASV', ['--disable-epsv']],
    ['EPRT', ['-P', '127.0.0.1']],
    ['PORT', ['-P', '127.0.0.1', '--disable-eprt']],
  ])('curl %s: RETR and STOR with sha256 equality', async (_name, flags) => {
    const down = path.join(work, `down-${_name.replace(/\W+/g, '')}.bin`);
    const get = await runCurl([...flags, ftpUrl(host, port, '/pub/random.bin'), '-o', down]);
    expect(get.stderr).toBe('');
    expect(get.code).toBe(0);
    expect(sha256(await readFile(down))).toBe(sha256(random));

    const upload = randomBytes(MiB);
    const src = path.join(work, `up-${_name.replace(/\W+/g, '')}.bin`);
    await writeFile(src, upload);
    // Into a directory that does not exist yet: curl sends MKD, then CWD.
    const dir = `/incoming/${_name.replace(/\W+/g, '')}`;
    const put = await runCurl([...flags, '--ftp-create-dirs', '-T', src, ftpUrl(host, port, `${dir}/curl.bin`)]);
    expect(put.stderr).toBe('');
    expect(put.code).toBe(0);
    expect(sha256(server.files.get(`${dir}/curl.bin`)!)).toBe(sha256(upload));
  });

  it('curl lists a directory and resumes a download with REST', async () => {
    const list = await runCurl([ftpUrl(host, port, '/pub/')]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^-rw-r--r-- 1 ftp ftp 12 .* hello\.txt\r?\n/m);
    const names = await runCurl(['-l', ftpUrl(host, port, '/pub/')]);
    expect(names.stdout.split(/\r?\n/)).toEqual(expect.arrayContaining(['hello.txt', 'random.bin']));
    const tail = await runCurl(['-C', '6', ftpUrl(host, port, '/pub/hello.txt')]);
    expect(tail.code).toBe(0);
    expect(tail.stdout).toBe('world\n');
  });

  it('answers the control commands like a Unix server', async () => {
    const c = await RawFtpClient.open(host, port);
    expect((await c.cmd('PWD')).code).toBe(530);
    expect((await c.cmd('LIST')).code).toBe(530);
    expect(await c.cmd('SYST')).toMatchObject({ code: 215, text: '215 UNIX Type: L8' });
    const feat = await c.cmd('FEAT');
    expect(feat.code).toBe(211);
    expect(feat.lines[0]).toMatch(/^211-/);
    expect(feat.text).toMatch(/^211 /);
    for (const f of ['EPSV', 'EPRT', 'PASV', 'SIZE', 'UTF8']) expect(feat.lines).toContain(` ${f}`);
    expect((await c.cmd('XYZZY')).code).toBe(502);
    expect((await c.cmd('USER alice')).code).toBe(331);
    expect((await c.cmd('PASS wrong')).code).toBe(530);
    await c.login();
    expect((await c.cmd('XYZZY plugh')).code).toBe(502);
    expect((await c.cmd('OPTS UTF8 ON')).code).toBe(200);
    expect((await c.cmd('TYPE I')).code).toBe(200);
    expect((await c.cmd('TYPE A')).code).toBe(200);
    expect((await c.cmd('TYPE X')).code).toBe(504);
    expect((await c.cmd('MODE S')).code).toBe(200);
    expect((await c.cmd('MODE B')).code).toBe(504);
    expect((await c.cmd('STRU F')).code).toBe(200);
    expect((await c.cmd('CWD pub')).code).toBe(250);
    expect((await c.cmd('PWD')).text).toBe('257 "/pub" is the current directory.');
    expect((await c.cmd('CDUP')).code).toBe(250);
    expect((await c.cmd('PWD')).text).toBe('257 "/" is the current directory.');
    expect((await c.cmd('CWD ../../..')).code).toBe(250);
    expect((await c.cmd('PWD')).text).toBe('257 "/" is the current directory.');
    expect((await c.cmd('CWD /nope')).code).toBe(550);
    expect(await c.cmd('SIZE /pub/hello.txt')).toMatchObject({ code: 213, text: '213 12' });
    expect((await c.cmd('SIZE /pub')).code).toBe(550);
    expect((await c.cmd('MDTM /pub/hello.txt')).text).toMatch(/^213 \d{14}$/);
    expect((await c.cmd('RETR /pub/hello.txt')).code).toBe(425);
    expect((await c.cmd('REST abc')).code).toBe(501);
    expect((await c.cmd('DELE /nope')).code).toBe(550);
    expect((await c.cmd('NOOP')).code).toBe(200);
    expect((await c.cmd('ABOR')).code).toBe(225);
    expect((await c.cmd('EPSV 2')).code).toBe(522);
    expect((await c.cmd('PORT 1,2,3')).code).toBe(501);
    expect((await c.cmd('EPRT |3|1.2.3.4|5|')).code).toBe(522);
    expect((await c.cmd(`X${'A'.repeat(5000)}`)).code).toBe(500);
    // One byte per write, and several commands in one write: framing is not read-sized.
    for (const byte of Buffer.from('NOOP\r\n')) c.send(Buffer.from([byte]));
    expect((await c.next()).code).toBe(200);
    c.send('NOOP\r\nSYST\r\nPWD');
    expect((await c.next()).code).toBe(200);
    expect((await c.next()).code).toBe(215);
    expect((await c.next()).code).toBe(257);
    expect((await c.cmd('EPSV ALL')).code).toBe(200);
    expect((await c.cmd('PASV')).code).toBe(503);
    expect((await c.cmd('PORT 127,0,0,1,4,1')).code).toBe(503);
    expect((await c.cmd('QUIT')).code).toBe(221);
    await c.closed;
  });

  it('stores, appends, deletes and refuses a file under a file', async () => {
    const c = await RawFtpClient.open(host, port);
    await c.login();
    const put = async (verb: string, name: string, body: string): Promise<number[]> => {
      const data = await connectTo(host, await c.epsv());
      c.send(`${verb} ${name}`);
      const first = await c.next();
      if (first.code !== 150) return [first.code];
      data.end(body);
      return [first.code, (await c.next()).code];
    };
    expect(await put('STOR', '/t/a.txt', 'one ')).toEqual([150, 226]);
    expect(await put('APPE', '/t/a.txt', 'two')).toEqual([150, 226]);
    expect(server.files.get('/t/a.txt')?.toString()).toBe('one two');
    expect(await put('STOR', '/t/a.txt/b', 'x')).toEqual([553]);
    expect(await put('STOR', '/t', 'x')).toEqual([553]);
    expect((await c.cmd('DELE /t/a.txt')).code).toBe(250);
    expect(server.files.has('/t/a.txt')).toBe(false);
    c.destroy();
  });

  it('refuses PORT/EPRT to another address when strict, and accepts its own', async () => {
    const c = await RawFtpClient.open(host, port);
    await c.login();
    expect(await c.cmd('PORT 127,0,0,2,4,1')).toMatchObject({ code: 500, text: '500 Illegal PORT command.' });
    expect((await c.cmd('EPRT |1|127.0.0.2|1025|')).code).toBe(500);
    expect((await c.cmd('EPRT |2|::1|1025|')).code).toBe(500);
    // Refused set-up leaves no data channel behind.
    expect((await c.cmd('NLST')).code).toBe(425);
    expect((await c.cmd('PORT 127,0,0,1,4,1')).code).toBe(200);
    expect((await c.cmd('EPRT |1|127.0.0.1|1025|')).code).toBe(200);
    c.destroy();
  });

  it('answers ABOR during a transfer with 426 then 226, and the session goes on', async () => {
    const c = await RawFtpClient.open(host, port);
    await c.login();
    expect((await c.cmd('TYPE I')).code).toBe(200);
    // Never read: 32 MiB cannot fit in the socket buffers, so the transfer is still running.
    const data = await connectTo(host, await c.epsv());
    data.on('error', () => {});
    expect((await c.cmd('RETR /big.bin')).code).toBe(150);
    c.send('ABOR');
    expect((await c.next()).code).toBe(426);
    expect((await c.next()).code).toBe(226);
    expect((await c.cmd('NOOP')).code).toBe(200);
    data.destroy();
    c.destroy();
  });

  it("handles ftplib's abort(), whose LF is sent as urgent data", async () => {
    const script = `
import ftplib, json, sys
ftp = ftplib.FTP()
ftp.connect(sys.argv[1], int(sys.argv[2]), timeout=15)
ftp.login()
conn = ftp.transfercmd('RETR /big.bin')
conn.recv(1024)
out = {'abort': ftp.abort()}
conn.close()
out['after'] = ftp.getmultiline()
out['noop'] = ftp.voidcmd('NOOP')
ftp.quit()
print(json.dumps(out))
`;
    const r = await runPython<{ abort: string; after: string; noop: string }>(script, [host, port]);
    expect(r.abort).toMatch(/^426 /);
    expect(r.after).toMatch(/^226 /);
    expect(r.noop).toMatch(/^200 /);
  });

  it('a client vanishing mid-RETR affects only its own session', async () => {
    const bystander = await RawFtpClient.open(host, port);
    await bystander.login();

    const c = await RawFtpClient.open(host, port);
    await c.login();
    const data = await connectTo(host, await c.epsv());
    data.on('error', () => {});
    const firstBytes = new Promise<void>((resolve) => data.once('data', () => resolve()));
    expect((await c.cmd('RETR /big.bin')).code).toBe(150);
    await firstBytes;
    // Reset rather than FIN: the server's next write fails.
    data.resetAndDestroy();
    c.socket.resetAndDestroy();
    await c.closed;

    // An already connected client and a new one both carry on.
    expect((await bystander.cmd('NOOP')).code).toBe(200);
    const got = await runCurl([ftpUrl(host, port, '/pub/hello.txt')]);
    expect(got.code).toBe(0);
    expect(got.stdout).toBe('hello world\n');
    bystander.destroy();
  });

  it('a client vanishing mid-STOR affects only its own session', async () => {
    const c = await RawFtpClient.open(host, port);
    await c.login();
    const data = await connectTo(host, await c.epsv());
    data.on('error', () => {});
    expect((await c.cmd('STOR /partial.bin')).code).toBe(150);
    data.write(Buffer.alloc(MiB));
    data.resetAndDestroy();
    c.socket.resetAndDestroy();
    await c.closed;
    const got = await runCurl([ftpUrl(host, port, '/pub/hello.txt')]);
    expect(got.stdout).toBe('hello world\n');
  });
});

describe('demo server options', () => {
  it('announces announceAddress in 227 but listens on the real address', async () => {
    const server = await startDemoServer({ announceAddress: '100.64.0.2', files: { '/a.txt': 'A' } });
    try {
      const { host, port } = server.address;
      const r = await runPython<{ pasv: string; epsv: string }>(FTPLIB_PASSIVE_REPLIES, [host, port]);
      expect(r.pasv).toMatch(/^227 Entering Passive Mode \(100,64,0,2,\d{1,3},\d{1,3}\)\.$/);
      // Announce only: the data listener is on 127.0.0.1, at the announced port.
      const c = await RawFtpClient.open(host, port);
      await c.login();
      const m = /\(100,64,0,2,(\d+),(\d+)\)/.exec((await c.cmd('PASV')).text)!;
      const data = await connectTo('127.0.0.1', Number(m[1]) * 256 + Number(m[2]));
      const listing = readAll(data);
      expect((await c.cmd('NLST')).code).toBe(150);
      expect((await listing).toString()).toBe('a.txt\r\n');
      expect((await c.next()).code).toBe(226);
      c.destroy();
      // EPSV carries no address and is unaffected.
      const got = await runCurl([ftpUrl(host, port, '/a.txt')]);
      expect(got.stdout).toBe('A');
    } finally {
      await server.close();
    }
  });

  it('accepts PORT to any address when not strict (without dialling until a transfer)', async () => {
    const server = await startDemoServer({ strict: false });
    try {
      const c = await RawFtpClient.open(server.address.host, server.address.port);
      await c.login();
      expect((await c.cmd('PORT 127,0,0,2,4,1')).code).toBe(200);
      c.destroy();
    } finally {
      await server.close();
    }
  });

  it('replies 425 when the data connection does not come within dataTimeoutMs', async () => {
    const server = await startDemoServer({ dataTimeoutMs: 200, files: { '/a.txt': 'A' } });
    try {
      const c = await RawFtpClient.open(server.address.host, server.address.port);
      await c.login();
      await c.epsv();
      expect((await c.cmd('RETR /a.txt')).code).toBe(150);
      expect((await c.next()).code).toBe(425);
      expect((await c.cmd('NOOP')).code).toBe(200);
      c.destroy();
    } finally {
      await server.close();
    }
  });

  it('close() ends sessions and leaves nothing listening', async () => {
    const server = await startDemoServer({ files: { '/big.bin': Buffer.alloc(32 * MiB) } });
    const { host, port } = server.address;
    const idle = await RawFtpClient.open(host, port);
    await idle.login();
    const pasvPort = await idle.epsv();
    const busy = await RawFtpClient.open(host, port);
    await busy.login();
    const data = await connectTo(host, await busy.epsv());
    data.on('error', () => {});
    expect((await busy.cmd('RETR /big.bin')).code).toBe(150);

    await server.close();
    expect((await idle.next()).code).toBe(421);
    await Promise.all([idle.closed, busy.closed]);
    expect(await connectError(host, port)).toBe('ECONNREFUSED');
    expect(await connectError(host, pasvPort)).toBe('ECONNREFUSED');
    data.destroy();
    await server.close(); // idempotent
  });

  it('serves IPv6 on ::1: EPSV and EPRT with ftplib, PASV refused', async () => {
    const random = randomBytes(MiB);
    const server = await startDemoServer({ host: '::1', files: { '/pub/random.bin': random, '/pub/hello.txt': 'hi' } });
    try {
      const { host, port } = server.address;
      expect(host).toBe('::1');
      for (const mode of ['passive', 'active']) {
        const r = await runPython<FtplibSession>(FTPLIB_SESSION, [host, port, mode, 'anonymous', 'x@y']);
        expect(r.retr).toBe(sha256(random));
        expect(sha256(server.files.get(`/pub/up-${mode}.bin`)!)).toBe(r.stor);
      }
      const c = await RawFtpClient.open(host, port);
      await c.login();
      expect(await c.cmd('PASV')).toMatchObject({ code: 500, text: '500 PASV not supported on IPv6, use EPSV.' });
      expect((await c.cmd('EPSV 1')).code).toBe(522);
      expect((await c.cmd('PORT 127,0,0,1,4,1')).code).toBe(500);
      c.destroy();
      const got = await runCurl([ftpUrl(host, port, '/pub/hello.txt')]);
      expect(got.stdout).toBe('hi');
    } finally {
      await server.close();
    }
  });

  it('moves 64 MiB each way with back-pressure', async () => {
    const big = randomBytes(64 * MiB);
    const work = await mkdtemp(path.join(tmpdir(), 'ftp-alg-demo-'));
    const server = await startDemoServer({ files: { '/big.bin': big } });
    try {
      const { host, port } = server.address;
      const down = path.join(work, 'down.bin');
      const get = await runCurl([ftpUrl(host, port, '/big.bin'), '-o', down]);
      expect(get.code).toBe(0);
      expect(sha256(await readFile(down))).toBe(sha256(big));
      const put = await runCurl(['-T', down, ftpUrl(host, port, '/copy.bin')]);
      expect(put.code).toBe(0);
      expect(sha256(server.files.get('/copy.bin')!)).toBe(sha256(big));
    } finally {
      await server.close();
      await rm(work, { recursive: true, force: true });
    }
  });
});
