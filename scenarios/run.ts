/**
 * `npm run scenarios [-- FILTER...]`: every scenario file in this folder,
 * every variant (no ALG, kernel FTP helper, ftp-alg), every case; real
 * namespaces, servers and clients. Prints one line per case, a comparison
 * table, the log tails of failing cases, and ends with "N passed, N failed".
 * Writes .scenario-runs/report.json. Exit 0 only if every case had its
 * expected outcome and teardown left nothing behind. Root only (exit 2).
 *
 * A FILTER keeps the cases whose "scenario/variant case" contains it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { clientCommand, CLIENT_BINARIES } from './lib/clients.js';
import { generateFile, sha256File, type GeneratedFile } from './lib/files.js';
import { installCleanupHooks, Lab, listOurNamespaces, pollUntil, removeStaleNamespaces, type ClientExit } from './lib/lab.js';
import { comparisonTable, parity as parityOf, writeReport, type CaseResult, type VariantTiming } from './lib/report.js';
import { readLog, startServer, SYSTEM_PYTHON, type RunningServer } from './lib/servers.js';
import { makeTlsFiles, usesTls, withTlsDir } from './lib/ftps-lab.js';
import { addressOf, isIpv6, loadScenario, ScenarioError, type CaseSpec, type ScenarioSpec, type ServerKind, type VariantSpec } from './lib/spec.js';
import { buildVariant, type BuiltVariant } from './lib/topology.js';
import { scriptedResult, type ScriptedOutcome, type ScriptedScenario } from './lib/scripted.js';

// Compiled to .scenario-runs/build/run.js: the repository is two levels up.
const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SCENARIOS = join(REPO, 'scenarios');
const RUNS = join(REPO, '.scenario-runs');
const OUT = join(RUNS, 'latest');
const CLI = join(REPO, 'dist/cli.js');
/** Whole run, however it goes (the issue asks for ~8 minutes on 2 cores). */
const WATCHDOG_MS = 20 * 60_000;

const counts = { passed: 0, failed: 0 };
const say = (line: string) => process.stdout.write(`${line}\n`);
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const slug = (s: string) => s.replace(/[^a-z0-9.-]+/gi, '_');

function finish(code: number): never {
  say(`${counts.passed} passed, ${counts.failed} failed`);
  process.exit(code);
}

// ---- preconditions ------------------------------------------------------------------

function ensureRoot(): void {
  if (process.getuid?.() !== 0) {
    say('scenarios: needs root (network namespaces, nftables, servers on port 21): run `sudo npm run scenarios`');
    process.exit(2);
  }
}

function missingTools(specs: ScenarioSpec[]): string[] {
  const need = new Set(['ip', 'nft', 'ss', 'sysctl']);
  for (const s of specs) {
    for (const c of s.cases) {
      need.add(CLIENT_BINARIES[c.client]);
      if (c.client === 'ncftp') need.add('ncftpput');
      if (c.server.startsWith('vsftpd')) need.add('/usr/sbin/vsftpd');
      if (usesTls(s)) need.add('openssl');
      if (c.server === 'pyftpdlib') need.add('pyftpdlib');
    }
  }
  return [...need].filter((t) => !hasTool(t));
}

function hasTool(t: string): boolean {
  return (
      t === 'pyftpdlib'
        ? spawnSync(SYSTEM_PYTHON, ['-c', 'import pyftpdlib'], { stdio: 'ignore', timeout: 10_000 }).status === 0
        : t.startsWith('/')
          ? existsSync(t)
          : spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore', timeout: 10_000 }).status === 0
  );
}

// ---- scripted scenarios (scenarios/N-name.ts, see lib/scripted.ts) -------------------

/** Every numbered scenarios/*.ts, compiled next to this runner. */
async function loadScripted(): Promise<ScriptedScenario[]> {
  const built = fileURLToPath(new URL('.', import.meta.url));
  const files = readdirSync(SCENARIOS)
    .filter((f) => /^\d+-[a-z0-9-]+\.ts$/.test(f))
    .sort();
  const out: ScriptedScenario[] = [];
  for (const f of files) out.push(((await import(pathToFileURL(join(built, f.replace(/\.ts$/, '.js'))).href)) as { scenario: ScriptedScenario }).scenario);
  return out;
}

