/**
 * Flags → one validated configuration. Every error names the flag it is
 * about, so the CLI can print one line and exit 2.
 */
import { parseCidr, parseIp, type Cidr, type IpAddress } from './protocol/address.js';
import { DEFAULT_MAX_LINE_BYTES } from './protocol/framer.js';
import { DEFAULT_ALLOWED_CLIENTS, DEFAULT_DESTINATION_PORTS, type PortList } from './alg/policy.js';

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    /** The message without the key. */
    readonly detail: string,
  ) {
    super(`${key}: ${detail}`);
  }
}

/** A range of TCP ports, both ends included. */
export interface PortRange {
  lo: number;
  hi: number;
}

const TABLE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;

/** An nftables table name: what --nft-table accepts, and all the kernel data path will create. */
export function isTableName(name: string): boolean {
  return TABLE_NAME.test(name);
}

export interface HostPort {
  host: string;
  port: number;
}

export interface CommonGatewayConfig {
  listen: HostPort;
  passivePorts?: PortRange | undefined;
  activePorts?: PortRange | undefined;
  acceptTimeoutMs: number;
  dataIdleTimeoutMs: number;
  completionLingerMs: number;
  connectTimeoutMs: number;
  loginTimeoutMs: number;
  idleTimeoutMs: number;
  maxLineBytes: number;
  maxSessions: number;
  maxSessionsPerClient: number;
  /** Open data listeners one client address may hold, all its sessions together. */
  maxDataListenersPerClient: number;
  tls: 'refuse' | 'passthrough' | 'terminate';
  /** With tls 'terminate': the certificate and how clients must use TLS. */
  tlsTerminate?: TlsTerminateConfig | undefined;
  serverTls: ServerTlsConfig;
  /** relay: data bytes pass through us; kernel: nftables translates data connections. */
  dataPath: 'relay' | 'kernel';
  nftTable: string;
}

export type Balance = 'round-robin' | 'least-connections' | 'source' | 'user';
export const BALANCES: readonly Balance[] = ['round-robin', 'least-connections', 'source', 'user'];

/** Split horizon: clients in `network` are told `address` in 227. */
export interface AnnounceRule {
  network: Cidr;
  address: IpAddress;
}

export interface UserRoute {
  /** The glob as written (`*` any run, `?` one character). */
  user: string;
  matches: (user: string) => boolean;
  server: HostPort;
}

export interface TlsTerminateConfig {
  certFile: string;
  keyFile: string;
  implicit: boolean;
  require: boolean;
}

export interface ServerTlsConfig {
  mode: 'off' | 'explicit' | 'implicit';
  caFile?: string | undefined;
  /** undefined: the host of the server's address. */
  name?: string | undefined;
  insecure: boolean;
}

export interface ReverseConfig extends CommonGatewayConfig {
  mode: 'reverse';
  /** The first of `servers`. */
  server: HostPort;
  servers: HostPort[];
  balance: Balance;
  backendDownMs: number;
  healthIntervalMs?: number | undefined;
  sendProxyProtocol?: 1 | 2 | undefined;
  /** Control connections from these must, and from no one else may, start with a PROXY header. */
  proxyProtocolFrom: Cidr[];
  announce: AnnounceRule[];
  /** `--balance user`: user-name patterns pinned to one of `servers` (YAML `routes:`), before the hash. */
  routes: UserRoute[];
  publicAddress: IpAddress;
  insideAddress?: IpAddress | undefined;
  serverNetworks: Cidr[];
}

export const DEFAULTS = {
  acceptTimeoutMs: 30_000,
  dataIdleTimeoutMs: 300_000,
  completionLingerMs: 5_000,
  connectTimeoutMs: 10_000,
  loginTimeoutMs: 60_000,
  idleTimeoutMs: 600_000,
  maxSessions: 1000,
  maxSessionsPerClient: 50,
  maxDataListenersPerClient: 4,
  maxLineBytes: DEFAULT_MAX_LINE_BYTES,
  tls: 'refuse' as const,
  dataPath: 'relay' as const,
  nftTable: 'ftp_alg_data',
};

