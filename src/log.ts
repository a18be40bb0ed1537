/**
 * Gateway events → pino log lines on stderr. The gateway knows nothing of
 * this; it calls an EventSink.
 */
import { pino, type Logger, type Level } from 'pino';
import type { EventSink, GatewayEvent } from './gateway/events.js';

export type LogFormat = 'json' | 'pretty';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;

const LEVEL_OF: Record<GatewayEvent['event'], Level> = {
  listening: 'info',
  'session-open': 'info',
  'session-close': 'info',
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
};

export async function createLogger(level: Level, format: LogFormat): Promise<Logger> {
  if (format === 'pretty') {
    const { default: pretty } = await import('pino-pretty');
    return pino(
      { level, base: undefined },
      pretty({ destination: 2, colorize: process.stderr.isTTY, ignore: 'event', messageKey: 'msg', sync: true }),
    );
  }
  return pino({ level, base: undefined }, pino.destination({ dest: 2, sync: true }));
}

export function logSink(logger: Logger): EventSink {
  return (e) => {
    const level = LEVEL_OF[e.event];
    logger[level](e, e.event);
  };
}
