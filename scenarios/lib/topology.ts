/**
 * Builds one scenario variant in a Lab: namespaces, veth links, addresses,
 * routes, sysctls, the gateways' nftables rulesets (NAT, forward filter,
 * kernel FTP helper) and their ftp-alg processes.
 */
import { join } from 'node:path';
import type { Lab, Proc } from './lab.js';
import { gatewayFor, isIpv6, type GatewaySpec, type ScenarioSpec, type VariantSpec } from './spec.js';

/**
 * A realistic NAT box (LAB.md): forward policy drop, replies and related
 * connections accepted, and only the declared directions opened. Linux ≥ 6
 * assigns no helper automatically, so the kernel FTP helper is an explicit
 * `ct helper` object plus a rule for new control connections.
 */
export function gatewayRuleset(g: GatewaySpec): string {
  const out: string[] = [];
  const pre: string[] = [];
  const post: string[] = [];
  for (const rule of g.nat) {
    if ('masquerade' in rule) post.push(`oifname "${rule.masquerade.oif}" masquerade`);
    else if ('dnat' in rule) pre.push(`iifname "${rule.dnat.iif}" tcp dport ${rule.dnat.dport} dnat to ${rule.dnat.to}`);
    // nft 1.0.6: a closing brace on the same line as `redirect to :PORT` is a parse error; one rule per line.
    else pre.push(`iifname "${rule.redirect.iif}" tcp dport ${rule.redirect.dport} redirect to :${rule.redirect.to}`);
  }
  if (pre.length || post.length) {
    out.push('table ip nat {');
    out.push('\tchain prerouting {', '\t\ttype nat hook prerouting priority dstnat; policy accept;', ...pre.map((l) => `\t\t${l}`), '\t}');
    out.push('\tchain postrouting {', '\t\ttype nat hook postrouting priority srcnat; policy accept;', ...post.map((l) => `\t\t${l}`), '\t}');
    out.push('}');
  }
  out.push('table inet filter {');
  if (g.forwarding) {
    // A router without a route answers "no route" at once. The kernel's own
    // answer (ip_error) is rate-limited host-wide to one per second per
    // sender, so a "no ALG" case dialling an unroutable 227 address would
    // become a slow, timing-dependent timeout instead of a clear failure.
    out.push('\tchain prerouting {', '\t\ttype filter hook prerouting priority filter; policy accept;', '\t\tfib daddr type != { local, broadcast, multicast } fib daddr oif missing reject with icmpx type no-route', '\t}');
  }
  out.push('\tchain forward {', '\t\ttype filter hook forward priority filter; policy drop;', '\t\tct state established,related accept');
  for (const f of g.forward) out.push(`\t\tiifname "${f.iif}" oifname "${f.oif}"${f.dnat ? ' ct status dnat' : ''} accept`);
  out.push('\t}', '}');
  return out.join('\n') + '\n' + (g.kernelHelper ? kernelHelperRuleset(g.kernelHelper) : '');
}

/** The kernel FTP helper (nf_conntrack_ftp + nf_nat_ftp) for new control connections to dport arriving on iif: a table of its own. */
export function kernelHelperRuleset(h: { iif: string; dport?: number | undefined }): string {
  const out = ['table ip ftphelper {'];
  out.push('\tct helper ftp-standard {', '\t\ttype "ftp" protocol tcp', '\t\tl3proto ip', '\t}');
  // Priority filter (0) runs after dstnat (-100): a DNATed control connection is seen with its final port.
  out.push('\tchain prerouting {', '\t\ttype filter hook prerouting priority filter; policy accept;');
  out.push(`\t\tiifname "${h.iif}" tcp dport ${h.dport ?? 21} ct state new ct helper set "ftp-standard"`);
  out.push('\t}', '}');
  return out.join('\n') + '\n';
}

export interface GatewayProcess {
  ns: string;
  label: string;
  logPath: string;
  proc: Proc;
}

export interface BuiltVariant {
  gateways: GatewayProcess[];
  /** Rulesets loaded per gateway namespace (for the report and failing-case output). */
  rulesets: Record<string, string>;
}

function listenPort(args: string[]): number {
  const v = args[args.indexOf('--listen') + 1] ?? '';
  const m = /:(\d+)$/.exec(v);
  if (!m) throw new Error(`ftp-alg --listen "${v}" has no :PORT`);
  return Number(m[1]);
}

export async function buildVariant(lab: Lab, spec: ScenarioSpec, variant: VariantSpec, dir: string, cli: string): Promise<BuiltVariant> {
  for (const n of Object.keys(spec.namespaces)) await lab.addNamespace(n);

  for (const l of spec.links) await lab.veth(l.a, l.b);
  const batches = new Map<string, string[]>();
  const add = (ns: string, line: string) => batches.set(ns, [...(batches.get(ns) ?? []), line]);
  for (const l of spec.links) {
    for (const e of [l.a, l.b]) {
      // nodad: an IPv6 address is usable at once (no duplicate detection wait, no sleep needed).
      for (const a of e.addr) add(e.ns, `addr add ${a} dev ${e.if}${isIpv6(a) ? ' nodad' : ''}`);
      add(e.ns, `link set ${e.if} up`);
    }
  }
  for (const [n, ns] of Object.entries(spec.namespaces)) for (const r of ns.routes ?? []) add(n, `route add ${r}`);
  for (const [n, lines] of batches) await lab.ipBatch(n, lines);

  const rulesets: Record<string, string> = {};
  for (const n of Object.keys(spec.gateways)) {
    const g = gatewayFor(spec, variant, n);
    const fwd = g.forwarding ? '1' : '0';
    // icmp_ratelimit 0 (this namespace only): the "no route" rejects above are never suppressed.
    await lab.must(n, 'sysctl', ['-qw', `net.ipv4.ip_forward=${fwd}`, `net.ipv6.conf.all.forwarding=${fwd}`, 'net.ipv4.icmp_ratelimit=0', 'net.ipv6.icmp.ratelimit=0']);
    rulesets[n] = gatewayRuleset(g);
    await lab.nft(n, rulesets[n]);
  }

  // "The outside never routes back to the inside": checked, not assumed, so a
  // no-ALG case cannot pass by accident.
  for (const [n, addrs] of Object.entries(spec.noRoute)) {
    for (const a of addrs) {
      const r = await lab.exec(n, 'ip', ['route', 'get', a]);
      if (r.code === 0) throw new Error(`topology: ${n} has a route to ${a} (noRoute says it must not): ${r.stdout.trim()}`);
    }
  }

  const gateways: GatewayProcess[] = [];
  for (const n of Object.keys(spec.gateways)) {
    const g = gatewayFor(spec, variant, n);
    for (const [i, inst] of g.ftpAlg.entries()) {
      const label = `ftp-alg ${inst.args[0]} on ${n}`;
      const logPath = join(dir, `gateway-${n}-${i}.log`);
      const proc = lab.spawn(n, process.execPath, [cli, ...inst.args, '--log-format', 'json', '--log-level', 'debug'], logPath);
      gateways.push({ ns: n, label, logPath, proc });
      await lab.waitListening(n, listenPort(inst.args), label, proc);
    }
  }
  return { gateways, rulesets };
}