/** Runs one scripted scenario's selected cases in a Lab of its own; returns its timing and teardown problems. */
async function runScripted(s: ScriptedScenario, chosen: string[], onResult: (r: CaseResult) => void): Promise<{ timing: VariantTiming; teardown: string[] }> {
  const started = Date.now();
  const dir = join(OUT, s.name, s.variant);
  mkdirSync(dir, { recursive: true });
  const lab = new Lab();
  say(`== ${s.name}/${s.variant}: ${s.description} (${chosen.length} cases, namespaces ${lab.prefix}-*)`);
  let outcomes: ScriptedOutcome[] = [];
  let error: string | undefined;
  try {
    outcomes = await s.run({ lab, dir, cli: CLI, repo: REPO, selected: (c) => chosen.includes(c) });
  } catch (err) {
    error = `setup failed: ${(err as Error).message}`;
  }
  for (const name of chosen) {
    const o = outcomes.find((x) => x.case === name) ?? { case: name, ok: false, detail: error ?? 'not run', durationMs: 0, bytes: 0, logs: [] };
    const r = { ...scriptedResult(s, o), ...(outcomes.includes(o) ? {} : { got: 'error' }) };
    onResult(r);
    printResult(r, r.ok ? [] : r.logs.map((l) => ({ name: l.path.slice(OUT.length + 1), text: readLog(l.path, l.from).slice(-20_000) })));
  }
  const teardown = (await lab.destroy()).map((e) => `${s.name}/${s.variant}: ${e}`);
  const timing: VariantTiming = { scenario: s.name, variant: s.variant, alg: 'ftp-alg', setupMs: 0, totalMs: Date.now() - started, cases: chosen.length, ...(error ? { error } : {}) };
  return { timing, teardown };
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** dist/ is what runs in the namespaces: rebuilt when missing or older than src/. */
function ensureBuilt(): void {
  if (existsSync(CLI) && statSync(CLI).mtimeMs >= newestMtime(join(REPO, 'src'))) return;
  say('scenarios: dist/ is missing or older than src/: npm run build');
  const r = spawnSync('npm', ['run', 'build'], { cwd: REPO, stdio: 'inherit', timeout: 180_000 });
  if (r.status !== 0) {
    say('scenarios: npm run build failed');
    counts.failed = 1;
    finish(1);
  }
}

// ---- one case ---------------------------------------------------------------------------

interface Env {
  lab: Lab;
  spec: ScenarioSpec;
  variant: VariantSpec;
  built: BuiltVariant;
  server: RunningServer;
  files: Record<string, GeneratedFile>;
  dir: string;
}

interface Attempt {
  exit: ClientExit;
  meaningful: boolean;
  sha?: string | undefined;
  log: string;
}

function describeExit(e: ClientExit): string {
  if (e.timedOut) return `killed after ${secs(e.durationMs)} (runner timeout)`;
  return e.signal ? `signal ${e.signal}` : `exit ${e.code}`;
}

async function runCase(env: Env, c: CaseSpec): Promise<CaseResult> {
  const { spec, variant } = env;
  const expectation = c.expect[variant.name]!;
  const { expected } = caseIdentity(spec, variant, c);
  const caseDir = join(env.dir, 'cases', slug(c.name));
  mkdirSync(caseDir, { recursive: true });
  const file = env.files[c.file]!;
  const family = isIpv6(c.target.host) ? 6 : 4;
  const clientAddress = addressOf(spec, spec.client.ns, family);
  if (!clientAddress) throw new ScenarioError(`${spec.file}: client namespace ${spec.client.ns} has no IPv${family} address for ${c.name}`);

  const serverLogs = env.server.logPaths.map((p) => ({ p, from: existsSync(p) ? statSync(p).size : 0 }));
  const gatewayLogs = env.built.gateways.map((g) => ({ p: g.logPath, from: existsSync(g.logPath) ? statSync(g.logPath).size : 0 }));
  const started = Date.now();

  const attempts = await Promise.all(
    Array.from({ length: c.parallel }, async (_, i): Promise<Attempt> => {
      const remote = c.transfer === 'get' ? c.file : `up-${slug(variant.name)}-${slug(c.name)}-${i}.bin`;
      const local = c.transfer === 'get' ? join(caseDir, `download-${i}.bin`) : file.path;
      const cmd = clientCommand({ client: c.client, mode: c.mode, transfer: c.transfer, target: c.target, remote, local, clientAddress, timeoutS: Math.floor(c.timeoutMs / 1000) });
      const log = join(caseDir, `client-${i}.log`);
      // HOME: ncftp and lftp keep state there; never the runner's own.
      const exit = await env.lab.runClient(spec.client.ns, cmd.cmd, cmd.args, log, {
        timeoutMs: c.timeoutMs + 5_000,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: caseDir, LC_ALL: 'C' },
        cwd: caseDir,
        ...(cmd.input !== undefined ? { input: cmd.input } : {}),
      });
      const produced = c.transfer === 'get' ? local : join(env.server.root, remote);
      const exitOk = exit.code === 0 || !cmd.exitCodeMeaningful;
      let sha = await sha256File(produced);
      if (c.transfer === 'put' && exitOk && sha !== file.sha256) {
        // The server may still be closing the file when the client has its 226.
        await pollUntil(async () => (sha = await sha256File(produced)) === file.sha256, 3_000, 100);
      }
      if (produced !== file.path) rmSync(produced, { force: true });
      return { exit, meaningful: cmd.exitCodeMeaningful, sha, log };
    }),
  );
  const durationMs = Date.now() - started;
  // Transfer time: the slowest client process, without the checksum work after it.
  const clientMs = Math.max(...attempts.map((a) => a.exit.durationMs));
  const good = attempts.filter((a) => (a.exit.code === 0 || !a.meaningful) && !a.exit.timedOut && a.sha === file.sha256);
  const outcome = good.length === attempts.length ? 'pass' : 'fail';
  const bad = attempts.find((a) => !good.includes(a));
  let detail =
    outcome === 'pass'
      ? `${c.parallel > 1 ? `${c.parallel}/${c.parallel} ` : ''}sha256 equal; clients ${c.parallel > 1 ? `${secs(Math.min(...attempts.map((a) => a.exit.durationMs)))}-` : ''}${secs(clientMs)}`
      : `${c.parallel > 1 ? `${good.length}/${c.parallel} ok; ` : ''}${describeExit(bad!.exit)}, ${bad!.sha === undefined ? 'no file' : bad!.sha === file.sha256 ? 'sha256 equal' : 'sha256 differs'}`;
  let got: string = outcome;

  if (outcome === 'fail' && expectation.outcome === 'fail') {
    const reason = spec.reasons[expectation.reason]!;
    const texts = () =>
      [
        reason.in.includes('client') ? attempts.map((a) => readLog(a.log)).join('\n') : '',
        reason.in.includes('server') ? serverLogs.map((l) => readLog(l.p, l.from)).join('\n') : '',
        reason.in.includes('gateway') ? gatewayLogs.map((l) => readLog(l.p, l.from)).join('\n') : '',
      ].join('\n');
    const regexes = reason.match.map((m) => new RegExp(m, 'm'));
    // Logs are written by other processes: give them a moment, bounded.
    const found = await pollUntil(() => {
      const t = texts();
      return regexes.every((re) => re.test(t));
    }, 2_000, 50);
    if (found) {
      got = `fail:${expectation.reason}`;
      detail += `; reason: ${reason.why}`;
    } else {
      const t = texts();
      detail += `; reason "${expectation.reason}" not found: ${regexes.filter((re) => !re.test(t)).join(', ')} did not match`;
    }
  }
  const mbps = file.size >= 64 << 20 ? (file.size * c.parallel) / 1e6 / (clientMs / 1000) : undefined;
  return {
    ...caseIdentity(spec, variant, c),
    got,
    detail,
    ok: got === expected,
    durationMs,
    bytes: file.size * c.parallel,
    ...(mbps !== undefined ? { mbps: Math.round(mbps) } : {}),
    // For a failure, the failed clients' logs (at most three) are the ones worth reading.
    logs: [...(outcome === 'pass' ? attempts : attempts.filter((a) => !good.includes(a)).slice(0, 3)).map((a) => ({ path: a.log, from: 0 })), ...serverLogs.map((l) => ({ path: l.p, from: l.from })), ...gatewayLogs.map((l) => ({ path: l.p, from: l.from }))],
  };
}

