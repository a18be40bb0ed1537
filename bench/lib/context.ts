/**
 * What bench.ts hands every part: the parsed flags, where to log, the run's
 * folder, the ftp-alg command line measured, and the shared failure list.
 */
import type { DataMode } from './curl.js';
import type { KernelDataPathSupport } from './helpers.js';

export interface BenchFlags {
  quick: boolean;
  size: number;
  runs: number;
  mode: DataMode;
  sessions: number;
  concurrency: number;
  rounds: number;
  noops: number;
  idle: number;
  idleSeconds: number;
  concurrent: number;
  transferSize: number;
  smallRuns: number;
  retrs: number;
  hostile: number;
  engineMb: number;
  engineReps: number;
  maxSeconds: number;
  partSeconds: number;
}

export interface BenchContext {
  flags: BenchFlags;
  log(text?: string): void;
  /** The run's temporary folder, removed at the end. */
  dir: string;
  /** The ftp-alg build whose command line (cli.js) is run where a part needs its flags. */
  distDir: string;
  cli: string;
  failures: string[];
  /** An nftables table name unique to this run (--nft-table). */
  nftTable: string;
  kernel: KernelDataPathSupport;
  /** The load average, as text. */
  load(): string;
  cpuOf(pid: number): number;
  waitNoChildren(pid: number, ms: number): Promise<void>;
  /** Runs fn; a failure is recorded (label: message) and logged, and gives undefined. */
  attempt<T>(label: string, fn: () => Promise<T>): Promise<T | undefined>;
}

/** One path of a throughput table: MB/s per run in each direction. */
export interface TransferRow {
  key: string;
  label: string;
  available: boolean;
  reason: string | undefined;
  get: number[];
  put: number[];
  cpuPerGiB: number[];
  errors: string[];
  mode?: DataMode;
  version?: string;
  config?: string;
}

/** What a throughput-like part returns. */
export interface ThroughputResult {
  size: number;
  mode?: DataMode;
  runs: number;
  rows: Record<string, TransferRow>;
  skipped?: string;
  addresses?: Record<string, string>;
}

/** The last line gateway-child.ts prints. */
export interface GatewayChildStats {
  counts: Record<string, number>;
  dataCloses: { mode: string; bytes: number; durationMs: number; reason: string }[];
  sessionsAtStop: number;
}

/** The last line server-child.ts prints with --discard-uploads. */
export interface ServerChildStats {
  uploads: { path: string; bytes: number }[];
}

/** gateway-child.ts's answer to `mem`. */
export interface GatewayMemory {
  mem: { rss: number; rssTrimmed: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number; gc: boolean };
  sessions: number;
}