/** `1.2.3.4:21`, `[::1]:21`, `host:21`; `allowName` for destinations only. */
export function parseHostPort(key: string, text: string, allowName: boolean): HostPort {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  if (!m) throw new ConfigError(key, `"${text}" is not ADDRESS:PORT (IPv6 in brackets: [::1]:2121)`);
  const host = m[1]!;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(key, `port ${m[2]} is out of range 0-65535`);
  const ip = parseIp(host);
  if (!ip && !(allowName && /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host))) {
    throw new ConfigError(key, `"${host}" is not an IP address${allowName ? ' or host name' : ''}`);
  }
  return { host: ip ? ip.address : host, port };
}

export function parseIpFlag(key: string, text: string): IpAddress {
  const ip = parseIp(text);
  if (!ip) throw new ConfigError(key, `"${text}" is not an IP address`);
  return ip;
}

export function parsePortRange(key: string, text: string): PortRange {
  const m = /^(\d+)-(\d+)$/.exec(text.trim());
  const lo = Number(m?.[1]);
  const hi = Number(m?.[2]);
  if (!m || lo < 1024 || hi > 65535 || lo > hi) throw new ConfigError(key, `"${text}" is not a port range LO-HI within 1024-65535`);
  return { lo, hi };
}

/** `21`, `21,990`, `2121-2130,21`: single ports and ranges within 1-65535. */
export function parsePortList(key: string, text: string): PortList {
  const items = text.split(',').map((s) => s.trim());
  if (items.every((s) => s === '')) throw new ConfigError(key, `"${text}" names no port`);
  return items
    .filter(Boolean)
    .map((s) => {
      const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s);
      const lo = Number(m?.[1]);
      const hi = m?.[2] === undefined ? lo : Number(m[2]);
      if (!m || lo < 1 || hi > 65535 || lo > hi) throw new ConfigError(key, `"${s}" is not a port or LO-HI range within 1-65535`);
      return { lo, hi };
    });
}

export function parseCidrList(key: string, text: string): Cidr[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const c = parseCidr(s);
      if (!c) throw new ConfigError(key, `"${s}" is not a CIDR block`);
      return c;
    });
}

export function parseSeconds(key: string, value: unknown): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 86_400) throw new ConfigError(key, `"${String(value)}" is not a number of seconds in (0, 86400]`);
  return Math.round(n * 1000);
}

export interface ReverseFlags {
  listen?: string;
  server?: string;
  'public-address'?: string;
  'inside-address'?: string;
  'passive-ports'?: string;
  'active-ports'?: string;
  'server-networks'?: string;
  balance?: string;
  'backend-down'?: number;
  'health-interval'?: number;
  'send-proxy-protocol'?: string;
  'proxy-protocol-from'?: string;
  announce?: string | string[];
  /** YAML only: a list of { user, server }. */
  routes?: unknown;
  'data-timeout'?: number;
  'data-idle-timeout'?: number;
  'connect-timeout'?: number;
  'login-timeout'?: number;
  'idle-timeout'?: number;
  'max-line'?: number;
  'max-sessions'?: number;
  'max-sessions-per-client'?: number;
  'max-data-listeners-per-client'?: number;
  tls?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  'implicit-tls'?: boolean;
  'require-tls'?: boolean;
  'server-tls'?: string;
  'server-ca'?: string;
  'server-name'?: string;
  'server-insecure'?: boolean;
  'data-path'?: string;
  'nft-table'?: string;
}

function count(key: string, value: number | undefined, fallback: number, max: number): number {
  const n = value ?? fallback;
  if (!Number.isInteger(n) || n < 1 || n > max) throw new ConfigError(key, `${n} is not a whole number in 1-${max}`);
  return n;
}

function seconds(key: string, value: number | undefined, fallbackMs: number): number {
  return value === undefined ? fallbackMs : parseSeconds(key, value);
}

