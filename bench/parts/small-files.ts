/**
 * Part: many small files, where the cost is per transfer, not per byte
 * (issue 14). vsftpd serves 400 files of 4 KiB and one more 4 KiB file:
 *
 *   mirror     one `lftp mirror` of the 400 files (PASV), wall time of the lftp run
 *   RETR       N sequential RETRs of the 4 KiB file from Python's ftplib on one
 *              logged-in session (each with its PASV/PORT), time per retrbinary
 *
 * On private loopback namespaces (vsftpd, gateway and clients all inside):
 *   direct         the client to vsftpd
 *   relay          ftp-alg reverse in front of it, data relayed
 *   kernel         ftp-alg reverse --data-path kernel (when the build has it)
 *   control relay only, bare Node / HAProxy
 *                  the control connection relayed by a bare Node relay or by
 *                  HAProxy, nothing parsed, the data connections going to
 *                  vsftpd directly (its 227 names 127.0.0.1): the floor under
 *                  what any userspace control relay adds (lib/control-relays.ts)
 * Through a NAT box of namespaces (client 100.64.0.2 — gw — server 198.18.0.2):
 *   NAT only       masquerade, PASV: the reference for the next row
 *   kernel helper  masquerade + the kernel's FTP helper, PORT (nf_nat_ftp rewrites it)
 *
 * Runs are interleaved across the rows so that load drift hits all alike;
 * medians are reported. Root needed (vsftpd, namespaces, nftables).
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { median, percentile } from '../lib/common.js';
import type { Lab } from '../../scenarios/lib/lab.js';
import type { DataMode } from '../lib/curl.js';
import type { BenchContext } from '../lib/context.js';
import { NAT_BOX, NAT_BOX_ADDR as ADDR, buildBenchNatBox, buildLoopbackNamespace, setBoxAlg, type BoxAlg } from '../lib/namespaces.js';
import { startCliGateway, type CliGateway } from '../lib/helpers.js';
import { CONTROL_RELAYS, CONTROL_RELAY_LABEL, controlRelayMissing, startControlRelay } from '../lib/control-relays.js';
import { VSFTPD, startVsftpd, type BenchVsftpd } from '../lib/vsftpd.js';

/** One path's samples as they are taken. */
interface SmallFilesRow {
  label: string;
  mode: DataMode;
  available: boolean;
  reason?: string;
  mirror: number[];
  retr: number[];
  cpuMs: number[];
  gateway?: CliGateway;
}

/** One path's figures, as reported. */
export interface SmallFilesSummary {
  label: string;
  mode: DataMode;
  available: boolean;
  reason: string | undefined;
  mirrorS: number | undefined;
  mirrorRuns: number[];
  retr: { n: number; median: number; p90: number } | undefined;
  gatewayCpuMsPerRetr: number | undefined;
}

export type SmallFilesResult =
  | { skipped: string }
  | { skipped?: undefined; files: number; fileBytes: number; retrsPerRun: number; runs: number; rows: Record<string, SmallFilesSummary> };

const FILES = 400;
const FILE_BYTES = 4096;
const SERVER_PORT = 2100;

/**
 * Per-RETR times (ms), one ftplib session per port, the sessions taking
 * turns RETR by RETR; 10 warm-up rounds are not returned.
 */
const RETR_SCRIPT = `
import ftplib, json, sys, time
host, ports, n, passive = sys.argv[1], [int(p) for p in sys.argv[2].split(',')], int(sys.argv[3]), sys.argv[4] == 'PASV'
sessions = []
for port in ports:
    f = ftplib.FTP()
    f.connect(host, port, timeout=20)
    f.login()
    f.set_pasv(passive)
    f.voidcmd('TYPE I')
    sessions.append(f)
got = [0]
def sink(b):
    got[0] += len(b)
out = [[] for _ in ports]
for i in range(10 + n):
    for k, f in enumerate(sessions):
        got[0] = 0
        t0 = time.perf_counter()
        f.retrbinary('RETR f4k.bin', sink)
        if i >= 10:
            out[k].append((time.perf_counter() - t0) * 1000)
        if got[0] != ${FILE_BYTES}:
            sys.exit('short file: %d bytes' % got[0])
for f in sessions:
    f.quit()
print(json.dumps(out))
`;

function makeTree(root: string): void {
  mkdirSync(path.join(root, 'small'), { recursive: true });
  for (let i = 0; i < FILES; i++) writeFileSync(path.join(root, 'small', `f${String(i).padStart(3, '0')}.bin`), randomBytes(FILE_BYTES), { mode: 0o644 });
  writeFileSync(path.join(root, 'f4k.bin'), randomBytes(FILE_BYTES), { mode: 0o644 });
  // vsftpd wants an anon_root the ftp user can read but not write.
  for (const d of [path.dirname(root), root, path.join(root, 'small')]) chmodSync(d, 0o755);
}

