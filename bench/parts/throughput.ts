/**
 * Part 1a: 1 GiB download and upload with curl on loopback, side by side in
 * one run: direct to the built-in server; through ftp-alg reverse (the
 * userspace relay); through SuSE ftp-proxy; through ftp-alg reverse with
 * --data-path kernel when the build has it (run in a private namespace of
 * its own, so that the nftables elements it installs can never touch the
 * host, with its own direct figure from that namespace as the reference).
 *
 * Each run goes through every row in turn (load drift hits all rows alike);
 * the relays are started fresh per run, the server once. MB/s = bytes /
 * curl's time_total (login and data set-up included), median of the runs.
 */
import { open } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { MiB, median } from '../lib/common.js';
import { curlTransfer, type CurlResult, type DataMode } from '../lib/curl.js';
import type { BenchContext, GatewayChildStats, ServerChildStats, ThroughputResult, TransferRow } from '../lib/context.js';
import type { Lab } from '../../scenarios/lib/lab.js';
import type { Helper } from '../lib/procs.js';
import { ftpProxyAvailable, ftpProxyVersion, startFtpProxy } from '../lib/ftp-proxy.js';
import { startCliGateway, startGateway, startServer } from '../lib/helpers.js';
import { stopHelper } from '../lib/procs.js';
import { buildLoopbackNamespace } from '../lib/namespaces.js';

export async function writeRandomFile(file: string, size: number): Promise<void> {
  const block = randomBytes(4 * MiB);
  const fh = await open(file, 'w');
  try {
    for (let off = 0; off < size; off += block.length) await fh.write(block, 0, Math.min(block.length, size - off));
  } finally {
    await fh.close();
  }
}

export function newRow(key: string, label: string, extra: Partial<TransferRow> = {}): TransferRow {
  return { key, label, available: true, reason: undefined, get: [], put: [], cpuPerGiB: [], errors: [], ...extra };
}

export function rowStats(xs: number[]): { median: number; min: number; max: number; n: number } | undefined {
  return xs.length ? { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length } : undefined;
}

/**
 * One download then one upload through `port` (on `host`, optionally from
 * inside a namespace); pushes MB/s into the row. Returns bytes moved.
 */
export interface TransferPair {
  host: string;
  port: number;
  mode: DataMode;
  activeAddress?: string;
  /** Full namespace name to run curl in. */
  netns?: string | undefined;
  upFile: string;
  size: number;
  tag: string;
  upName?: string;
  extra?: string[];
}

export async function transferPair(
  ctx: BenchContext,
  row: TransferRow,
  { host, port, mode, activeAddress, netns, upFile, size, tag, upName = `up-${row.key}.bin`, extra = [] }: TransferPair,
): Promise<{ moved: number; get: CurlResult; put: CurlResult }> {
  const maxTimeS = Math.ceil(size / 20e6) + 30;
  let moved = 0;
  const g = await curlTransfer({ direction: 'get', url: `ftp://${host}:${port}/big.bin`, mode, activeAddress, maxTimeS, netns, extra });
  if (g.code === 0 && g.bytes === size) {
    row.get.push(g.mbPerS);
    moved += size;
  } else row.errors.push(`${tag} get: curl exit ${g.code}, ${g.bytes} of ${size} bytes ${g.error ?? ''}`.trim());
  const p = await curlTransfer({ direction: 'put', url: `ftp://${host}:${port}/${upName}`, file: upFile, mode, activeAddress, maxTimeS, netns, extra });
  if (p.code === 0 && p.bytes === size) {
    row.put.push(p.mbPerS);
    moved += size;
  } else row.errors.push(`${tag} put: curl exit ${p.code}, ${p.bytes} of ${size} bytes ${p.error ?? ''}`.trim());
  ctx.log(`    ${row.label.padEnd(44)} get ${fmtRate(g)}  put ${fmtRate(p)}`);
  return { moved, get: g, put: p };
}

