/**
 * `ftp-alg probe` against the built-in server, in a NATed setup (the server
 * announces an address nobody listens on) and in a working one (the same
 * server behind ftp-alg reverse), plus a server that demands TLS.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import net from 'node:net';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { probe, parseProbeUrl, formatProbeReport, type ProbeReport } from '../../src/diagnose/probe.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { run } from '../helpers/tools.js';

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
