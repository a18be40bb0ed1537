/**
 * How fast can the kernel data path program netfilter? One map element
 * added per call, through each way of talking to nftables:
 *
 *   libnftables   KernelNat on libnftables.so.1 through koffi, in process (what the gateway uses)
 *   nft -i        one persistent `nft -i` fed over stdin; an answer has no end marker, so each
 *                 command is followed by a sentinel that fails on purpose and is awaited on stderr
 *   nft process   KernelNat with one `nft -f -` per batch (the fallback, and the old way)
 *
 *   npm run bench:build && sudo node .bench-build/bench/nft-channels.js [--count N]
 *
 * Root (CAP_NET_ADMIN) needed; tables are named ftpalg_nftbench_<pid>_* and deleted at the end.
 */
import { spawn, spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { KernelNat } from '../src/gateway/kernel-nat.js';
import type { NftChannelKind } from '../src/gateway/nft-channel.js';
import type { IpAddress } from '../src/protocol/address.js';

interface Summary {
  n: number;
  medianMs: number;
  p90Ms: number;
}

interface ChannelFigures {
  add: Summary;
  remove?: Summary;
  burstOfN?: { n: number; totalMs: number };
}

const { values } = parseArgs({ options: { count: { type: 'string', default: '200' } } });
const count = Number(values.count);
const stem = `ftpalg_nftbench_${process.pid.toString(36)}`;

const ip = (address: string): IpAddress => ({ address, family: 4 });
const mapping = (i: number) => ({ source: ip('127.0.0.1'), via: { ...ip('127.0.0.1'), port: 20000 + i }, target: { ...ip('127.0.0.1'), port: 21 } });

function summary(ms: number[]): Summary {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { n: s.length, medianMs: Number(at(0.5).toFixed(3)), p90Ms: Number(at(0.9).toFixed(3)) };
}

async function viaKernelNat(channel: NftChannelKind, n: number): Promise<ChannelFigures> {
  const nat = await KernelNat.create(`${stem}_${channel === 'libnftables' ? 'lib' : 'proc'}`, { channel });
  const add: number[] = [];
  const remove: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await nat.add(mapping(i), 30_000);
      add.push(performance.now() - t0);
    }
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await nat.remove(mapping(i));
      remove.push(performance.now() - t0);
    }
    // A burst: n adds at once go out as one batch.
    const t0 = performance.now();
    await Promise.all(Array.from({ length: n }, (_, i) => nat.add(mapping(i), 30_000)));
    const burst = performance.now() - t0;
    return { add: summary(add), remove: summary(remove), burstOfN: { n, totalMs: Number(burst.toFixed(3)) } };
  } finally {
    await nat.close();
  }
}

async function viaInteractive(n: number): Promise<ChannelFigures> {
  const table = `${stem}_i`;
  spawnSync('nft', ['-f', '-'], { input: `table inet ${table} { map dnat4 { type ipv4_addr . ipv4_addr . inet_service : ipv4_addr . inet_service; flags timeout; }; }\n` });
  const child = spawn('nft', ['-i'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  let waiter: (() => void) | undefined;
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    err += d;
    if (waiter && err.includes('ftpalg_sentinel')) {
      err = '';
      waiter();
    }
  });
  const add: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const m = mapping(i);
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('nft -i did not answer within 5 s')), 5000);
        waiter = () => {
          clearTimeout(timer);
          resolve();
        };
        child.stdin.write(`add element inet ${table} dnat4 { 127.0.0.1 . 127.0.0.1 . ${m.via.port} timeout 30s : 127.0.0.1 . 21 }\nlist map inet ${table} ftpalg_sentinel\n`);
      });
      add.push(performance.now() - t0);
    }
  } finally {
    child.kill('SIGKILL');
    spawnSync('nft', ['delete', 'table', 'inet', table]);
  }
  return { add: summary(add) };
}

const results: Record<string, ChannelFigures> = {
  libnftables: await viaKernelNat('libnftables', count),
  'nft -i': await viaInteractive(count),
  'nft process': await viaKernelNat('nft process', Math.min(count, 50)),
};
for (const [name, r] of Object.entries(results)) {
  const line = [`add ${r.add.medianMs} ms median, ${r.add.p90Ms} p90 (n=${r.add.n})`];
  if (r.remove) line.push(`remove ${r.remove.medianMs} / ${r.remove.p90Ms}`);
  if (r.burstOfN) line.push(`${r.burstOfN.n} adds at once ${r.burstOfN.totalMs} ms`);
  process.stdout.write(`${name.padEnd(12)} ${line.join('; ')}\n`);
}
