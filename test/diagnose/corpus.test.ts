/**
 * A corpus of real captures around real middleboxes (test/fixtures/captures),
 * each with the verdict `diagnose` must give. The committed files are checked
 * on every run; as root with the Debian tools, the captures are taken afresh
 * in namespaces and checked the same way (UPDATE_CAPTURES=1 also writes them
 * into the fixtures folder):
 * - the kernel FTP helper (nf_nat_ftp) on a NAT box, captured on the box
 *   itself, control port only: active (PORT rewritten) and passive;
 * - the same box with the helper's data connections dropped: 425;
 * - the helper in front of a server (DNAT), passive: the 227 rewritten;
 * - ftp-alg reverse in the box, relay and kernel data path, captured on both sides;
 * - a broken ALG: an Ethernet bridge that lengthens the PORT line without
 *   shifting sequence numbers (test/diagnose/broken-alg.py).
 * `probe` from the client's side must agree: OK through the helper,
 * ACTIVE_NO_CONNECT when the box drops the data connections.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CAN_NETNS, CAN_VSFTPD, buildNatTopology, enableKernelFtpHelper, startVsftpd, type NatTopology } from '../helpers/netns.js';
import { HAVE, SYSTEM_PYTHON } from '../helpers/tools.js';
import { diagnoseFiles, formatDiagnoseReport } from '../../src/diagnose/diagnose.js';
import type { DiagnoseReport, FindingCode, PairReport } from '../../src/diagnose/report.js';
import { capture } from './capture.js';
import type { ProbeReport } from '../../src/diagnose/probe.js';

const FIXTURES = join(process.cwd(), 'test/fixtures/captures');
const CLI = join(process.cwd(), 'dist/cli.js');

interface Expected {
  files: string[];
  /** Error-level finding codes, exactly (as a set). */
  errors: FindingCode[];
  pair?: Partial<Pick<PairReport, 'scope' | 'middleboxKind'>> & { rewrites?: string[] };
}

export const CORPUS: Record<string, Expected> = {
  'kernel helper, active (PORT rewritten), firewall capture, control port only': {
    files: ['helper-port-firewall.pcap'],
    errors: [],
    pair: { scope: 'one-capture', middleboxKind: 'translated', rewrites: ['PORT'] },
  },
  'kernel helper in front of a server (DNAT), passive: 227 rewritten, firewall capture, control port only': {
    files: ['helper-pasv-server-nat-firewall.pcap'],
    errors: [],
    pair: { scope: 'one-capture', middleboxKind: 'translated', rewrites: ['227'] },
  },
  'kernel helper, passive (PASV), firewall capture, control port only': {
    files: ['helper-pasv-firewall.pcap'],
    errors: [],
    pair: { scope: 'one-capture', middleboxKind: 'translated', rewrites: [] },
  },
  'kernel helper, active transfer whose data connection the firewall drops: 425, firewall capture': {
    files: ['firewall-active-425.pcap'],
    errors: ['ACTIVE_DATA_FAILED'],
    pair: { scope: 'one-capture', middleboxKind: 'translated', rewrites: ['PORT'] },
  },
  'ftp-alg reverse relay, captured on both sides': {
    files: ['ftp-alg-client-side.pcap', 'ftp-alg-server-side.pcap'],
    errors: [],
    pair: { scope: 'two-captures', middleboxKind: 'terminated' },
  },
  'ftp-alg reverse, kernel data path, captured on both sides': {
    files: ['ftp-alg-kernel-client-side.pcap', 'ftp-alg-kernel-server-side.pcap'],
    errors: [],
    pair: { scope: 'two-captures', middleboxKind: 'terminated' },
  },
  'broken ALG: PORT lengthened, sequence numbers not shifted, captured on both sides': {
    files: ['broken-alg-client-side.pcap', 'broken-alg-server-side.pcap'],
    errors: ['ALG_SEQ_NOT_ADJUSTED'],
    pair: { scope: 'two-captures', middleboxKind: 'translated', rewrites: ['PORT'] },
  },
};

function check(name: string, r: DiagnoseReport): void {
  const e = CORPUS[name]!;
  const errors = [...new Set(r.findings.filter((f) => f.severity === 'error').map((f) => f.code))].sort();
  expect(errors, JSON.stringify(r.findings.map((f) => [f.code, f.message.slice(0, 100)]))).toEqual([...e.errors].sort());
  if (!e.pair) return;
  expect(r.pairs.length, JSON.stringify(r.sessions.map((s) => [s.id, s.client, s.server]))).toBeGreaterThanOrEqual(1);
  const p = r.pairs[0]!;
  expect(p).toMatchObject({ ...(e.pair.scope ? { scope: e.pair.scope } : {}), ...(e.pair.middleboxKind ? { middleboxKind: e.pair.middleboxKind } : {}) });
  if (e.pair.rewrites) expect([...p.rewrites.map((w) => w.kind), ...p.inferredRewrites.map((w) => w.kind)]).toEqual(e.pair.rewrites);
}