function required(key: string, v: string | undefined): string {
  if (v === undefined || v === '') throw new ConfigError(`--${key}`, 'is required');
  return v;
}

export function commonFromFlags(f: ReverseFlags): Omit<CommonGatewayConfig, 'listen'> {
  const maxLine = f['max-line'] ?? DEFAULTS.maxLineBytes;
  if (!Number.isInteger(maxLine) || maxLine < 64 || maxLine > 1 << 20) {
    throw new ConfigError('--max-line', `${maxLine} is not a byte count in 64-1048576`);
  }
  const tls = f.tls ?? DEFAULTS.tls;
  if (tls !== 'refuse' && tls !== 'passthrough' && tls !== 'terminate') throw new ConfigError('--tls', `"${tls}" is not refuse, passthrough or terminate`);
  const dataPath = f['data-path'] ?? DEFAULTS.dataPath;
  if (dataPath !== 'relay' && dataPath !== 'kernel') throw new ConfigError('--data-path', `"${dataPath}" is not relay or kernel`);
  const nftTable = f['nft-table'] ?? DEFAULTS.nftTable;
  if (!isTableName(nftTable)) throw new ConfigError('--nft-table', `"${nftTable}" is not an nftables table name (a letter, then letters, digits or _; up to 32)`);
  return {
    passivePorts: f['passive-ports'] ? parsePortRange('--passive-ports', f['passive-ports']) : undefined,
    activePorts: f['active-ports'] ? parsePortRange('--active-ports', f['active-ports']) : undefined,
    acceptTimeoutMs: seconds('--data-timeout', f['data-timeout'], DEFAULTS.acceptTimeoutMs),
    dataIdleTimeoutMs: seconds('--data-idle-timeout', f['data-idle-timeout'], DEFAULTS.dataIdleTimeoutMs),
    completionLingerMs: DEFAULTS.completionLingerMs,
    connectTimeoutMs: seconds('--connect-timeout', f['connect-timeout'], DEFAULTS.connectTimeoutMs),
    loginTimeoutMs: seconds('--login-timeout', f['login-timeout'], DEFAULTS.loginTimeoutMs),
    idleTimeoutMs: seconds('--idle-timeout', f['idle-timeout'], DEFAULTS.idleTimeoutMs),
    maxSessions: count('--max-sessions', f['max-sessions'], DEFAULTS.maxSessions, 1_000_000),
    maxSessionsPerClient: count('--max-sessions-per-client', f['max-sessions-per-client'], DEFAULTS.maxSessionsPerClient, 1_000_000),
    maxDataListenersPerClient: count('--max-data-listeners-per-client', f['max-data-listeners-per-client'], DEFAULTS.maxDataListenersPerClient, 65_535),
    maxLineBytes: maxLine,
    tls,
    tlsTerminate: tlsTerminateFromFlags(tls, f),
    serverTls: serverTlsFromFlags(tls, f),
    dataPath,
    nftTable,
  };
}

function tlsTerminateFromFlags(tls: string, f: ReverseFlags): TlsTerminateConfig | undefined {
  if (tls !== 'terminate') {
    for (const key of ['tls-cert', 'tls-key', 'implicit-tls', 'require-tls'] as const) {
      if (f[key]) throw new ConfigError(`--${key}`, 'needs --tls terminate');
    }
    return undefined;
  }
  return {
    certFile: required('tls-cert', f['tls-cert']),
    keyFile: required('tls-key', f['tls-key']),
    implicit: Boolean(f['implicit-tls']),
    require: Boolean(f['require-tls']),
  };
}

