/**
 * FTPS in a scenario: throw-away certificates made once per scenario and
 * run (openssl), the `{tls}` placeholder in ftp-alg's arguments that names
 * their folder, and the settings that make vsftpd an FTPS-only server.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { GatewaySpec, ScenarioSpec } from './spec.js';

/** In ftpAlg args: the folder holding gateway.crt/.key and server.crt/.key (its CA is itself). */
export const TLS_DIR_PLACEHOLDER = '{tls}';

export function usesTls(spec: ScenarioSpec): boolean {
  const gateways = [...Object.values(spec.gateways), ...spec.variants.flatMap((v) => Object.values(v.gateways))];
  return spec.cases.some((c) => c.server === 'vsftpd-tls') || gateways.some((g) => g.ftpAlg?.some((i) => i.args.some((a) => a.includes(TLS_DIR_PLACEHOLDER))));
}

/**
 * Self-signed pairs for the gateway (its WAN-side addresses, as clients
 * would check them) and the server (its own address, which ftp-alg checks
 * with --server-ca server.crt). Throws with openssl's reason.
 */
export function makeTlsFiles(dir: string, spec: ScenarioSpec): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const gatewayIps = [...new Set(spec.links.flatMap((l) => [l.a, l.b]).filter((e) => spec.gateways[e.ns]).flatMap((e) => e.addr.map((a) => a.split('/')[0]!)))];
  for (const [name, ips] of [
    ['gateway', gatewayIps],
    ['server', [spec.server.address]],
  ] as const) {
    const r = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
      '-subj', `/CN=${ips[0] ?? name}`, '-addext', `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(',')}`,
      '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`),
    ], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl req for ${name}: ${(r.stderr || String(r.error)).trim().split('\n').pop()}`);
  }
}

/** The spec with `{tls}` in every ftp-alg argument replaced by `dir`. */
export function withTlsDir(spec: ScenarioSpec, dir: string): ScenarioSpec {
  const fill = (g: Partial<GatewaySpec>): Partial<GatewaySpec> =>
    g.ftpAlg ? { ...g, ftpAlg: g.ftpAlg.map((i) => ({ args: i.args.map((a) => a.split(TLS_DIR_PLACEHOLDER).join(dir)) })) } : g;
  const map = <T extends Partial<GatewaySpec>>(gs: Record<string, T>) => Object.fromEntries(Object.entries(gs).map(([n, g]) => [n, fill(g) as T]));
  return { ...spec, gateways: map(spec.gateways), variants: spec.variants.map((v) => ({ ...v, gateways: map(v.gateways) })) };
}

/**
 * vsftpd as an FTPS-only server (LAB.md): TLS required for anonymous
 * logins and data, and require_ssl_reuse=YES (its default, stated): a data
 * connection that does not resume the control connection's session gets
 * "522 SSL connection failed: session reuse required".
 */
export function vsftpdTlsSettings(dir: string): Record<string, string> {
  return {
    ssl_enable: 'YES',
    rsa_cert_file: join(dir, 'server.crt'),
    rsa_private_key_file: join(dir, 'server.key'),
    allow_anon_ssl: 'YES',
    force_anon_logins_ssl: 'YES',
    force_anon_data_ssl: 'YES',
    require_ssl_reuse: 'YES',
  };
}
