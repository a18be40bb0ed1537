/**
 * Scale-out behind HAProxy (README "Scale-out behind HAProxy"), in namespaces:
 *
 *   client 198.18.6.2 + 198.18.6.10-29, .40, .41 (one interface)
 *     │ wan 198.18.6.1 (the public address)
 *   lb: HAProxy, TCP mode, send-proxy-v2 on the control frontend and on each
 *       instance's passive range; a router for everything else (masquerade out of wan)
 *     ├─ a1 100.64.61.1 ── alg1 100.64.61.2  ftp-alg reverse, passive 50000-50099
 *     ├─ a2 100.64.62.1 ── alg2 100.64.62.2  ftp-alg reverse, passive 51000-51099
 *     ├─ a3 100.64.63.1 ── alg3 100.64.63.2  ftp-alg reverse, passive 52000-52099
 *     ├─ s1 100.64.71.1 ── srv1 100.64.71.2  vsftpd
 *     └─ s2 100.64.72.1 ── srv2 100.64.72.2  vsftpd
 *
 * Each instance trusts only its balancer address, balances over both
 * vsftpd, caps sessions per client. Cases, in order: 100 concurrent
 * sessions from 20 addresses (passive and active, byte-exact, known by their
 * real addresses); the per-client cap on a real address; one instance
 * SIGKILLed mid-transfer (its transfers fail, the others' finish intact, new
 * sessions go to the survivors).
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab, Proc } from './lib/lab.js';
import { pollUntil } from './lib/lab.js';
import { generateFile } from './lib/files.js';
import { readLog, startServer } from './lib/servers.js';
import { curlGet, gatewayEvents, hostOf, timedCase, type CurlMode, type CurlRun, type LoggedEvent, type NamedFile, type ScriptedContext, type ScriptedOutcome, type ScriptedScenario } from './lib/scripted.js';
import type { ScenarioSpec } from './lib/spec.js';
import { buildVariant, type GatewayProcess } from './lib/topology.js';
import { HAPROXY, haproxyTcpDefaults } from './lib/haproxy.js';

const PUBLIC = '198.18.6.1';
const CLIENTS = Array.from({ length: 20 }, (_, i) => `198.18.6.${10 + i}`);
const CAPPED = '198.18.6.40';
const UNCAPPED = '198.18.6.41';
const CAP = 5;
const INSTANCES = [1, 2, 3].map((i) => ({ ns: `alg${i}`, address: `100.64.6${i}.2`, balancer: `100.64.6${i}.1`, lo: 49000 + 1000 * i }));
const SERVERS = [1, 2].map((i) => ({ ns: `srv${i}`, address: `100.64.7${i}.2` }));

const CASES = {
  load: 'vsftpd x2 ftplib:epsv+pasv+pasv-strict+port get x100 at once from 20 addresses',
  cap: `per-client cap ${CAP} on the real client address`,
  kill: 'instance SIGKILLed mid-transfer',
} as const;

function topology(): ScenarioSpec {
  const algArgs = (i: (typeof INSTANCES)[number]) => [
    'reverse',
    '--listen',
    `${i.address}:21`,
    '--server',
    SERVERS.map((s) => `${s.address}:21`).join(','),
    '--balance',
    'least-connections',
    '--public-address',
    PUBLIC,
    '--passive-ports',
    `${i.lo}-${i.lo + 99}`,
    '--proxy-protocol-from',
    `${i.balancer}/32`,
    '--max-sessions-per-client',
    String(CAP),
    // One listener per session at most: the session cap is the one that counts here.
    '--max-data-listeners-per-client',
    String(CAP),
  ];
  const inside = [...INSTANCES.map((_, k) => `a${k + 1}`), ...SERVERS.map((_, k) => `s${k + 1}`)];
  return {
    file: '7-haproxy-scale-out.ts',
    name: 'scale-out',
    description: 'HAProxy in front of three ftp-alg instances',
    namespaces: {
      client: {},
      lb: {},
      ...Object.fromEntries(INSTANCES.map((i) => [i.ns, { routes: [`default via ${i.balancer}`] }])),
      ...Object.fromEntries(SERVERS.map((s) => [s.ns, { routes: [`default via ${s.address.replace(/\.2$/, '.1')}`] }])),
    },
    links: [
      { a: { ns: 'client', if: 'eth0', addr: ['198.18.6.2/24', ...[...CLIENTS, CAPPED, UNCAPPED].map((a) => `${a}/24`)] }, b: { ns: 'lb', if: 'wan', addr: [`${PUBLIC}/24`] } },
      ...INSTANCES.map((i, k) => ({ a: { ns: 'lb', if: `a${k + 1}`, addr: [`${i.balancer}/24`] }, b: { ns: i.ns, if: 'eth0', addr: [`${i.address}/24`] } })),
      ...SERVERS.map((s, k) => ({ a: { ns: 'lb', if: `s${k + 1}`, addr: [`${s.address.replace(/\.2$/, '.1')}/24`] }, b: { ns: s.ns, if: 'eth0', addr: [`${s.address}/24`] } })),
    ],
    // The client reaches the instances only through HAProxy.
    noRoute: { client: INSTANCES.map((i) => i.address) },
    gateways: {
      lb: {
        forwarding: true,
        // Active mode: an instance dials the client itself, leaving by the public address.
        nat: [{ masquerade: { oif: 'wan' } }],
        forward: [...inside.flatMap((a) => inside.filter((b) => b !== a).map((b) => ({ iif: a, oif: b }))), ...INSTANCES.map((_, k) => ({ iif: `a${k + 1}`, oif: 'wan' }))],
        ftpAlg: [],
      },
      ...Object.fromEntries(INSTANCES.map((i) => [i.ns, { forwarding: false, nat: [], forward: [], ftpAlg: [{ args: algArgs(i) }] }])),
    },
    variants: [{ name: 'haproxy', alg: 'ftp-alg', description: '', gateways: {} }],
    server: { ns: SERVERS[0]!.ns, address: SERVERS[0]!.address, port: 21 },
    client: { ns: 'client' },
    files: {},
    reasons: {},
    cases: [],
  };
}

/** README's configuration: control spread by source address, each passive range to its own instance, send-proxy-v2 on all. */
function haproxyConfig(): string {
  return [
    ...haproxyTcpDefaults(4000),
    'frontend ftp_control',
    `  bind ${PUBLIC}:21`,
    '  default_backend ftp_alg',
    'backend ftp_alg',
    // Sticky by client: one address's sessions meet one instance's cap.
    '  balance source',
    '  hash-type consistent',
    '  option tcp-check',
    '  tcp-check expect string 220',
    ...INSTANCES.map((i) => `  server ${i.ns} ${i.address}:21 send-proxy-v2 check check-send-proxy inter 500 fall 2 rise 1`),
    ...INSTANCES.flatMap((i) => [
      `frontend pasv_${i.ns}`,
      `  bind ${PUBLIC}:${i.lo}-${i.lo + 99}`,
      `  default_backend pasv_${i.ns}`,
      `backend pasv_${i.ns}`,
      // No port: the one the client connected to.
      `  server ${i.ns} ${i.address} send-proxy-v2`,
    ]),
    '',
  ].join('\n');
}