function serverTlsFromFlags(tls: string, f: ReverseFlags): ServerTlsConfig {
  const mode = f['server-tls'] ?? 'off';
  if (mode !== 'off' && mode !== 'explicit' && mode !== 'implicit') throw new ConfigError('--server-tls', `"${mode}" is not off, explicit or implicit`);
  // The client's own TLS would reach the server inside the gateway's.
  if (mode !== 'off' && tls === 'passthrough') throw new ConfigError('--server-tls', 'cannot be used with --tls passthrough (use --tls terminate)');
  if (mode === 'off') {
    for (const key of ['server-ca', 'server-name', 'server-insecure'] as const) {
      if (f[key]) throw new ConfigError(`--${key}`, 'needs --server-tls explicit or implicit');
    }
  }
  return { mode, caFile: f['server-ca'], name: f['server-name'], insecure: Boolean(f['server-insecure']) };
}

export function reverseFromFlags(f: ReverseFlags): ReverseConfig {
  const listen = parseHostPort('--listen', required('listen', f.listen), false);
  const servers = required('server', f.server)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => parseHostPort('--server', s, true));
  const server = servers[0];
  if (!server) throw new ConfigError('--server', 'is required');
  if (servers.some((s) => s.port === 0)) throw new ConfigError('--server', 'port 0 is not a server port');
  const publicAddress = parseIpFlag('--public-address', required('public-address', f['public-address']));
  if (publicAddress.family !== 4) {
    // 227 replies can only carry IPv4; IPv6 clients get 229, which has no address.
    throw new ConfigError('--public-address', `${publicAddress.address} is IPv6; 227 replies carry IPv4 only (IPv6 clients are answered with 229 and need no address)`);
  }
  return {
    mode: 'reverse',
    listen,
    server,
    publicAddress,
    insideAddress: f['inside-address'] ? parseIpFlag('--inside-address', f['inside-address']) : undefined,
    serverNetworks: f['server-networks'] ? parseCidrList('--server-networks', f['server-networks']) : [],
    ...backendsFromFlags(f),
    servers,
    routes: parseRoutes(f.routes, servers, f.balance),
    ...commonFromFlags(f),
  };
}

function backendsFromFlags(f: ReverseFlags) {
  const balance = (f.balance ?? 'round-robin') as Balance;
  if (!BALANCES.includes(balance)) throw new ConfigError('--balance', `"${balance}" is not one of ${BALANCES.join(', ')}`);
  const proxyOut = f['send-proxy-protocol'];
  // The balancer's header is clear text in front of the client's first TLS byte; the listener would hand it to the handshake.
  if (f['proxy-protocol-from'] && f['implicit-tls']) {
    throw new ConfigError('--proxy-protocol-from', 'cannot be used with --implicit-tls (use explicit FTPS, AUTH TLS, behind a balancer)');
  }
  if (proxyOut !== undefined && proxyOut !== 'v1' && proxyOut !== 'v2') throw new ConfigError('--send-proxy-protocol', `"${proxyOut}" is not v1 or v2`);
  return {
    balance,
    backendDownMs: seconds('--backend-down', f['backend-down'], 30_000),
    healthIntervalMs: f['health-interval'] === undefined ? undefined : parseSeconds('--health-interval', f['health-interval']),
    sendProxyProtocol: proxyOut === undefined ? undefined : proxyOut === 'v1' ? (1 as const) : (2 as const),
    proxyProtocolFrom: f['proxy-protocol-from'] ? parseCidrList('--proxy-protocol-from', f['proxy-protocol-from']) : [],
    announce: parseAnnounce(f.announce),
  };
}

