/**
 * The wider interop matrix (issue 18): vsftpd, ProFTPD, Pure-FTPd and
 * pyftpdlib × curl, lftp (mirror both ways, pget, get -c, an aborted cat),
 * tnftp, ncftp, wget -m and Python's ftplib (MLSD, APPE, REST+RETR, TYPE A,
 * abort()) × IPv4 and IPv6 clients, each cell run three ways:
 *
 *   direct    client → server (its plain instance)
 *   reverse   client → `ftp-alg reverse` → server announcing 100.64.0.2
 *   forward   client → `ftp-alg forward` (explicit, USER anonymous@server)
 *             → server announcing 100.64.0.2; an IPv6 client reaches the
 *             IPv4 server (RFC 6384 translation)
 *
 * Every cell that passes directly must pass through both gateways, unless
 * KNOWN_GAPS declares it with the reason, which must then be found in the
 * logs (as scenarios/*.json declare theirs); a declared gap that passes
 * fails too, so the declaration goes when the fix lands. PEER_QUIRKS are
 * cells that fail on every path for the server's or client's own reasons.
 *
 * Everything runs in one network namespace of its own (loopback only:
 * fixed ports, no clash with other tests). The gateways are the real
 * `ftp-alg run` binary (dist/, built by test/global-setup.ts), one process
 * with every listener. Needs root, the Debian packages and
 * scripts/install-ftp-peers.sh; skips with the reason otherwise.
 * At the end it prints the matrix (pass/fail per cell and path) and keeps
 * the logs when an outcome was not the expected one.
 *
 *   sudo scripts/install-debian-packages.sh        # also unpacks ProFTPD and Pure-FTPd
 *   sudo npx vitest run test/e2e/interop-matrix.test.ts [-t 'pure-ftpd IPv6']
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { chownSync, cpSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Lab, pollUntil } from '../../scenarios/lib/lab.js';
import { generateFile } from '../../scenarios/lib/files.js';
import { readLog } from '../../scenarios/lib/servers.js';
import { tempDir } from '../helpers/tools.js';
import { ftpUid, MASQUERADE, peersMissing, placeOf, SERVER_KINDS, startPeer, type RunningPeer, type ServerKind } from './interop-peers.js';
import { LARGE, OPS, SIZES, TEXT, TREE, type CellRun, type Family, type Op } from './interop-clients.js';

const REPO = resolve(import.meta.dirname, '../..');
const CLI = join(REPO, 'dist/cli.js');
const NS = 'matrix';
const PATHS = ['direct', 'reverse', 'forward'] as const;
type Path = (typeof PATHS)[number];
const PASSWORD = 'matrix@example.org';
/** Each client's own timeouts are shorter; the runner SIGKILLs after this plus 5 s. */
const CLIENT_TIMEOUT_S = 10;

interface Cell {
  server: ServerKind;
  family: Family;
  op: Op;
  name: string;
}

interface Declared {
  id: string;
  why: string;
  /** Which cells and paths it covers. */
  covers: (c: Cell, path: Path) => boolean;
  /** Every regular expression must match the run's client trace or the gateway's log. */
  match: RegExp[];
}

/**
 * The peers' own limits: cells that fail directly, on every path when no
 * gateway can help, else directly only (the gateway paths are then covered
 * by a gap below: once it is closed ftp-alg does better than the server alone).
 */