interface Env {
  lab: Lab;
  dir: string;
  gateways: GatewayProcess[];
  haproxyLog: string;
}

const download = (env: Env, file: NamedFile, from: string, mode: CurlMode, tag: string, extra: string[] = []): Promise<CurlRun> =>
  curlGet(env.lab, 'client', env.dir, PUBLIC, file, from, mode, tag, extra);

const events = (g: GatewayProcess): LoggedEvent[] => gatewayEvents(g.logPath);

/** Which instance each real client's sessions were logged by. */
function instanceOf(env: Env, address: string): number {
  return env.gateways.findIndex((g) => events(g).some((e) => e.event === 'session-open' && hostOf(e.client) === address));
}

/** The most client sessions open at once over all instances (from their session-open/close times). */
function peakSessions(env: Env): number {
  const edges = env.gateways.flatMap((g) => {
    const all = events(g);
    const real = new Set(all.filter((e) => e.event === 'session-open' && CLIENTS.includes(hostOf(e.client))).map((e) => e.session));
    return all.filter((e) => real.has(e.session) && (e.event === 'session-open' || e.event === 'session-close')).map((e) => [e.time ?? 0, e.event === 'session-open' ? 1 : -1] as const);
  });
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let peak = 0;
  for (const [, d] of edges) peak = Math.max(peak, (open += d));
  return peak;
}

