/**
 * Split-horizon announce (`--announce CIDR=IP`), in namespaces:
 *
 *   out 198.18.7.2 ── wan 198.18.7.1 edge 100.64.9.1 ── 100.64.9.2 gw
 *                     (the public address: DNAT of port 21 and the passive
 *                      range to the gateway, no hairpin)
 *   gw br0 100.64.8.1 ── srv 100.64.8.2 (vsftpd)
 *                     └─ in  100.64.8.3 (a client in the server's own network)
 *
 * One ftp-alg reverse listener on 0.0.0.0:21 with `--public-address
 * 198.18.7.1 --announce 100.64.8.0/24=100.64.8.1`: the Internet client is
 * told the public address, the inside client (which dials the gateway's
 * inside address, as split-horizon DNS would tell it) the inside one. Told
 * the public address, the inside client cannot connect (the control case):
 * the gateway host does not route, and the edge forwards the address only
 * from the outside (no hairpin NAT).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateFile } from './lib/files.js';
import { startServer } from './lib/servers.js';
import { curlGet, gatewayEvents, hostOf, timedCase, type CurlMode, type NamedFile, type ScriptedContext, type ScriptedOutcome, type ScriptedScenario } from './lib/scripted.js';
import type { ScenarioSpec } from './lib/spec.js';
import { buildVariant } from './lib/topology.js';

const PUBLIC = '198.18.7.1';
const INSIDE = '100.64.8.1';
const OUT_CLIENT = '198.18.7.2';
const IN_CLIENT = '100.64.8.3';
const SERVER = '100.64.8.2';
const GW = '100.64.9.2';
const RANGE = '50000-50099';

const CASE = 'vsftpd curl:epsv+pasv+eprt+port get, an outside and an inside client at once x8';
const CONTROL = 'without --announce the inside client is told the public address and cannot connect';

function topology(): ScenarioSpec {
  return {
    file: '8-split-horizon.ts',
    name: 'split-horizon',
    description: 'one listener, two horizons',
    namespaces: {
      out: {},
      edge: {},
      gw: { routes: ['default via 100.64.9.1'] },
      srv: { routes: [`default via ${INSIDE}`] },
      in: { routes: [`default via ${INSIDE}`] },
    },
    links: [
      { a: { ns: 'out', if: 'eth0', addr: [`${OUT_CLIENT}/24`] }, b: { ns: 'edge', if: 'wan', addr: [`${PUBLIC}/24`] } },
      { a: { ns: 'edge', if: 'lan', addr: ['100.64.9.1/24'] }, b: { ns: 'gw', if: 'ext', addr: [`${GW}/24`] } },
      // Bridged in gw after building: srv, in and the gateway share one segment.
      { a: { ns: 'gw', if: 'l1', addr: [] }, b: { ns: 'srv', if: 'eth0', addr: [`${SERVER}/24`] } },
      { a: { ns: 'gw', if: 'l2', addr: [] }, b: { ns: 'in', if: 'eth0', addr: [`${IN_CLIENT}/24`] } },
    ],
    noRoute: { out: ['100.64.8.2', GW] },
    gateways: {
      edge: {
        forwarding: true,
        // The passive range's DNAT is added below (the spec's dnat takes one port).
        nat: [{ dnat: { iif: 'wan', dport: 21, to: GW } }, { masquerade: { oif: 'wan' } }],
        forward: [
          { iif: 'wan', oif: 'lan', dnat: true },
          { iif: 'lan', oif: 'wan' },
        ],
        ftpAlg: [],
      },
      gw: {
        forwarding: false,
        nat: [],
        forward: [],
        ftpAlg: [
          {
            args: ['reverse', '--listen', '0.0.0.0:21', '--server', `${SERVER}:21`, '--public-address', PUBLIC, '--announce', `100.64.8.0/24=${INSIDE}`, '--passive-ports', RANGE, '--max-data-listeners-per-client', '16'],
          },
          // The control case: the same without --announce, on another port.
          { args: ['reverse', '--listen', '0.0.0.0:2121', '--server', `${SERVER}:21`, '--public-address', PUBLIC, '--passive-ports', '50100-50199'] },
        ],
      },
    },
    variants: [{ name: 'announce', alg: 'ftp-alg', description: '', gateways: {} }],
    server: { ns: 'srv', address: SERVER, port: 21 },
    client: { ns: 'out' },
    files: {},
    reasons: {},
    cases: [],
  };
}

async function run(ctx: ScriptedContext): Promise<ScriptedOutcome[]> {
  const { lab, dir } = ctx;
  const built = await buildVariant(lab, topology(), topology().variants[0]!, dir, ctx.cli);
  // The inside segment: a bridge in gw over the links to srv and in (the listener is on 0.0.0.0).
  await lab.must(undefined, 'ip', ['-n', lab.ns('gw'), '-batch', '-'], ['link add name br0 type bridge', 'link set dev l1 master br0', 'link set dev l2 master br0', `addr add ${INSIDE}/24 dev br0`, 'link set dev br0 up'].join('\n') + '\n');
  await lab.nft('edge', `table ip split_horizon_range {\n\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tiifname "wan" tcp dport ${RANGE} dnat to ${GW}\n\t}\n}\n`);
  const file: NamedFile = { ...generateFile(join(dir, 'f.bin'), 1 << 20), name: 'f.bin' };
  const server = await startServer(lab, 'vsftpd', { ns: 'srv', address: SERVER, port: 21 }, join(dir, 'vsftpd'), { 'f.bin': file.path }, ctx.repo);
  try {
    const outcomes: ScriptedOutcome[] = [];
    if (ctx.selected(CASE)) outcomes.push(await timedCase(CASE, () => bothHorizons(ctx, built.gateways[0]!.logPath, file)));
    if (ctx.selected(CONTROL)) outcomes.push(await timedCase(CONTROL, () => withoutAnnounce(ctx, built.gateways[1]!.logPath, file)));
    return outcomes;
  } finally {
    rmSync(file.path, { force: true });
    rmSync(server.root, { recursive: true, force: true });
  }
}

async function bothHorizons(ctx: ScriptedContext, gatewayLog: string, file: NamedFile): Promise<Omit<ScriptedOutcome, 'case' | 'durationMs'>> {
  const modes: CurlMode[] = ['epsv', 'pasv', 'eprt', 'port'];
  // Each client dials the address its horizon knows the gateway by.
  const runs = await Promise.all(
    Array.from({ length: 16 }, (_, i) => {
      const inside = i % 2 === 1;
      return curlGet(ctx.lab, inside ? 'in' : 'out', ctx.dir, inside ? INSIDE : PUBLIC, file, inside ? IN_CLIENT : OUT_CLIENT, modes[(i >> 1) % 4]!, `get-${i}`);
    }),
  );
  const bad = runs.filter((r) => !r.ok);
  // What each horizon was told in 227: the PASV rewrites name the announced address.
  const events = gatewayEvents(gatewayLog);
  const announced = (client: string) => {
    const sessions = new Set(events.filter((e) => e.event === 'session-open' && hostOf(e.client) === client).map((e) => e.session));
    return new Set(
      events.filter((e) => e.event === 'rewrite' && e.kind === '227' && sessions.has(e.session)).map((e) => /\((\d+,\d+,\d+,\d+),/.exec(e.after ?? '')?.[1]?.replaceAll(',', '.')),
    );
  };
  const toOut = [...announced(OUT_CLIENT)];
  const toIn = [...announced(IN_CLIENT)];
  const problems = [
    ...(bad.length ? [`${bad.length}/16 failed, first ${bad[0]!.mode} from ${bad[0]!.from}: ${bad[0]!.exit}`] : []),
    ...(toOut.join() !== PUBLIC ? [`227 to the outside client named ${toOut.join(', ') || 'nothing'}, expected ${PUBLIC}`] : []),
    ...(toIn.join() !== INSIDE ? [`227 to the inside client named ${toIn.join(', ') || 'nothing'}, expected ${INSIDE}`] : []),
  ];
  return {
    ok: problems.length === 0,
    detail: problems.length ? problems.join('; ') : `16/16 sha256 equal; 227 told ${OUT_CLIENT} ${PUBLIC} and ${IN_CLIENT} ${INSIDE}`,
    bytes: file.size * 16,
    logs: [...bad.slice(0, 3).map((r) => ({ path: r.log, from: 0 })), { path: gatewayLog, from: 0 }],
  };
}

async function withoutAnnounce(ctx: ScriptedContext, gatewayLog: string, file: NamedFile): Promise<Omit<ScriptedOutcome, 'case' | 'durationMs'>> {
  const r = await curlGet(ctx.lab, 'in', ctx.dir, `${INSIDE}:2121`, file, IN_CLIENT, 'pasv', 'no-announce', ['--connect-timeout', '2']);
  const told = gatewayEvents(gatewayLog)
    .filter((e) => e.event === 'rewrite' && e.kind === '227')
    .map((e) => /\((\d+,\d+,\d+,\d+),/.exec(e.after ?? '')?.[1]?.replaceAll(',', '.'));
  const ok = !r.ok && told.length === 1 && told[0] === PUBLIC;
  return {
    ok,
    detail: ok ? `told ${PUBLIC}, unreachable from inside (no hairpin): curl ${r.exit}` : `curl ${r.exit}, 227 named ${told.join(', ') || 'nothing'}`,
    bytes: 0,
    logs: [{ path: r.log, from: 0 }, { path: gatewayLog, from: 0 }],
  };
}

export const scenario: ScriptedScenario = {
  name: 'split-horizon',
  variant: 'announce',
  description: 'ftp-alg reverse --announce: a client outside and one inside the server network through one listener',
  server: 'vsftpd',
  cases: [CASE, CONTROL],
  tools: ['/usr/sbin/vsftpd', 'curl'],
  run,
};