// ---- output --------------------------------------------------------------------------------

function tail(text: string, lines: number): string {
  const all = text.replace(/\s+$/, '').split('\n');
  return (all.length > lines ? [`… (${all.length - lines} earlier lines)`, ...all.slice(-lines)] : all).map((l) => `      ${l}`).join('\n');
}

function printResult(r: CaseResult, failedLogs: { name: string; text: string }[]): void {
  const status = r.ok ? 'PASS' : 'FAIL';
  const rate = r.mbps !== undefined ? `, ${r.mbps} MB/s` : '';
  say(`${status} ${r.scenario}/${r.variant} ${r.case}  expected ${r.expected}  got ${r.got}  (${secs(r.durationMs)}${rate}; ${r.detail})`);
  if (!r.ok) {
    for (const l of failedLogs) {
      say(`    --- ${l.name} (tail) ---`);
      say(tail(l.text || '(empty)', 30));
    }
  }
}

// ---- main -------------------------------------------------------------------------------------

async function main(): Promise<void> {
  ensureRoot();
  const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const capture = process.argv.includes('--capture');
  const unknown = process.argv.slice(2).filter((a) => a.startsWith('-') && a !== '--capture');
  if (unknown.length) {
    say(`scenarios: unknown option ${unknown.join(' ')} (usage: npm run scenarios -- [--capture] [FILTER...])`);
    counts.failed = 1;
    finish(2);
  }
  const startedAt = new Date();
  const results: CaseResult[] = [];
  const timings: VariantTiming[] = [];
  const teardown: string[] = [];

  let specs: ScenarioSpec[];
  try {
    specs = readdirSync(SCENARIOS)
      .filter((f) => f.endsWith('.json') && f !== 'tsconfig.json')
      .sort()
      .map((f) => loadScenario(join(SCENARIOS, f)));
  } catch (err) {
    if (!(err instanceof ScenarioError)) throw err;
    say(`scenarios: ${err.message}`);
    counts.failed = 1;
    finish(1);
  }
  const scripted = await loadScripted();
  const names = new Set<string>();
  for (const s of [...specs, ...scripted.map((x) => ({ ...x, file: `${x.name}.ts` }))]) {
    if (names.has(s.name)) {
      say(`scenarios: ${s.file}: name "${s.name}" is used by another scenario file`);
      counts.failed = 1;
      finish(1);
    }
    names.add(s.name);
  }
  const selected = (s: ScenarioSpec, v: VariantSpec, c: CaseSpec) => c.expect[v.name] !== undefined && (filters.length === 0 || filters.some((f) => `${s.name}/${v.name} ${c.name}`.includes(f)));
  const chosenScripted = (s: ScriptedScenario) => s.cases.filter((c) => filters.length === 0 || filters.some((f) => `${s.name}/${s.variant} ${c}`.includes(f)));
  const total =
    specs.reduce((n, s) => n + s.variants.reduce((m, v) => m + s.cases.filter((c) => selected(s, v, c)).length, 0), 0) +
    scripted.reduce((n, s) => n + chosenScripted(s).length, 0);
  if (total === 0) {
    say(`scenarios: no case matches ${filters.join(' ')}`);
    counts.failed = 1;
    finish(1);
  }

  const missing = [...new Set([...missingTools(specs), ...scripted.filter((s) => chosenScripted(s).length).flatMap((s) => s.tools.filter((t) => !hasTool(t)))])];
  if (missing.length) {
    say(`scenarios: missing ${missing.join(', ')}: run scripts/install-debian-packages.sh as root`);
    counts.failed = total;
    finish(1);
  }
  ensureBuilt();

  installCleanupHooks((sig) => {
    say(`scenarios: ${sig}: stopped; namespaces and processes removed`);
    counts.failed += total - counts.passed - counts.failed;
    say(`${counts.passed} passed, ${counts.failed} failed`);
  });
  const watchdog = setTimeout(() => {
    say(`scenarios: watchdog: the run took longer than ${WATCHDOG_MS / 60_000} min; stopping (namespaces and processes are removed on exit)`);
    counts.failed += total - counts.passed - counts.failed;
    finish(1);
  }, WATCHDOG_MS);
  watchdog.unref();

  const stale = await removeStaleNamespaces();
  if (stale.length) say(`scenarios: removed namespaces left by an earlier run that died: ${stale.join(' ')}`);

  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(join(OUT, 'files'), { recursive: true });
  // Every file once per run (a 256 MiB one included), hard-linked into each server root.
  const files: Record<string, GeneratedFile> = {};
  const sizes = new Map<string, number>();
  for (const s of specs) {
    for (const [name, size] of Object.entries(s.files)) {
      if (sizes.has(name) && sizes.get(name) !== size) {
        say(`scenarios: ${s.file}: files.${name} has another size in another scenario file`);
        counts.failed = total;
        finish(1);
      }
      sizes.set(name, size);
    }
  }
  for (const s of specs) {
    for (const c of s.cases) {
      if (files[c.file] || !s.variants.some((v) => selected(s, v, c))) continue;
      const t = Date.now();
      files[c.file] = generateFile(join(OUT, 'files', c.file), sizes.get(c.file)!);
      if (files[c.file]!.size >= 64 << 20) say(`scenarios: generated ${c.file} (${files[c.file]!.size >> 20} MiB) in ${secs(Date.now() - t)}`);
    }
  }
  say(`scenarios: ${total} cases in ${specs.length} scenario files; logs in ${OUT}`);

  for (const loaded of specs) {
    // FTPS: certificates once per scenario, their folder put into ftp-alg's arguments.
    const tlsDir = usesTls(loaded) && loaded.variants.some((v) => loaded.cases.some((c) => selected(loaded, v, c))) ? join(OUT, 'tls', loaded.name) : undefined;
    if (tlsDir) makeTlsFiles(tlsDir, loaded);
    const spec = tlsDir ? withTlsDir(loaded, tlsDir) : loaded;
    for (const variant of spec.variants) {
      const cases = spec.cases.filter((c) => selected(spec, variant, c));
      if (cases.length === 0) continue;
      const vStarted = Date.now();
      const dir = join(OUT, spec.name, variant.name);
      mkdirSync(dir, { recursive: true });
      const lab = new Lab();
      const timing: VariantTiming = { scenario: spec.name, variant: variant.name, alg: variant.alg, setupMs: 0, totalMs: 0, cases: cases.length };
      say(`== ${spec.name}/${variant.name}: ${variant.description || variant.alg} (${cases.length} cases, namespaces ${lab.prefix}-*)`);
      let built: BuiltVariant | undefined;
      let setupError: string | undefined;
      try {
        built = await buildVariant(lab, spec, variant, dir, CLI);
        if (capture) await startCaptures(lab, spec, dir);
      } catch (err) {
        setupError = `setup failed: ${(err as Error).message}`;
      }
      timing.setupMs = Date.now() - vStarted;

      // Servers in order of first use; one at a time, all on the scenario's server address and port.
      const kinds = [...new Set(cases.map((c) => c.server))] as ServerKind[];
      for (const kind of kinds) {
        let server: RunningServer | undefined;
        let serverError = setupError;
        if (!serverError && built) {
          const sdir = join(dir, kind);
          const serverFiles = Object.fromEntries(Object.entries(files).filter(([n]) => spec.files[n] !== undefined).map(([n, f]) => [n, f.path]));
          try {
            server = await startServer(lab, kind, { ns: spec.server.ns, address: spec.server.address, port: spec.server.port }, sdir, serverFiles, REPO, tlsDir);
          } catch (err) {
            serverError = `${kind} did not start: ${(err as Error).message}`;
          }
        }
        for (const c of cases.filter((x) => x.server === kind)) {
          let r: CaseResult;
          if (server && built) {
            try {
              r = await runCase({ lab, spec, variant, built, server, files, dir }, c);
            } catch (err) {
              r = errorResult(spec, variant, c, `runner error: ${(err as Error).stack ?? String(err)}`);
            }
          } else {
            r = errorResult(spec, variant, c, serverError ?? 'not started');
          }
          results.push(r);
          if (r.ok) counts.passed++;
          else counts.failed++;
          printResult(r, r.ok ? [] : r.logs.map((l) => ({ name: l.path.slice(OUT.length + 1), text: readLog(l.path, l.from).slice(-20_000) })));
        }
        if (server) {
          try {
            await lab.stopAllIn(spec.server.ns);
          } catch (err) {
            teardown.push(`${spec.name}/${variant.name}: stopping ${kind}: ${(err as Error).message}`);
          }
          // Hard links and uploads: the bulk of the run's disk use. Logs stay.
          rmSync(server.root, { recursive: true, force: true });
        }
      }
      for (const g of built?.gateways ?? []) {
        if (g.proc.hasExited()) teardown.push(`${spec.name}/${variant.name}: ${g.label} exited during the run (${await g.proc.exited}); see ${g.logPath}`);
      }
      const errors = await lab.destroy();
      teardown.push(...errors.map((e) => `${spec.name}/${variant.name}: ${e}`));
      timing.totalMs = Date.now() - vStarted;
      if (setupError) timing.error = setupError;
      timings.push(timing);
    }
  }
  for (const s of scripted) {
    const chosen = chosenScripted(s);
    if (chosen.length === 0) continue;
    const done = await runScripted(s, chosen, (r) => {
      results.push(r);
      if (r.ok) counts.passed++;
      else counts.failed++;
    });
    timings.push(done.timing);
    teardown.push(...done.teardown);
  }
  clearTimeout(watchdog);
  rmSync(join(OUT, 'files'), { recursive: true, force: true });

  // Nothing of ours may survive: namespaces by name, processes by PID (tracked ones were killed above).
  const leftover = listOurNamespaces();
  if (leftover.length) teardown.push(`namespaces left behind: ${leftover.join(' ')}`);

  const durationMs = Date.now() - startedAt.getTime();
  say('');
  say('== comparison: no ALG vs kernel FTP helper vs ftp-alg');
  for (const l of comparisonTable(results)) say(l);
  say('');
  const big = results.filter((r) => r.mbps !== undefined);
  if (big.length) {
    say('== large transfers');
    for (const r of big) say(`  ${r.scenario}/${r.variant} ${r.case}: ${secs(r.durationMs)}, ${r.mbps} MB/s (${r.got})`);
    say('');
  }
  say('== timings');
  for (const t of timings) say(`  ${t.scenario}/${t.variant}: ${t.cases} cases, ${secs(t.totalMs)} (setup ${secs(t.setupMs)})${t.error ? `  ${t.error}` : ''}`);
  say(`  total ${secs(durationMs)}`);
  const parity = parityOf(results);
  say('');
  say(parity.violations.length ? `== parity: ${parity.violations.length} case(s) the kernel helper passes and ftp-alg does not:` : `== parity: every case the kernel helper passes, ftp-alg passes too${parity.knownGaps.length ? ' (but for the known gaps below)' : ''}`);
  for (const p of parity.violations) say(`  ${p}`);
  if (parity.knownGaps.length) {
    say(`== known gaps: ${parity.knownGaps.length} case(s) the kernel helper passes and ftp-alg fails, declared in the scenario files with their reason:`);
    for (const p of parity.knownGaps) say(`  ${p}`);
  }
  if (teardown.length) {
    say('== teardown problems:');
    for (const t of teardown) say(`  ${t}`);
  }
  const unexpected = results.filter((r) => !r.ok);
  if (unexpected.length) {
    say(`== ${unexpected.length} case(s) with an unexpected outcome:`);
    for (const r of unexpected) say(`  ${r.scenario}/${r.variant} ${r.case}: expected ${r.expected}, got ${r.got} (${r.detail.split('\n')[0]})`);
  }
  const reportPath = join(RUNS, 'report.json');
  writeReport(reportPath, { startedAt: startedAt.toISOString(), durationMs, passed: counts.passed, failed: counts.failed, parity, teardown, timings, results });
  say(`report: ${reportPath}`);
  // A parity violation is already a failed case (its ftp-alg expectation); teardown problems fail the run.
  finish(counts.failed === 0 && teardown.length === 0 && parity.violations.length === 0 ? 0 : 1);
}