/**
 * 100 ftplib sessions in one process, one thread each: all log in, wait at a
 * barrier until every one is logged in (100 sessions open at once by
 * construction, not by timing), then download in their mode and print
 * "index mode sha256" or "index mode ERR why".
 */
const CONCURRENT = `
import ftplib, hashlib, socket, sys, threading
host, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
addrs = sys.argv[4].split(',')
modes = ['epsv', 'pasv-strict', 'pasv', 'port']
barrier = threading.Barrier(n, timeout=60)
out = [None] * n
def one(i):
    mode = modes[i % len(modes)]
    try:
        ftp = ftplib.FTP(timeout=60, source_address=(addrs[i % len(addrs)], 0))
        ftp.connect(host, 21)
        ftp.login()
        barrier.wait()
        if mode == 'epsv':
            ftp.af = socket.AF_INET6  # ftplib sends EPSV only on IPv6; PASV and PORT stay IPv4
        ftp.set_pasv(mode != 'port')
        ftp.trust_server_pasv_ipv4_address = mode == 'pasv-strict'
        h = hashlib.sha256()
        ftp.retrbinary('RETR ' + path, h.update)
        ftp.quit()
        out[i] = '%d %s %s' % (i, mode, h.hexdigest())
    except Exception as e:
        barrier.abort()
        out[i] = '%d %s ERR %r' % (i, mode, e)
threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print('\\n'.join(out), flush=True)
`;

async function loadCase(env: Env, file: NamedFile): Promise<Omit<ScriptedOutcome, 'case' | 'durationMs'>> {
  const log = join(env.dir, 'load.log');
  await env.lab.runClient('client', '/usr/bin/python3', ['-c', CONCURRENT, PUBLIC, file.name, '100', CLIENTS.join(',')], log, { timeoutMs: 120_000 });
  const lines = readLog(log).trim().split('\n');
  const bad = lines.filter((l) => !l.endsWith(` ${file.sha256}`));
  const perInstance = env.gateways.map((g) => events(g).filter((e) => e.event === 'session-open' && CLIENTS.includes(hostOf(e.client))).length);
  const balancers = new Set(INSTANCES.map((i) => i.balancer));
  // Every passive data connection is known by its real client, never by the balancer.
  const dataFromBalancer = env.gateways.flatMap((g) => events(g).filter((e) => e.event === 'data-open' && balancers.has(hostOf(e.from))));
  const refused = env.gateways.flatMap((g) => events(g).filter((e) => e.event === 'refuse'));
  const problems = [
    ...(lines.length !== 100 || bad.length ? [`${100 - lines.length + bad.length}/100 failed, first: ${bad[0] ?? 'no output'}`] : []),
    ...(perInstance.some((n) => n === 0) ? [`sessions per instance ${perInstance.join('/')}: one got none`] : []),
    ...(dataFromBalancer.length ? [`${dataFromBalancer.length} data connections logged from the balancer`] : []),
    ...(refused.length ? [`${refused.length} refusals, first ${refused[0]!.code}: ${refused[0]!.message}`] : []),
  ];
  return {
    ok: problems.length === 0,
    detail: problems.length
      ? problems.join('; ')
      : `100/100 sha256 equal after all 100 logged in at once (${peakSessions(env)} open together by the logs); sessions per instance ${perInstance.join('/')}; every data peer a real client`,
    bytes: file.size * 100,
    logs: [{ path: log, from: 0 }, ...env.gateways.map((g) => ({ path: g.logPath, from: 0 })), { path: env.haproxyLog, from: 0 }],
  };
}

/** Opens `count` control connections from `from` at once and prints each greeting's code; holds them until all have answered. */
const GREETER = `
import socket, sys
src, dst, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
socks = []
for i in range(count):
    s = socket.socket()
    s.settimeout(10)
    s.bind((src, 0))
    s.connect((dst, 21))
    socks.append(s)
    try:
        print(s.recv(200).decode('latin1')[:3], flush=True)
    except Exception as e:
        print('ERR', e, flush=True)
`;