const PEER_QUIRKS: Declared[] = [
  {
    id: 'vsftpd-no-mlsd',
    why: 'vsftpd 3.0.3 has no MLST/MLSD (RFC 3659): ftplib\'s "OPTS MLST type;size;" gets "501 Option not understood."',
    covers: (c) => c.server === 'vsftpd' && c.op.name === 'ftplib mlsd',
    match: [/OPTS MLST type;size;/, /501 Option not understood/],
  },
  {
    id: 'pure-ftpd-anonymous-append',
    why: 'Pure-FTPd lets anonymous users create files, never change them: APPE gets "550 Anonymous users may not overwrite existing files"',
    covers: (c) => c.server === 'pure-ftpd' && c.op.name === 'ftplib appe',
    match: [/APPE incoming\//, /550 Anonymous users may not overwrite/],
  },
  {
    id: 'proftpd-urgent-lf',
    why: "ProFTPD loses the urgent byte of ftplib's abort() (the LF of ABOR, sent with MSG_OOB) and reads \"ABOR NOOP\" as one command; ftp-alg forwards ABOR in the client's form, urgent LF included, so ProFTPD does the same behind it",
    covers: (c) => c.server === 'proftpd' && c.op.name === 'ftplib abort',
    match: [/put urgent\* b'ABOR/, /500 'ABOR.NOOP' not understood/],
  },
  {
    id: 'lftp-eprt-unspecified-refused',
    why: 'lftp (data socket unbound) sends EPRT |2|::|port|; ProFTPD, Pure-FTPd and pyftpdlib refuse the unspecified address (vsftpd takes it)',
    covers: (c, path) => path === 'direct' && c.server !== 'vsftpd' && c.family === 6 && c.op.name === 'lftp active get',
    match: [/EPRT \|2\|::\|\d+\|/, /<--- 50[01] /],
  },
];

/**
 * Cells that fail through ftp-alg, with the reason found in the logs (issue
 * 18; fixes under way). Each also covers the same cell of the servers that
 * fail it directly (the quirks above): the fix is expected to make them pass
 * through ftp-alg. A declaration that starts passing fails its test: remove it.
 */
const KNOWN_GAPS: Declared[] = [
];

interface Outcome {
  ok: boolean;
  detail: string;
  log: string;
  gatewayFrom: number;
  durationMs: number;
}

const cells: Cell[] = SERVER_KINDS.flatMap((server) =>
  ([4, 6] as Family[]).flatMap((family) => OPS.filter((op) => op.families.includes(family)).map((op) => ({ server, family, op, name: `${server} IPv${family} ${op.name}` }))),
);
const slug = (s: string) => s.replace(/[^a-z0-9.-]+/gi, '_');

const missing = peersMissing();
const skipReason = missing ? ` [skipped: needs ${missing}: run scripts/install-debian-packages.sh as root]` : '';

let lab: Lab;
let run: ReturnType<typeof tempDir>;
let root: string;
let gatewayLog: string;
const peers = new Map<string, RunningPeer>();
const results = new Map<string, Outcome & { expected: string }>();
const directRuns = new Map<string, Promise<Outcome>>();
let suiteStarted = 0;

/** Gateway listeners: one reverse per server and family, one forward per family. */
const reversePort = (kind: ServerKind, family: Family) => 2500 + 10 * SERVER_KINDS.indexOf(kind) + family;
const FORWARD_PORT: Record<Family, number> = { 4: 2604, 6: 2606 };

function gatewayConfig(): string {
  const lines = ['drain: 1', 'listeners:'];
  let range = 28_000;
  const nextRange = () => `${range}-${(range += 200) - 1}`;
  for (const kind of SERVER_KINDS) {
    const masq = placeOf(kind, 'masq');
    const v6 = placeOf(kind, 'v6');
    lines.push('  - mode: reverse', `    listen: "127.0.0.1:${reversePort(kind, 4)}"`, `    server: "${masq.host}:${masq.port}"`, '    public-address: 127.0.0.1', `    passive-ports: ${nextRange()}`);
    lines.push('  - mode: reverse', `    listen: "[::1]:${reversePort(kind, 6)}"`, `    server: "[${v6.host}]:${v6.port}"`, '    public-address: 127.0.0.1', `    passive-ports: ${nextRange()}`);
  }
  for (const family of [4, 6] as Family[]) {
    const listen = family === 4 ? `127.0.0.1:${FORWARD_PORT[4]}` : `[::1]:${FORWARD_PORT[6]}`;
    lines.push('  - mode: forward', `    listen: "${listen}"`, '    allow-destinations: 127.0.0.0/8,::1/128', `    passive-ports: ${nextRange()}`);
  }
  return lines.join('\n') + '\n';
}

function targetOf(c: Cell, path: Path) {
  const loop = c.family === 4 ? '127.0.0.1' : '::1';
  switch (path) {
    case 'direct': {
      const p = placeOf(c.server, c.family === 4 ? 'plain' : 'v6');
      return { host: p.host, port: p.port, user: 'anonymous', password: PASSWORD };
    }
    case 'reverse':
      return { host: loop, port: reversePort(c.server, c.family), user: 'anonymous', password: PASSWORD };
    case 'forward':
      // Port 21: no colon in the user name (curl -u splits at the first one).
      return { host: loop, port: FORWARD_PORT[c.family], user: `anonymous@${placeOf(c.server, 'masq').host}`, password: PASSWORD };
  }
}

async function runPath(c: Cell, path: Path): Promise<Outcome> {
  const dir = join(run.path, 'cells', slug(c.name), path);
  mkdirSync(dir, { recursive: true });
  const uploadDir = `incoming/${slug(c.name)}-${path}`;
  mkdirSync(join(root, uploadDir), { mode: 0o755 });
  chownSync(join(root, uploadDir), ftpUid(), -1);
  const r: CellRun = {
    dir,
    target: targetOf(c, path),
    family: c.family,
    clientAddress: c.family === 4 ? '127.0.0.1' : '::1',
    uploadDir,
    root,
    pub: join(root, 'pub'),
    localTree: join(run.path, 'local-tree'),
    timeoutS: CLIENT_TIMEOUT_S,
  };
  const log = join(dir, 'client.log');
  const gatewayFrom = statSync(gatewayLog).size;
  const started = Date.now();
  c.op.prepare?.(r);
  let detail: string | undefined;
  for (const step of c.op.steps(r)) {
    writeFileSync(log, `\n$ ${step.cmd} ${step.args.join(' ')}\n`, { flag: 'a' });
    const exit = await lab.runClient(NS, step.cmd, step.args, log, {
      timeoutMs: (CLIENT_TIMEOUT_S + 5) * 1000,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LC_ALL: 'C' },
      cwd: dir,
      ...(step.input !== undefined ? { input: step.input } : {}),
    });
    if (exit.timedOut) detail = `${step.cmd} killed after ${exit.durationMs} ms`;
    else if (step.exitCodeMeaningful && exit.code !== 0) detail = `${step.cmd} exit ${exit.code ?? exit.signal}`;
    if (detail) break;
  }
  // The server may still be closing an uploaded file when the client has its 226.
  if (!detail) {
    let check: string | undefined = 'not checked';
    await pollUntil(async () => (check = await c.op.check(r)) === undefined, 2_000, 100);
    detail = check;
  }
  if (!detail && c.op.aborts && !/ABOR/.test(readLog(log))) detail = 'the trace shows no ABOR: the cell did not exercise an abort';
  return { ok: detail === undefined, detail: detail ?? 'byte-exact', log, gatewayFrom, durationMs: Date.now() - started };
}

function declaredFor(c: Cell, path: Path): Declared | undefined {
  return PEER_QUIRKS.find((d) => d.covers(c, path)) ?? (path === 'direct' ? undefined : KNOWN_GAPS.find((d) => d.covers(c, path)));
}

function tail(o: Outcome, lines = 25): string {
  const t = readLog(o.log).trimEnd().split('\n');
  return t.slice(-lines).join('\n');
}

/** The reason's expressions, each found in the client trace or in the gateway log written during the run. */
async function reasonFound(d: Declared, o: Outcome): Promise<RegExp[]> {
  let unmatched: RegExp[] = d.match;
  await pollUntil(() => {
    const texts = [readLog(o.log), readLog(gatewayLog, o.gatewayFrom)];
    unmatched = d.match.filter((re) => !texts.some((t) => re.test(t)));
    return unmatched.length === 0;
  }, 2_000, 100);
  return unmatched;
}

function direct(c: Cell): Promise<Outcome> {
  let p = directRuns.get(c.name);
  if (!p) directRuns.set(c.name, (p = runPath(c, 'direct')));
  return p;
}

// Without root or the peers: one skipped test that says why, not hundreds.
if (missing) test.skip(`interop matrix${skipReason}`, () => undefined);

if (!missing) describe(`interop matrix: 4 servers × ${OPS.length} client operations × IPv4/IPv6, direct vs ftp-alg reverse and forward`, () => {
  beforeAll(async () => {
    suiteStarted = Date.now();
    lab = new Lab();
    run = tempDir('ftp-alg-interop-');
    // Servers drop privileges (ftp, nobody): the run folder must be traversable.
    spawnSync('chmod', ['0755', run.path]);
    root = join(run.path, 'root');
    mkdirSync(join(root, 'pub/tree/sub'), { recursive: true, mode: 0o755 });
    mkdirSync(join(root, 'incoming'), { mode: 0o755 });
    chownSync(join(root, 'incoming'), ftpUid(), -1);
    for (const [name, size] of [...Object.entries(SIZES), [LARGE.name, LARGE.size] as const]) generateFile(join(root, 'pub', name), size);
    writeFileSync(join(root, 'pub/text.txt'), TEXT, { mode: 0o644 });
    for (const [path, from] of Object.entries(TREE)) cpSync(join(root, 'pub', from), join(root, 'pub/tree', path));
    cpSync(join(root, 'pub/tree'), join(run.path, 'local-tree'), { recursive: true });

    await lab.addNamespace(NS);
    // lftp resolves no IPv6 address, not even ::1, on a host without a global one ("IPv6 is not supported or configured").
    await lab.must(NS, 'ip', ['-6', 'addr', 'add', 'fd00:99::1/128', 'dev', 'lo', 'nodad']);
    for (const kind of SERVER_KINDS) {
      for (const instance of ['plain', 'masq', 'v6'] as const) peers.set(`${kind}/${instance}`, await startPeer(lab, NS, kind, instance, root, run.path));
    }
    const conf = join(run.path, 'gateways.yaml');
    writeFileSync(conf, gatewayConfig());
    gatewayLog = join(run.path, 'gateways.log');
    const gw = lab.spawn(NS, process.execPath, [CLI, 'run', '--config', conf, '--log-format', 'json', '--log-level', 'debug'], gatewayLog);
    await lab.waitListening(NS, FORWARD_PORT[6], 'ftp-alg run', gw);
  }, 120_000);

  afterAll(async () => {
    const lines = matrixTable();
    // Logs are kept when an outcome was not the expected one (declared failures are expected).
    const failedRuns = [...results.values()].some((r) => r.ok !== (r.expected === 'pass'));
    console.log(lines.join('\n'));
    if (run) writeFileSync(join(run.path, 'matrix.md'), lines.join('\n') + '\n');
    const errors = lab ? await lab.destroy() : [];
    if (run && !failedRuns) run.remove();
    else if (run) console.log(`interop matrix: logs kept in ${run.path}`);
    expect(errors).toEqual([]);
  }, 60_000);

  describe.concurrent('cells', () => {
    for (const c of cells) {
      for (const path of PATHS) {
        const d = declaredFor(c, path);
        const label = d ? `expected fail: ${d.id}` : 'expected pass';
        test(`${c.name} · ${path} (${label})`, async () => {
          const o = path === 'direct' ? await direct(c) : await runPath(c, path);
          results.set(`${c.name}|${path}`, { ...o, expected: d ? d.id : 'pass' });
          if (d) {
            expect(o.ok, `${d.id} is declared (${d.why}) but the cell passed: remove the declaration`).toBe(false);
            const unmatched = await reasonFound(d, o);
            expect(unmatched, `failed (${o.detail}) but not for the declared reason "${d.why}":\n${tail(o)}`).toEqual([]);
            return;
          }
          if (path === 'direct') {
            expect(o.ok, `direct: ${o.detail}\n${tail(o)}`).toBe(true);
            return;
          }
          const base = await direct(c);
          // A cell that fails directly is reported by its direct test; through the gateway nothing more to compare.
          if (base.ok) expect(o.ok, `passes directly, fails through ftp-alg ${path}: ${o.detail}\n${tail(o)}`).toBe(true);
        });
      }
    }
  });

  test('every masquerading server had its 227 address replaced by the gateways', () => {
    // The gateways' own evidence that the IPv4 cells exercised the rewrite of a foreign 227 address.
    const log = readLog(gatewayLog);
    for (const kind of SERVER_KINDS) {
      const server = placeOf(kind, 'masq').host;
      expect(log, `no FOREIGN_PASSIVE_ADDRESS for ${kind} at ${server}`).toContain(`server announced ${MASQUERADE}, which is neither its own address ${server}`);
    }
  });
});

/** One row per cell: the outcome per path, with the declaration where one applies. */
function matrixTable(): string[] {
  const mark = (c: Cell, p: Path) => {
    const r = results.get(`${c.name}|${p}`);
    if (!r) return 'not run';
    const what = r.ok ? 'pass' : 'FAIL';
    return r.expected === 'pass' ? what : `${what} (${r.expected})`;
  };
  const out = [`== interop matrix: ${results.size} runs in ${((Date.now() - suiteStarted) / 1000).toFixed(1)} s`, '| cell | direct | reverse | forward |', '|---|---|---|---|'];
  for (const c of cells) out.push(`| ${c.name} | ${PATHS.map((p) => mark(c, p)).join(' | ')} |`);
  const bad = cells.flatMap((c) => PATHS.filter((p) => p !== 'direct' && results.get(`${c.name}|direct`)?.ok && results.get(`${c.name}|${p}`)?.ok === false).map((p) => `${c.name} · ${p}`));
  out.push('', `passes directly but fails through ftp-alg: ${bad.length}`, ...bad.map((b) => `  ${b}: ${results.get(b.replace(' · ', '|'))?.detail}`));
  return out;
}
