/**
 * One capture taken on the NAT box itself (tcpdump -i any port 21): both
 * legs of each translated control connection in the same file, sometimes
 * only one direction of each leg. The legs are paired, the translation
 * named, the rewrites listed or inferred from the ACK numbers, and a
 * missing sequence adjustment found.
 */
import { describe, expect, test } from 'vitest';
import { diagnoseCaptures, formatDiagnoseReport } from '../../src/diagnose/diagnose.js';
import type { DiagnoseReport } from '../../src/diagnose/report.js';
import { Middlebox } from './middlebox.js';
import { writePcap, type Packet } from './pcap-writer.js';
import { portCmd } from './scenarios.js';

const INSIDE = { address: '100.64.1.2', port: 40000 };
const OUTSIDE = { address: '198.18.0.100', port: 61000 };
const SERVER = { address: '198.18.0.21', port: 21 };

/** A client behind a NAT whose ALG rewrites PORT (100,64,1,2 → 198,18,0,100: +2 bytes). */
function clientNat(adjust: boolean, after: Array<['c' | 's', string]> = [['c', 'NOOP'], ['s', '200 ok'], ['c', 'QUIT'], ['s', '221 Bye']]): Middlebox {
  const box = new Middlebox({
    clientSide: { client: INSIDE, server: SERVER },
    serverSide: { client: OUTSIDE, server: SERVER },
    rewrite: (from, text) => (from === 'c' ? text.replace('100,64,1,2,', '198,18,0,100,') : text),
    adjust,
  });
  box
    .handshake()
    .exchange([
      ['s', '220 FTP server ready'],
      ['c', 'USER anonymous'],
      ['s', '331 Password required'],
      ['c', 'PASS secret'],
      ['s', '230 Logged in'],
      ['c', portCmd(INSIDE.address, 40001)],
      ['s', '200 PORT ok'],
      ...after,
    ]);
  return box.close();
}

/** What tcpdump on the NAT box writes: both legs, in time order; `keep` drops what a one-direction filter would. */
function firewallCapture(box: Middlebox, keep: (p: Packet, leg: 'inside' | 'outside') => boolean = () => true): DiagnoseReport {
  const { clientSide, serverSide } = box.captures();
  const packets = [...clientSide.filter((p) => keep(p, 'inside')), ...serverSide.filter((p) => keep(p, 'outside'))].sort((a, b) => a.t - b.t);
  return diagnoseCaptures([{ file: 'firewall.pcap', data: writePcap(packets) }]);
}

/** The inside leg's client-to-server direction and the outside leg's server-to-client direction only. */
const oneDirectionEach = (p: Packet, leg: 'inside' | 'outside') => (leg === 'inside' ? p.src.address === INSIDE.address : p.src.address === SERVER.address);

describe('both legs of a translated connection in one capture', () => {
  test('an ALG that adjusts: the legs pair up, the translation and the PORT rewrite are named, no finding', () => {
    const r = firewallCapture(clientNat(true));
    expect(r.sessions.map((s) => `${s.id} ${s.client.address}:${s.client.port}`)).toEqual(['1.1 100.64.1.2:40000', '1.2 198.18.0.100:61000']);
    expect(r.pairs).toHaveLength(1);
    const p = r.pairs[0]!;
    expect(p).toMatchObject({ scope: 'one-capture', clientSession: '1.1', middleboxKind: 'translated', clientSideBy: 'syn-order' });
    expect(p.translation).toMatchObject({ kind: 'source', text: 'client inside 100.64.1.2:40000 ↔ outside 198.18.0.100:61000' });
    expect(p.rewrites.map((w) => [w.kind, w.before, w.after, w.afterBytes - w.beforeBytes])).toEqual([['PORT', portCmd(INSIDE.address, 40001), portCmd(OUTSIDE.address, 40001), 2]]);
    expect(p.sequenceCheck).toMatchObject({ checked: true, method: 'segments' });
    expect(r.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(formatDiagnoseReport(r)).toMatch(/client inside 100\.64\.1\.2:40000 ↔ outside 198\.18\.0\.100:61000/);
  });

  test('an ALG that does not adjust: ALG_SEQ_NOT_ADJUSTED on the outside leg', () => {
    const r = firewallCapture(clientNat(false));
    expect(r.pairs[0]!.sequenceCheck.firstMismatch).toBeDefined();
    expect(r.findings.map((f) => f.code)).toContain('ALG_SEQ_NOT_ADJUSTED');
  });

  test('one direction of each leg, an ALG that adjusts: the PORT length change is inferred from the ACKs, no finding', () => {
    const r = firewallCapture(clientNat(true), oneDirectionEach);
    expect(r.pairs).toHaveLength(1);
    const p = r.pairs[0]!;
    expect(p.middleboxKind).toBe('translated');
    expect(p.sequenceCheck).toMatchObject({ checked: true, method: 'ack-inference' });
    expect(p.inferredRewrites.map((w) => [w.direction, w.kind, w.before, w.lengthChange])).toEqual([['client->server', 'PORT', portCmd(INSIDE.address, 40001), 2]]);
    expect(r.findings.filter((f) => f.code === 'ALG_SEQ_NOT_ADJUSTED')).toEqual([]);
  });

  test('one direction of each leg, an ALG that does not adjust: later ACKs fall back unshifted, ALG_SEQ_NOT_ADJUSTED', () => {
    const r = firewallCapture(clientNat(false), oneDirectionEach);
    const p = r.pairs[0]!;
    expect(p.inferredRewrites.map((w) => w.lengthChange)).toEqual([2]);
    const f = r.findings.find((x) => x.code === 'ALG_SEQ_NOT_ADJUSTED');
    expect(f?.message).toMatch(/changed the PORT line .* by \+2 bytes/);
  });

  test('two unrelated sessions to the same server at the same time are not legs', () => {
    const a = clientNat(true).captures().clientSide;
    const other = new Middlebox({
      clientSide: { client: { address: '198.18.1.77', port: 40500 }, server: SERVER },
      serverSide: { client: { address: '198.18.1.77', port: 40500 }, server: SERVER },
      adjust: true,
      isn: { c: 0x4000_0000, s: 0x6000_0000 },
    });
    other.handshake().exchange([['s', '220 FTP server ready'], ['c', 'USER anonymous'], ['s', '331 Password required']]).close();
    const packets = [...a, ...other.captures().clientSide].sort((x, y) => x.t - y.t);
    const r = diagnoseCaptures([{ file: 'two.pcap', data: writePcap(packets) }]);
    expect(r.sessions).toHaveLength(2);
    expect(r.pairs).toEqual([]);
  });

  test('control port only, an active transfer that fails with 425: both legs paired, one ACTIVE_DATA_FAILED says the box lost the connection', () => {
    const r = firewallCapture(clientNat(true, [['c', 'LIST'], ['s', "425 Can't open data connection."], ['c', 'QUIT'], ['s', '221 Bye']]));
    expect(r.pairs).toHaveLength(1);
    // One finding for the two legs, on the server's: the box rewrote PORT, so its forward rules lost the connection.
    const failed = r.findings.filter((f) => f.code === 'ACTIVE_DATA_FAILED');
    expect(failed.map((f) => f.session.id)).toEqual(['1.2']);
    expect(failed[0]!.message).toMatch(/^The server answered "425 Can't open data connection." \(packet \d+\), and both legs .*client inside 100\.64\.1\.2:40000 ↔ outside 198\.18\.0\.100:61000.*rewrote .*ct state related accept/);
  });
});