async function capCase(env: Env): Promise<Omit<ScriptedOutcome, 'case' | 'durationMs'>> {
  const greet = async (from: string, count: number, tag: string) => {
    const log = join(env.dir, `${tag}.log`);
    await env.lab.runClient('client', '/usr/bin/python3', ['-c', GREETER, from, PUBLIC, String(count)], log, { timeoutMs: 30_000 });
    return readLog(log).trim().split('\n');
  };
  const capped = await greet(CAPPED, CAP + 1, 'cap-capped');
  const other = await greet(UNCAPPED, 1, 'cap-other');
  const refusals = env.gateways.flatMap((g) => events(g).filter((e) => e.event === 'refuse' && e.code === 'TOO_MANY_SESSIONS'));
  const expected = [...Array<string>(CAP).fill('220'), '421'];
  const problems = [
    ...(capped.join(',') !== expected.join(',') ? [`from ${CAPPED}: ${capped.join(',')}, expected ${expected.join(',')}`] : []),
    ...(other.join(',') !== '220' ? [`from ${UNCAPPED}: ${other.join(',')}, expected 220`] : []),
    ...(refusals.length !== 1 || refusals[0]!.message !== `over the limit of ${CAP} sessions from ${CAPPED}` ? [`TOO_MANY_SESSIONS events: ${JSON.stringify(refusals.map((r) => r.message))}`] : []),
  ];
  return {
    ok: problems.length === 0,
    detail: problems.length ? problems.join('; ') : `${CAP}x220 then 421 from ${CAPPED} (TOO_MANY_SESSIONS names it, not the balancer); ${UNCAPPED} still 220`,
    bytes: 0,
    logs: [{ path: join(env.dir, 'cap-capped.log'), from: 0 }, ...env.gateways.map((g) => ({ path: g.logPath, from: 0 }))],
  };
}

async function killCase(env: Env, slow: NamedFile, file: NamedFile): Promise<Omit<ScriptedOutcome, 'case' | 'durationMs'>> {
  // One client address per instance, as HAProxy's source hash placed them in the load case.
  const byInstance = INSTANCES.map((_, k) => CLIENTS.find((a) => instanceOf(env, a) === k));
  if (byInstance.some((a) => a === undefined)) return { ok: false, detail: `no client address seen on every instance: ${byInstance.join(', ')}`, bytes: 0, logs: [] };
  const victim = 0;
  const opensBefore = env.gateways.map((g) => events(g).filter((e) => e.event === 'data-open').length);
  // Two slow transfers per instance (6 MiB/s, 8 s), passive and active. The file is
  // much larger than what the sockets and HAProxy along the way can hold,
  // so each instance is still relaying when one is killed.
  const transfers = byInstance.flatMap((from, k) =>
    (['epsv', 'port'] as const).map((mode) => download(env, slow, from!, mode, `kill-${k}-${mode}`, ['--limit-rate', '6M']).then((r) => ({ ...r, k }))),
  );
  // Kill only once every transfer is moving.
  const moving = await pollUntil(() => env.gateways.every((g, k) => events(g).filter((e) => e.event === 'data-open').length >= opensBefore[k]! + 2), 20_000, 100);
  const victimPid = env.gateways[victim]!.proc.pid;
  process.kill(victimPid, 'SIGKILL');
  const results = await Promise.all(transfers);
  const problems: string[] = [];
  if (!moving) problems.push('the transfers did not all start within 20 s');
  for (const r of results) {
    if (r.k === victim && r.ok) problems.push(`${r.mode} from ${r.from} on the killed instance completed`);
    if (r.k !== victim && !r.ok) problems.push(`${r.mode} from ${r.from} on ${INSTANCES[r.k]!.ns} was disturbed: ${r.exit}`);
  }
  // New sessions from the client whose instance died: HAProxy sends them to the survivors.
  const orphan = byInstance[victim]!;
  const sessionsBefore = env.gateways.map((g) => events(g).filter((e) => e.event === 'session-open' && hostOf(e.client) === orphan).length);
  const after = await Promise.all((['epsv', 'pasv', 'eprt', 'port'] as const).map((mode, i) => download(env, file, orphan, mode, `after-${i}`)));
  for (const r of after.filter((x) => !x.ok)) problems.push(`new ${r.mode} session from ${orphan} failed: ${r.exit}`);
  const sessionsAfter = env.gateways.map((g) => events(g).filter((e) => e.event === 'session-open' && hostOf(e.client) === orphan).length);
  const onSurvivors = sessionsAfter.reduce((n, c, k) => n + (k === victim ? 0 : c - sessionsBefore[k]!), 0);
  if (onSurvivors < after.length) problems.push(`only ${onSurvivors}/${after.length} new sessions logged by the survivors`);
  return {
    ok: problems.length === 0,
    detail: problems.length
      ? problems.join('; ')
      : `${INSTANCES[victim]!.ns} (pid ${victimPid}) killed with 6 transfers running: its 2 failed, the other 4 sha256 equal; ${after.length} new sessions from ${orphan} served by the survivors`,
    bytes: slow.size * 4 + file.size * after.length,
    logs: [...results.filter((r) => r.k !== victim && !r.ok).map((r) => ({ path: r.log, from: 0 })), ...env.gateways.map((g) => ({ path: g.logPath, from: 0 })), { path: env.haproxyLog, from: 0 }],
  };
}

