/**
 * Split horizon in real namespaces (root). ftp-alg runs in the gateway
 * namespace in front of vsftpd (198.18.0.2). Two clients use the same
 * listener: one in the client namespace (reaches it at 100.64.1.1) and one
 * in the server's own network (reaches it at 198.18.0.1, and has no route
 * to 100.64/10). With `--announce 198.18.0.0/24=198.18.0.1` each is told an
 * address it can reach; without it, the second would be told 100.64.1.1.
 * curl honours the 227 address (--no-ftp-skip-pasv-ip), so a wrong
 * announcement fails the transfer.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CAN_NETNS, CAN_VSFTPD, NETNS_SKIP, VSFTPD_SKIP, buildNatTopology, startVsftpd, type NatTopology } from '../helpers/netns.js';
import { CLI } from './ops-process.js';
import { HAVE, needs, randomFile, sha256 } from '../helpers/tools.js';

const SKIP = NETNS_SKIP || VSFTPD_SKIP || needs('curl', 'needs curl');
const PORT = 2121;
const STRICT_PASV = ['--disable-epsv', '--no-ftp-skip-pasv-ip'];

describe.skipIf(!CAN_NETNS || !CAN_VSFTPD || !HAVE.curl)(`split-horizon announce: an inside and an outside client through one listener${SKIP}`, () => {
  const file = randomFile(1 << 20);
  let topo: NatTopology | undefined;
  const logs: string[] = [];

  beforeAll(async () => {
    topo = await buildNatTopology();
    await startVsftpd(topo, { files: { 'file.bin': file } });
    const gw = topo.spawn(topo.ns.gateway, process.execPath, [
      CLI,
      'reverse',
      '--listen',
      `0.0.0.0:${PORT}`,
      '--server',
      `${topo.addr.server}:21`,
      '--public-address',
      topo.addr.gatewayLan,
      '--announce',
      `198.18.0.0/24=${topo.addr.gatewayWan}`,
      '--log-format',
      'json',
      '--log-level',
      'debug',
    ]);
    gw.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
    await topo.waitListening(topo.ns.gateway, PORT);
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  const curl = (ns: string, host: string) => topo!.exec(ns, 'curl', ['-sS', '--max-time', '20', ...STRICT_PASV, `ftp://${host}:${PORT}/file.bin`], { timeoutMs: 30_000 });

  test('the client on the far side is told the public address and downloads', async () => {
    const r = await curl(topo!.ns.client, topo!.addr.gatewayLan);
    expect(r.stderr.toString()).toBe('');
    expect(sha256(r.stdout)).toBe(sha256(file));
    expect(logs.join('')).toMatch(/"after":"227 Entering Passive Mode \(100,64,1,1,/);
  });

  test('a client in the server’s own network is told its side’s address and downloads', async () => {
    const route = await topo!.exec(topo!.ns.server, 'ip', ['route', 'get', topo!.addr.gatewayLan]);
    expect(route.code).not.toBe(0); // the public address is out of its reach
    const r = await curl(topo!.ns.server, topo!.addr.gatewayWan);
    expect(r.stderr.toString()).toBe('');
    expect(sha256(r.stdout)).toBe(sha256(file));
    expect(logs.join('')).toMatch(/"after":"227 Entering Passive Mode \(198,18,0,1,/);
  });
});
