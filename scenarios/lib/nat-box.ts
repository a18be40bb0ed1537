/**
 * The fixed three-namespace NAT box that the namespace tests and the bench
 * build in a Lab (the scenarios describe their own topologies in JSON):
 *
 *   client ns "c"              gateway ns "g"                  server ns "s"
 *   100.64.1.2/24  ── veth ── 100.64.1.1/24 │ 198.18.0.1/24 ── veth ── 198.18.0.2/24
 *   fd00:1::2/64   eth0  lan  fd00:1::1/64  │  wan       eth0  (no route back
 *   default via gateway       forward + masquerade on wan      to 100.64/10)
 *
 * Its ruleset is the scenarios' realistic NAT box (topology.ts
 * gatewayRuleset), so all three speak of the same box.
 */
import type { Lab } from './lab.js';
import type { GatewaySpec } from './spec.js';
import { gatewayRuleset, kernelHelperRuleset } from './topology.js';

export const NAT_BOX_ADDR = {
  client: '100.64.1.2',
  gatewayLan: '100.64.1.1',
  gatewayWan: '198.18.0.1',
  server: '198.18.0.2',
  client6: 'fd00:1::2',
  gatewayLan6: 'fd00:1::1',
} as const;

/** Short namespace names (Lab.ns gives the real ones) and the interfaces: the gateway's lan and wan, the client's and the server's eth0. */
export const NAT_BOX = { ns: { client: 'c', gateway: 'g', server: 's' }, lanIf: 'lan', wanIf: 'wan', clientIf: 'eth0', serverIf: 'eth0' } as const;

export interface NatBoxRules {
  /** The kernel FTP helper on lan tcp/21. */
  kernelHelper?: boolean;
  /** lan tcp/21 redirected to a local port (forward --transparent). */
  redirectTo?: number;
  /** wan → lan forwarded for connections a DNAT rule sent there (ftp-alg's kernel data path makes such DNATs). */
  dnatInbound?: boolean;
}

export function natBoxGateway(rules: NatBoxRules = {}): GatewaySpec {
  const { lanIf: lan, wanIf: wan } = NAT_BOX;
  return {
    // The box routes (buildNatBox turns ip_forward on), but its ruleset leaves out the scenarios'
    // "no route" reject: a test turns the box into a bridge, where that reject would answer every frame.
    forwarding: false,
    nat: [...(rules.redirectTo !== undefined ? [{ redirect: { iif: lan, dport: 21, to: rules.redirectTo } }] : []), { masquerade: { oif: wan } }],
    forward: [{ iif: lan, oif: wan }, ...(rules.dnatInbound ? [{ iif: wan, oif: lan, dnat: true }] : [])],
    kernelHelper: rules.kernelHelper ? { iif: lan } : undefined,
    ftpAlg: [],
  };
}

/** Replaces the gateway's whole ruleset (tables ftp-alg made there included). */
export async function setNatBoxRules(lab: Lab, rules: NatBoxRules = {}): Promise<void> {
  await lab.nft(NAT_BOX.ns.gateway, `flush ruleset\n${gatewayRuleset(natBoxGateway(rules))}`);
}

/** Adds the kernel FTP helper to a running box, leaving the rest of its ruleset alone. */
export async function addKernelHelper(lab: Lab): Promise<void> {
  await lab.nft(NAT_BOX.ns.gateway, kernelHelperRuleset({ iif: NAT_BOX.lanIf }));
}

export async function buildNatBox(lab: Lab, rules: NatBoxRules = {}): Promise<void> {
  const { ns, lanIf, wanIf, clientIf, serverIf } = NAT_BOX;
  const a = NAT_BOX_ADDR;
  for (const n of [ns.client, ns.gateway, ns.server]) await lab.addNamespace(n);
  await lab.must(ns.gateway, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  await lab.veth({ ns: ns.client, if: clientIf }, { ns: ns.gateway, if: lanIf });
  await lab.veth({ ns: ns.gateway, if: wanIf }, { ns: ns.server, if: serverIf });
  // nodad: an IPv6 address is usable at once (no duplicate detection wait).
  await lab.ipBatch(ns.client, [`addr add ${a.client}/24 dev ${clientIf}`, `addr add ${a.client6}/64 dev ${clientIf} nodad`, `link set ${clientIf} up`]);
  await lab.ipBatch(ns.gateway, [
    `addr add ${a.gatewayLan}/24 dev ${lanIf}`,
    `addr add ${a.gatewayLan6}/64 dev ${lanIf} nodad`,
    `addr add ${a.gatewayWan}/24 dev ${wanIf}`,
    `link set ${lanIf} up`,
    `link set ${wanIf} up`,
  ]);
  // The server gets only its connected /24: no route back to 100.64/10.
  await lab.ipBatch(ns.server, [`addr add ${a.server}/24 dev ${serverIf}`, `link set ${serverIf} up`]);
  await lab.ipBatch(ns.client, [`route add default via ${a.gatewayLan}`, `route add ::/0 via ${a.gatewayLan6}`]);
  await lab.nft(ns.gateway, gatewayRuleset(natBoxGateway(rules)));
  // "The outside never routes back to the inside" (LAB.md): checked, not assumed.
  const r = await lab.exec(ns.server, 'ip', ['route', 'get', a.client]);
  if (r.code === 0) throw new Error(`NAT box: the server namespace has a route to ${a.client}: ${r.stdout.trim()}`);
}
