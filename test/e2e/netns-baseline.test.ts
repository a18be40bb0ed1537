/**
 * Proves the namespace NAT lab before any gateway of ours is put in it:
 * a plain masquerading NAT breaks active FTP (vsftpd refuses the inside
 * address in PORT), passive works, and the kernel's own FTP helper repairs
 * active mode. The server namespace has no route to the client, so a
 * "no ALG" failure cannot turn into a pass by accident.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAN_NETNS, CAN_VSFTPD, NETNS_SKIP, VSFTPD_SKIP, buildNatTopology, enableKernelFtpHelper, startVsftpd, type NatTopology, type Vsftpd } from '../helpers/netns.js';
import { HAVE, needs, randomFile, sha256 } from '../helpers/tools.js';

const SKIP = NETNS_SKIP || VSFTPD_SKIP || needs('curl', 'needs curl');

describe.skipIf(!CAN_NETNS || !CAN_VSFTPD || !HAVE.curl)(`netns NAT baseline: vsftpd behind masquerade, curl, kernel FTP helper${SKIP}`, () => {
  const file = randomFile(1 << 20);
  let topo: NatTopology | undefined;
  let ftpd: Vsftpd;
  let url: string;

  beforeAll(async () => {
    topo = await buildNatTopology();
    ftpd = await startVsftpd(topo, { files: { 'file.bin': file } });
    url = `ftp://${topo.addr.server}/file.bin`;
  });

  afterAll(async () => {
    await topo?.destroy();
  });

  const curl = (args: string[]) => topo!.exec(topo!.ns.client, 'curl', ['-sS', '--max-time', '20', ...args, url], { timeoutMs: 30_000 });

  it('the server namespace has no route back to the inside network', async () => {
    const t = topo!;
    const route = await t.exec(t.ns.server, 'ip', ['route', 'get', t.addr.client]);
    expect(route.code).not.toBe(0);
    expect(route.stderr).toMatch(/unreachable/i);
    const connect = await t.exec(t.ns.server, 'curl', ['-sS', '--max-time', '2', `telnet://${t.addr.client}:9`], { input: '', timeoutMs: 10_000 });
    expect(connect.code).not.toBe(0);
  });

  it('no ALG: strict passive (PASV, 227 address honoured) works through the NAT', async () => {
    const r = await curl(['--disable-epsv', '--no-ftp-skip-pasv-ip']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(sha256(r.stdout)).toBe(sha256(file));
    expect(ftpd.log()).toMatch(/"227 Entering Passive Mode \(198,18,0,2,\d+,\d+\)/);
  });

  it('no ALG: active PORT with the inside address is refused by vsftpd (500 Illegal PORT command)', async () => {
    const r = await curl(['-P', topo!.addr.client, '--disable-eprt']);
    expect(r.code).not.toBe(0);
    expect(r.stdout.length).toBe(0);
    // The reason, not just the failure: vsftpd saw the masqueraded peer and the unrewritten inside address.
    const log = await ftpd.waitLog(/500 Illegal PORT command/);
    expect(log).toMatch(/Client "198\.18\.0\.1", "PORT 100,64,1,2,\d+,\d+"/);
  });

  it('kernel FTP helper on the gateway: active PORT is rewritten and succeeds', async () => {
    await enableKernelFtpHelper(topo!);
    const before = ftpd.log().length;
    const r = await curl(['-P', topo!.addr.client, '--disable-eprt']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(sha256(r.stdout)).toBe(sha256(file));
    const log = ftpd.log().slice(before);
    expect(log).toMatch(/"PORT 198,18,0,1,\d+,\d+"/);
    expect(log).toMatch(/"200 PORT command successful/);
    expect(log).not.toMatch(/Illegal PORT/);
  });
});