/** ns: the short name of a namespace of the Lab t. */
async function mirrorOnce(t: Lab, ns: string, host: string, port: number, mode: DataMode, dest: string): Promise<number> {
  rmSync(dest, { recursive: true, force: true });
  const script = [
    'set net:max-retries 1',
    'set net:timeout 20',
    'set ftp:ssl-allow no',
    `set ftp:passive-mode ${mode === 'PASV' ? 'on' : 'off'}`,
    `open -u anonymous,bench ftp://${host}:${port}`,
    `mirror --no-perms small ${dest}`,
    'bye',
  ].join('; ');
  const t0 = process.hrtime.bigint();
  const r = await t.exec(ns, 'lftp', ['-c', script], 120_000);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.code !== 0) throw new Error(`lftp mirror exited ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  const got = existsSync(dest) ? readdirSync(dest).length : 0;
  if (got !== FILES) throw new Error(`lftp mirror fetched ${got} of ${FILES} files`);
  return seconds;
}

async function retrTimes(t: Lab, ns: string, host: string, ports: number[], mode: DataMode, n: number): Promise<number[][]> {
  const r = await t.exec(ns, 'python3', ['-c', RETR_SCRIPT, host, ports.join(','), String(n), mode], 300_000);
  if (r.code !== 0) throw new Error(`ftplib RETRs exited ${r.code}: ${r.stderr.trim().split('\n').slice(-1)[0]}`);
  return JSON.parse(r.stdout) as number[][];
}

function summarize(row: SmallFilesRow): SmallFilesSummary {
  return {
    label: row.label,
    mode: row.mode,
    available: row.available,
    reason: row.reason,
    mirrorS: row.mirror.length ? median(row.mirror) : undefined,
    mirrorRuns: row.mirror,
    retr: row.retr.length ? { n: row.retr.length, median: median(row.retr), p90: percentile(row.retr, 90) } : undefined,
    gatewayCpuMsPerRetr: row.cpuMs.length ? median(row.cpuMs) : undefined,
  };
}

export async function runSmallFiles(ctx: BenchContext): Promise<SmallFilesResult> {
  const { flags, log, dir, cli, kernel } = ctx;
  if (process.getuid?.() !== 0) return { skipped: 'needs root (vsftpd, namespaces, nftables)' };
  if (!existsSync(VSFTPD)) return { skipped: `needs ${VSFTPD} (sh bench/install.sh)` };
  const runs = flags.smallRuns;
  const n = flags.retrs;
  const root = path.join(dir, 'small-files', 'root');
  makeTree(root);
  const dest = path.join(dir, 'small-files', 'mirror');
  log(`small files: lftp mirror of ${FILES} × ${FILE_BYTES / 1024} KiB and ${n} sequential 4 KiB RETRs from ftplib, ${runs} run(s) per path, interleaved (load ${ctx.load()})`);

  const rows: Record<string, SmallFilesRow> = {};
  const newRow = (key: string, label: string, mode: DataMode, extra: Partial<SmallFilesRow> = {}): SmallFilesRow => (rows[key] = { label, mode, available: true, mirror: [], retr: [], cpuMs: [], ...extra });
  type Path = { row: SmallFilesRow; port: number };
  /** One ftplib session per path, their RETRs taken in turn: load drift hits every path alike. */
  const measureRetrs = (paths: Path[], t: Lab, ns: string, host: string, tag: string) =>
    ctx.attempt(`small files RETRs ${tag}`, async () => {
      const cpu0 = paths.map((p) => p.row.gateway?.cpuSeconds());
      const times = await retrTimes(t, ns, host, paths.map((p) => p.port), paths[0]?.row.mode ?? 'PASV', n);
      paths.forEach((p, i) => {
        p.row.retr.push(...(times[i] ?? []));
        // Per RETR, the 10 warm-up ones included: what the gateway spends whatever the load.
        const before = cpu0[i];
        if (before !== undefined && p.row.gateway) p.row.cpuMs.push(((p.row.gateway.cpuSeconds() - before) * 1000) / (n + 10));
      });
    });
  const measure = async (row: SmallFilesRow, t: Lab, ns: string, host: string, port: number, tag: string) => {
    await ctx.attempt(`small files ${row.label} mirror ${tag}`, async () => row.mirror.push(await mirrorOnce(t, ns, host, port, row.mode, dest)));
    await measureRetrs([{ row, port }], t, ns, host, tag);
  };

  // ---- loopback: direct, relay and the kernel data path side by side in one namespace ----
  // The kernel path's nat chains turn conntrack on for every connection of
  // the namespace, the direct ones too: as on any host with a NAT rule.
  const lo = await buildLoopbackNamespace();
  /** The gateways and control relays in front of vsftpd. */
  const inFront: CliGateway[] = [];
  let server: BenchVsftpd | undefined;
  try {
    const netns = lo.ns('k');
    server = await startVsftpd({ dir, root, address: '127.0.0.1', port: SERVER_PORT, netns });
    const paths: Path[] = [{ row: newRow('direct', 'direct (vsftpd)', 'PASV'), port: SERVER_PORT }];
    const reverse = (port: number) => ['reverse', '--listen', `127.0.0.1:${port}`, '--server', `127.0.0.1:${SERVER_PORT}`, '--public-address', '127.0.0.1'];
    const addGateway = async (key: string, label: string, port: number, more: string[]) => {
      const gw = await startCliGateway({ cli, netns, listenPort: port, logPath: path.join(dir, `small-${key}.log`), args: [...reverse(port), ...more] });
      inFront.push(gw);
      paths.push({ row: newRow(key, label, 'PASV', { gateway: gw }), port });
    };
    await addGateway('relay', 'ftp-alg reverse (relay)', 2121, []);
    if (kernel.reverse) await addGateway('kernel', 'ftp-alg reverse --data-path kernel', 2122, ['--data-path', 'kernel', ...(kernel.nftTable ? ['--nft-table', ctx.nftTable] : [])]);
    else newRow('kernel', 'ftp-alg reverse --data-path kernel', 'PASV', { available: false, reason: 'not in this build' });
    for (const [i, { key, kind }] of CONTROL_RELAYS.entries()) {
      const port = 2123 + i;
      const missing = controlRelayMissing(kind);
      if (missing) {
        newRow(key, CONTROL_RELAY_LABEL[kind], 'PASV', { available: false, reason: missing });
        continue;
      }
      const relay = await startControlRelay(kind, { dir, netns, listenPort: port, serverPort: SERVER_PORT });
      inFront.push(relay);
      paths.push({ row: newRow(key, CONTROL_RELAY_LABEL[kind], 'PASV', { gateway: relay }), port });
    }
    for (let run = 1; run <= runs; run++) {
      for (const p of paths) await ctx.attempt(`small files ${p.row.label} mirror run ${run}`, async () => p.row.mirror.push(await mirrorOnce(lo, 'k', '127.0.0.1', p.port, 'PASV', dest)));
      await measureRetrs(paths, lo, 'k', '127.0.0.1', `run ${run}`);
    }
  } finally {
    for (const g of inFront) await g.stop();
    await server?.stop();
    for (const e of await lo.destroy()) ctx.failures.push(e);
  }

  // ---- NAT box: NAT only (PASV) vs the kernel FTP helper (PORT) ----
  let topo: Lab | undefined;
  try {
    topo = await buildBenchNatBox();
    const server = await startVsftpd({ dir, root, address: ADDR.server, port: 21, netns: topo.ns(NAT_BOX.ns.server) });
    try {
      const variants: { row: SmallFilesRow; ruleset: BoxAlg }[] = [
        { row: newRow('natOnly', 'NAT only (no ALG), PASV', 'PASV'), ruleset: {} },
        { row: newRow('helper', 'kernel FTP helper, PORT', 'PORT'), ruleset: { kernelHelper: true } },
      ];
      for (let run = 1; run <= runs; run++) {
        for (const v of variants) {
          await setBoxAlg(topo, v.ruleset);
          await measure(v.row, topo, NAT_BOX.ns.client, ADDR.server, 21, `run ${run}`);
        }
      }
    } finally {
      await server.stop();
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    for (const key of ['natOnly', 'helper']) if (!rows[key]) newRow(key, key, 'PASV', { available: false, reason: message });
    ctx.failures.push(`small files, NAT box: ${message}`);
  } finally {
    if (topo) for (const e of await topo.destroy()) ctx.failures.push(e);
    rmSync(path.join(dir, 'small-files'), { recursive: true, force: true });
  }

  const out = { files: FILES, fileBytes: FILE_BYTES, retrsPerRun: n, runs, rows: Object.fromEntries(Object.entries(rows).map(([k, r]) => [k, summarize(r)])) };
  for (const r of Object.values(out.rows)) {
    if (!r.available) log(`  ${r.label.padEnd(36)} n/a (${r.reason})`);
    else {
      const cpu = r.gatewayCpuMsPerRetr !== undefined ? `; gateway CPU ${r.gatewayCpuMsPerRetr.toFixed(3)} ms per RETR` : '';
      log(`  ${r.label.padEnd(36)} mirror ${r.mirrorS?.toFixed(2) ?? '—'} s; RETR median ${r.retr?.median.toFixed(3) ?? '—'} ms, p90 ${r.retr?.p90.toFixed(3) ?? '—'} ms${cpu}`);
    }
  }
  return out;
}
