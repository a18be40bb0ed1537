/**
 * The final table of `npm run bench`: one row per figure, with its target,
 * its ratio to the direct path of the same run where that applies, and a
 * verdict (met / MISSED by how much / reference / info / n/a).
 */
import { KiB, median } from './common.js';
import type { ThroughputResult, TransferRow } from './context.js';
import type { EngineResult } from '../parts/engine.js';
import type { HostileResult } from '../parts/hostile.js';
import type { IdleResult, TransfersResult } from '../parts/scale.js';
import type { RoundTrips, SessionsResult } from '../parts/sessions.js';
import type { SmallFilesResult } from '../parts/small-files.js';
import { CONTROL_RELAYS, CONTROL_RELAY_LABEL } from './control-relays.js';

/** What each part returned (undefined when it failed or did not run). */
export interface BenchResults {
  throughput?: ThroughputResult | undefined;
  ftps?: ThroughputResult | undefined;
  netns?: ThroughputResult | undefined;
  'small-files'?: SmallFilesResult | undefined;
  sessions?: SessionsResult | undefined;
  latency?: { rtt?: RoundTrips | undefined; errors?: SessionsResult['errors'] } | undefined;
  idle?: IdleResult | undefined;
  transfers?: TransfersResult | undefined;
  hostile?: HostileResult | undefined;
  engine?: EngineResult | undefined;
}

/** One line of the final table. */
export interface TableRow {
  section: string;
  metric: string;
  value: string;
  target: string;
  ratio: string;
  verdict: string;
  data?: unknown;
}

type Stats = { median: number; min: number; max: number; n: number };

interface ThroughputSpec {
  base: string;
  baseName?: string;
  minRatio?: number;
  notBelow?: string;
  rows: { key: string; kind?: string; target?: string; baseKey?: string; hideIfUnavailable?: boolean }[];
  cpuRows?: { key: string; what?: string }[];
}

const RELAY_RATIO = 0.9;
/** Issue 15: TLS ended and begun again at the gateway, client, server and gateway on 2 cores. */
const FTPS_RATIO = 0.5;
const ADDED_RTT_MS = 0.2;
const IDLE_BYTES = 16 * KiB;
/** Issue 14: added per 4 KiB transfer (median), and the mirror's ratio to direct. */
const ADDED_PER_TRANSFER_MS = 0.3;
const MIRROR_RATIO = 1.25;
/** Issue 14: sessions per second through the gateway, as a share of the direct rate. */
const SESSION_RATE_RATIO = 0.8;

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '—');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '—');

function sizeText(bytes: number | undefined): string {
  if (!bytes) return '?';
  return bytes % 2 ** 30 === 0 ? `${bytes / 2 ** 30} GiB` : `${f0(bytes / 2 ** 20)} MiB`;
}

