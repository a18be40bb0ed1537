/**
 * Gateway events → log lines on stderr. The gateway knows nothing of this;
 * it calls an EventSink.
 *
 * json: pino JSON lines, the machine contract (README: Log events).
 * pretty: one line per event for people. pino-pretty prints every field on
 * a line of its own (a download was ~44 lines), so pretty is ours: time,
 * level, event, listener and session, then the fields as key=value.
 */
import { writeSync } from 'node:fs';
import { pino, type Level, type Logger } from 'pino';
import type { EventSink, GatewayEvent } from './gateway/events.js';

export type LogFormat = 'json' | 'pretty';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;

const LEVEL_OF: Record<GatewayEvent['event'], Level> = {
  listening: 'info',
  'session-open': 'info',
  'session-close': 'info',
  login: 'info',
  transfer: 'info',
  rewrite: 'info',
  refuse: 'warn',
  'data-listen': 'debug',
  'data-open': 'info',
  'data-close': 'info',
  'data-nat': 'info',
  control: 'debug',
  warning: 'warn',
  'internal-error': 'error',
  shutdown: 'info',
  reload: 'info',
  'reload-failed': 'error',
  reopen: 'info',
};

const SEVERITY: Record<Level, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/**
 * Refusals after which the client's request still succeeds (README: the
 * transfer works): worth a line, not a warning.
 */
const HANDLED_REFUSALS: ReadonlySet<string> = new Set(['FOREIGN_PASSIVE_ADDRESS']);

/** An event's level is at most its name's (LEVEL_OF): a sink wants a name whose level it logs. */
export function levelOf(e: GatewayEvent): Level {
  if (e.event === 'refuse' && HANDLED_REFUSALS.has(e.code)) return 'info';
  return LEVEL_OF[e.event];
}

export interface EventLog {
  sink: EventSink;
  /** A reload may change the level. */
  setLevel: (level: Level) => void;
}

/** The log the CLI writes through; `write` is for tests (default: stderr). */
export function createEventLog(level: Level, format: LogFormat, write?: (line: string) => void): EventLog {
  if (format === 'pretty') return prettyLog(level, write ?? ((line) => writeSync(2, line)));
  const logger: Logger = pino({ level, base: undefined }, write ? { write } : pino.destination({ dest: 2, sync: true }));
  const sink: EventSink = (e) => logger[levelOf(e)](e, e.event);
  sink.wants = (name) => logger.isLevelEnabled(LEVEL_OF[name]);
  return { sink, setLevel: (l) => (logger.level = l) };
}

function prettyLog(level: Level, write: (line: string) => void): EventLog {
  let least = SEVERITY[level];
  const sink: EventSink = (e) => {
    const l = levelOf(e);
    if (SEVERITY[l] >= least) write(`${prettyLine(e, l, new Date())}\n`);
  };
  sink.wants = (name) => SEVERITY[LEVEL_OF[name]] >= least;
  return { sink, setLevel: (l) => (least = SEVERITY[l]) };
}

const FIRST = new Set(['event', 'listener', 'session']);

/** `12:00:01.234 INFO  transfer  [rev@127.0.0.1:21 s-1a] user=alice command=RETR …` */
export function prettyLine(e: GatewayEvent, level: Level, at: Date): string {
  const time = at.toISOString().slice(11, 23);
  const where = [e.listener, 'session' in e ? e.session : undefined].filter((x) => x !== undefined).join(' ');
  const fields = Object.entries(e)
    .filter(([k, v]) => !FIRST.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${prettyValue(v)}`);
  return [time, level.toUpperCase().padEnd(5), e.event, ...(where ? [`[${where}]`] : []), ...fields].join(' ');
}

function prettyValue(v: unknown): string {
  if (typeof v === 'string') return /^[\w.:@/\-[\]>*]+$/.test(v) ? v : JSON.stringify(v);
  if (Array.isArray(v)) return v.map((x) => prettyValue(x)).join(',') || '-';
  return JSON.stringify(v);
}

