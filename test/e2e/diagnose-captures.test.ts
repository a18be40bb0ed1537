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
import { capture } from '../diagnose/capture.js';

const HAVE_TCPDUMP = HAVE.root && HAVE.tcpdump;
const SKIP = NETNS_SKIP || VSFTPD_SKIP || needs('curl', 'needs curl');
const CLI = join(process.cwd(), 'dist/cli.js');

describe.skipIf(!CAN_NETNS || !CAN_VSFTPD || !HAVE.curl || !HAVE_TCPDUMP)(`diagnose real captures of a NAT${SKIP}`, () => {
  let topo: NatTopology;
  let dir: string;
  const curlActive = () =>
    topo.exec(topo.ns.client, 'curl', ['-sS', '--max-time', '15', '-P', topo.addr.client, '--disable-eprt', '-o', '/dev/null', `ftp://${topo.addr.server}/f.bin`]);

  beforeAll(async () => {
    topo = await buildNatTopology();
    await startVsftpd(topo, { files: { 'f.bin': randomFile(32 << 10) } });
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
    // The CLI says the same, and exits 1 for an error-level finding (the marker adds none).
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
    const summary = JSON.stringify({
      captures: report.captures.map((c) => ({ packets: c.packets, notes: c.notes })),
      sessions: report.sessions.map((x) => ({ id: x.id, lines: x.transcript.map((l) => l.text.slice(0, 12)) })),
    });
    expect(report.pairs, summary).toHaveLength(1);
    const pair = report.pairs[0]!;
    expect(pair.middlebox).toBe('forwards-segments');
    const port = pair.rewrites.find((r) => r.kind === 'PORT');
    expect(port?.before).toMatch(/^PORT 100,64,1,2,\d+,\d+$/);
    expect(port?.after).toMatch(/^PORT 198,18,0,1,\d+,\d+$/);
    expect(pair.sequenceCheck.checked, pair.sequenceCheck.reason).toBe(true);
    expect(pair.sequenceCheck.firstMismatch).toBeUndefined();
    expect(report.findings.map((f) => f.code)).not.toContain('ALG_SEQ_NOT_ADJUSTED');
  });
});
