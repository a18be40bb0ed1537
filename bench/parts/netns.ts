/**
 * Part 1b: the same 1 GiB download and upload through a real NAT box made
 * of network namespaces (client 100.64.1.2 — gw — server 198.18.0.2, the
 * server with no route back; scenarios/lib/nat-box.ts), comparing the kernel's own FTP helper with
 * ftp-alg on the same box:
 *
 *   NAT only, passive           masquerade, no ALG: the kernel forwarding path, the reference ("direct")
 *   kernel FTP helper, active   masquerade + nftables `ct helper "ftp"` (PORT rewritten by nf_nat_ftp)
 *   kernel FTP helper, passive  the same box in PASV: tells the helper's cost from that of active mode
 *   ftp-alg forward, active     forward --transparent (lan tcp/21 redirected to it), data relayed in userspace
 *   ftp-alg forward, passive    same, 227 passed through: data through the kernel NAT, not the relay
 *   ftp-alg reverse, passive    reverse on the gw's lan address, data relayed
 *   … --data-path kernel        when the build has it (forward active, reverse passive)
 *
 * Active rows use PORT, passive rows PASV: the ALG is needed for active
 * mode behind a masquerade; passive works without one.
 */
import path from 'node:path';
import { MiB } from '../lib/common.js';
import type { DataMode } from '../lib/curl.js';
import type { BenchContext, ThroughputResult, TransferRow } from '../lib/context.js';
import { buildBenchNatBox, labUnavailable, NAT_BOX, NAT_BOX_ADDR as ADDR, setBoxAlg, type BoxAlg } from '../lib/namespaces.js';
import type { Helper } from '../lib/procs.js';
import { startCliGateway, startServer } from '../lib/helpers.js';
import { stopHelper } from '../lib/procs.js';
import { newRow, transferPair, writeRandomFile } from './throughput.js';

const ALG_PORT = 2121;

interface Variant {
  key: string;
  label: string;
  mode: DataMode;
  ruleset: BoxAlg;
  target: string;
  port: number;
  /** ftp-alg's command line on the gateway, if any. */
  alg?: string[];
  /** The kernel data path this variant needs. */
  needs?: 'forward' | 'reverse';
}

