/**
 * Part ftps: 1 GiB (quick: 128 MiB) down and up with curl over explicit
 * FTPS (AUTH TLS, PROT P), side by side in one run: direct to vsftpd
 * (ssl_enable, TLS forced for logins and data, require_ssl_reuse=YES), and
 * through `ftp-alg reverse --tls terminate --server-tls explicit`, which
 * ends the client's TLS and speaks its own to vsftpd: every byte is
 * decrypted and encrypted once more than directly (two TLS legs instead of
 * one), on the same 2 cores as client and server. Target ≥ 0.5× direct.
 *
 * vsftpd and the gateway run in a private namespace of their own (vsftpd
 * is started as root; fixed ports there cannot clash with the host's), curl
 * too. The gateway is started fresh per run, as in the throughput part.
 */
import { chownSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { MiB } from '../lib/common.js';
import { startCliGateway } from '../lib/helpers.js';
import { run } from '../../scenarios/lib/lab.js';
import type { BenchContext, ThroughputResult, TransferRow } from '../lib/context.js';
import { buildLoopbackNamespace } from '../lib/namespaces.js';
import { VSFTPD, startVsftpd, type BenchVsftpd } from '../lib/vsftpd.js';
import { newRow, transferPair, writeRandomFile } from './throughput.js';

const SERVER_PORT = 2190;
const GATEWAY_PORT = 2191;

/** The ftp user's uid and gid: vsftpd writes anonymous uploads as that user. */
function ftpUser(): { uid: number; gid: number } | undefined {
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'ftp'], { encoding: 'utf8' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return undefined;
  }
}

async function makeCertificate(dir: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, 'ftps-bench.crt');
  const key = path.join(dir, 'ftps-bench.key');
  const r = await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', key, '-out', cert,
  ], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl: ${r.stderr.trim()}`);
  return { cert, key };
}

export async function runFtps(ctx: BenchContext): Promise<ThroughputResult> {
  const { flags, log, dir, cli } = ctx;
  const SIZE = flags.size;
  const MODE = flags.mode;
  const rows: Record<'direct' | 'gateway', TransferRow> = {
    direct: newRow('direct', 'direct FTPS to vsftpd'),
    gateway: newRow('gateway', 'ftp-alg reverse --tls terminate --server-tls explicit'),
  };
  const ftp = ftpUser();
  const missing = process.getuid?.() !== 0 ? 'needs root (vsftpd, namespace)' : !existsSync(VSFTPD) ? 'vsftpd not installed: sh bench/install.sh' : !ftp ? 'no ftp user (vsftpd anonymous uploads)' : undefined;
  if (missing !== undefined || ftp === undefined) {
    for (const row of Object.values(rows)) Object.assign(row, { available: false, reason: missing });
    return { size: SIZE, mode: MODE, runs: flags.runs, rows };
  }
  log(`ftps: ${(SIZE / MiB).toFixed(0)} MiB down and up over explicit FTPS (PROT P), ${flags.runs} run(s), curl in ${MODE} mode, vsftpd in a private namespace`);

  const root = path.join(dir, 'ftps-root');
  mkdirSync(path.join(root, 'up'), { recursive: true, mode: 0o755 });
  chownSync(path.join(root, 'up'), ftp.uid, ftp.gid);
  await writeRandomFile(path.join(root, 'big.bin'), SIZE);
  // The throughput part's upload file when it ran, else one of our own.
  const upFile = path.join(dir, 'up.bin');
  if (!existsSync(upFile) || statSync(upFile).size !== SIZE) await writeRandomFile(upFile, SIZE);
  const { cert, key } = await makeCertificate(dir);
  const curlTls = ['--ssl-reqd', '--cacert', cert];

  const lo = await buildLoopbackNamespace();
  const ns = lo.ns('k');
  let server: BenchVsftpd | undefined;
  try {
    server = await startVsftpd({
      dir,
      root,
      address: '127.0.0.1',
      port: SERVER_PORT,
      netns: ns,
      settings: {
        write_enable: 'YES',
        anon_upload_enable: 'YES',
        anon_umask: '022',
        ssl_enable: 'YES',
        rsa_cert_file: cert,
        rsa_private_key_file: key,
        allow_anon_ssl: 'YES',
        force_anon_logins_ssl: 'YES',
        force_anon_data_ssl: 'YES',
        require_ssl_reuse: 'YES',
      },
    });
    // vsftpd refuses to overwrite an anonymous upload: a name per transfer, removed after it.
    let uploads = 0;
    const pair = async (row: TransferRow, port: number, tag: string) => {
      const upName = `up/${row.key}-${++uploads}.bin`;
      try {
        return await transferPair(ctx, row, { host: '127.0.0.1', port, mode: MODE, netns: ns, upFile, size: SIZE, tag, upName, extra: curlTls });
      } finally {
        rmSync(path.join(root, upName), { force: true });
      }
    };
    await ctx.attempt('ftps warm-up', () => pair(newRow('warm', 'warm-up (not counted)'), SERVER_PORT, 'warm-up'));
    for (let run = 1; run <= flags.runs; run++) {
      log(`  run ${run}/${flags.runs} (load ${ctx.load()})`);
      await ctx.attempt(`ftps run ${run} direct`, () => pair(rows.direct, SERVER_PORT, `run ${run}`));
      await ctx.attempt(`ftps run ${run} ftp-alg reverse --tls terminate`, async () => {
        const gw = await startCliGateway({
          cli,
          netns: ns,
          listenPort: GATEWAY_PORT,
          logPath: path.join(dir, 'ftps-gateway.log'),
          args: [
            'reverse', '--listen', `127.0.0.1:${GATEWAY_PORT}`, '--server', `127.0.0.1:${SERVER_PORT}`, '--public-address', '127.0.0.1',
            '--tls', 'terminate', '--tls-cert', cert, '--tls-key', key, '--server-tls', 'explicit', '--server-ca', cert,
          ],
        });
        const cpu0 = gw.cpuSeconds();
        try {
          const r = await pair(rows.gateway, GATEWAY_PORT, `run ${run}`);
          if (r.moved) rows.gateway.cpuPerGiB.push((gw.cpuSeconds() - cpu0) / (r.moved / 2 ** 30));
        } finally {
          await gw.stop();
        }
      });
    }
  } finally {
    await server?.stop();
    for (const e of await lo.destroy()) ctx.failures.push(e);
    rmSync(root, { recursive: true, force: true });
  }
  for (const row of Object.values(rows)) for (const e of row.errors) ctx.failures.push(`ftps ${row.label}: ${e}`);
  return { size: SIZE, mode: MODE, runs: flags.runs, rows };
}
