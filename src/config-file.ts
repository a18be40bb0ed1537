/**
 * `ftp-alg run --config FILE.yaml`: several listeners in one process, each
 * reverse or forward. A listener's keys are the command-line flags of its
 * mode without the dashes, validated by the same code; an error names the
 * file and the key (`gw.yaml: listeners[1].public-address: …`).
 *
 *   drain: 10                       # optional, seconds (as --drain)
 *   admin-listen: 127.0.0.1:9121    # optional; also transfer-log, log-level, user, group
 *   listeners:
 *     - mode: reverse
 *       name: public                # optional; default mode@listen, e.g. reverse@198.18.2.1:21
 *       listen: 198.18.2.1:21
 *       server: 100.64.2.2:21
 *       public-address: 198.18.2.1
 *     - mode: forward
 *       listen: "[::]:2121"         # YAML wants brackets quoted
 */
import { parse } from 'yaml';
import { FORWARD_FLAGS, LIMIT_FLAGS, LOG_FLAGS, REVERSE_FLAGS, SERVICE_FLAGS } from './flags.js';
import { ConfigError, forwardFromFlags, parseHostPort, parseSeconds, reverseFromFlags, type ForwardConfig, type HostPort, type ReverseConfig } from './config.js';
import { classifyAddress, parseIp } from './protocol/address.js';

type Kind = 'string' | 'number' | 'boolean';

/** A listener's keys and their types: the flags of its mode (flags.ts). */
function keysOf(...tables: Array<Record<string, { type: Kind }>>): Record<string, Kind> {
  return Object.fromEntries(tables.flatMap((t) => Object.entries(t).map(([key, spec]) => [key, spec.type])));
}

const KEYS: Record<'reverse' | 'forward', Record<string, Kind>> = {
  reverse: { ...keysOf(REVERSE_FLAGS, LIMIT_FLAGS), name: 'string' },
  forward: { ...keysOf(FORWARD_FLAGS, LIMIT_FLAGS), name: 'string' },
};

/** Keys of a listener that take a list (YAML) as the CLI takes a repeated flag. */
const REPEATABLE = new Set(Object.entries({ ...REVERSE_FLAGS, ...FORWARD_FLAGS }).flatMap(([key, spec]) => ('array' in spec && spec.array ? [key] : [])));

/** Top-level keys besides `listeners`: the process-wide flags, and the log level. */
const TOP_KEYS: Record<string, Kind> = { ...keysOf(SERVICE_FLAGS), 'log-level': 'string' };

/** Process-wide settings: the CLI's flags or the file's top-level keys. */
export interface ServiceConfig {
  drainMs: number;
  adminListen?: (HostPort & { loopback: boolean }) | undefined;
  transferLog?: string | undefined;
  user?: string | undefined;
  group?: string | undefined;
}

export type NamedListener = (ReverseConfig | ForwardConfig) & {
  /** The `listener` field of its events, and what a reload compares by. */
  name: string;
  /** Its settings as written, in a canonical form: a reload replaces it when this differs. */
  fingerprint: string;
};

export interface RunConfig extends ServiceConfig {
  logLevel?: (typeof LOG_FLAGS)['log-level']['choices'][number] | undefined;
  listeners: NamedListener[];
}

const DEFAULT_DRAIN_MS = 10_000;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A listener's default name: what an operator recognises it by. */
export function listenerName(mode: string, listen: string): string {
  return `${mode}@${listen}`;
}

/**
 * The admin endpoint must never be reachable by accident. Loopback is
 * always fine. Any other address must be named explicitly: one literal IP
 * address of this host, which the operator chose. A wildcard (0.0.0.0, ::)
 * names no address — it would serve on every interface, the public ones
 * too — and a host name may resolve to anything: both are refused.
 */
export function parseAdminListen(key: string, text: string): HostPort & { loopback: boolean } {
  const hp = parseHostPort(key, text, false);
  const ip = parseIp(hp.host);
  const cls = ip ? classifyAddress(ip) : undefined;
  if (cls === 'unspecified') {
    throw new ConfigError(key, `"${text}" is a wildcard: it would serve metrics on every interface; name one address (127.0.0.1:PORT, or a management address written out)`);
  }
  if (hp.port === 0) throw new ConfigError(key, 'port 0: name the port scrapers will use');
  return { ...hp, loopback: cls === 'loopback' };
}

/** Validates process-wide settings; `keyOf` says how an error names the setting. */
export function serviceFrom(values: Record<string, unknown>, keyOf: (flag: string) => string): ServiceConfig {
  const str = (flag: string): string | undefined => {
    const v = values[flag];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') throw new ConfigError(keyOf(flag), `${JSON.stringify(v)} is not a non-empty string`);
    return v;
  };
  const admin = str('admin-listen');
  return {
    drainMs: values.drain === undefined ? DEFAULT_DRAIN_MS : parseSeconds(keyOf('drain'), values.drain),
    adminListen: admin === undefined ? undefined : parseAdminListen(keyOf('admin-listen'), admin),
    transferLog: str('transfer-log'),
    user: str('user'),
    group: str('group'),
  };
}

/**
 * Dropping privileges gives up CAP_NET_ADMIN, which the kernel data path
 * needs at run time (every transfer programs nftables), not only at start.
 */