/** `routes:` entries; each server must be one of --server, so that health and counts cover it. */
export function parseRoutes(value: unknown, servers: readonly HostPort[], balance: string | undefined): UserRoute[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ConfigError('routes', 'a list of { user: PATTERN, server: HOST:PORT }');
  if (balance !== 'user') throw new ConfigError('routes', 'routes pick by user name: they need balance: user');
  return value.map((entry: unknown, i) => {
    const key = `routes[${i}]`;
    const e = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
    const extra = Object.keys(e).filter((k) => k !== 'user' && k !== 'server');
    if (typeof e.user !== 'string' || e.user === '' || typeof e.server !== 'string' || extra.length) {
      throw new ConfigError(key, 'expected { user: PATTERN, server: HOST:PORT } and nothing else');
    }
    const server = parseHostPort(`${key}.server`, e.server, true);
    if (!servers.some((s) => s.host === server.host && s.port === server.port)) {
      throw new ConfigError(`${key}.server`, `${e.server} is not one of the listener's servers`);
    }
    const glob = new RegExp(`^${e.user.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's');
    return { user: e.user, matches: (user: string) => glob.test(user), server };
  });
}

/** `CIDR=IP`, repeated or comma-separated; IPv4 only, as 227 is. */
export function parseAnnounce(value: string | string[] | undefined): AnnounceRule[] {
  const items = (Array.isArray(value) ? value : value === undefined ? [] : [value]).flatMap((v) => String(v).split(','));
  return items
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item) => {
      const [cidr, ip, extra] = item.split('=');
      const network = cidr === undefined ? undefined : parseCidr(cidr.trim());
      const address = ip === undefined ? undefined : parseIp(ip.trim());
      if (!network || !address || extra !== undefined) throw new ConfigError('--announce', `"${item}" is not CIDR=IP`);
      if (address.family !== 4) throw new ConfigError('--announce', `${address.address} is IPv6; 227 replies carry IPv4 only`);
      return { network, address };
    });
}

export interface ForwardConfig extends CommonGatewayConfig {
  mode: 'forward';
  transparent: boolean;
  /** Our outside address: where active-mode listeners bind and what PORT announces to servers. */
  publicAddress?: IpAddress | undefined;
  passive: 'pass' | 'relay';
  allowClients: Cidr[];
  allowDestinations: Cidr[];
  allowDestinationPorts: PortList;
  activeSourcePort?: number | undefined;
}

export interface ForwardFlags extends Omit<ReverseFlags, 'server' | 'inside-address' | 'server-networks'> {
  transparent?: boolean;
  passive?: string;
  'allow-clients'?: string;
  'allow-destinations'?: string;
  'allow-destination-ports'?: string;
  'active-source-port'?: number;
}

export function forwardFromFlags(f: ForwardFlags): ForwardConfig {
  const listen = parseHostPort('--listen', required('listen', f.listen), false);
  const transparent = Boolean(f.transparent);
  // Transparent: clients dial the server's real address, so passive data can
  // go straight through the NAT; a relayed 227 would point them at us, and
  // clients that ignore the 227 address would still dial the server.
  const passive = f.passive ?? (transparent ? 'pass' : 'relay');
  if (passive !== 'pass' && passive !== 'relay') throw new ConfigError('--passive', `"${passive}" is not pass or relay`);
  const sourcePort = f['active-source-port'];
  if (sourcePort !== undefined && (!Number.isInteger(sourcePort) || sourcePort < 1 || sourcePort > 65535)) {
    throw new ConfigError('--active-source-port', `${sourcePort} is not a port`);
  }
  const common = commonFromFlags(f);
  if (transparent) {
    // The client believes it talks to the server itself: only the server's own certificate would do, and the gateway cannot show it.
    if (common.tls === 'terminate') throw new ConfigError('--tls', 'terminate needs explicit forward mode (USER name@host): a redirected client expects the server\'s own certificate; use --tls passthrough with --transparent');
    if (common.serverTls.mode !== 'off') throw new ConfigError('--server-tls', 'needs explicit forward mode (USER name@host), not --transparent');
  }
  return {
    mode: 'forward',
    listen,
    transparent,
    publicAddress: f['public-address'] ? parseIpFlag('--public-address', f['public-address']) : undefined,
    passive,
    allowClients: parseCidrList('--allow-clients', f['allow-clients'] ?? DEFAULT_ALLOWED_CLIENTS.join(',')),
    allowDestinations: f['allow-destinations'] ? parseCidrList('--allow-destinations', f['allow-destinations']) : [],
    allowDestinationPorts: parsePortList('--allow-destination-ports', f['allow-destination-ports'] ?? DEFAULT_DESTINATION_PORTS),
    activeSourcePort: sourcePort,
    ...common,
  };
}
