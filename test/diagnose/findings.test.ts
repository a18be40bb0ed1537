/**
 * One made-up capture per situation, and the findings it must (and must not)
 * produce, with the packet each one points at.
 */
import { describe, expect, test } from 'vitest';
import { diagnoseCaptures } from '../../src/diagnose/diagnose.js';
import type { DiagnoseReport, FindingCode, Severity } from '../../src/diagnose/report.js';
import { writePcap, writePcapng } from './pcap-writer.js';
import * as S from './scenarios.js';

function analyse(s: S.Scenario, ng = false): DiagnoseReport {
  return diagnoseCaptures([{ file: 'test.cap', data: ng ? writePcapng(s.trace.packets) : writePcap(s.trace.packets) }]);
}

interface Case {
  title: string;
  build: () => S.Scenario;
  expected: Array<{ code: FindingCode; severity: Severity; evidence: string | RegExp; message?: RegExp }>;
}

const CASES: Case[] = [
  {
    title: 'control port only, 425 after PORT with a public address: the server could not reach the client',
    build: S.active425,
    expected: [{ code: 'ACTIVE_DATA_FAILED', severity: 'error', evidence: S.portCmd(S.CLIENT.address, 40001), message: /server \(198\.18\.0\.21\) could not connect to the client at 198\.18\.1\.10:40001.*passive mode/ }],
  },
  {
    title: 'pyftpdlib-style 425 to PORT itself, inside address: the NAT did not rewrite PORT',
    build: S.activePortTime425,
    expected: [
      { code: 'PORT_PRIVATE_ADDRESS', severity: 'error', evidence: S.portCmd(S.CLIENT_INSIDE, 40001) },
      { code: 'ACTIVE_DATA_FAILED', severity: 'error', evidence: S.portCmd(S.CLIENT_INSIDE, 40001), message: /inside address.*did not rewrite PORT/ },
    ],
  },
  {
    title: 'control port only, 425 after EPSV: the client did not reach the passive port',
    build: S.passive425,
    expected: [{ code: 'PASSIVE_DATA_FAILED', severity: 'error', evidence: '229 Entering Extended Passive Mode (|||50001|)', message: /client \(198\.18\.1\.10\) did not reach.*port 50001/ }],
  },
  {
    title: '426 after the data connection opened: cut in the middle',
    build: S.aborted426,
    expected: [{ code: 'DATA_TRANSFER_ABORTED', severity: 'error', evidence: S.pasv(S.SERVER.address, 50000), message: /opened but was cut/ }],
  },
  { title: 'clean passive session (PASV and EPSV)', build: S.cleanPassive, expected: [] },
  { title: 'clean active session (PORT and EPRT)', build: S.cleanActive, expected: [] },
  { title: 'clean IPv6 session (EPSV and EPRT |2|)', build: S.cleanIpv6, expected: [] },
  {
    title: 'server behind NAT announces its inside address, client cannot reach it',
    build: S.pasvPrivateUnreachable,
    expected: [
      { code: 'PASV_PRIVATE_ADDRESS', severity: 'error', evidence: S.pasv(S.SERVER_INSIDE, 50000), message: /shared address.*got no answer/ },
      { code: 'DATA_CONNECT_FAILED', severity: 'error', evidence: S.pasv(S.SERVER_INSIDE, 50000), message: /got no answer \(SYN sent 3 times\)/ },
    ],
  },
  {
    title: 'server behind NAT, client ignores the 227 address',
    build: S.pasvPrivateIgnored,
    expected: [{ code: 'PASV_PRIVATE_ADDRESS', severity: 'error', evidence: S.pasv(S.SERVER_INSIDE, 50000), message: /ignored the address/ }],
  },
  {
    title: 'client behind NAT without ALG sends its inside address',
    build: S.portPrivate,
    expected: [
      { code: 'PORT_PRIVATE_ADDRESS', severity: 'error', evidence: S.portCmd(S.CLIENT_INSIDE, 40100), message: /comes from 198\.18\.0\.1/ },
      { code: 'DATA_CONNECT_FAILED', severity: 'error', evidence: S.portCmd(S.CLIENT_INSIDE, 40100), message: /server's data connection .* got no answer \(SYN sent 2 times\)/ },
    ],
  },
  {
    title: 'passive data connection refused',
    build: S.passiveRefused,
    expected: [{ code: 'DATA_CONNECT_FAILED', severity: 'error', evidence: /^229 /, message: /was refused \(RST\)/ }],
  },
  {
    title: 'data connection from another address',
    build: S.unexpectedPeer,
    expected: [{ code: 'DATA_FROM_UNEXPECTED_PEER', severity: 'warning', evidence: /^227 /, message: /came from 198\.18\.1\.99:40001, not from 198\.18\.1\.10/ }],
  },
  {
    title: 'PORT and 227 split across segments',
    build: S.splitLines,
    expected: [
      { code: 'COMMAND_SPLIT_ACROSS_SEGMENTS', severity: 'warning', evidence: /^PORT /, message: /PORT command arrived in 2 TCP segments/ },
      { code: 'COMMAND_SPLIT_ACROSS_SEGMENTS', severity: 'warning', evidence: /^227 /, message: /227 reply arrived in 2 TCP segments/ },
    ],
  },
  {
    title: 'AUTH TLS answered 234',
    build: S.authTls,
    expected: [{ code: 'AUTH_TLS_BLINDS_ALG', severity: 'warning', evidence: 'AUTH TLS → 234 AUTH TLS successful' }],
  },
  {
    title: 'PASV after EPSV ALL',
    build: S.epsvAllViolated,
    expected: [{ code: 'EPSV_ALL_VIOLATED', severity: 'warning', evidence: 'PASV', message: /RFC 2428/ }],
  },
  {
    title: 'data connection not in the capture',
    build: S.dataNotCaptured,
    expected: [{ code: 'DATA_CONNECTION_NOT_SEEN', severity: 'info', evidence: /^227 /, message: /although RETR followed/ }],
  },
];

describe('findings', () => {
  test.each(CASES)('$title', ({ build, expected }) => {
    const scenario = build();
    for (const ng of [false, true]) {
      const r = analyse(scenario, ng);
      expect(r.sessions).toHaveLength(1);
      expect(r.findings.map((f) => ({ code: f.code, severity: f.severity, evidence: f.evidence, message: f.message }))).toEqual(
        expected.map((e) => ({
          code: e.code,
          severity: e.severity,
          evidence: typeof e.evidence === 'string' ? e.evidence : expect.stringMatching(e.evidence),
          message: e.message ? expect.stringMatching(e.message) : expect.any(String),
        })),
      );
      for (const f of r.findings) {
        expect(f.session).toEqual({ id: '1.1', client: r.sessions[0]!.client, server: r.sessions[0]!.server });
        expect(f.capture).toBe(1);
        // The packet exists and its time is the packet's time.
        const p = scenario.trace.packets[f.packet - 1]!;
        expect(f.time).toBeCloseTo(p.t, 5);
      }
    }
  });

  test('findings point at the packet that shows the problem', () => {
    const s = S.pasvPrivateUnreachable();
    const r = analyse(s);
    const find = (code: FindingCode) => r.findings.find((f) => f.code === code)!;
    const p227 = s.trace.packets.findIndex((p) => p.payload?.toString().startsWith('227')) + 1;
    const syn = s.trace.packets.findIndex((p) => p.flags === 'S' && p.dst.port === 50000) + 1;
    expect(find('PASV_PRIVATE_ADDRESS').packet).toBe(p227);
    expect(find('DATA_CONNECT_FAILED').packet).toBe(syn);
  });

  test('split lines: the finding names both packets', () => {
    const s = S.splitLines();
    const r = analyse(s);
    const split = r.findings.filter((f) => f.code === 'COMMAND_SPLIT_ACROSS_SEGMENTS');
    for (const f of split) {
      const m = /packets (\d+), (\d+)\)/.exec(f.message)!;
      const [a, b] = [Number(m[1]), Number(m[2])];
      expect(f.packet).toBe(b);
      const joined = Buffer.concat([s.trace.packets[a - 1]!.payload!, s.trace.packets[b - 1]!.payload!]).toString();
      expect(joined).toBe(`${f.evidence}\r\n`);
    }
  });

  test('a 227 with the site-local address of the server itself is fine (capture inside the NAT)', () => {
    const inside = { address: S.SERVER_INSIDE, port: 21 };
    const s = S.control(S.CLIENT, inside);
    s.ctl.line('c', 'PASV');
    s.ctl.line('s', S.pasv(S.SERVER_INSIDE, 50000));
    S.transfer(s, () => S.dataConnection(s.trace, { ...S.CLIENT, port: 40001 }, { address: S.SERVER_INSIDE, port: 50000 }));
    expect(analyse(S.quit(s)).findings).toEqual([]);
  });

  test('a 227 with another site-local address while the server is reached at a site-local one: warning', () => {
    const inside = { address: S.SERVER_INSIDE, port: 21 };
    const s = S.control({ address: '100.64.5.5', port: 40000 }, inside);
    s.ctl.line('c', 'PASV');
    s.ctl.line('s', S.pasv('100.64.9.9', 50000));
    S.transfer(s, () => S.dataConnection(s.trace, { address: '100.64.5.5', port: 40001 }, { address: '100.64.9.9', port: 50000 }));
    const r = analyse(S.quit(s));
    expect(r.findings.map((f) => [f.code, f.severity])).toEqual([['PASV_PRIVATE_ADDRESS', 'warning']]);
  });

  test('PASS is masked in the transcript and in evidence', () => {
    const r = analyse(S.cleanPassive());
    const texts = r.sessions[0]!.transcript.map((l) => l.text);
    expect(texts).toContain('PASS ****');
    expect(JSON.stringify(r)).not.toContain('secret');
  });
});
