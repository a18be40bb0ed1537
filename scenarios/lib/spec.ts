/**
 * The scenario file format (JSON, one topology per file) and its validation.
 * Every error names the file and the key it is about, so a typo in a
 * scenario stops the run before any namespace exists. README.md in this
 * folder describes the format for people.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { FTPS_MODES } from './ftps-modes.js';

/** ftp-alg-kernel: ftp-alg with --data-path kernel (nftables translates the data connections). */
export type Alg = 'none' | 'kernel' | 'ftp-alg' | 'ftp-alg-kernel';
export const ALGS: readonly Alg[] = ['none', 'kernel', 'ftp-alg', 'ftp-alg-kernel'];

/** vsftpd-tls: vsftpd with FTPS required on control and data, require_ssl_reuse=YES (lib/tls.ts). */
export type ServerKind = 'vsftpd' | 'pyftpdlib' | 'builtin' | 'vsftpd-tls';
export const SERVERS: readonly ServerKind[] = ['vsftpd', 'pyftpdlib', 'builtin', 'vsftpd-tls'];

export type ClientName = 'curl' | 'lftp' | 'tnftp' | 'ncftp' | 'ftplib';
/** Modes each client knows (README.md says what each one sends). */
export const CLIENT_MODES: Record<ClientName, readonly string[]> = {
  curl: ['pasv', 'epsv', 'port', 'eprt', ...FTPS_MODES.curl],
  lftp: ['default', 'active', ...FTPS_MODES.lftp],
  tnftp: ['passive', 'active'],
  ncftp: ['passive', 'active'],
  ftplib: ['passive', 'pasv-strict', 'active', ...FTPS_MODES.ftplib],
};

export type Transfer = 'get' | 'put';
export type LogName = 'client' | 'server' | 'gateway';

export interface LinkEnd {
  ns: string;
  if: string;
  addr: string[];
}
export interface LinkSpec {
  a: LinkEnd;
  b: LinkEnd;
}
export interface NamespaceSpec {
  /** `ip route add` arguments, e.g. "default via 100.64.1.1", "::/0 via fd00:1::1". */
  routes?: string[];
}

export type NatRule =
  | { masquerade: { oif: string } }
  | { dnat: { iif: string; dport: number; to: string } }
  | { redirect: { iif: string; dport: number; to: number } };

export interface ForwardRule {
  iif: string;
  oif: string;
  /** Only connections that were DNATed (the published port), not the whole WAN. */
  dnat?: boolean;
}

export interface FtpAlgInstance {
  /** Arguments after `node dist/cli.js`; the runner adds --log-format json --log-level debug. */
  args: string[];
}

export interface GatewaySpec {
  forwarding: boolean;
  nat: NatRule[];
  forward: ForwardRule[];
  /** nftables `ct helper` "ftp" for new connections to dport (default 21) arriving on iif. */
  kernelHelper?: { iif: string; dport?: number } | undefined;
  ftpAlg: FtpAlgInstance[];
}

export interface VariantSpec {
  name: string;
  alg: Alg;
  description: string;
  /** Per gateway, keys that replace the scenario's base gateway settings. */
  gateways: Record<string, Partial<GatewaySpec>>;
}

export interface ReasonSpec {
  why: string;
  /** Every regular expression must match somewhere in the logs named by `in`. */
  match: string[];
  in: LogName[];
}

export interface TargetSpec {
  host: string;
  port: number;
  user: string;
  password: string;
}

export type Expectation = { outcome: 'pass' } | { outcome: 'fail'; reason: string };

/** One expanded case: a server, a client in a mode, a transfer. */
export interface CaseSpec {
  name: string;
  server: ServerKind;
  client: ClientName;
  mode: string;
  transfer: Transfer;
  file: string;
  parallel: number;
  timeoutMs: number;
  target: TargetSpec;
  /** By variant name; a variant without an entry does not run the case. */
  expect: Record<string, Expectation>;
}

export interface ScenarioSpec {
  file: string;
  name: string;
  description: string;
  namespaces: Record<string, NamespaceSpec>;
  links: LinkSpec[];
  noRoute: Record<string, string[]>;
  gateways: Record<string, GatewaySpec>;
  variants: VariantSpec[];
  server: { ns: string; address: string; port: number };
  client: { ns: string };
  files: Record<string, number>;
  reasons: Record<string, ReasonSpec>;
  cases: CaseSpec[];
}

