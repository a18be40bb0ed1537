/**
 * How the kernel data path talks to netfilter: one long-lived channel that
 * takes nft scripts and answers with their output or their first error.
 *
 * Measured on the 2-vCPU lab machine (bench/nft-channels.ts, one map
 * element added per call, median): libnftables through koffi 0.07-0.18 ms,
 * a persistent `nft -i` fed over stdin 0.34-0.51 ms (its answers have no
 * end marker, so each batch needs a sentinel command that fails on purpose
 * and a wait on stderr), one `nft -f -` process per batch 16-20 ms (Node's
 * asynchronous spawn on a busy machine). libnftables is
 * what nft itself runs on: same parser, same error texts, one netlink
 * transaction per call, no process to feed, restart or leave behind. It is
 * called synchronously, which costs the event loop those 0.07 ms per batch,
 * less than handing the script to a worker would. Where it cannot be loaded
 * (no koffi binary for the platform, libnftables missing), each batch runs
 * an nft process, as before.
 */
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

export class KernelNatError extends Error {}

export interface NftChannel {
  readonly kind: 'libnftables' | 'nft process';
  /** Runs one script as one transaction; resolves with its output, rejects with a KernelNatError. */
  run(script: string): Promise<string>;
  /** The same, blocking, where the channel can (libnftables): for the exit hook. */
  runSync?(script: string): string;
  close(): void;
}

/** The first line of nft's complaint that says what went wrong. */
function firstError(text: string, fallback: string): string {
  const lines = text.split('\n').map((l) => l.trim());
  return lines.find((l) => /Error:/.test(l)) ?? lines.find((l) => l !== '') ?? fallback;
}

interface LibNftables {
  ctxNew(flags: number): unknown;
  ctxFree(ctx: unknown): void;
  bufferOutput(ctx: unknown): number;
  bufferError(ctx: unknown): number;
  runCmd(ctx: unknown, script: string): number;
  output(ctx: unknown): string;
  error(ctx: unknown): string;
}

let lib: LibNftables | undefined;

function loadLibNftables(): LibNftables {
  if (lib) return lib;
  const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  const so = koffi.load('libnftables.so.1');
  const fn = <T>(decl: string) => so.func(decl) as unknown as T;
  lib = {
    ctxNew: fn('void *nft_ctx_new(uint32_t flags)'),
    ctxFree: fn('void nft_ctx_free(void *ctx)'),
    bufferOutput: fn('int nft_ctx_buffer_output(void *ctx)'),
    bufferError: fn('int nft_ctx_buffer_error(void *ctx)'),
    runCmd: fn('int nft_run_cmd_from_buffer(void *ctx, const char *buf)'),
    output: fn('const char *nft_ctx_get_output_buffer(void *ctx)'),
    error: fn('const char *nft_ctx_get_error_buffer(void *ctx)'),
  };
  return lib;
}

/** libnftables in this process: one nft context, i.e. one netlink socket. */
class LibNftablesChannel implements NftChannel {
  readonly kind = 'libnftables';
  private ctx: unknown;

  constructor(private readonly lib: LibNftables) {
    this.ctx = this.open();
  }

  private open(): unknown {
    const ctx = this.lib.ctxNew(0);
    if (!ctx) throw new KernelNatError('nft_ctx_new failed');
    // Output and errors go to buffers of the context, not to our stdout.
    if (this.lib.bufferOutput(ctx) !== 0 || this.lib.bufferError(ctx) !== 0) {
      this.lib.ctxFree(ctx);
      throw new KernelNatError('cannot buffer libnftables output');
    }
    return ctx;
  }

  run(script: string): Promise<string> {
    try {
      return Promise.resolve(this.runSync(script));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  runSync(script: string): string {
    this.ctx ??= this.open();
    const rc = this.lib.runCmd(this.ctx, script);
    // Reading a buffer also empties it for the next run.
    const output = this.lib.output(this.ctx);
    const error = this.lib.error(this.ctx);
    if (rc === 0) return output;
    // A context that failed starts over: whatever state its socket or its
    // cache was left in (a netlink error, a table deleted behind its back),
    // the next batch gets a fresh one. That is the restart of a broken channel.
    this.close();
    throw new KernelNatError(firstError(error, `nft_run_cmd_from_buffer returned ${rc}`));
  }

  close(): void {
    if (this.ctx) this.lib.ctxFree(this.ctx);
    this.ctx = undefined;
  }
}

/** nft answers in milliseconds; one that hangs must not hold every later PASV behind it. */
const NFT_TIMEOUT_MS = 10_000;

/** Runs nft with `args` (and `script` on stdin); resolves with its stdout, rejects with its first error line. */
function nftProcess(args: string[], script = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('nft', args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: NFT_TIMEOUT_MS, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      if (stdout.length < 1 << 20) stdout += d;
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(new KernelNatError(err.code === 'ENOENT' ? 'nft not found (install the nftables package)' : `cannot run nft: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      if (code === 0) resolve(stdout);
      else if (signal) reject(new KernelNatError(`nft did not finish within ${NFT_TIMEOUT_MS} ms (killed)`));
      else reject(new KernelNatError(firstError(stderr, `nft exited with ${code}`)));
    });
    child.stdin.on('error', () => undefined); // nft gone early: its exit code tells
    child.stdin.end(script);
  });
}

/** One `nft -f -` per batch: the fallback, some 16 ms a batch. */
class NftProcessChannel implements NftChannel {
  readonly kind = 'nft process';
  run(script: string): Promise<string> {
    return nftProcess(['-f', '-'], script);
  }
  close(): void {}
}

export type NftChannelKind = NftChannel['kind'];

/** libnftables when it loads, else an nft process per batch; `prefer` forces one (bench, tests). */
export function openNftChannel(prefer?: NftChannelKind): NftChannel {
  // Without CAP_NET_ADMIN libnftables fails anyway, and writes a line of its
  // own to our stderr first: an nft process keeps its words to itself.
  if (prefer !== 'nft process' && process.platform === 'linux' && (prefer === 'libnftables' || mayAdministerNetwork())) {
    try {
      return new LibNftablesChannel(loadLibNftables());
    } catch (err) {
      if (prefer === 'libnftables') throw new KernelNatError(`cannot load libnftables.so.1 through koffi: ${(err as Error).message}`);
    }
  }
  return new NftProcessChannel();
}

/** CAP_NET_ADMIN (bit 12) in this process's effective capabilities, from /proc. */
function mayAdministerNetwork(): boolean {
  try {
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return hex !== undefined && (BigInt(`0x${hex}`) & (1n << 12n)) !== 0n;
  } catch {
    return true;
  }
}
