/**
 * The entry points: diagnoseFiles on real files, the JSON report shape, the
 * human-readable text, and errors that name the file instead of a stack
 * trace.
 */
import { afterAll, describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CaptureError, diagnoseCaptures, diagnoseFiles, formatDiagnoseReport } from '../../src/diagnose/diagnose.js';
import { FINDING_CODES, REPORT_VERSION } from '../../src/diagnose/report.js';
import { Trace, TcpConversation, captureDir, writePcap, writePcapng, type Link } from './pcap-writer.js';
import * as S from './scenarios.js';

const dir = captureDir('ftp-alg-diagnose-');
afterAll(() => dir.remove());

function file(name: string, data: Buffer): string {
  const path = join(dir.path, name);
  writeFileSync(path, data);
  return path;
}

describe('diagnoseFiles', () => {
  const links: Link[] = ['ethernet', 'vlan', 'sll', 'sll2', 'raw'];
  for (const link of links) {
    test(`reads pcap and pcapng files (${link})`, async () => {
      const s = S.pasvPrivateUnreachable();
      for (const [name, data] of [
        [`a-${link}.pcap`, writePcap(s.trace.packets, { link, endian: 'be' })],
        [`a-${link}.pcapng`, writePcapng(s.trace.packets, { link })],
      ] as const) {
        const path = file(name, data);
        const r = await diagnoseFiles([path]);
        expect(r.captures[0]).toMatchObject({ capture: 1, file: path, packets: s.trace.packets.length, tcpConnections: 2 });
        expect(r.findings.map((f) => f.code)).toEqual(['PASV_PRIVATE_ADDRESS', 'DATA_CONNECT_FAILED']);
      }
    });
  }

  test('a file that does not exist: CaptureError naming it', async () => {
    const missing = join(dir.path, 'nope.pcap');
    await expect(diagnoseFiles([missing])).rejects.toThrow(CaptureError);
    await expect(diagnoseFiles([missing])).rejects.toThrow(new RegExp(`^${missing}: cannot read: ENOENT`));
  });

  test('a file that is not a capture: CaptureError with the offset', async () => {
    const path = file('notes.txt', Buffer.from('just some text\n'));
    await expect(diagnoseFiles([path])).rejects.toThrow(`${path}: not a pcap or pcapng file (magic 6a757374 "just") (at byte 0)`);
  });

  test('a capture cut off in its last packet is analysed, with a note', async () => {
    const data = writePcap(S.cleanPassive().trace.packets);
    const path = file('cut.pcap', data.subarray(0, data.length - 5));
    const r = await diagnoseFiles([path]);
    expect(r.captures[0]!.notes).toEqual([expect.stringMatching(/^capture truncated: record of \d+ bytes/)]);
    expect(r.sessions).toHaveLength(1);
  });

  test('one or two files only', async () => {
    await expect(diagnoseFiles([])).rejects.toThrow(RangeError);
    await expect(diagnoseFiles(['a', 'b', 'c'])).rejects.toThrow(/one or two capture files, got 3/);
  });
});

describe('report shape', () => {
  test('plain JSON: survives a round trip unchanged, documented fields present', () => {
    const s = S.splitLines();
    const r = diagnoseCaptures([{ file: 'x.pcapng', data: writePcapng(s.trace.packets) }]);
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
    expect(Object.keys(r).sort()).toEqual(['captures', 'findings', 'pairs', 'sessions', 'version']);
    expect(r.version).toBe(REPORT_VERSION);
    const session = r.sessions[0]!;
    expect(Object.keys(session).sort()).toEqual(
      ['capture', 'client', 'commands', 'dataConnections', 'detectedBy', 'end', 'handshake', 'id', 'notes', 'replies', 'roles', 'rolesReason', 'server', 'start', 'transcript'].sort(),
    );
    expect(session.client).toEqual({ family: 4, address: S.CLIENT.address, port: S.CLIENT.port });
    expect(session.dataConnections.map((d) => [d.mode, d.kind, d.status])).toEqual([
      ['active', 'PORT', 'opened'],
      ['passive', '227', 'opened'],
    ]);
    expect(session.dataConnections[0]!.connections[0]).toEqual({
      from: { family: 4, address: S.SERVER.address, port: 20 },
      to: { family: 4, address: S.CLIENT.address, port: 40100 },
      state: 'opened',
      first: { packet: expect.any(Number), time: expect.any(Number) },
      syns: 1,
      // The made-up data connection sends from its acceptor.
      bytes: { fromInitiator: 0, toInitiator: 14 },
      matchedBy: 'endpoint',
      unexpectedPeer: false,
    });
    const port = session.transcript.find((l) => l.text.startsWith('PORT'))!;
    expect(port).toMatchObject({ direction: 'client->server', segments: 2 });
    for (const f of r.findings) expect(FINDING_CODES).toContain(f.code);
  });

  test('transcript in capture order, replies joined', () => {
    const r = diagnoseCaptures([{ file: 'x.pcap', data: writePcap(S.cleanActive().trace.packets) }]);
    const t = r.sessions[0]!.transcript;
    expect(t.slice(0, 5).map((l) => `${l.direction === 'client->server' ? '>' : '<'} ${l.text}`)).toEqual([
      '< 220 FTP server ready',
      '> USER anonymous',
      '< 331 Password required',
      '> PASS ****',
      '< 230 Logged in',
    ]);
    expect(t.map((l) => l.packet)).toEqual([...t.map((l) => l.packet)].sort((a, b) => a - b));
  });
});

