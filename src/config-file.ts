/**
 * `ftp-alg run --config FILE.yaml`: several listeners in one process, each
 * reverse or forward. A listener's keys are the command-line flags of its
 * mode without the dashes, validated by the same code; an error names the
 * file and the key (`gw.yaml: listeners[1].public-address: …`).
 *
 *   drain: 10                       # optional, seconds (as --drain)
 *   listeners:
 *     - mode: reverse
 *       listen: 198.18.2.1:21
 *       server: 100.64.2.2:21
 *       public-address: 198.18.2.1
 *     - mode: forward
 *       listen: "[::]:2121"         # YAML wants brackets quoted
 */
import { parse } from 'yaml';
import { FORWARD_FLAGS, LIMIT_FLAGS, REVERSE_FLAGS } from './flags.js';
import { ConfigError, forwardFromFlags, parseSeconds, reverseFromFlags, type ForwardConfig, type ReverseConfig } from './config.js';

type Kind = 'string' | 'number' | 'boolean';

/** A listener's keys and their types: the flags of its mode (flags.ts). */
function keysOf(...tables: Array<Record<string, { type: Kind }>>): Record<string, Kind> {
  return Object.fromEntries(tables.flatMap((t) => Object.entries(t).map(([key, spec]) => [key, spec.type])));
}

const KEYS: Record<'reverse' | 'forward', Record<string, Kind>> = {
  reverse: keysOf(REVERSE_FLAGS, LIMIT_FLAGS),
  forward: keysOf(FORWARD_FLAGS, LIMIT_FLAGS),
};

const REPEATABLE = new Set(Object.entries({ ...REVERSE_FLAGS, ...FORWARD_FLAGS }).flatMap(([key, spec]) => ('array' in spec && spec.array ? [key] : [])));

export interface RunConfig {
  drainMs: number;
  listeners: Array<ReverseConfig | ForwardConfig>;
}

const DEFAULT_DRAIN_MS = 10_000;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

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
    if (key !== 'listeners' && key !== 'drain') throw new ConfigError(`${name}: ${key}`, 'unknown key (listeners, drain)');
  }
  const drainMs = doc.drain === undefined ? DEFAULT_DRAIN_MS : parseSeconds(`${name}: drain`, doc.drain);
  const list = doc.listeners;
  if (!Array.isArray(list) || list.length === 0) throw new ConfigError(`${name}: listeners`, 'a list of at least one listener');
  const listeners = list.map((entry, i) => listener(`${name}: listeners[${i}]`, entry));
  const tables = new Map<string, string>();
  listeners.forEach((l, i) => {
    if (l.dataPath !== 'kernel') return;
    const other = tables.get(l.nftTable);
    if (other) throw new ConfigError(`${name}: listeners[${i}].nft-table`, `"${l.nftTable}" is already used by ${other}: each kernel data path needs its own table`);
    tables.set(l.nftTable, `listeners[${i}]`);
  });
  return { drainMs, listeners };
}

function listener(where: string, entry: unknown): ReverseConfig | ForwardConfig {
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
    if (typeof value !== kind && !isList) throw new ConfigError(`${where}.${key}`, `${JSON.stringify(value)} is not a ${kind}`);
    flags[key] = value;
  }
  try {
    return mode === 'reverse' ? reverseFromFlags(flags) : forwardFromFlags(flags);
  } catch (err) {
    // The flag's own check, renamed to where it stands in the file.
    if (err instanceof ConfigError) throw new ConfigError(`${where}.${err.key.replace(/^--/, '')}`, err.detail);
    throw err;
  }
}
