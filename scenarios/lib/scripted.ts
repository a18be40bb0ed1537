/**
 * Scripted scenarios: the ones a JSON case list cannot say (a balancer in
 * front of several instances, an instance killed between two checks). A
 * numbered `scenarios/N-name.ts` exports `scenario`; the runner discovers it
 * next to the JSON files, filters its cases by "name/variant case" like any
 * other, gives it a Lab of its own and reports its cases in the same lines,
 * table and report.
 */
import type { Lab } from './lab.js';
import type { CaseResult } from './report.js';
import type { ServerKind } from './spec.js';

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
