/**
 * The kernel data path where the FTP server runs on the gateway host itself
 * (vsftpd on the gateway's LAN address 100.64.1.1, ftp-alg reverse on its
 * WAN address 198.18.0.1, the client outside at 198.18.0.2). A passive data
 * connection is DNATed to a local address, so it never passes postrouting:
 * the SNAT that makes vsftpd see its control peer's address (its default
 * check) has to run in the nat input hook too. Active data leaves the host
 * through output and postrouting.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { join } from 'node:path';
import { ADDR, CAN_NETNS, CAN_VSFTPD, NETNS_SKIP, VSFTPD_SKIP, buildNatTopology, startVsftpd, type NatTopology } from '../helpers/netns.js';
import { randomFile, sha256 } from '../helpers/tools.js';

const CLI = join(process.cwd(), 'dist/cli.js');
const PORT = 2121;

describe.skipIf(!CAN_NETNS || !CAN_VSFTPD)(`kernel data path to a server on the gateway host${NETNS_SKIP}${VSFTPD_SKIP}`, () => {
  let topo: NatTopology;
  const file = randomFile(3 << 20);

  beforeAll(async () => {
    topo = await buildNatTopology();
    await startVsftpd(topo, { files: { 'f.bin': file }, at: { ns: topo.ns.gateway, address: ADDR.gatewayLan } });
    const child = topo.spawn(
      topo.ns.gateway,
      process.execPath,
      [CLI, 'reverse', '--listen', `${ADDR.gatewayWan}:${PORT}`, '--server', `${ADDR.gatewayLan}:21`, '--public-address', ADDR.gatewayWan, '--data-path', 'kernel', '--log-format', 'json'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr?.on('data', () => undefined);
    await topo.waitListening(topo.ns.gateway, PORT);
  }, 60_000);
  afterAll(async () => {
    await topo?.destroy();
  });

  const curl = (args: string[]) =>
    topo.exec(topo.ns.server, 'curl', ['-sS', '--max-time', '20', ...args, `ftp://${ADDR.gatewayWan}:${PORT}/f.bin`], { timeoutMs: 30_000 });

  for (const [mode, args] of [
    ['strict PASV', ['--disable-epsv', '--no-ftp-skip-pasv-ip']],
    ['EPSV', []],
    ['active PORT', ['-P', ADDR.server, '--disable-eprt']],
    ['active EPRT', ['-P', ADDR.server]],
  ] as Array<[string, string[]]>) {
    test(`curl ${mode} from outside: byte-identical, vsftpd's peer check satisfied`, async () => {
      const r = await curl(args);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(sha256(r.stdout)).toBe(sha256(file));
    });
  }
});
