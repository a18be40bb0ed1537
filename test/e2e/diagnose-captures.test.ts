/**
 * `ftp-alg diagnose` on real captures: tcpdump on both sides of a real NAT
 * (client and server namespaces), vsftpd and curl in active mode. Without an
 * ALG the server side shows the client's inside address in PORT; with the
 * kernel's FTP helper the two captures pair up, the PORT rewrite is found
 * and the helper's sequence-number adjustment checks out.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { join } from 'node:path';
import { CAN_NETNS, CAN_VSFTPD, NETNS_SKIP, VSFTPD_SKIP, buildNatTopology, enableKernelFtpHelper, startVsftpd, type NatTopology } from '../helpers/netns.js';
import { HAVE, needs, randomFile, run } from '../helpers/tools.js';
import { diagnoseFiles } from '../../src/diagnose/diagnose.js';
import type { DiagnoseReport } from '../../src/diagnose/report.js';

const HAVE_TCPDUMP = HAVE.root && HAVE.tcpdump;
const SKIP = NETNS_SKIP || VSFTPD_SKIP || needs('curl', 'needs curl');
const CLI = join(process.cwd(), 'dist/cli.js');

/** tcpdump in `ns` on every interface while `fn` runs; resolves with the capture file. */
async function capture(topo: NatTopology, ns: string, file: string, fn: () => Promise<void>): Promise<string> {
  // --immediate-mode: otherwise packets wait in the kernel's ring-buffer block
  // until its timeout, and a capture stopped right after a short exchange is
  // empty ("33 packets received by filter, 0 packets captured").
  const child = topo.spawn(ns, 'tcpdump', ['-i', 'any', '--immediate-mode', '-U', '-n', '-w', file, 'tcp'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (/listening on/.test(err)) resolve();
    });
    child.once('exit', () => reject(new Error(`tcpdump exited: ${err}`)));
  });
  try {
    await fn();
  } finally {
    child.kill('SIGINT');
    await exited;
  }
  return file;
}

describe.skipIf(!CAN_NETNS || !CAN_VSFTPD || !HAVE.curl || !HAVE_TCPDUMP)(`diagnose real captures of a NAT${SKIP}`, () => {
  let topo: NatTopology;
  let dir: string;
  const curlActive = () =>
    topo.exec(topo.ns.client, 'curl', ['-sS', '--max-time', '15', '-P', topo.addr.client, '--disable-eprt', '-o', '/dev/null', `ftp://${topo.addr.server}/f.bin`]);

  beforeAll(async () => {
    topo = await buildNatTopology();
    await startVsftpd(topo, { files: { 'f.bin': randomFile(256 << 10) } });
    dir = topo.tempDir('captures-');
  });
  afterAll(async () => {
    await topo?.destroy();
  });

  test('no ALG: the server-side capture shows PORT_PRIVATE_ADDRESS', async () => {
    const file = await capture(topo, topo.ns.server, join(dir, 'noalg-outside.pcap'), async () => {
      expect((await curlActive()).code).not.toBe(0);
    });
    const report: DiagnoseReport = await diagnoseFiles([file]);
    const finding = report.findings.find((f) => f.code === 'PORT_PRIVATE_ADDRESS');
    expect(finding?.evidence).toMatch(/PORT 100,64,1,2,\d+,\d+/);
    // The CLI says the same, and exits 1 for an error-level finding.
    const cli = await run(process.execPath, [CLI, 'diagnose', file]);
    expect(cli.code).toBe(1);
    expect(cli.stdout.toString()).toMatch(/PORT_PRIVATE_ADDRESS/);
  });

  test('kernel FTP helper: both sides pair up, the PORT rewrite is listed, sequence numbers adjusted', async () => {
    await enableKernelFtpHelper(topo);
    const inside = join(dir, 'helper-inside.pcap');
    const outside = join(dir, 'helper-outside.pcap');
    await capture(topo, topo.ns.client, inside, () =>
      capture(topo, topo.ns.server, outside, async () => {
        expect((await curlActive()).code).toBe(0);
      }).then(() => undefined),
    );
    const report = await diagnoseFiles([inside, outside]);
    expect(report.pairs).toHaveLength(1);
    const pair = report.pairs[0]!;
    expect(pair.middlebox).toBe('forwards-segments');
    const port = pair.rewrites.find((r) => r.kind === 'PORT');
    expect(port?.before).toMatch(/^PORT 100,64,1,2,\d+,\d+$/);
    expect(port?.after).toMatch(/^PORT 198,18,0,1,\d+,\d+$/);
    expect(pair.sequenceCheck.checked).toBe(true);
    expect(pair.sequenceCheck.firstMismatch).toBeUndefined();
    expect(report.findings.map((f) => f.code)).not.toContain('ALG_SEQ_NOT_ADJUSTED');
  });
});