export async function runNetns(ctx: BenchContext): Promise<ThroughputResult> {
  const { flags, log, dir, cli, kernel } = ctx;
  const SIZE = flags.size;
  const variants: Variant[] = [
    { key: 'nat', label: 'NAT only (no ALG), PASV', mode: 'PASV', ruleset: {}, target: ADDR.server, port: 21 },
    { key: 'helper', label: 'kernel FTP helper, PORT', mode: 'PORT', ruleset: { kernelHelper: true }, target: ADDR.server, port: 21 },
    { key: 'helperPassive', label: 'kernel FTP helper, PASV', mode: 'PASV', ruleset: { kernelHelper: true }, target: ADDR.server, port: 21 },
    {
      key: 'fwdActive',
      label: 'ftp-alg forward --transparent, PORT',
      mode: 'PORT',
      ruleset: { redirectTo: ALG_PORT },
      target: ADDR.server,
      port: 21,
      alg: ['forward', '--transparent', '--listen', `0.0.0.0:${ALG_PORT}`],
    },
    {
      key: 'fwdPassive',
      label: 'ftp-alg forward --transparent, PASV (pass)',
      mode: 'PASV',
      ruleset: { redirectTo: ALG_PORT },
      target: ADDR.server,
      port: 21,
      alg: ['forward', '--transparent', '--listen', `0.0.0.0:${ALG_PORT}`],
    },
    {
      key: 'reverse',
      label: 'ftp-alg reverse on the gw, PASV',
      mode: 'PASV',
      ruleset: {},
      target: ADDR.gatewayLan,
      port: ALG_PORT,
      alg: ['reverse', '--listen', `${ADDR.gatewayLan}:${ALG_PORT}`, '--server', `${ADDR.server}:21`, '--public-address', ADDR.gatewayLan],
    },
    {
      key: 'fwdKernel',
      label: 'ftp-alg forward --data-path kernel, PORT',
      mode: 'PORT',
      ruleset: { redirectTo: ALG_PORT },
      target: ADDR.server,
      port: 21,
      alg: ['forward', '--transparent', '--listen', `0.0.0.0:${ALG_PORT}`, '--data-path', 'kernel'],
      needs: 'forward',
    },
    {
      key: 'revKernel',
      label: 'ftp-alg reverse --data-path kernel, PASV',
      mode: 'PASV',
      ruleset: {},
      target: ADDR.gatewayLan,
      port: ALG_PORT,
      alg: ['reverse', '--listen', `${ADDR.gatewayLan}:${ALG_PORT}`, '--server', `${ADDR.server}:21`, '--public-address', ADDR.gatewayLan, '--data-path', 'kernel'],
      needs: 'reverse',
    },
  ];
  const rows: Record<string, TransferRow> = Object.fromEntries(variants.map((v) => [v.key, newRow(v.key, v.label, { mode: v.mode })]));
  const rowOf = (v: Variant): TransferRow => rows[v.key] ?? newRow(v.key, v.label);
  for (const v of variants) {
    if (v.needs && !kernel[v.needs]) Object.assign(rowOf(v), { available: false, reason: 'option not available' });
    if (v.needs && kernel.nftTable) v.alg?.push('--nft-table', ctx.nftTable);
  }
  const unsupported = labUnavailable();
  if (unsupported) {
    for (const r of Object.values(rows)) Object.assign(r, { available: false, reason: unsupported });
    log(`namespaces: skipped (${unsupported})`);
    return { size: SIZE, runs: flags.runs, rows, skipped: unsupported };
  }

  log(`throughput through a NAT box in namespaces: ${(SIZE / MiB).toFixed(0)} MiB down and up, ${flags.runs} run(s)`);
  const upFile = path.join(dir, 'up.bin');
  await writeRandomFile(upFile, SIZE);
  const t = await buildBenchNatBox();
  const ns = (s: string) => t.ns(s);
  const { client: C, gateway: G, server: S } = NAT_BOX.ns;
  let server: Helper | undefined;
  try {
    server = await startServer({ generate: [`/big.bin:${SIZE}`], host: ADDR.server, port: 21, netns: ns(S) });
    // Warm-up (not counted): the server's buffers, the page cache of the upload file.
    await setBoxAlg(t, {});
    await ctx.attempt('namespaces warm-up', () => transferPair(ctx, newRow('warm', 'warm-up (not counted)'), { host: ADDR.server, port: 21, mode: 'PASV', netns: ns(C), upFile, size: SIZE, tag: 'warm-up' }));
    for (let run = 1; run <= flags.runs; run++) {
      log(`  run ${run}/${flags.runs} (load ${ctx.load()})`);
      for (const v of variants) {
        const row = rowOf(v);
        if (!row.available) continue;
        await ctx.attempt(`namespaces run ${run} ${v.label}`, async () => {
          await setBoxAlg(t, v.ruleset);
          // Conntrack entries of the previous variant must not steer this one.
          await t.exec(G, 'conntrack', ['-F'], 5000);
          const gw = v.alg ? await startCliGateway({ cli, netns: ns(G), args: v.alg, listenPort: ALG_PORT, logPath: path.join(dir, `netns-${v.key}.log`) }) : undefined;
          const cpu0 = gw?.cpuSeconds();
          try {
            const r = await transferPair(ctx, row, { host: v.target, port: v.port, mode: v.mode, activeAddress: ADDR.client, netns: ns(C), upFile, size: SIZE, tag: `run ${run}` });
            if (gw && cpu0 !== undefined && r.moved) row.cpuPerGiB.push((gw.cpuSeconds() - cpu0) / (r.moved / 2 ** 30));
          } finally {
            await gw?.stop();
          }
        });
      }
    }
  } finally {
    if (server) await stopHelper(server);
    for (const e of await t.destroy()) ctx.failures.push(e);
  }
  for (const row of Object.values(rows)) for (const e of row.errors) ctx.failures.push(`namespaces ${row.label}: ${e}`);
  return { size: SIZE, runs: flags.runs, rows, addresses: ADDR };
}