function fmtRate(r: CurlResult): string {
  return r.code === 0 ? `${r.mbPerS.toFixed(0).padStart(5)} MB/s` : `FAILED (${r.code})`;
}

export async function runThroughput(ctx: BenchContext): Promise<ThroughputResult> {
  const { flags, log, dir, cli, kernel } = ctx;
  const SIZE = flags.size;
  const MODE = flags.mode;
  const upFile = path.join(dir, 'up.bin');
  log(`throughput on loopback: ${(SIZE / MiB).toFixed(0)} MiB down and up, ${flags.runs} run(s), curl in ${MODE} mode`);
  await writeRandomFile(upFile, SIZE);

  const rows: Record<'direct' | 'relay' | 'ftpProxy' | 'kernelDirect' | 'kernel', TransferRow> = {
    direct: newRow('direct', 'direct to the server'),
    relay: newRow('relay', 'ftp-alg reverse (userspace relay)'),
    ftpProxy: newRow('ftpProxy', 'SuSE ftp-proxy'),
    kernelDirect: newRow('kernelDirect', 'direct (private-namespace loopback)'),
    kernel: newRow('kernel', 'ftp-alg reverse (kernel data path)'),
  };
  if (!ftpProxyAvailable()) Object.assign(rows.ftpProxy, { available: false, reason: 'not installed: run `sh bench/install.sh` as root' });
  else rows.ftpProxy.version = ftpProxyVersion();
  if (!kernel.reverse) {
    Object.assign(rows.kernel, { available: false, reason: 'option not available' });
    Object.assign(rows.kernelDirect, { available: false, reason: 'only measured with the kernel data path' });
  } else if (process.getuid?.() !== 0) {
    Object.assign(rows.kernel, { available: false, reason: 'needs root (nftables)' });
    Object.assign(rows.kernelDirect, { available: false, reason: 'needs root' });
  }

  const server = await startServer({ generate: [`/big.bin:${SIZE}`] });
  let kns: Lab | undefined;
  let kserver: Helper | undefined;
  const uploadsExpected = { host: 0, ns: 0 };
  try {
    // Warm-up (not counted): page cache for the upload file, the server's first-touch of its buffers.
    await ctx.attempt('throughput warm-up', async () => {
      const w = newRow('warm', 'warm-up (not counted)');
      const r = await transferPair(ctx, w, { host: '127.0.0.1', port: server.port, mode: MODE, upFile, size: SIZE, tag: 'warm-up' });
      if (r.put.code === 0) uploadsExpected.host++;
    });
    if (rows.kernel.available) {
      await ctx.attempt('kernel data path: namespace', async () => {
        kns = await buildLoopbackNamespace();
        kserver = await startServer({ generate: [`/big.bin:${SIZE}`], port: 2100, netns: kns.ns('k') });
        // Warm-up of that server too (not counted).
        await transferPair(ctx, newRow('warm', 'warm-up, private namespace (not counted)'), { host: '127.0.0.1', port: 2100, mode: MODE, upFile, size: SIZE, netns: kns.ns('k'), tag: 'warm-up' });
      });
      if (!kserver) Object.assign(rows.kernel, { available: false, reason: 'private namespace could not be set up' });
    }

    for (let run = 1; run <= flags.runs; run++) {
      log(`  run ${run}/${flags.runs} (load ${ctx.load()})`);
      await ctx.attempt(`throughput run ${run} direct`, async () => {
        const r = await transferPair(ctx, rows.direct, { host: '127.0.0.1', port: server.port, mode: MODE, upFile, size: SIZE, tag: `run ${run}` });
        if (r.put.code === 0) uploadsExpected.host++;
      });
      await ctx.attempt(`throughput run ${run} ftp-alg reverse`, async () => {
        const gw = await startGateway({ serverPort: server.port });
        let r: Awaited<ReturnType<typeof transferPair>> | undefined;
        const cpu0 = ctx.cpuOf(gw.pid);
        try {
          r = await transferPair(ctx, rows.relay, { host: '127.0.0.1', port: gw.port, mode: MODE, upFile, size: SIZE, tag: `run ${run}` });
        } finally {
          const cpu = ctx.cpuOf(gw.pid) - cpu0;
          const stats = await stopHelper<GatewayChildStats>(gw);
          if (r?.moved) rows.relay.cpuPerGiB.push(cpu / (r.moved / 2 ** 30));
          const relayed = stats?.dataCloses?.reduce((n, d) => n + d.bytes, 0);
          if (r && relayed !== r.moved) rows.relay.errors.push(`run ${run}: gateway data-close reports ${relayed} bytes, curl moved ${r.moved}`);
        }
        if (r?.put.code === 0) uploadsExpected.host++;
      });
      if (rows.ftpProxy.available) {
        await ctx.attempt(`throughput run ${run} ftp-proxy`, async () => {
          const fp = await startFtpProxy({ dir, destAddress: '127.0.0.1', destPort: server.port });
          if (!rows.ftpProxy.config) rows.ftpProxy.config = fp.config;
          let r: Awaited<ReturnType<typeof transferPair>> | undefined;
          const cpu0 = fp.cpuSeconds();
          try {
            r = await transferPair(ctx, rows.ftpProxy, { host: '127.0.0.1', port: fp.port, mode: MODE, upFile, size: SIZE, tag: `run ${run}` });
            // Session children are reaped (their CPU lands in the daemon's cutime) shortly after curl ends.
            await ctx.waitNoChildren(fp.pid, 3000);
            if (r.moved) rows.ftpProxy.cpuPerGiB.push((fp.cpuSeconds() - cpu0) / (r.moved / 2 ** 30));
          } finally {
            await fp.stop();
          }
          if (r?.put.code === 0) uploadsExpected.host++;
        });
      }
      if (rows.kernel.available && kserver && kns) {
        const ns = kns.ns('k');
        await ctx.attempt(`throughput run ${run} direct (private ns)`, async () => {
          const r = await transferPair(ctx, rows.kernelDirect, { host: '127.0.0.1', port: 2100, mode: MODE, upFile, size: SIZE, netns: ns, tag: `run ${run}` });
          if (r.put.code === 0) uploadsExpected.ns++;
        });
        await ctx.attempt(`throughput run ${run} ftp-alg reverse --data-path kernel`, async () => {
          const gw = await startCliGateway({
            cli,
            netns: ns,
            listenPort: 2121,
            logPath: path.join(dir, 'kernel-loopback.log'),
            args: ['reverse', '--listen', '127.0.0.1:2121', '--server', '127.0.0.1:2100', '--public-address', '127.0.0.1', '--data-path', 'kernel', ...(kernel.nftTable ? ['--nft-table', ctx.nftTable] : [])],
          });
          let r: Awaited<ReturnType<typeof transferPair>> | undefined;
          const cpu0 = gw.cpuSeconds();
          try {
            r = await transferPair(ctx, rows.kernel, { host: '127.0.0.1', port: 2121, mode: MODE, upFile, size: SIZE, netns: ns, tag: `run ${run}` });
            if (r.moved) rows.kernel.cpuPerGiB.push((gw.cpuSeconds() - cpu0) / (r.moved / 2 ** 30));
          } finally {
            await gw.stop();
          }
          if (r?.put.code === 0) uploadsExpected.ns++;
        });
      }
    }
  } finally {
    const s = await stopHelper<ServerChildStats>(server);
    const full = (s?.uploads ?? []).filter((u) => u.bytes === SIZE).length;
    if (s && full !== uploadsExpected.host) ctx.failures.push(`throughput: the server saw ${full} complete uploads, curl reported ${uploadsExpected.host}`);
    if (kserver) await stopHelper(kserver);
    if (kns) for (const e of await kns.destroy()) ctx.failures.push(e);
  }
  for (const row of Object.values(rows)) for (const e of row.errors) ctx.failures.push(`throughput ${row.label}: ${e}`);
  return { size: SIZE, mode: MODE, runs: flags.runs, rows };
}