export class ScenarioError extends Error {}

// ---- address plan --------------------------------------------------------------

function ipv4(text: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const o = m.slice(1).map(Number);
  return o.every((n) => n <= 255) ? o : undefined;
}

/**
 * DESIGN.md "Network rules for tests": 100.64.0.0/10 inside, 198.18.0.0/15
 * outside, fd00::/8 for IPv6; nothing else, ever. Wildcards are allowed
 * where a listener binds.
 */
export function inAddressPlan(text: string, allowWildcard = false): boolean {
  if (allowWildcard && (text === '0.0.0.0' || text === '::')) return true;
  const o = ipv4(text);
  if (o) return (o[0] === 100 && o[1]! >= 64 && o[1]! <= 127) || (o[0] === 198 && (o[1] === 18 || o[1] === 19));
  return /^fd[0-9a-f]{2}:[0-9a-f:]*$/i.test(text);
}

export const isIpv6 = (text: string): boolean => text.includes(':');

// ---- validation helpers ------------------------------------------------------------

type Json = unknown;

class Reader {
  constructor(readonly file: string) {}

  fail(key: string, message: string): never {
    throw new ScenarioError(`${this.file}: ${key}: ${message}`);
  }

  obj(v: Json, key: string): Record<string, Json> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(key, 'must be an object');
    return v as Record<string, Json>;
  }

  only(o: Record<string, Json>, key: string, allowed: string[]): void {
    for (const k of Object.keys(o)) if (!allowed.includes(k)) this.fail(`${key}.${k}`, `unknown key (known: ${allowed.join(', ')})`);
  }

  str(v: Json, key: string): string {
    if (typeof v !== 'string' || v === '') this.fail(key, 'must be a non-empty string');
    return v;
  }

  optStr(v: Json, key: string, fallback: string): string {
    return v === undefined ? fallback : this.str(v, key);
  }

  int(v: Json, key: string, lo: number, hi: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) this.fail(key, `must be a whole number in ${lo}-${hi}`);
    return v;
  }

  bool(v: Json, key: string): boolean {
    if (typeof v !== 'boolean') this.fail(key, 'must be true or false');
    return v;
  }

  arr(v: Json, key: string): Json[] {
    if (!Array.isArray(v)) this.fail(key, 'must be an array');
    return v;
  }

  strs(v: Json, key: string): string[] {
    return this.arr(v, key).map((s, i) => this.str(s, `${key}[${i}]`));
  }

  /** A string or an array of strings, as a list. */
  oneOrMany(v: Json, key: string): string[] {
    return typeof v === 'string' ? [this.str(v, key)] : this.strs(v, key);
  }

  address(v: Json, key: string, allowWildcard = false): string {
    const s = this.str(v, key);
    if (!inAddressPlan(s, allowWildcard)) this.fail(key, `${s} is outside the address plan (100.64.0.0/10, 198.18.0.0/15, fd00::/8)`);
    return s;
  }

  cidr(v: Json, key: string): string {
    const s = this.str(v, key);
    const [addr, len, extra] = s.split('/');
    if (extra !== undefined || len === undefined || !/^\d+$/.test(len)) this.fail(key, `${s} is not ADDRESS/PREFIX`);
    this.address(addr, key);
    return s;
  }

  ifname(v: Json, key: string): string {
    const s = this.str(v, key);
    // Interface names are per namespace, but the kernel's limit is 15 bytes.
    if (!/^[a-z][a-z0-9]{0,14}$/.test(s)) this.fail(key, `"${s}" is not an interface name (a-z0-9, at most 15)`);
    return s;
  }
}

