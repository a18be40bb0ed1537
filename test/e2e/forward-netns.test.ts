/**
 * Forward mode through a real masquerading NAT: the client in 100.64.1.2
 * behind the gateway namespace, vsftpd (strict by default: it refuses a PORT
 * naming anyone but the control peer) on 198.18.0.2. Without ftp-alg active
 * mode fails for the documented reason; with ftp-alg transparent on the
 * gateway every client and mode works, byte-identical. An IPv6-only client
 * reaches the IPv4 server through the explicit proxy.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { ADDR, CAN_NETNS, CAN_VSFTPD, NETNS_SKIP, VSFTPD_SKIP, buildNatTopology, startVsftpd, type NatTopology, type Vsftpd } from '../helpers/netns.js';
import { HAVE, needs, randomFile, sha256 } from '../helpers/tools.js';

const CLI = join(process.cwd(), 'dist/cli.js');
const GW_PORT = 2121;
const EXPLICIT_PORT = 2122;
const CAN = CAN_NETNS && CAN_VSFTPD && HAVE.curl && HAVE.lftp && HAVE.tnftp;
const SKIP = NETNS_SKIP || VSFTPD_SKIP || needs('curl', 'needs curl') || needs('lftp', 'needs lftp: run scripts/install-debian-packages.sh as root') || needs('tnftp', 'needs tnftp: run scripts/install-debian-packages.sh as root');

describe.skipIf(!CAN)(`forward gateway in a real NAT: vsftpd behind masquerade${SKIP}`, () => {
  const file = randomFile(2 << 20);
  let topo: NatTopology;
  let ftpd: Vsftpd;
  let out: string;
  const gateways: ChildProcess[] = [];
  const logs: string[] = [];

  beforeAll(async () => {
    topo = await buildNatTopology();
    ftpd = await startVsftpd(topo, { files: { 'f.bin': file } });
    out = topo.tempDir('client-');
  });
  afterAll(async () => {
    await topo?.destroy();
  });

  const curl = (args: string[], url = `ftp://${topo.addr.server}/f.bin`) =>
    topo.exec(topo.ns.client, 'curl', ['-sS', '--max-time', '15', ...args, url], { timeoutMs: 30_000 });

  const tnftp = (passive: boolean, name: string) =>
    topo.exec(topo.ns.client, 'tnftp', ['-n', '-v', topo.addr.server], {
      input: ['user anonymous x', 'binary', 'epsv4 off', `passive ${passive ? 'on' : 'off'}`, `get f.bin ${join(out, name)}`, 'quit', ''].join('\n'),
      timeoutMs: 30_000,
    });

  const lftp = (passive: boolean, name: string) =>
    topo.exec(
      topo.ns.client,
      'lftp',
      ['-c', `set net:max-retries 1; set net:timeout 10; set ftp:passive-mode ${passive ? 'on' : 'off'}; open ftp://${topo.addr.server}; get f.bin -o ${join(out, name)}`],
      { timeoutMs: 30_000 },
    );

  const probeFromClient = () =>
    topo.exec(topo.ns.client, process.execPath, [CLI, 'probe', `ftp://${topo.addr.server}/`, '--json', '--timeout', '5'], { timeoutMs: 60_000 });

  async function startGateway(args: string[], port: number): Promise<void> {
    const child = topo.spawn(topo.ns.gateway, process.execPath, [CLI, 'forward', ...args, '--log-format', 'json'], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
    gateways.push(child);
    await topo.waitListening(topo.ns.gateway, port);
  }

  describe('without ftp-alg (plain masquerade)', () => {
    test('curl active PORT fails: vsftpd refuses the inside address', async () => {
      const r = await curl(['-P', topo.addr.client, '--disable-eprt']);
      expect(r.code).not.toBe(0);
      await ftpd.waitLog(/Client "198\.18\.0\.1", "PORT 100,64,1,2,\d+,\d+"/);
      await ftpd.waitLog(/500 Illegal PORT command/);
    });

    test('curl active EPRT fails: vsftpd refuses the inside address', async () => {
      const r = await curl(['-P', topo.addr.client]);
      expect(r.code).not.toBe(0);
      await ftpd.waitLog(/"EPRT \|1\|100\.64\.1\.2\|\d+\|"/);
    });

    test('probe from the client says ACTIVE_REFUSED for PORT and EPRT, passive works', async () => {
      const r = await probeFromClient();
      expect(r.code).toBe(1);
      const report = JSON.parse(r.stdout.toString()) as { modes: Array<{ mode: string; codes: string[] }>; verdict: { codes: string[] } };
      expect(report.modes.map((m) => [m.mode, m.codes])).toEqual([
        ['PASV', ['OK']],
        ['EPSV', ['OK']],
        ['PORT', ['ACTIVE_REFUSED']],
        ['EPRT', ['ACTIVE_REFUSED']],
      ]);
    });

    test('tnftp active fails', async () => {
      const r = await tnftp(false, 'tnftp-active-noalg.bin');
      expect(r.stdout.toString()).toMatch(/500 Illegal PORT command/);
    });
  });

  describe('with ftp-alg forward --transparent on the gateway', () => {
    beforeAll(async () => {
      // The ruleset comes from the gateway itself: --print-nft is what users load.
      const printed = await topo.exec(topo.ns.gateway, process.execPath, [CLI, 'forward', '--print-nft', '--lan-interface', topo.lanIf, '--listen', `0.0.0.0:${GW_PORT}`]);
      expect(printed.code).toBe(0);
      await topo.nft(topo.ns.gateway, printed.stdout.toString());
      await startGateway(['--transparent', '--listen', `0.0.0.0:${GW_PORT}`], GW_PORT);
    });

    const curlCases: Array<[string, () => string[]]> = [
      ['active PORT', () => ['-P', topo.addr.client, '--disable-eprt']],
      ['active EPRT', () => ['-P', topo.addr.client]],
      ['strict PASV', () => ['--disable-epsv', '--no-ftp-skip-pasv-ip']],
      ['EPSV', () => []],
    ];
    for (const [mode, args] of curlCases) {
      test(`curl ${mode}: byte-identical`, async () => {
        const r = await curl(args());
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(sha256(r.stdout)).toBe(sha256(file));
      });
    }

    test('probe from the client: every mode works', async () => {
      const r = await probeFromClient();
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout.toString()).verdict.codes).toEqual(['OK']);
    });

    test('vsftpd saw the gateway outside address in PORT and EPRT, never the inside one', async () => {
      const log = ftpd.log().split('\n').filter((l) => /"(PORT|EPRT) /.test(l));
      const after = log.slice(log.findIndex((l) => l.includes('198,18,0,1') || l.includes('|198.18.0.1|')));
      expect(after.length).toBeGreaterThanOrEqual(2);
      for (const l of after) expect(l).not.toMatch(/100[,.]64[,.]1[,.]2/);
      expect(logs.join('')).toMatch(/"event":"rewrite".*"kind":"PORT"/);
    });

    for (const passive of [true, false]) {
      test(`lftp ${passive ? 'passive (defaults)' : 'active'}: byte-identical`, async () => {
        const name = `lftp-${passive}.bin`;
        const r = await lftp(passive, name);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(sha256(readFileSync(join(out, name)))).toBe(sha256(file));
      });

      test(`tnftp ${passive ? 'passive' : 'active'}: byte-identical`, async () => {
        const name = `tnftp-${passive}.bin`;
        const r = await tnftp(passive, name);
        expect(r.stdout.toString()).toMatch(/226 /);
        expect(sha256(readFileSync(join(out, name)))).toBe(sha256(file));
      });
    }
  });

  describe('IPv6 client to the IPv4 server through the explicit proxy', () => {
    beforeAll(async () => {
      await startGateway(['--listen', `[::]:${EXPLICIT_PORT}`], EXPLICIT_PORT);
    });

    for (const [mode, args] of [
      ['EPSV (sent to the server as PASV, answered as 229)', []],
      ['EPRT |2| (sent to the server as PORT)', ['-P', ADDR.client6]],
    ] as Array<[string, string[]]>) {
      test(`curl over IPv6 ${mode}`, async () => {
        const r = await curl(['-g', ...args], `ftp://anonymous%40${topo.addr.server}:x@[${topo.addr.gatewayLan6}]:${EXPLICIT_PORT}/f.bin`);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(sha256(r.stdout)).toBe(sha256(file));
      });
    }
  });
});