describe('text', () => {
  test('one block per capture and session, data connections, findings with codes', () => {
    const r = diagnoseCaptures([{ file: 'client-side.pcap', data: writePcap(S.pasvPrivateUnreachable().trace.packets) }]);
    const text = formatDiagnoseReport(r);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^capture 1: client-side\.pcap \(pcap, ethernet\): \d+ packets, \d+ TCP segments in 2 connections, [\d.]+ s$/);
    expect(text).toContain('session 1.1  198.18.1.10:40000 → 198.18.0.21:21  (opened; #1–#');
    expect(text).toMatch(/ {2}data passive 227 {2}→ 100\.64\.0\.21:50000 \(#\d+ \+[\d.]+s\): unanswered\n {4}198\.18\.1\.10:40001 → 100\.64\.0\.21:50000 unanswered at #\d+, SYN ×3; 0 B sent, 0 B received/);
    expect(text).toContain('findings: 2 errors, 0 warnings, 0 info');
    expect(text).toMatch(/^ERROR {3}PASV_PRIVATE_ADDRESS {2}session 1\.1 {2}#\d+ \+[\d.]+s$/m);
    expect(text).toMatch(/^ERROR {3}DATA_CONNECT_FAILED {2}session 1\.1 {2}#\d+ \+[\d.]+s$/m);
    expect(text).toContain('        > "227 Entering Passive Mode (100,64,0,21,195,80)."');
    expect(lines.every((l) => l.length <= 160)).toBe(true);
  });

  test('no session, no findings', () => {
    const trace = new Trace();
    new TcpConversation(trace, S.CLIENT, { ...S.SERVER, port: 8080 }).handshake().line('c', 'GET / HTTP/1.1');
    const text = formatDiagnoseReport(diagnoseCaptures([{ file: 'web.pcap', data: writePcap(trace.packets) }]));
    expect(text).toContain('capture 1: no FTP control session found (port 21, or a 220 greeting)');
    expect(text).toContain('findings: none');
  });

  test('control bytes in a line are escaped, not printed raw', () => {
    const s = S.control();
    s.ctl.line('c', 'PORT 100,64,1,2,4,1\x1b[31m');
    s.ctl.line('s', '501 bad');
    const text = formatDiagnoseReport(diagnoseCaptures([{ file: 'x.pcap', data: writePcap(S.quit(s).trace.packets) }]));
    expect(text).not.toContain('\x1b');
  });
});

describe('robustness', () => {
  const line = fc.oneof(
    fc.constantFrom('PORT 100,64,1,2,4,1', 'EPRT |2|fd00::1|4000|', 'PASV', 'EPSV ALL', 'AUTH TLS', 'LPRT 4,4,100,64,1,2,2,4,1', 'RETR x', 'QUIT'),
    fc.constantFrom('227 Entering Passive Mode (100,64,0,21,195,80).', '229 (|||1|)', '228 (4,4,1,2,3,4,2,0,21)', '234 ok', '150 go', '226 ok', '220-x', '220 x'),
    fc.string({ maxLength: 40 }),
  );
  fcTest.prop([fc.array(fc.tuple(fc.boolean(), line, fc.array(fc.integer({ min: 1, max: 20 }), { maxLength: 3 })), { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 40 })], {
    numRuns: 100,
  })('any control traffic, split and shuffled: a report, never a crash', (script, order) => {
    const s = S.control();
    for (const [fromClient, text, split] of script) s.ctl.line(fromClient ? 'c' : 's', text, { split });
    const packets = S.quit(s).trace.packets;
    const keyed = packets.map((p, i) => ({ p, k: order[i] ?? i }));
    keyed.sort((a, b) => a.k - b.k);
    const r = diagnoseCaptures([{ file: 'fuzz.pcap', data: writePcap(keyed.map((x) => x.p)) }]);
    expect(() => formatDiagnoseReport(r)).not.toThrow();
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });
});