function stats(xs: number[] | undefined): Stats | undefined {
  if (!xs?.length) return undefined;
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

function rateText(s: Stats | undefined): string {
  if (!s) return 'FAILED';
  return s.n > 1 ? `${f0(s.median)} MB/s (${f0(s.min)}–${f0(s.max)})` : `${f0(s.median)} MB/s`;
}

/** Rows for one throughput table (loopback or namespaces). */
function throughputRows(section: string, part: ThroughputResult | undefined, spec: ThroughputSpec): TableRow[] {
  const rows: TableRow[] = [];
  if (!part) return rows;
  const directions: ['get' | 'put', string][] = [
    ['get', 'download'],
    ['put', 'upload'],
  ];
  for (const [dir, word] of directions) {
    const base = stats(part.rows[spec.base]?.[dir]);
    for (const { key, target, kind, baseKey, hideIfUnavailable } of spec.rows) {
      const row: TransferRow | undefined = part.rows[key];
      if (!row || (hideIfUnavailable && !row.available)) continue;
      const label = `${word}: ${row.label}`;
      if (!row.available) {
        rows.push({ section, metric: label, value: `n/a (${row.reason ?? ''})`, target: target ?? '—', ratio: '', verdict: 'n/a' });
        continue;
      }
      const s = stats(row[dir]);
      const ref = baseKey ? stats(part.rows[baseKey]?.[dir]) : base;
      const ratio = s && ref ? s.median / ref.median : NaN;
      let verdict = kind ?? 'reference';
      if (kind === 'relay' || kind === 'kernel') {
        const misses: string[] = [];
        const minRatio = spec.minRatio ?? RELAY_RATIO;
        if (!(ratio >= minRatio)) misses.push(`${f3(ratio)}× ${spec.baseName ?? 'direct'}, ${f1((minRatio - ratio) * 100)} points under ${minRatio}×`);
        if (spec.notBelow) {
          const other = stats(part.rows[spec.notBelow]?.[dir]);
          if (other && s && s.median < other.median) misses.push(`${f0(other.median - s.median)} MB/s below ${part.rows[spec.notBelow]?.label ?? spec.notBelow}`);
        }
        verdict = !s ? 'FAILED' : misses.length ? `MISSED: ${misses.join('; ')}` : 'met';
      }
      rows.push({
        section,
        metric: label,
        value: rateText(s),
        target: target ?? '—',
        ratio: Number.isFinite(ratio) ? `${f2(ratio)}×` : '',
        verdict,
        data: { ...s, ratio },
      });
    }
  }
  for (const { key, what } of spec.cpuRows ?? []) {
    const row = part.rows[key];
    const s = stats(row?.cpuPerGiB);
    if (!row?.available || !s) continue;
    rows.push({ section, metric: `CPU per GiB moved: ${what ?? row.label}`, value: `${f2(s.median)} s/GiB`, target: '—', ratio: '', verdict: 'info', data: s });
  }
  return rows;
}

export function buildTable(results: BenchResults, { only }: { only: readonly string[] }): TableRow[] {
  const rows: TableRow[] = [];
  const t = results.throughput;
  if (only.includes('throughput')) {
    if (!t) rows.push({ section: 'throughput', metric: 'loopback throughput', value: 'FAILED (see above)', target: '', ratio: '', verdict: 'FAILED' });
    rows.push(
      ...throughputRows(`${sizeText(t?.size)} on loopback (curl, ${t?.mode ?? 'PASV'}, median of ${t?.runs ?? '?'} runs)`, t, {
        base: 'direct',
        notBelow: 'ftpProxy',
        rows: [
          { key: 'direct', kind: 'reference' },
          { key: 'relay', kind: 'relay', target: '≥ 0.9× direct, ≥ ftp-proxy' },
          { key: 'ftpProxy', kind: 'reference' },
          { key: 'kernelDirect', kind: 'reference', hideIfUnavailable: true },
          { key: 'kernel', kind: 'kernel', target: '≥ 0.9× direct (its own namespace)', baseKey: 'kernelDirect' },
        ],
        cpuRows: [{ key: 'relay' }, { key: 'ftpProxy', what: 'SuSE ftp-proxy (daemon + session children)' }, { key: 'kernel' }],
      }),
    );
  }
  const ftps = results.ftps;
  if (only.includes('ftps')) {
    if (!ftps) rows.push({ section: 'ftps', metric: 'FTPS throughput', value: 'FAILED (see above)', target: '', ratio: '', verdict: 'FAILED' });
    rows.push(
      ...throughputRows(`${sizeText(ftps?.size)} over explicit FTPS, PROT P (curl, ${ftps?.mode ?? 'PASV'}, vsftpd, median of ${ftps?.runs ?? '?'} runs)`, ftps, {
        base: 'direct',
        baseName: 'direct FTPS',
        minRatio: FTPS_RATIO,
        rows: [
          { key: 'direct', kind: 'reference' },
          { key: 'gateway', kind: 'relay', target: `≥ ${FTPS_RATIO}× direct FTPS` },
        ],
        cpuRows: [{ key: 'gateway', what: 'ftp-alg --tls terminate --server-tls explicit (two TLS legs)' }],
      }),
    );
  }
  const n = results.netns;
  if (only.includes('netns')) {
    if (!n) rows.push({ section: 'namespaces', metric: 'NAT box throughput', value: 'FAILED (see above)', target: '', ratio: '', verdict: 'FAILED' });
    rows.push(
      ...throughputRows(`${sizeText(n?.size)} through a NAT box in namespaces (median of ${n?.runs ?? '?'} runs; ratio to NAT only)`, n, {
        base: 'nat',
        baseName: 'NAT only',
        rows: [
          { key: 'nat', kind: 'reference' },
          { key: 'helper', kind: 'reference' },
          { key: 'helperPassive', kind: 'reference' },
          { key: 'fwdActive', kind: 'relay', target: '≥ 0.9× NAT only' },
          { key: 'fwdPassive', kind: 'info' },
          { key: 'reverse', kind: 'relay', target: '≥ 0.9× NAT only' },
          { key: 'fwdKernel', kind: 'kernel', target: '≥ 0.9× NAT only' },
          { key: 'revKernel', kind: 'kernel', target: '≥ 0.9× NAT only' },
        ],
        cpuRows: [{ key: 'fwdActive' }, { key: 'reverse' }, { key: 'fwdKernel' }, { key: 'revKernel' }],
      }),
    );
  }
  if (only.includes('small-files')) rows.push(...smallFileRows(results['small-files']));
  const s = results.sessions;
  if (only.includes('sessions')) {
    const sec = `session cost: connect, login, PASV + LIST, QUIT (${s?.sessions ?? '?'} per path)`;
    if (!s?.time || !s.rate) rows.push({ section: sec, metric: 'sessions', value: 'FAILED (see above)', target: '', ratio: '', verdict: 'FAILED' });
    else {
      const d = s.time.direct;
      const g = s.time.gateway;
      rows.push({ section: sec, metric: 'session time, direct', value: `median ${f2(d.median)} ms, p99 ${f2(d.p99)} ms`, target: '—', ratio: '', verdict: 'reference', data: d });
      rows.push({ section: sec, metric: 'session time, through ftp-alg', value: `median ${f2(g.median)} ms, p99 ${f2(g.p99)} ms`, target: '—', ratio: `${f2(g.median / d.median)}×`, verdict: 'info', data: g });
      rows.push({ section: sec, metric: 'added per session (median)', value: `${f2(g.median - d.median)} ms`, target: '—', ratio: '', verdict: 'info' });
      const rd = s.rate.direct;
      const rg = s.rate.gateway;
      rows.push({ section: sec, metric: `sessions/s, ${s.concurrency} at a time, direct`, value: `${f0(rd.perS)} /s`, target: '—', ratio: '', verdict: 'reference', data: rd });
      rows.push({ section: sec, metric: `sessions/s, ${s.concurrency} at a time, through ftp-alg`, value: `${f0(rg.perS)} /s`, target: `≥ ${SESSION_RATE_RATIO}× direct`, ratio: `${f2(rg.perS / rd.perS)}×`, verdict: rg.perS / rd.perS >= SESSION_RATE_RATIO ? 'met' : `MISSED by ${f2(SESSION_RATE_RATIO - rg.perS / rd.perS)}×`, data: rg });
      for (const { key, kind } of CONTROL_RELAYS) {
        const label = CONTROL_RELAY_LABEL[kind];
        const t = s.time[key];
        const r = s.rate[key];
        const missing = s.missing?.[key];
        if (missing) rows.push({ section: sec, metric: label, value: `n/a (${missing})`, target: '', ratio: '', verdict: 'n/a' });
        if (!t || !r) continue;
        rows.push({ section: sec, metric: `session time, ${label}`, value: `median ${f2(t.median)} ms: +${f2(t.median - d.median)} ms`, target: '—', ratio: `${f2(t.median / d.median)}×`, verdict: 'floor', data: t });
        rows.push({ section: sec, metric: `sessions/s, ${s.concurrency} at a time, ${label}`, value: `${f0(r.perS)} /s`, target: '—', ratio: `${f2(r.perS / rd.perS)}×`, verdict: 'floor', data: r });
      }
      const errs = Object.values(s.errors).reduce((a, b) => a + b, 0);
      rows.push({ section: sec, metric: 'failed sessions', value: String(errs), target: '0', ratio: '', verdict: errs === 0 ? 'met' : `MISSED: ${errs} failed` });
    }
  }
  const l = results.latency ?? (results.sessions?.rtt ? { rtt: results.sessions.rtt } : undefined);
  if (only.includes('latency')) {
    const sec = 'control round trip: NOOP → 200 on one session';
    if (!l?.rtt) rows.push({ section: sec, metric: 'round trips', value: 'FAILED (see above)', target: '', ratio: '', verdict: 'FAILED' });
    else {
      const r = l.rtt;
      rows.push({ section: sec, metric: `direct (${r.direct.n} round trips)`, value: `median ${f3(r.direct.median)} ms, p99 ${f3(r.direct.p99)} ms`, target: '—', ratio: '', verdict: 'reference', data: r.direct });
      rows.push({ section: sec, metric: `through ftp-alg (${r.gateway.n} round trips)`, value: `median ${f3(r.gateway.median)} ms, p99 ${f3(r.gateway.p99)} ms`, target: '—', ratio: `${f2(r.gateway.median / r.direct.median)}×`, verdict: 'info', data: r.gateway });
      const added = r.addedMedianMs;
      rows.push({
        section: sec,
        metric: 'added per round trip (difference of medians)',
        value: `${f3(added)} ms`,
        target: `≤ ${ADDED_RTT_MS} ms`,
        ratio: '',
        verdict: added <= ADDED_RTT_MS ? 'met' : `MISSED by ${f3(added - ADDED_RTT_MS)} ms`,
        data: { added, perRound: r.addedPerRoundMs },
      });
    }
  }
  const i = results.idle;
  if (only.includes('idle')) {
    const sec = `scale: ${i?.sessions ?? '?'} idle logged-in sessions through one ftp-alg process`;
    if (!i?.perSession || !i.before || !i.after) rows.push({ section: sec, metric: 'idle sessions', value: 'FAILED (see above)', target: '', ratio: '', verdict: 'FAILED' });
    else {
      const answeredNoop = i.answeredNoop ?? 0;
      const ok = i.errorCount === 0 && answeredNoop === i.sessions;
      rows.push({
        section: sec,
        metric: 'sessions up, answering NOOP after idle; errors',
        value: `${answeredNoop} of ${i.sessions}; ${i.errorCount} errors`,
        target: `${i.sessions}, 0 errors`,
        ratio: '',
        verdict: ok ? 'met' : `MISSED: ${i.sessions - answeredNoop} not answering, ${i.errorCount} errors`,
      });
      const per = i.perSession.rss;
      rows.push({
        section: sec,
        metric: 'gateway RSS per idle session (after GC)',
        value: `${f1(per / KiB)} KiB (RSS ${f1(i.before.mem.rss / 2 ** 20)} → ${f1(i.after.mem.rss / 2 ** 20)} MiB)`,
        target: '≤ 16 KiB',
        ratio: '',
        verdict: per <= IDLE_BYTES ? 'met' : `MISSED by ${f1((per - IDLE_BYTES) / KiB)} KiB`,
      });
      if (i.marginalPerSession) {
        rows.push({
          section: sec,
          metric: `… over the last ${i.sessions - (i.mid?.clients ?? 0)} sessions alone (RSS; heap)`,
          value: `${f1(i.marginalPerSession.rss / KiB)} KiB; ${f1(i.marginalPerSession.heapUsed / KiB)} KiB`,
          target: '(no one-time growth)',
          ratio: '',
          verdict: 'info',
        });
      }
      rows.push({
        section: sec,
        metric: 'gateway V8 heap per idle session (after GC)',
        value: `${f1(i.perSession.heapUsed / KiB)} KiB (heap ${f1(i.before.mem.heapUsed / 2 ** 20)} → ${f1(i.after.mem.heapUsed / 2 ** 20)} MiB)`,
        target: '(part of the RSS)',
        ratio: '',
        verdict: 'info',
      });
    }
  }
  const h = results.hostile;
  if (only.includes('hostile')) {
    const sec = `hostile: ${h?.sessionsPerKind ?? '?'} sessions of each kind flooding one ftp-alg process without reading`;
    if (!h?.perSession) rows.push({ section: sec, metric: 'hostile sessions', value: 'FAILED (see above)', target: '', ratio: '', verdict: 'FAILED' });
    else {
      for (const [name, k] of Object.entries(h.kinds)) {
        rows.push({ section: sec, metric: `${name}: stopped being read`, value: `${k.stalled} of ${k.sessions}; ${k.writtenMiB.toFixed(1)} MiB written`, target: name === 'endless' ? '(read and dropped)' : `${k.sessions}`, ratio: '', verdict: name === 'endless' || k.stalled === k.sessions ? 'met' : 'MISSED' });
      }
      rows.push({ section: sec, metric: 'a normal client served meanwhile', value: h.served ? `yes, in ${h.servedMs} ms` : 'no', target: 'yes', ratio: '', verdict: h.served ? 'met' : 'MISSED' });
      rows.push({
        section: sec,
        metric: 'gateway RSS per hostile session (after GC)',
        value: `${f1(h.perSession.rss / KiB)} KiB (RSS ${f1(h.before.rss / 2 ** 20)} → ${f1(h.after.rss / 2 ** 20)} MiB; heap ${f1(h.before.heapUsed / 2 ** 20)} → ${f1(h.after.heapUsed / 2 ** 20)} MiB)`,
        target: 'bounded (README: well under 1 MiB)',
        ratio: '',
        verdict: h.perSession.rss < 1024 * KiB ? 'met' : 'MISSED',
      });
    }
  }
  const x = results.transfers;
  if (only.includes('transfers')) {
    const sec = `scale: ${x?.concurrent ?? '?'} concurrent downloads through one ftp-alg process`;
    if (!x?.bytes) rows.push({ section: sec, metric: 'concurrent transfers', value: 'FAILED (see above)', target: '', ratio: '', verdict: 'FAILED' });
    else {
      const { cpuPerGiB = NaN, cpuSeconds = NaN, mbPerS = NaN, gatewayHwm = NaN, complete = 0 } = x;
      rows.push({
        section: sec,
        metric: 'gateway CPU (user + sys) per GiB relayed',
        value: `${f2(cpuPerGiB)} s/GiB (${f2(cpuSeconds)} s for ${f2(x.bytes / 2 ** 30)} GiB)`,
        target: '—',
        ratio: '',
        verdict: 'info',
      });
      rows.push({ section: sec, metric: 'aggregate rate; gateway peak RSS', value: `${f0(mbPerS)} MB/s; ${f0(gatewayHwm / 2 ** 20)} MiB`, target: '—', ratio: '', verdict: 'info' });
      rows.push({ section: sec, metric: 'complete transfers; errors', value: `${complete} of ${x.concurrent}; ${x.errors}`, target: `${x.concurrent}; 0`, ratio: '', verdict: x.errors === 0 && complete === x.concurrent ? 'met' : `MISSED: ${x.errors} errors` });
    }
  }
  const e = results.engine;
  if (only.includes('engine')) {
    const sec = 'control-stream engine: LineFramer + ControlTranslator, no sockets';
    if (!e) rows.push({ section: sec, metric: 'engine', value: 'FAILED (see above)', target: '', ratio: '', verdict: 'FAILED' });
    else {
      for (const [name, c] of Object.entries(e.chunkings)) {
        rows.push({ section: sec, metric: `synthetic session mix, ${name}`, value: `${f1(c.mbPerS)} MB/s, ${f2(c.linesPerS / 1e6)} M lines/s`, target: '—', ratio: '', verdict: 'info', data: c });
      }
    }
  }
  return rows;
}

/** Each path against its reference: direct on loopback, NAT only through the NAT box. */
function smallFileRows(p: SmallFilesResult | undefined): TableRow[] {
  const ran = p?.skipped === undefined ? p : undefined;
  const sec = `small files: lftp mirror of ${ran?.files ?? 400} × 4 KiB; ${ran?.retrsPerRun ?? '?'} sequential 4 KiB RETRs (ftplib, one session) × ${ran?.runs ?? '?'} run(s)`;
  if (!p) return [{ section: sec, metric: 'small files', value: 'FAILED (see above)', target: '', ratio: '', verdict: 'FAILED' }];
  if (p.skipped !== undefined) return [{ section: sec, metric: 'small files', value: `n/a (${p.skipped})`, target: '', ratio: '', verdict: 'n/a' }];
  const rows: TableRow[] = [];
  const spec: { key: string; base?: string; kind: string }[] = [
    { key: 'direct', kind: 'reference' },
    { key: 'relay', base: 'direct', kind: 'target' },
    { key: 'kernel', base: 'direct', kind: 'target' },
    ...CONTROL_RELAYS.map(({ key }) => ({ key, base: 'direct', kind: 'floor' })),
    { key: 'natOnly', kind: 'reference' },
    { key: 'helper', base: 'natOnly', kind: 'info' },
  ];
  for (const { key, base, kind } of spec) {
    const r = p.rows[key];
    if (!r) continue;
    if (!r.available) {
      rows.push({ section: sec, metric: r.label, value: `n/a (${r.reason ?? ''})`, target: '', ratio: '', verdict: 'n/a' });
      continue;
    }
    const b = base ? p.rows[base] : undefined;
    const mirrorRatio = b?.mirrorS && r.mirrorS !== undefined ? r.mirrorS / b.mirrorS : NaN;
    const added = b?.retr && r.retr ? r.retr.median - b.retr.median : NaN;
    const judge = (ok: boolean, miss: string) => (kind !== 'target' ? kind : ok ? 'met' : `MISSED by ${miss}`);
    rows.push({
      section: sec,
      metric: `${r.label}: mirror`,
      value: r.mirrorS !== undefined ? `${f2(r.mirrorS)} s` : 'FAILED',
      target: kind === 'target' ? `≤ ${MIRROR_RATIO}× direct` : '—',
      ratio: Number.isFinite(mirrorRatio) ? `${f2(mirrorRatio)}×` : '',
      verdict: judge(mirrorRatio <= MIRROR_RATIO, `${f2(mirrorRatio - MIRROR_RATIO)}×`),
      data: { seconds: r.mirrorS, runs: r.mirrorRuns, ratio: mirrorRatio },
    });
    rows.push({
      section: sec,
      metric: `${r.label}: one RETR (${r.mode})`,
      value: r.retr ? `median ${f3(r.retr.median)} ms, p90 ${f3(r.retr.p90)} ms${Number.isFinite(added) ? `; +${f3(added)} ms` : ''}` : 'FAILED',
      target: kind === 'target' ? `≤ +${ADDED_PER_TRANSFER_MS} ms (median)` : '—',
      ratio: b?.retr && r.retr ? `${f2(r.retr.median / b.retr.median)}×` : '',
      verdict: judge(added <= ADDED_PER_TRANSFER_MS, `${f3(added - ADDED_PER_TRANSFER_MS)} ms`),
      data: { ...r.retr, addedMs: added },
    });
    if (r.gatewayCpuMsPerRetr !== undefined) {
      rows.push({ section: sec, metric: `${r.label}: ${kind === 'floor' ? 'relay' : 'gateway'} CPU per RETR`, value: `${f3(r.gatewayCpuMsPerRetr)} ms`, target: '—', ratio: '', verdict: 'info' });
    }
  }
  return rows;
}

export function printTable(rows: readonly TableRow[], log: (text?: string) => void): void {
  const cols = ['metric', 'value', 'target', 'ratio', 'verdict'] as const;
  type Col = (typeof cols)[number];
  const heads: Record<Col, string> = { metric: 'figure', value: 'measured', target: 'target', ratio: 'vs direct', verdict: 'verdict' };
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(heads[c].length, ...rows.map((r) => r[c].length))])) as Record<Col, number>;
  // The verdict column is last: no padding needed, and it may be long.
  const fmt = (r: Record<Col, string>) => cols.map((c, k) => (k === cols.length - 1 ? r[c] : r[c].padEnd(width[c]))).join('  ');
  let section: string | undefined;
  for (const r of rows) {
    if (r.section !== section) {
      section = r.section;
      log('');
      log(section);
      log(`  ${fmt(heads)}`);
    }
    log(`  ${fmt(r)}`);
  }
}
