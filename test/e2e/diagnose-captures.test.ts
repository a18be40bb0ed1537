/**
 * `ftp-alg diagnose` on real captures: tcpdump on both sides of a real NAT
 * (client and server namespaces), vsftpd and curl in active mode. Without an
 * ALG the server side shows the client's inside address in PORT; with the
 * kernel's FTP helper the two captures pair up, the PORT rewrite is found
 * and the helper's sequence-number adjustment checks out.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFileSync, watch } from 'node:fs';
import { join } from 'node:path';
import { CAN_NETNS, CAN_VSFTPD, NETNS_SKIP, VSFTPD_SKIP, buildNatTopology, enableKernelFtpHelper, startVsftpd, type NatTopology } from '../helpers/netns.js';
import { HAVE, needs, randomFile, run } from '../helpers/tools.js';
import { diagnoseFiles } from '../../src/diagnose/diagnose.js';
import type { DiagnoseReport } from '../../src/diagnose/report.js';
import { readCapture, type TcpSegment } from '../../src/diagnose/pcap.js';

const HAVE_TCPDUMP = HAVE.root && HAVE.tcpdump;
const SKIP = NETNS_SKIP || VSFTPD_SKIP || needs('curl', 'needs curl');
const CLI = join(process.cwd(), 'dist/cli.js');

const MARKER_PORT = 9;

/**
 * tcpdump in `ns` on every interface while `fn` runs; resolves with the
 * capture file. tcpdump may still hold packets when told to stop, so before
 * stopping it a marker (a SYN to a closed port of the server, which the
 * capture filter keeps) is sent, and the capture is stopped only once the
 * file shows it: everything before it is written by then.
 */
async function capture(topo: NatTopology, ns: string, file: string, fn: () => Promise<void>): Promise<string> {
  // --immediate-mode: otherwise packets wait in the kernel's ring-buffer block
  // until its timeout; -B: a bigger buffer, so that a loaded machine drops nothing.
  const child = topo.spawn(ns, 'tcpdump', ['-i', 'any', '--immediate-mode', '-B', '32768', '-U', '-n', '-w', file, 'tcp'], { stdio: ['ignore', 'ignore', 'pipe'] });
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
    await topo.exec(topo.ns.client, 'curl', ['-s', '--max-time', '2', `telnet://${topo.addr.server}:${MARKER_PORT}`], { input: '' });
    await fileShows(file, (segments) => segments.some((x) => x.dst.port === MARKER_PORT || x.src.port === MARKER_PORT), 15_000);
  } finally {
    child.kill('SIGINT');
    await exited;
  }
  return file;
}

/** Resolves once `check` passes on the capture so far; re-checks on every change of the file. */
function fileShows(file: string, check: (segments: TcpSegment[]) => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const watcher = watch(file);
    const done = (err?: Error) => {
      clearTimeout(timer);
      watcher.close();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error(`${file} did not show the marker within ${timeoutMs} ms`)), timeoutMs);
    const test = () => {
      if (check(readCapture(readFileSync(file), file, { allowTruncatedTail: true }).segments)) done();
    };
    watcher.on('change', test);
    test();
  });
}

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
