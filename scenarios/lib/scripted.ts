/**
 * Scripted scenarios: the ones a JSON case list cannot say (a balancer in
 * front of several instances, an instance killed between two checks). A
 * numbered `scenarios/N-name.ts` exports `scenario`; the runner discovers it
 * next to the JSON files, filters its cases by "name/variant case" like any
 * other, gives it a Lab of its own and reports its cases in the same lines,
 * table and report.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from './lab.js';
import type { CaseResult } from './report.js';
import type { ServerKind } from './spec.js';
import { sha256File, type GeneratedFile } from './files.js';
import { readLog } from './servers.js';

export interface ScriptedContext {
  lab: Lab;
  /** The variant's folder for logs and configuration. */
  dir: string;
  /** dist/cli.js */
  cli: string;
  repo: string;
  /** Whether a case of this scenario is selected by the run's filters. */
  selected: (caseName: string) => boolean;
}

export interface ScriptedOutcome {
  case: string;
  ok: boolean;
  /** What the outcome rests on (counts, checksums, events found), or what went wrong. */
  detail: string;
  durationMs: number;
  bytes: number;
  logs: { path: string; from: number }[];
}

export interface ScriptedScenario {
  name: string;
  variant: string;
  description: string;
  /** The backend servers it runs, for the report's server column. */
  server: ServerKind;
  /** Every case name, in the order run; all expected to pass. */
  cases: string[];
  /** Commands it needs (absolute paths or names on PATH). */
  tools: string[];
  /** Runs the selected cases; a case not reached is reported by the runner as an error. */
  run(ctx: ScriptedContext): Promise<ScriptedOutcome[]>;
}

/** A scripted case's outcome as the runner's result line. */
export function scriptedResult(s: ScriptedScenario, o: ScriptedOutcome): CaseResult {
  return {
    scenario: s.name,
    variant: s.variant,
    alg: 'ftp-alg',
    case: o.case,
    server: s.server,
    row: o.case,
    expected: 'pass',
    got: o.ok ? 'pass' : 'fail',
    detail: o.detail,
    ok: o.ok,
    durationMs: o.durationMs,
    bytes: o.bytes,
    logs: o.logs,
  };
}

// ---- helpers for scripted cases ---------------------------------------------------

export type CaseBody = () => Promise<Omit<ScriptedOutcome, 'case' | 'durationMs'>>;

/** Runs one case, timing it; an exception is that case's failure, not the scenario's. */
export async function timedCase(name: string, body: CaseBody): Promise<ScriptedOutcome> {
  const started = Date.now();
  try {
    const outcome = await body();
    return { case: name, durationMs: Date.now() - started, ...outcome };
  } catch (err) {
    return { case: name, ok: false, detail: `runner error: ${(err as Error).message}`, durationMs: Date.now() - started, bytes: 0, logs: [] };
  }
}

export type NamedFile = GeneratedFile & { name: string };
export type CurlMode = 'epsv' | 'pasv' | 'eprt' | 'port';

export interface CurlRun {
  from: string;
  mode: CurlMode;
  ok: boolean;
  /** How it ended, for the detail of a failing case. */
  exit: string;
  log: string;
}

/** pasv honours the 227 address (curl's default ignores it); eprt/port listen on the client's address. */
const CURL_MODE: Record<CurlMode, (from: string) => string[]> = {
  epsv: () => [],
  pasv: () => ['--disable-epsv', '--no-ftp-skip-pasv-ip'],
  eprt: (from) => ['-P', from],
  port: (from) => ['-P', from, '--disable-eprt'],
};

/** One curl download from `from` in namespace `ns`; checked against the file's sha256, then deleted. */
export async function curlGet(lab: Lab, ns: string, dir: string, host: string, file: NamedFile, from: string, mode: CurlMode, tag: string, extra: string[] = []): Promise<CurlRun> {
  const out = join(dir, `${tag}.bin`);
  const log = join(dir, `${tag}.log`);
  const exit = await lab.runClient(ns, 'curl', ['-sS', '--max-time', '60', '--interface', from, ...CURL_MODE[mode](from), ...extra, '-o', out, `ftp://${host}/${file.name}`], log, {
    timeoutMs: 70_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LC_ALL: 'C' },
  });
  const sha = await sha256File(out);
  rmSync(out, { force: true });
  const ok = exit.code === 0 && sha === file.sha256;
  return { from, mode, ok, exit: exit.timedOut ? 'timed out' : `exit ${exit.code ?? exit.signal}${sha === file.sha256 ? '' : ', sha256 differs'}`, log };
}

/** The fields of ftp-alg's JSON events the scripted cases look at. */
export interface LoggedEvent {
  event: string;
  /** Milliseconds since the epoch (pino). */
  time?: number;
  session?: string;
  client?: string;
  from?: string;
  code?: string;
  message?: string;
  kind?: string;
  after?: string;
  reason?: string;
}

export function gatewayEvents(logPath: string): LoggedEvent[] {
  return readLog(logPath)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LoggedEvent);
}

/** "198.18.6.10:40000" → "198.18.6.10" */
export const hostOf = (endpoint: string | undefined): string => (endpoint ?? '').replace(/:\d+$/, '');