/**
 * --capture: tcpdump on every interface of every namespace, one pcap per
 * namespace in the variant's folder (for diagnosing a failing case).
 */
async function startCaptures(lab: Lab, spec: ScenarioSpec, dir: string): Promise<void> {
  for (const n of Object.keys(spec.namespaces)) {
    const log = join(dir, `tcpdump-${n}.log`);
    const proc = lab.spawn(n, 'tcpdump', ['-i', 'any', '-n', '-U', '-s', '256', '-w', join(dir, `${n}.pcap`)], log);
    // tcpdump says "listening on any" once its socket is open: poll its log, bounded.
    const ok = await pollUntil(() => proc.hasExited() || /listening on/.test(readLog(log)), 5_000);
    if (!ok || proc.hasExited()) throw new Error(`tcpdump in ${n} did not start: ${readLog(log).trim()}`);
  }
}

/** What names a case in the results, and the outcome it expects in this variant. */
function caseIdentity(spec: ScenarioSpec, variant: VariantSpec, c: CaseSpec) {
  const e = c.expect[variant.name]!;
  return {
    scenario: spec.name,
    variant: variant.name,
    alg: variant.alg,
    case: c.name,
    server: c.server,
    row: c.name.slice(c.server.length + 1),
    expected: e.outcome === 'pass' ? 'pass' : `fail:${e.reason}`,
  };
}

function errorResult(spec: ScenarioSpec, variant: VariantSpec, c: CaseSpec, detail: string): CaseResult {
  return {
    ...caseIdentity(spec, variant, c),
    got: 'error',
    detail,
    ok: false,
    durationMs: 0,
    bytes: 0,
    logs: [],
  };
}

main().catch((err: unknown) => {
  say(`scenarios: ${(err as Error).stack ?? String(err)}`);
  counts.failed = Math.max(counts.failed, 1);
  finish(1);
});
