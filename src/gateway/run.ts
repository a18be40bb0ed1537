/** `ftp-alg run`: every listener of a config file in one process. */
import type { RunConfig } from '../config-file.js';
import type { EventSink } from './events.js';
import { startForwardGateway } from './forward.js';
import { startReverseGateway } from './reverse.js';
import type { Gateway } from './server.js';

/**
 * Starts the listeners in file order. If one cannot start, those already
 * up are closed again (nothing left listening) and the error is passed on.
 */
export async function startListeners(cfg: RunConfig, sink: EventSink): Promise<Gateway[]> {
  const started: Gateway[] = [];
  try {
    for (const l of cfg.listeners) {
      started.push(l.mode === 'reverse' ? await startReverseGateway(l, sink) : await startForwardGateway(l, sink));
    }
    return started;
  } catch (err) {
    await Promise.all(started.map((g) => g.close()));
    throw err;
  }
}
