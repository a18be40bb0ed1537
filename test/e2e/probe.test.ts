/**
 * `ftp-alg probe` against the built-in server, in a NATed setup (the server
 * announces an address nobody listens on) and in a working one (the same
 * server behind ftp-alg reverse), plus a server that demands TLS.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { probe, parseProbeUrl, formatProbeReport, type ProbeReport } from '../../src/diagnose/probe.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { HAVE, needs, run, startPyftpdlib, tempDir } from '../helpers/tools.js';

let natted: DemoServer;
let gw: TestGateway;

beforeAll(async () => {
  // 127.0.0.2 is loopback, but nothing listens there: like an inside address seen from outside.
  natted = await startDemoServer({ announceAddress: '127.0.0.2', files: { '/a.txt': 'x' } });
  gw = await startTestReverse(natted.address.port);
});
afterAll(async () => {
  await gw?.close();
  await natted?.close();
});

const mode = (r: ProbeReport, m: string) => r.modes.find((x) => x.mode === m)!;

test('parseProbeUrl: user, password, port, IPv6 brackets, defaults', () => {
  expect(parseProbeUrl('ftp://127.0.0.1/')).toEqual({ host: '127.0.0.1', port: 21, user: 'anonymous', password: 'ftp-alg-probe@example.org' });
  expect(parseProbeUrl('ftp://bob:s%40cret@[::1]:2121/')).toEqual({ host: '::1', port: 2121, user: 'bob', password: 's@cret' });
  expect(() => parseProbeUrl('http://127.0.0.1/')).toThrow(/not an ftp:\/\/ URL/);
  expect(() => parseProbeUrl('nonsense')).toThrow(/not a URL/);
});

test('a server announcing an address that differs and does not answer: PASV_PRIVATE_ADDRESS and PASV_UNREACHABLE; the rest works', async () => {
  const r = await probe(parseProbeUrl(`ftp://127.0.0.1:${natted.address.port}/`), 5_000);
  expect(r.login?.ok).toBe(true);
  expect(mode(r, 'PASV').announced).toMatchObject({ address: '127.0.0.2', differsFromControl: true });
  expect(mode(r, 'PASV').codes).toEqual(['PASV_PRIVATE_ADDRESS', 'PASV_UNREACHABLE']);
  expect(mode(r, 'EPSV').codes).toEqual(['OK']);
  expect(mode(r, 'PORT').codes).toEqual(['OK']);
  expect(mode(r, 'EPRT').codes).toEqual(['OK']);
  expect(r.verdict.codes).toEqual(['PASV_PRIVATE_ADDRESS', 'PASV_UNREACHABLE']);
  expect(r.verdict.summary.join(' ')).toMatch(/behind a NAT and announces its inside address/);
  expect(formatProbeReport(r)).toMatch(/PASV\s+227 .*127\.0\.0\.2:\d+\s+loopback≠ctl\s+FAIL/);
});

test('the same server behind ftp-alg reverse: every mode works, verdict OK', async () => {
  const r = await probe(parseProbeUrl(`ftp://127.0.0.1:${gw.port}/`), 5_000);
  expect(r.modes.map((m) => m.codes)).toEqual([['OK'], ['OK'], ['OK'], ['OK']]);
  expect(r.verdict.codes).toEqual(['OK']);
  expect(mode(r, 'PASV').bytes).toBeGreaterThan(0);
});

describe('a server that requires TLS', () => {
  let tlsOnly: net.Server;
  beforeAll(async () => {
    // vsftpd's words with force_local_logins_ssl; a scripted server, since TLS setup is not what is tested here.
    tlsOnly = net.createServer((s) => {
      s.write('220 (vsFTPd 3.0.3)\r\n');
      s.on('data', (d: Buffer) => {
        if (d.toString().startsWith('USER')) s.write('530 Non-anonymous sessions must use encryption.\r\n');
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => tlsOnly.listen(0, '127.0.0.1', r));
  });
  afterAll(() => new Promise<void>((r) => tlsOnly.close(() => r())));

  test('verdict TLS_REQUIRED', async () => {
    const port = (tlsOnly.address() as net.AddressInfo).port;
    const r = await probe(parseProbeUrl(`ftp://bob:x@127.0.0.1:${port}/`), 5_000);
    expect(r.verdict.codes).toEqual(['TLS_REQUIRED']);
  });
});

test('the CLI: --json is parseable, exit 1 when a problem is found, 0 when all works', async () => {
  const cli = join(process.cwd(), 'dist/cli.js');
  const bad = await run(process.execPath, [cli, 'probe', `ftp://127.0.0.1:${natted.address.port}/`, '--json', '--timeout', '5']);
  expect(bad.code).toBe(1);
  expect((JSON.parse(bad.stdout.toString()) as ProbeReport).verdict.codes).toContain('PASV_PRIVATE_ADDRESS');
  const good = await run(process.execPath, [cli, 'probe', `ftp://127.0.0.1:${gw.port}/`]);
  expect(good.code).toBe(0);
  expect(good.stdout.toString()).toMatch(/verdict: OK/);
});

describe('servers that connect back at PORT time (pyftpdlib)', () => {
  test('the built-in server with connectAtPort: PORT and EPRT work, setup reply is 200 Active data connection established', async () => {
    const eager = await startDemoServer({ connectAtPort: true, files: { '/a.txt': 'x' } });
    try {
      const r = await probe(parseProbeUrl(`ftp://127.0.0.1:${eager.address.port}/`), 5_000);
      expect(mode(r, 'PORT').setup?.text).toMatch(/^200 Active data connection established/);
      expect(r.modes.map((m) => [m.mode, m.codes])).toEqual([['PASV', ['OK']], ['EPSV', ['OK']], ['PORT', ['OK']], ['EPRT', ['OK']]]);
    } finally {
      await eager.close();
    }
  });

  test.each([
    ['directly', false],
    ['behind ftp-alg reverse', true],
  ])(`real pyftpdlib %s: every mode OK, five runs in a row${needs('pyftpdlib', 'needs python3-pyftpdlib')}`, async (_, viaGateway) => {
    if (!HAVE.pyftpdlib) return;
    const dir = tempDir();
    writeFileSync(join(dir.path, 'a.txt'), 'x');
    const py = await startPyftpdlib(dir.path);
    const rgw = viaGateway ? await startTestReverse(py.port) : undefined;
    try {
      for (let i = 0; i < 5; i++) {
        const r = await probe(parseProbeUrl(`ftp://127.0.0.1:${rgw?.port ?? py.port}/`), 5_000);
        expect(r.verdict.codes, formatProbeReport(r)).toEqual(['OK']);
      }
    } finally {
      await rgw?.close();
      await py.stop();
      dir.remove();
    }
  });
});

/**
 * A scripted server: logs anyone in, answers every data set-up, and treats
 * the data connection as `data` says; it never sends a final reply to LIST.
 */
