/**
 * Cross-check against Wireshark's FTP dissector: the commands we reassemble
 * from our own test captures must be the ones tshark reads from the same
 * files. Only captures tshark itself reads right: it dissects each segment
 * on its own, so lines split across segments and out-of-order segments are
 * left to the unit tests.
 */
import { afterAll, describe, expect, test } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { diagnoseFiles } from '../../src/diagnose/diagnose.js';
import { captureDir, writePcap, writePcapng, type Link } from './pcap-writer.js';
import * as S from './scenarios.js';

const TSHARK = '/usr/bin/tshark';
const HAVE_TSHARK = existsSync(TSHARK);
const SKIP = HAVE_TSHARK ? '' : ' [skipped: needs tshark (/usr/bin/tshark): apt-get install tshark]';

const dir = captureDir('ftp-alg-tshark-');
afterAll(() => dir.remove());

function tsharkCommands(path: string): Array<[string, string]> {
  const r = spawnSync(TSHARK, ['-n', '-r', path, '-Y', 'ftp.request.command', '-T', 'fields', '-e', 'ftp.request.command', '-e', 'ftp.request.arg'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`tshark failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const [verb = '', arg = ''] = l.split('\t');
      return [verb.toUpperCase(), verb.toUpperCase() === 'PASS' ? '****' : arg];
    });
}

/** A retransmitted command: the first copy counts, once. */
function withRetransmission(): S.Scenario {
  const s = S.control();
  const [p] = s.ctl.line('c', 'CWD /pub', { ack: false });
  s.trace.packets.push({ ...p!, t: p!.t + 0.2 });
  s.trace.wait(0.2);
  s.ctl.line('s', '250 ok');
  return S.quit(s);
}

const CAPTURES: Array<{ title: string; build: () => S.Scenario; link: Link; ng: boolean }> = [
  { title: 'passive, pcap, Ethernet', build: S.cleanPassive, link: 'ethernet', ng: false },
  { title: 'active, pcapng, 802.1Q', build: S.cleanActive, link: 'vlan', ng: true },
  { title: 'IPv6, pcapng, Linux SLL2', build: S.cleanIpv6, link: 'sll2', ng: true },
  { title: 'NAT without ALG, pcap, Linux SLL', build: S.portPrivate, link: 'sll', ng: false },
  { title: 'EPSV ALL, pcap, raw IP', build: S.epsvAllViolated, link: 'raw', ng: false },
  { title: 'a retransmitted command, pcapng', build: withRetransmission, link: 'ethernet', ng: true },
];

describe('tshark agrees on the FTP commands', () => {
  for (const c of CAPTURES) {
    test.skipIf(!HAVE_TSHARK)(`${c.title}${SKIP}`, async () => {
      const packets = c.build().trace.packets;
      const path = join(dir.path, `${c.title.replace(/\W+/g, '-')}.${c.ng ? 'pcapng' : 'pcap'}`);
      writeFileSync(path, c.ng ? writePcapng(packets, { link: c.link }) : writePcap(packets, { link: c.link }));
      const theirs = tsharkCommands(path);
      const r = await diagnoseFiles([path]);
      const ours = r.sessions.flatMap((s) =>
        s.transcript
          .filter((l) => l.direction === 'client->server')
          .map((l): [string, string] => {
            const space = l.text.indexOf(' ');
            return space === -1 ? [l.text.toUpperCase(), ''] : [l.text.slice(0, space).toUpperCase(), l.text.slice(space + 1)];
          }),
      );
      expect(theirs.length).toBeGreaterThan(3);
      expect(ours).toEqual(theirs);
    });
  }
});
