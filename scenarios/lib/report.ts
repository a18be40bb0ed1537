/** Per-case results, the comparison table (no ALG vs kernel helper vs ftp-alg) and the JSON report. */
import { writeFileSync } from 'node:fs';
import type { Alg, ServerKind } from './spec.js';

export interface CaseResult {
  scenario: string;
  variant: string;
  alg: Alg;
  /** Full case name: server client:mode transfer file [xN]. */
  case: string;
  server: ServerKind;
  /** The case without its server: the table's row (one cell aggregates the servers). */
  row: string;
  expected: string;
  got: string;
  /** What the outcome rests on: exit codes, checksums, the reason found. */
  detail: string;
  ok: boolean;
  durationMs: number;
  bytes: number;
  /** MB/s (10^6 bytes) for transfers of at least 64 MiB. */
  mbps?: number;
  /** Client logs, and the server's and gateways' logs from where this case began. */
  logs: { path: string; from: number }[];
}

export interface VariantTiming {
  scenario: string;
  variant: string;
  alg: Alg;
  setupMs: number;
  totalMs: number;
  cases: number;
  error?: string;
}

const COLUMNS: { alg: Alg; title: string }[] = [
  { alg: 'none', title: 'no ALG' },
  { alg: 'kernel', title: 'kernel helper' },
  { alg: 'ftp-alg', title: 'ftp-alg' },
  { alg: 'ftp-alg-kernel', title: 'ftp-alg kernel' },
];

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));

/**
 * One row per scenario and case (servers aggregated), one column per ALG:
 * "pass 3" = passed with all three servers; "fail 3" = failed with all
 * three, as expected; a trailing "!" marks a cell with an unexpected outcome.
 */
export function comparisonTable(results: CaseResult[]): string[] {
  const rows = new Map<string, Map<Alg, CaseResult[]>>();
  for (const r of results) {
    const key = `${r.scenario}  ${r.row}`;
    const row = rows.get(key) ?? new Map<Alg, CaseResult[]>();
    row.set(r.alg, [...(row.get(r.alg) ?? []), r]);
    rows.set(key, row);
  }
  const cell = (rs: CaseResult[] | undefined): string => {
    if (!rs?.length) return '—';
    const pass = rs.filter((r) => r.got === 'pass').length;
    const fail = rs.length - pass;
    const parts = [pass ? `pass ${pass}` : '', fail ? `fail ${fail}` : ''].filter(Boolean).join(', ');
    return rs.every((r) => r.ok) ? parts : `${parts} !`;
  };
  const width = Math.max(20, ...[...rows.keys()].map((k) => k.length)) + 2;
  const colW = 16;
  const lines = [pad('scenario  case (servers aggregated)', width) + COLUMNS.map((c) => pad(c.title, colW)).join('')];
  lines.push('-'.repeat(width + colW * COLUMNS.length));
  for (const [key, row] of rows) lines.push(pad(key, width) + COLUMNS.map((c) => pad(cell(row.get(c.alg)), colW)).join(''));
  lines.push('-'.repeat(width + colW * COLUMNS.length));
  const totals = COLUMNS.map((c) => {
    const rs = results.filter((r) => r.alg === c.alg);
    const pass = rs.filter((r) => r.got === 'pass').length;
    return pad(rs.length ? `${pass}/${rs.length} pass` : '—', colW);
  });
  lines.push(pad('cases that transferred correctly', width) + totals.join(''));
  return lines;
}

const FTP_ALG: readonly Alg[] = ['ftp-alg', 'ftp-alg-kernel'];

/**
 * "Every case the kernel helper passes, ftp-alg also passes", for each of
 * ftp-alg's data paths the scenario runs. A kernel-helper pass with no
 * ftp-alg run at all, or an ftp-alg failure not declared in the scenario,
 * is a violation. A declared failure (expected, its reason found) is a
 * known gap of that data path: listed, and a violation only if no data
 * path of ftp-alg passes the case.
 */
export function parity(results: CaseResult[]): { violations: string[]; knownGaps: string[] } {
  const violations: string[] = [];
  const knownGaps: string[] = [];
  for (const k of results.filter((r) => r.alg === 'kernel' && r.got === 'pass')) {
    const runs = results.filter((r) => FTP_ALG.includes(r.alg) && r.scenario === k.scenario && r.case === k.case);
    if (runs.length === 0) violations.push(`${k.scenario} ${k.case}: the kernel helper passes it, ftp-alg does not run it`);
    const somePass = runs.some((f) => f.got === 'pass');
    for (const f of runs.filter((r) => r.got !== 'pass')) {
      const what = `${k.scenario} ${k.case}: kernel helper pass, ${f.variant} ${f.got}`;
      if (f.ok && somePass) knownGaps.push(`${what} (declared: ${f.detail.replace(/^.*reason: /, '')}; ${runs.filter((r) => r.got === 'pass').map((r) => r.variant).join(', ')} passes it)`);
      else violations.push(`${what}${f.ok ? ' (declared, but no ftp-alg data path passes it)' : ''}`);
    }
  }
  return { violations, knownGaps };
}

export function writeReport(path: string, report: { startedAt: string; durationMs: number; passed: number; failed: number; parity: { violations: string[]; knownGaps: string[] }; teardown: string[]; timings: VariantTiming[]; results: CaseResult[] }): void {
  writeFileSync(path, JSON.stringify(report, null, 2) + '\n');
}