describe('the committed corpus', () => {
  for (const [name, e] of Object.entries(CORPUS)) {
    const paths = e.files.map((f) => join(FIXTURES, f));
    const missing = paths.filter((p) => !existsSync(p));
    test.skipIf(missing.length > 0)(`${name}${missing.length ? ` [skipped: ${missing.length} file(s) not in ${FIXTURES}; run as root with UPDATE_CAPTURES=1]` : ''}`, async () => {
      check(name, await diagnoseFiles(paths));
    });
  }
});

const HAVE_ALL = CAN_NETNS && CAN_VSFTPD && HAVE.curl && HAVE.root && HAVE.tcpdump && HAVE.python;
const WHY = HAVE_ALL ? '' : ' [skipped: needs root, ip, nft, vsftpd, curl, tcpdump and python3]';

describe.skipIf(!HAVE_ALL)(`the corpus taken afresh around real middleboxes${WHY}`, () => {
  let topo: NatTopology;
  let dir: string;
  const taken = new Map<string, string>();
  const at = (file: string) => join(dir, file);
  const controlOnly = 'tcp port 21 or tcp port 9';

  beforeAll(async () => {
    topo = await buildNatTopology();
    await startVsftpd(topo, { files: { 'f.txt': Buffer.from('a small file for the corpus\n') }, config: { connect_timeout: '3' } });
    dir = topo.tempDir('corpus-');
  });
  afterAll(async () => {
    if (process.env.UPDATE_CAPTURES === '1') {
      mkdirSync(FIXTURES, { recursive: true });
      for (const [file, path] of taken) copyFileSync(path, join(FIXTURES, file));
    }
    await topo?.destroy();
  });

  const curl = (args: string[], url: string, timeout = 15) => topo.exec(topo.ns.client, 'curl', ['-sS', '--max-time', String(timeout), ...args, '-o', '/dev/null', url]);

  async function probeCodes(): Promise<string[]> {
    const r = await topo.exec(topo.ns.client, process.execPath, [CLI, 'probe', `ftp://${topo.addr.server}/`, '--json', '--timeout', '5'], { timeoutMs: 90_000 });
    return (JSON.parse(r.stdout.toString()) as ProbeReport).verdict.codes;
  }

  async function verify(name: string): Promise<void> {
    const files = CORPUS[name]!.files;
    for (const f of files) taken.set(f, at(f));
    check(name, await diagnoseFiles(files.map(at)));
  }

  test.each([
    ['relay', 'ftp-alg', 'ftp-alg reverse relay, captured on both sides'],
    ['kernel', 'ftp-alg-kernel', 'ftp-alg reverse, kernel data path, captured on both sides'],
  ])('ftp-alg reverse in the box, %s data path', async (dataPath, prefix, name) => {
    const args = [CLI, 'reverse', '--listen', `${topo.addr.gatewayLan}:2121`, '--server', `${topo.addr.server}:21`, '--public-address', topo.addr.gatewayLan, '--data-path', dataPath, '--nft-table', 'diag_corpus_data'];
    const gw = topo.spawn(topo.ns.gateway, process.execPath, args, { stdio: 'ignore' });
    const exited = new Promise<void>((r) => gw.once('exit', () => r()));
    topo.addCleanup(() => void gw.kill('SIGKILL'));
    await topo.waitListening(topo.ns.gateway, 2121);
    await capture(topo, topo.ns.client, at(`${prefix}-client-side.pcap`), () =>
      capture(topo, topo.ns.server, at(`${prefix}-server-side.pcap`), async () => {
        expect((await curl([], `ftp://${topo.addr.gatewayLan}:2121/f.txt`)).code).toBe(0);
      }, controlOnly).then(() => undefined),
    'tcp port 2121 or tcp port 9');
    gw.kill('SIGTERM');
    await exited;
    await verify(name);
  });

  test('kernel helper: active, passive, and a dropped data connection (425), captured on the box', async () => {
    await enableKernelFtpHelper(topo);
    await capture(topo, topo.ns.gateway, at('helper-port-firewall.pcap'), async () => {
      expect((await curl(['-P', topo.addr.client, '--disable-eprt'], `ftp://${topo.addr.server}/f.txt`)).code).toBe(0);
    }, controlOnly);
    await verify('kernel helper, active (PORT rewritten), firewall capture, control port only');

    await capture(topo, topo.ns.gateway, at('helper-pasv-firewall.pcap'), async () => {
      expect((await curl(['--disable-epsv', '--no-ftp-skip-pasv-ip'], `ftp://${topo.addr.server}/f.txt`)).code).toBe(0);
    }, controlOnly);
    await verify('kernel helper, passive (PASV), firewall capture, control port only');

    // probe from the client's side agrees: every mode works through the helper.
    expect(await probeCodes()).toEqual(['OK']);

    // The helper opens the way for the server's data connection (ct state related); a stricter firewall drops it.
    await topo.nft(topo.ns.gateway, 'table ip diag_corpus_drop {\n\tchain related_data {\n\t\ttype filter hook forward priority -10; policy accept;\n\t\tct state related drop\n\t}\n}\n');
    await capture(topo, topo.ns.gateway, at('firewall-active-425.pcap'), async () => {
      expect((await curl(['-P', topo.addr.client, '--disable-eprt'], `ftp://${topo.addr.server}/f.txt`)).code).not.toBe(0);
    }, controlOnly);
    expect(await probeCodes()).toEqual(['ACTIVE_NO_CONNECT']);
    await topo.exec(topo.ns.gateway, 'nft', ['delete', 'table', 'ip', 'diag_corpus_drop']);
    await verify('kernel helper, active transfer whose data connection the firewall drops: 425, firewall capture');
  });

  test('kernel helper in front of a server: DNAT to an inside server, its 227 rewritten', async () => {
    // The other way round: a server at the client's inside address, published on the box's outside address.
    const inside = await startVsftpd(topo, { files: { 'f.txt': Buffer.from('a small file for the corpus\n') }, at: { ns: topo.ns.client, address: topo.addr.client } });
    topo.addCleanup(() => inside.stop());
    await topo.nft(
      topo.ns.gateway,
      `table ip diag_corpus_dnat {\n\tct helper ftp-inbound {\n\t\ttype "ftp" protocol tcp\n\t\tl3proto ip\n\t}\n` +
        `\tchain publish {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tiifname "${topo.wanIf}" tcp dport 21 dnat to ${topo.addr.client}\n\t}\n` +
        `\tchain helpers {\n\t\ttype filter hook prerouting priority filter; policy accept;\n\t\tiifname "${topo.wanIf}" tcp dport 21 ct state new ct helper set "ftp-inbound"\n\t}\n}\n`,
    );
    const forward = await topo.exec(topo.ns.gateway, 'nft', ['add', 'rule', topo.filterTable.family, topo.filterTable.name, 'forward', 'iifname', topo.wanIf, 'oifname', topo.lanIf, 'tcp', 'dport', '21', 'accept']);
    expect(forward.code, forward.stderr).toBe(0);
    await capture(
      topo,
      topo.ns.gateway,
      at('helper-pasv-server-nat-firewall.pcap'),
      async () => {
        const r = await topo.exec(topo.ns.server, 'curl', ['-sS', '--max-time', '15', '--disable-epsv', '--no-ftp-skip-pasv-ip', '-o', '/dev/null', `ftp://${topo.addr.gatewayWan}/f.txt`]);
        expect(r.code, r.stderr).toBe(0);
      },
      controlOnly,
      { ns: topo.ns.server, host: topo.addr.gatewayWan },
    );
    await topo.exec(topo.ns.gateway, 'nft', ['delete', 'table', 'ip', 'diag_corpus_dnat']);
    await inside.stop();
    await verify('kernel helper in front of a server (DNAT), passive: 227 rewritten, firewall capture, control port only');
  });

  test('a broken ALG that lengthens PORT without shifting sequence numbers', async () => {
    // The box becomes an Ethernet bridge: no address of its own, client and server in one subnet.
    await topo.exec(topo.ns.gateway, 'ip', ['addr', 'flush', 'dev', topo.lanIf]);
    await topo.exec(topo.ns.gateway, 'ip', ['addr', 'flush', 'dev', topo.wanIf]);
    const clientOutside = '198.18.0.3';
    const added = await topo.exec(topo.ns.client, 'ip', ['addr', 'add', `${clientOutside}/24`, 'dev', topo.clientIf]);
    expect(added.code, added.stderr).toBe(0);
    const alg = topo.spawn(topo.ns.gateway, SYSTEM_PYTHON, [join(process.cwd(), 'test/diagnose/broken-alg.py'), topo.lanIf, topo.wanIf], { stdio: ['ignore', 'pipe', 'inherit'] });
    topo.addCleanup(() => void alg.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      alg.stdout!.once('data', () => resolve());
      alg.once('exit', (code) => reject(new Error(`broken-alg.py exited ${code}`)));
    });
    await capture(topo, topo.ns.client, at('broken-alg-client-side.pcap'), () =>
      capture(topo, topo.ns.server, at('broken-alg-server-side.pcap'), async () => {
        // The server's ACKs run ahead of what the client sent: the client drops them and the session stalls.
        expect((await curl(['-P', clientOutside, '--disable-eprt'], `ftp://${topo.addr.server}/f.txt`, 5)).code).not.toBe(0);
      }).then(() => undefined),
    );
    alg.kill('SIGTERM');
    await verify('broken ALG: PORT lengthened, sequence numbers not shifted, captured on both sides');
  });
});

test('the README shows the firewall example exactly as diagnose prints it for the committed file', async () => {
  const readme = readFileSync(join(process.cwd(), 'README.md'), 'utf8');
  const command = '$ ftp-alg diagnose test/fixtures/captures/firewall-active-425.pcap\n';
  const start = readme.indexOf(command);
  expect(start).toBeGreaterThan(0);
  const shown = readme.slice(start + command.length, readme.indexOf('\n```', start));
  const report = await diagnoseFiles(['test/fixtures/captures/firewall-active-425.pcap']);
  expect(`${shown}\n`).toBe(formatDiagnoseReport(report));
});