async function scriptedServer(loginReply: string, data: 'stall' | 'close-early'): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const servers = new Set<net.Server>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
  };
  const onData = (c: net.Socket) => {
    track(c);
    if (data === 'close-early') c.destroy();
  };
  const control = net.createServer((s) => {
    track(s);
    let pending: Promise<net.Socket> | undefined;
    s.write('220 scripted\r\n');
    let buf = '';
    s.on('data', async (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'USER') s.write(`${loginReply}\r\n`);
        else if (verb === 'PASV' || verb === 'EPSV') {
          const l = net.createServer(onData);
          servers.add(l);
          await new Promise<void>((r) => l.listen(0, '127.0.0.1', r));
          const p = (l.address() as net.AddressInfo).port;
          s.write(verb === 'PASV' ? `227 Entering Passive Mode (127,0,0,1,${p >> 8},${p & 255}).\r\n` : `229 Entering Extended Passive Mode (|||${p}|)\r\n`);
        } else if (verb === 'PORT' || verb === 'EPRT') {
          const arg = line.slice(5);
          const port = verb === 'PORT' ? arg.split(',').map(Number).slice(4).reduce((h, l) => h * 256 + l) : Number(arg.split('|')[3]);
          pending = new Promise((resolve) => {
            const c = net.connect(port, '127.0.0.1', () => resolve(c));
            c.on('error', () => undefined);
          });
          s.write('200 PORT ok\r\n');
        } else if (verb === 'LIST') {
          s.write('150 Here it comes\r\n');
          if (pending) onData(await pending);
        } else s.write('200 ok\r\n');
      }
    });
  });
  servers.add(control);
  await new Promise<void>((r) => control.listen(0, '127.0.0.1', r));
  return {
    port: (control.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([...servers].map((l) => new Promise((r) => l.close(r))));
    },
  };
}

describe('--timeout bounds every phase', () => {
  test.each(['stall', 'close-early'] as const)('a data connection that is %s and no final reply: every mode ends in TRANSFER_FAILED within the timeout', async (data) => {
    const srv = await scriptedServer('230 ok', data);
    try {
      const r = await probe(parseProbeUrl(`ftp://127.0.0.1:${srv.port}/`), 1_000);
      expect(r.modes.map((m) => m.codes)).toEqual([['TRANSFER_FAILED'], ['TRANSFER_FAILED'], ['TRANSFER_FAILED'], ['TRANSFER_FAILED']]);
      expect(r.modes.map((m) => m.error).join('\n')).toMatch(data === 'stall' ? /stalled/ : /no reply within/);
    } finally {
      await srv.close();
    }
  }, 30_000);
});

describe('login replies of real servers', () => {
  test.each([
    ['530 Authentication failed.', 'LOGIN_FAILED'], // pyftpdlib
    ['530 Login incorrect.', 'LOGIN_FAILED'], // vsftpd, ProFTPD
    ['530 Login authentication failed', 'LOGIN_FAILED'], // Pure-FTPd
    ['530 This FTP server is anonymous only.', 'LOGIN_FAILED'], // vsftpd anonymous_only
    ['530 Non-anonymous sessions must use encryption.', 'TLS_REQUIRED'], // vsftpd force_local_logins_ssl
    ['550 SSL/TLS required on the control channel', 'TLS_REQUIRED'], // ProFTPD TLSRequired, pyftpdlib tls_control_required
    ['530 Sorry, cleartext sessions and weak ciphers are not accepted on this server. Please reconnect using TLS security mechanisms.', 'TLS_REQUIRED'], // Pure-FTPd -Y 2
    ['534 Policy requires SSL.', 'TLS_REQUIRED'], // IIS
    ['530 This server does not allow plain FTP. You have to use FTP over TLS.', 'TLS_REQUIRED'], // FileZilla Server
  ])('%s → %s', async (reply, code) => {
    const srv = await scriptedServer(reply, 'stall');
    try {
      const r = await probe(parseProbeUrl(`ftp://bob:x@127.0.0.1:${srv.port}/`), 5_000);
      expect(r.verdict.codes).toEqual([code]);
      if (code === 'LOGIN_FAILED') expect(r.verdict.summary.join(' ')).not.toMatch(/TLS/);
    } finally {
      await srv.close();
    }
  });
});