async function run(ctx: ScriptedContext): Promise<ScriptedOutcome[]> {
  const { lab, dir } = ctx;
  const spec = topology();
  const built = await buildVariant(lab, spec, spec.variants[0]!, dir, ctx.cli);
  const file = { ...generateFile(join(dir, 'f.bin'), 1 << 20), name: 'f.bin' };
  const slow = { ...generateFile(join(dir, 'slow.bin'), 48 << 20), name: 'slow.bin' };
  const roots: string[] = [];
  for (const s of SERVERS) roots.push((await startServer(lab, 'vsftpd', { ns: s.ns, address: s.address, port: 21 }, join(dir, s.ns), { 'f.bin': file.path, 'slow.bin': slow.path }, ctx.repo)).root);
  try {
    return await runCases(ctx, built.gateways, file, slow);
  } finally {
    for (const p of [file.path, slow.path, ...roots]) rmSync(p, { recursive: true, force: true });
  }
}

async function runCases(ctx: ScriptedContext, gateways: GatewayProcess[], file: NamedFile, slow: NamedFile): Promise<ScriptedOutcome[]> {
  const { lab, dir } = ctx;
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig());
  const haproxyLog = join(dir, 'haproxy.log');
  const haproxy: Proc = lab.spawn('lb', HAPROXY, ['-f', cfg, '-db'], haproxyLog);
  await lab.waitListening('lb', 21, 'haproxy', haproxy);
  const env: Env = { lab, dir, gateways, haproxyLog };
  // Ready once every instance has passed a health check: a session from its balancer (v2 LOCAL) that a vsftpd greeted.
  const checked = await pollUntil(
    () => env.gateways.every((g, k) => events(g).some((e) => e.event === 'session-open' && hostOf(e.client) === INSTANCES[k]!.balancer)),
    20_000,
    100,
  );
  if (!checked) throw new Error(`HAProxy's health checks did not reach every instance within 20 s; see ${haproxyLog}`);
  const outcomes: ScriptedOutcome[] = [];
  // The kill case places its clients by the load case's sessions: it needs the load case.
  if (ctx.selected(CASES.load) || ctx.selected(CASES.kill)) outcomes.push(await timedCase(CASES.load, () => loadCase(env, file)));
  if (ctx.selected(CASES.cap)) outcomes.push(await timedCase(CASES.cap, () => capCase(env)));
  if (ctx.selected(CASES.kill)) outcomes.push(await timedCase(CASES.kill, () => killCase(env, slow, file)));
  return outcomes;
}

export const scenario: ScriptedScenario = {
  name: 'scale-out',
  variant: 'haproxy',
  description: 'HAProxy (send-proxy-v2 on control and passive ranges) in front of three ftp-alg reverse instances and two vsftpd',
  server: 'vsftpd',
  cases: Object.values(CASES),
  tools: [HAPROXY, '/usr/sbin/vsftpd', 'curl', '/usr/bin/python3'],
  run,
};