export function checkPrivilegeDrop(service: ServiceConfig, listeners: ReadonlyArray<{ dataPath: string }>, keyOf: (flag: string) => string, whereKernel: (i: number) => string): void {
  if (service.group !== undefined && service.user === undefined) throw new ConfigError(keyOf('group'), 'needs --user as well');
  if (service.user === undefined) return;
  const i = listeners.findIndex((l) => l.dataPath === 'kernel');
  if (i >= 0) {
    throw new ConfigError(whereKernel(i), `kernel cannot be combined with ${keyOf('user')}: the kernel data path needs CAP_NET_ADMIN for every transfer, a dropped user has none (run as a dedicated user with AmbientCapabilities=CAP_NET_ADMIN instead)`);
  }
}

/** Parses and validates a config file's text; `name` is what errors call the file. */
export function parseRunConfig(name: string, text: string): RunConfig {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new ConfigError(name, `not valid YAML: ${(err as Error).message.split('\n')[0]!.replace(/:$/, '')}`);
  }
  if (!isRecord(doc)) throw new ConfigError(name, 'expected a mapping with "listeners" (and optionally "drain")');
  for (const key of Object.keys(doc)) {
    if (key !== 'listeners' && !TOP_KEYS[key]) throw new ConfigError(`${name}: ${key}`, `unknown key (listeners, ${Object.keys(TOP_KEYS).join(', ')})`);
  }
  const keyOf = (flag: string) => `${name}: ${flag}`;
  const service = serviceFrom(doc, keyOf);
  const logLevel = doc['log-level'];
  const levels: readonly unknown[] = LOG_FLAGS['log-level'].choices;
  if (logLevel !== undefined && !levels.includes(logLevel)) throw new ConfigError(keyOf('log-level'), `${JSON.stringify(logLevel)} is not one of ${levels.join(', ')}`);
  const list = doc.listeners;
  if (!Array.isArray(list) || list.length === 0) throw new ConfigError(`${name}: listeners`, 'a list of at least one listener');
  const listeners = list.map((entry, i) => listener(`${name}: listeners[${i}]`, entry));

  const tables = new Map<string, string>();
  const names = new Map<string, string>();
  listeners.forEach((l, i) => {
    const other = names.get(l.name);
    if (other && l.named) throw new ConfigError(`${name}: listeners[${i}].name`, `"${l.name}" is already the name of ${other}: give each listener its own name`);
    // Two unnamed listeners on the same address (port 0) are told apart by their order.
    if (other) l.name = `${l.name}#${[...names.keys()].filter((n) => n === l.name || n.startsWith(`${l.name}#`)).length + 1}`;
    names.set(l.name, `listeners[${i}]`);
    if (l.dataPath !== 'kernel') return;
    const table = tables.get(l.nftTable);
    if (table) throw new ConfigError(`${name}: listeners[${i}].nft-table`, `"${l.nftTable}" is already used by ${table}: each kernel data path needs its own table`);
    tables.set(l.nftTable, `listeners[${i}]`);
  });
  checkPrivilegeDrop(service, listeners, keyOf, (i) => `${name}: listeners[${i}].data-path`);
  return { ...service, logLevel: logLevel as RunConfig['logLevel'], listeners: listeners.map(({ named: _, ...l }) => l) };
}

function listener(where: string, entry: unknown): NamedListener & { named: boolean } {
  if (!isRecord(entry)) throw new ConfigError(where, 'expected a mapping (mode, listen, …)');
  const mode = entry.mode;
  if (mode !== 'reverse' && mode !== 'forward') throw new ConfigError(`${where}.mode`, `${JSON.stringify(mode)} is not reverse or forward`);
  const allowed = KEYS[mode];
  const flags: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(entry)) {
    if (key === 'mode') continue;
    if (key === 'routes' && mode === 'reverse') {
      flags.routes = value; // a list, checked by reverseFromFlags
      continue;
    }
    const kind = allowed[key];
    if (!kind) throw new ConfigError(`${where}.${key}`, `not a ${mode} setting (${Object.keys(allowed).join(', ')})`);
    // A repeatable flag (announce:) is a YAML list of its values.
    const isList = Array.isArray(value) && REPEATABLE.has(key) && value.every((v) => typeof v === kind);
    // `allow-destination-ports: 21` is a number to YAML and a list to the flag: take it as written.
    const asText = kind === 'string' && typeof value === 'number' ? String(value) : value;
    if (typeof asText !== kind && !isList) throw new ConfigError(`${where}.${key}`, `${JSON.stringify(value)} is not a ${kind}`);
    flags[key] = asText;
  }
  const { name: given, ...settings } = flags;
  if (given !== undefined && !/^[\w.:@[\]-]{1,64}$/.test(given as string)) {
    throw new ConfigError(`${where}.name`, `${JSON.stringify(given)}: up to 64 letters, digits and . : @ [ ] - _`);
  }
  let config: ReverseConfig | ForwardConfig;
  try {
    config = mode === 'reverse' ? reverseFromFlags(settings) : forwardFromFlags(settings);
  } catch (err) {
    // The flag's own check, renamed to where it stands in the file.
    if (err instanceof ConfigError) throw new ConfigError(`${where}.${err.key.replace(/^--/, '')}`, err.detail);
    throw err;
  }
  const fingerprint = JSON.stringify([mode, ...Object.entries(settings).sort(([a], [b]) => (a < b ? -1 : 1))]);
  return { ...config, name: (given as string | undefined) ?? listenerName(mode, settings.listen as string), named: given !== undefined, fingerprint };
}