/** "1MiB", "256MiB", "4KiB", or a byte count. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+)\s*(B|KiB|MiB|GiB)?$/.exec(text.trim());
  if (!m) return undefined;
  const mult = { B: 1, KiB: 1 << 10, MiB: 1 << 20, GiB: 1 << 30 }[(m[2] ?? 'B') as 'B'];
  return Number(m[1]) * mult;
}

function parseExpectation(r: Reader, v: Json, key: string, reasons: Record<string, ReasonSpec>): Expectation {
  const s = r.str(v, key);
  if (s === 'pass') return { outcome: 'pass' };
  const m = /^fail:(.+)$/.exec(s);
  if (!m) r.fail(key, `"${s}" is neither "pass" nor "fail:REASON"`);
  if (!reasons[m[1]!]) r.fail(key, `reason "${m[1]}" is not defined under "reasons" (defined: ${Object.keys(reasons).join(', ') || 'none'})`);
  return { outcome: 'fail', reason: m[1]! };
}

const NAME = /^[a-z0-9][a-z0-9-]*$/;

// ---- the loader -----------------------------------------------------------------------

export function loadScenario(path: string): ScenarioSpec {
  const file = basename(path);
  const r: Reader = new Reader(file);
  let raw: Json;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ScenarioError(`${file}: not valid JSON: ${(err as Error).message}`);
  }
  const top = r.obj(raw, '(top)');
  r.only(top, '(top)', ['name', 'description', 'namespaces', 'links', 'noRoute', 'gateways', 'variants', 'server', 'client', 'target', 'files', 'reasons', 'cases']);
  const name = r.str(top.name, 'name');
  if (!NAME.test(name)) r.fail('name', `"${name}" must be lower-case letters, digits and dashes`);

  // Namespaces and links.
  const nsObj = r.obj(top.namespaces, 'namespaces');
  const namespaces: Record<string, NamespaceSpec> = {};
  for (const [n, v] of Object.entries(nsObj)) {
    if (!/^[a-z][a-z0-9]{0,11}$/.test(n)) r.fail(`namespaces.${n}`, 'names are a-z0-9, at most 12');
    const o = r.obj(v, `namespaces.${n}`);
    r.only(o, `namespaces.${n}`, ['routes']);
    const routes = o.routes === undefined ? [] : r.strs(o.routes, `namespaces.${n}.routes`);
    routes.forEach((route, i) => {
      const key = `namespaces.${n}.routes[${i}]`;
      const m = /^(default|::\/0|\S+\/\d+) via (\S+)$/.exec(route);
      if (!m) r.fail(key, `"${route}" is not "DEST via ADDRESS" (DEST: default, ::/0 or a CIDR)`);
      if (m[1] !== 'default' && m[1] !== '::/0') r.cidr(m[1], key);
      r.address(m[2], key);
    });
    namespaces[n] = { routes };
  }
  const knownNs = (v: Json, key: string): string => {
    const s = r.str(v, key);
    if (!namespaces[s]) r.fail(key, `namespace "${s}" is not declared under "namespaces"`);
    return s;
  };
  const ifaces = new Map<string, Set<string>>();
  const links = r.arr(top.links, 'links').map((l, i): LinkSpec => {
    const o = r.obj(l, `links[${i}]`);
    r.only(o, `links[${i}]`, ['a', 'b']);
    const end = (side: 'a' | 'b'): LinkEnd => {
      const key = `links[${i}].${side}`;
      const e = r.obj(o[side], key);
      r.only(e, key, ['ns', 'if', 'addr']);
      const ns = knownNs(e.ns, `${key}.ns`);
      const ifn = r.ifname(e.if, `${key}.if`);
      const set = ifaces.get(ns) ?? new Set<string>();
      if (set.has(ifn)) r.fail(`${key}.if`, `${ns} already has an interface "${ifn}"`);
      set.add(ifn);
      ifaces.set(ns, set);
      const addr = r.strs(e.addr ?? [], `${key}.addr`).map((a, j) => r.cidr(a, `${key}.addr[${j}]`));
      return { ns, if: ifn, addr };
    };
    const a = end('a');
    const b = end('b');
    if (a.ns === b.ns) r.fail(`links[${i}]`, 'both ends are in the same namespace');
    return { a, b };
  });
  const ifOf = (ns: string, v: Json, key: string): string => {
    const s = r.ifname(v, key);
    if (!ifaces.get(ns)?.has(s)) r.fail(key, `${ns} has no interface "${s}"`);
    return s;
  };

  const noRoute: Record<string, string[]> = {};
  if (top.noRoute !== undefined) {
    for (const [n, v] of Object.entries(r.obj(top.noRoute, 'noRoute'))) {
      knownNs(n, `noRoute.${n}`);
      noRoute[n] = r.strs(v, `noRoute.${n}`).map((a, i) => r.address(a, `noRoute.${n}[${i}]`));
    }
  }

  // Gateways: base settings, then what each variant changes.
  const parseGateway = (ns: string, v: Json, key: string, partial: boolean): Partial<GatewaySpec> => {
    const o = r.obj(v, key);
    r.only(o, key, ['forwarding', 'nat', 'forward', 'kernelHelper', 'ftpAlg']);
    const g: Partial<GatewaySpec> = {};
    if (o.forwarding !== undefined) g.forwarding = r.bool(o.forwarding, `${key}.forwarding`);
    else if (!partial) g.forwarding = false;
    if (o.nat !== undefined || !partial) {
      g.nat = r.arr(o.nat ?? [], `${key}.nat`).map((n, i): NatRule => {
        const k = `${key}.nat[${i}]`;
        const rule = r.obj(n, k);
        const kinds = Object.keys(rule);
        if (kinds.length !== 1) r.fail(k, 'one of masquerade, dnat, redirect');
        if (rule.masquerade !== undefined) {
          const m = r.obj(rule.masquerade, `${k}.masquerade`);
          r.only(m, `${k}.masquerade`, ['oif']);
          return { masquerade: { oif: ifOf(ns, m.oif, `${k}.masquerade.oif`) } };
        }
        if (rule.dnat !== undefined) {
          const d = r.obj(rule.dnat, `${k}.dnat`);
          r.only(d, `${k}.dnat`, ['iif', 'dport', 'to']);
          return { dnat: { iif: ifOf(ns, d.iif, `${k}.dnat.iif`), dport: r.int(d.dport, `${k}.dnat.dport`, 1, 65535), to: r.address(d.to, `${k}.dnat.to`) } };
        }
        if (rule.redirect !== undefined) {
          const d = r.obj(rule.redirect, `${k}.redirect`);
          r.only(d, `${k}.redirect`, ['iif', 'dport', 'to']);
          return { redirect: { iif: ifOf(ns, d.iif, `${k}.redirect.iif`), dport: r.int(d.dport, `${k}.redirect.dport`, 1, 65535), to: r.int(d.to, `${k}.redirect.to`, 1, 65535) } };
        }
        return r.fail(k, `unknown NAT rule "${kinds[0]}" (masquerade, dnat, redirect)`);
      });
    }
    if (o.forward !== undefined || !partial) {
      g.forward = r.arr(o.forward ?? [], `${key}.forward`).map((f, i): ForwardRule => {
        const k = `${key}.forward[${i}]`;
        const fo = r.obj(f, k);
        r.only(fo, k, ['iif', 'oif', 'dnat']);
        return { iif: ifOf(ns, fo.iif, `${k}.iif`), oif: ifOf(ns, fo.oif, `${k}.oif`), ...(fo.dnat !== undefined ? { dnat: r.bool(fo.dnat, `${k}.dnat`) } : {}) };
      });
    }
    if (o.kernelHelper !== undefined) {
      const h = r.obj(o.kernelHelper, `${key}.kernelHelper`);
      r.only(h, `${key}.kernelHelper`, ['iif', 'dport']);
      g.kernelHelper = { iif: ifOf(ns, h.iif, `${key}.kernelHelper.iif`), dport: h.dport === undefined ? 21 : r.int(h.dport, `${key}.kernelHelper.dport`, 1, 65535) };
    }
    if (o.ftpAlg !== undefined || !partial) {
      g.ftpAlg = r.arr(o.ftpAlg ?? [], `${key}.ftpAlg`).map((inst, i): FtpAlgInstance => {
        const k = `${key}.ftpAlg[${i}]`;
        const io = r.obj(inst, k);
        r.only(io, k, ['args']);
        const args = r.strs(io.args, `${k}.args`);
        if (args[0] !== 'forward' && args[0] !== 'reverse') r.fail(`${k}.args[0]`, 'must be "forward" or "reverse"');
        if (!args.includes('--listen')) r.fail(`${k}.args`, 'needs --listen ADDR:PORT (the runner waits for that port)');
        // Every address given to ftp-alg is in the plan, too.
        args.forEach((a, j) => {
          for (const m of a.matchAll(/\[([0-9a-f:]+)\]|(\d+\.\d+\.\d+\.\d+)/gi)) {
            const addr = m[1] ?? m[2]!;
            if (!inAddressPlan(addr, true)) r.fail(`${k}.args[${j}]`, `${addr} is outside the address plan`);
          }
        });
        return { args };
      });
    }
    return g;
  };
  const gateways: Record<string, GatewaySpec> = {};
  for (const [n, v] of Object.entries(r.obj(top.gateways ?? {}, 'gateways'))) {
    knownNs(n, `gateways.${n}`);
    gateways[n] = parseGateway(n, v, `gateways.${n}`, false) as GatewaySpec;
  }

  const variants = r.arr(top.variants, 'variants').map((v, i): VariantSpec => {
    const key = `variants[${i}]`;
    const o = r.obj(v, key);
    r.only(o, key, ['name', 'alg', 'description', 'gateways']);
    const vname = r.str(o.name, `${key}.name`);
    if (!NAME.test(vname)) r.fail(`${key}.name`, `"${vname}" must be lower-case letters, digits and dashes`);
    const alg = r.str(o.alg, `${key}.alg`);
    if (!ALGS.includes(alg as Alg)) r.fail(`${key}.alg`, `"${alg}" is not one of ${ALGS.join(', ')}`);
    const gws: Record<string, Partial<GatewaySpec>> = {};
    for (const [n, g] of Object.entries(r.obj(o.gateways ?? {}, `${key}.gateways`))) {
      if (!gateways[n]) r.fail(`${key}.gateways.${n}`, `"${n}" is not a gateway of this scenario (declare it under "gateways")`);
      gws[n] = parseGateway(n, g, `${key}.gateways.${n}`, true);
    }
    return { name: vname, alg: alg as Alg, description: r.optStr(o.description, `${key}.description`, ''), gateways: gws };
  });
  if (variants.length === 0) r.fail('variants', 'at least one');
  const variantNames = variants.map((v) => v.name);
  if (new Set(variantNames).size !== variantNames.length) r.fail('variants', 'names must be unique');

  const so = r.obj(top.server, 'server');
  r.only(so, 'server', ['ns', 'address', 'port']);
  const server = { ns: knownNs(so.ns, 'server.ns'), address: r.address(so.address, 'server.address'), port: so.port === undefined ? 21 : r.int(so.port, 'server.port', 1, 65535) };
  const co = r.obj(top.client, 'client');
  r.only(co, 'client', ['ns']);
  const client = { ns: knownNs(co.ns, 'client.ns') };

  const parseTarget = (v: Json, key: string, base?: TargetSpec): TargetSpec => {
    const o = r.obj(v, key);
    r.only(o, key, ['host', 'port', 'user', 'password']);
    const host = o.host === undefined && base ? base.host : r.address(o.host, `${key}.host`);
    return {
      host,
      port: o.port === undefined ? (base?.port ?? 21) : r.int(o.port, `${key}.port`, 1, 65535),
      user: r.optStr(o.user, `${key}.user`, base?.user ?? 'anonymous'),
      password: r.optStr(o.password, `${key}.password`, base?.password ?? 'scenario@example.org'),
    };
  };
  const target = parseTarget(top.target, 'target');

  const files: Record<string, number> = {};
  for (const [f, v] of Object.entries(r.obj(top.files, 'files'))) {
    if (!/^[a-z0-9][a-z0-9.-]*$/.test(f)) r.fail(`files.${f}`, 'plain lower-case file names only');
    const size = parseSize(r.str(v, `files.${f}`));
    if (size === undefined || size < 1 || size > 1 << 30) r.fail(`files.${f}`, `"${String(v)}" is not a size like 1MiB (at most 1GiB)`);
    files[f] = size;
  }

  const reasons: Record<string, ReasonSpec> = {};
  for (const [k, v] of Object.entries(r.obj(top.reasons ?? {}, 'reasons'))) {
    const key = `reasons.${k}`;
    const o = r.obj(v, key);
    r.only(o, key, ['why', 'match', 'in']);
    const match = r.oneOrMany(o.match, `${key}.match`);
    match.forEach((re, i) => {
      try {
        new RegExp(re, 'm');
      } catch (err) {
        r.fail(`${key}.match[${i}]`, (err as Error).message);
      }
    });
    const where = o.in === undefined ? ['client', 'server', 'gateway'] : r.oneOrMany(o.in, `${key}.in`);
    for (const w of where) if (!['client', 'server', 'gateway'].includes(w)) r.fail(`${key}.in`, `"${w}" is not client, server or gateway`);
    reasons[k] = { why: r.str(o.why, `${key}.why`), match, in: where as LogName[] };
  }

  // Cases: each entry may list several servers, clients and transfers; it expands to their product.
  const cases: CaseSpec[] = [];
  r.arr(top.cases, 'cases').forEach((c, i) => {
    const key = `cases[${i}]`;
    const o = r.obj(c, key);
    r.only(o, key, ['server', 'client', 'transfer', 'file', 'parallel', 'timeout', 'target', 'expect', 'note']);
    const servers = r.oneOrMany(o.server, `${key}.server`);
    for (const s of servers) if (!SERVERS.includes(s as ServerKind)) r.fail(`${key}.server`, `"${s}" is not one of ${SERVERS.join(', ')}`);
    const clients = r.oneOrMany(o.client, `${key}.client`).map((spec) => {
      const [cn, mode] = spec.split(':');
      const modes = CLIENT_MODES[cn as ClientName];
      if (!modes) r.fail(`${key}.client`, `"${cn}" is not one of ${Object.keys(CLIENT_MODES).join(', ')}`);
      if (mode === undefined || !modes.includes(mode)) r.fail(`${key}.client`, `"${spec}": ${cn} modes are ${modes.map((m) => `${cn}:${m}`).join(', ')}`);
      return { client: cn as ClientName, mode };
    });
    const transfers = o.transfer === undefined ? ['get'] : r.oneOrMany(o.transfer, `${key}.transfer`);
    for (const t of transfers) if (t !== 'get' && t !== 'put') r.fail(`${key}.transfer`, `"${t}" is not get or put`);
    const fileName = r.str(o.file, `${key}.file`);
    if (files[fileName] === undefined) r.fail(`${key}.file`, `"${fileName}" is not declared under "files"`);
    const parallel = o.parallel === undefined ? 1 : r.int(o.parallel, `${key}.parallel`, 1, 50);
    const timeoutMs = (o.timeout === undefined ? 30 : r.int(o.timeout, `${key}.timeout`, 1, 300)) * 1000;
    const caseTarget = o.target === undefined ? target : parseTarget(o.target, `${key}.target`, target);
    if (o.note !== undefined) r.str(o.note, `${key}.note`);
    let expect: Record<string, Expectation>;
    if (typeof o.expect === 'string') {
      const e = parseExpectation(r, o.expect, `${key}.expect`, reasons);
      expect = Object.fromEntries(variantNames.map((v) => [v, e]));
    } else {
      expect = {};
      for (const [v, e] of Object.entries(r.obj(o.expect, `${key}.expect`))) {
        if (!variantNames.includes(v)) r.fail(`${key}.expect.${v}`, `no variant "${v}" (variants: ${variantNames.join(', ')})`);
        expect[v] = parseExpectation(r, e, `${key}.expect.${v}`, reasons);
      }
    }
    for (const s of servers as ServerKind[]) {
      for (const { client: cn, mode } of clients) {
        for (const t of transfers as Transfer[]) {
          // vsftpd runs anonymous read-only (its default strict configuration).
          if (t === 'put' && s.startsWith('vsftpd')) r.fail(`${key}`, 'vsftpd serves anonymous read-only: uploads ("put") only with pyftpdlib or builtin');
          const caseName = `${s} ${cn}:${mode} ${t} ${fileName}${parallel > 1 ? ` x${parallel}` : ''}`;
          if (cases.some((x) => x.name === caseName)) r.fail(key, `case "${caseName}" appears twice`);
          cases.push({ name: caseName, server: s, client: cn, mode, transfer: t, file: fileName, parallel, timeoutMs, target: caseTarget, expect });
        }
      }
    }
  });
  if (cases.length === 0) r.fail('cases', 'at least one');

  return {
    file,
    name,
    description: r.optStr(top.description, 'description', ''),
    namespaces,
    links,
    noRoute,
    gateways,
    variants,
    server,
    client,
    files,
    reasons,
    cases,
  };
}

/** The variant's view of a gateway: base settings with the variant's keys replacing them. */
export function gatewayFor(spec: ScenarioSpec, variant: VariantSpec, ns: string): GatewaySpec {
  return { ...spec.gateways[ns]!, ...variant.gateways[ns] };
}

/** The first address of a family a namespace has on any link. */
export function addressOf(spec: ScenarioSpec, ns: string, family: 4 | 6): string | undefined {
  for (const l of spec.links) {
    for (const e of [l.a, l.b]) {
      if (e.ns !== ns) continue;
      const a = e.addr.map((c) => c.split('/')[0]!).find((x) => isIpv6(x) === (family === 6));
      if (a) return a;
    }
  }
  return undefined;
}
