/**
 * curl as the client of the throughput cases: one download to /dev/null or
 * one upload from a file, optionally inside a network namespace. Resolves
 * with bytes, seconds (curl's time_total: login and data set-up included)
 * and MB/s; never rejects. Bounded by --max-time and a kill timer.
 */
import { spawn } from 'node:child_process';
import { inNamespace } from '../../scenarios/lib/lab.js';
import { killTree, track } from './procs.js';
import { MB } from './common.js';

export type DataMode = 'PASV' | 'EPSV' | 'PORT' | 'EPRT';

export interface CurlResult {
  code: number | null;
  bytes: number;
  seconds: number;
  mbPerS: number;
  error: string | undefined;
}

export interface CurlTransfer {
  direction: 'get' | 'put';
  url: string;
  /** The file to upload ('put'). */
  file?: string | undefined;
  mode: DataMode;
  activeAddress?: string | undefined;
  maxTimeS: number;
  /** Full namespace name: run inside `ip netns exec NS`. */
  netns?: string | undefined;
  extra?: string[];
}

/** curl options per data mode (EPSV and EPRT are curl's defaults; LAB.md). */
export function curlModeArgs(mode: DataMode, activeAddress = '127.0.0.1'): string[] {
  switch (mode) {
    case 'PASV':
      return ['--disable-epsv'];
    case 'EPSV':
      return [];
    case 'PORT':
      return ['-P', activeAddress, '--disable-eprt'];
    case 'EPRT':
      return ['-P', activeAddress];
    default:
      throw new Error(`unknown data mode ${String(mode)}`);
  }
}

/**
 * direction 'get': RETR url → /dev/null; 'put': STOR file → url.
 */
export function curlTransfer({ direction, url, file, mode, activeAddress, maxTimeS, netns, extra = [] }: CurlTransfer): Promise<CurlResult> {
  const args = [
    '-sS',
    '--max-time',
    String(maxTimeS),
    ...curlModeArgs(mode, activeAddress),
    ...(direction === 'get' ? ['-o', '/dev/null', '-w', '%{size_download} %{time_total}'] : ['-T', file ?? '/dev/null', '-w', '%{size_upload} %{time_total}']),
    ...extra,
    url,
  ];
  const [cmd, full] = inNamespace(netns, 'curl', args);
  return new Promise((resolve) => {
    const proc = track(spawn(cmd, full, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => proc.pid !== undefined && killTree(proc.pid), (maxTimeS + 10) * 1000);
    proc.once('error', (e) => {
      clearTimeout(timer);
      resolve({ code: -1, bytes: 0, seconds: 0, mbPerS: 0, error: e.message });
    });
    proc.once('close', (code) => {
      clearTimeout(timer);
      const [bytes = 0, seconds = 0] = out.trim().split(' ').map(Number);
      resolve({ code, bytes: bytes || 0, seconds: seconds || 0, mbPerS: seconds ? bytes / MB / seconds : 0, error: err.trim() || undefined });
    });
  });
}
