/**
 * What the gateway reports. The gateway calls one sink; logs, tests and
 * metrics subscribe to it. Field names are the log contract (DESIGN.md).
 */
import type { ReasonCode } from '../codes.js';
import type { Direction } from '../alg/control-stream.js';
import type { LoginRecord, TrackerRecord, TransferRecord } from '../alg/transfer-log.js';

export type { Direction };

/** What every event may carry besides its own fields: inside a listener, its name (YAML `name:` or `mode@listen`). */
interface EventContext {
  listener?: string;
}

export type GatewayEvent = EventContext &
  (
  | { event: 'listening'; address: string; port: number; mode: string }
  | { event: 'session-open'; session: string; client: string; server: string }
  | { event: 'session-close'; session: string; reason: string; bytesUp: number; bytesDown: number; durationMs: number }
  | {
      event: 'rewrite';
      session: string;
      direction: Direction;
      kind: string;
      before: string;
      after: string;
      reason: string;
      offset: number;
      delta: number;
    }
  | { event: 'refuse'; session?: string; kind: string; line?: string; code: ReasonCode; message: string }
  | { event: 'data-listen'; session: string; mode: DataMode; address: string; port: number; expect: string }
  | { event: 'data-open'; session: string; mode: DataMode; from: string; to: string }
  | {
      event: 'data-close';
      session: string;
      mode: DataMode;
      from: string;
      to: string;
      bytes: number;
      bytesUp: number;
      bytesDown: number;
      durationMs: number;
      reason: string;
    }
  | {
      /** Kernel data path: a mapping installed ('map') or removed ('unmap'). */
      event: 'data-nat';
      session: string;
      mode: DataMode;
      action: 'map' | 'unmap';
      from: string;
      via: string;
      to: string;
      /** The source address the target sees instead of `from` (SNAT). */
      sourceAs?: string;
      reason?: string;
      /** How long nft took for this operation (metrics: ftp_alg_kernel_mapping_duration_seconds). */
      durationMs?: number;
    }
  | { event: 'control'; session: string; direction: Direction; line: string }
  | { event: 'warning'; session?: string; message: string }
  /** A bug met inside a session: that session ends, the process goes on. */
  | { event: 'internal-error'; session: string; message: string; stack: string }
  | { event: 'shutdown'; reason: string; sessions: number }
  /** One login attempt answered: `reply` 230 (or 202) when it worked, else the failure code. */
  | ({ event: 'login'; session: string; client?: string } & LoginRecord)
  /** One data transfer, direction as the user sees it (see src/alg/transfer-log.ts). */
  | ({ event: 'transfer'; session: string; client?: string } & TransferRecord)
  /** `run --config`: the file was re-read and applied; listener names. */
  | { event: 'reload'; file: string; added: string[]; removed: string[]; changed: string[] }
  /** `run --config`: the file was not applied (nothing changed); `key` is where it is wrong. */
  | { event: 'reload-failed'; file: string; key: string; message: string }
  /** Single-mode SIGHUP: log files reopened, nothing else to re-read. */
  | { event: 'reopen'; files: string[] }
  );

export type DataMode = 'active' | 'passive';

export interface EventSink {
  (e: GatewayEvent): void;
  /**
   * Whether events of this name are used at all (logged at the level set,
   * counted, written). Absent: every event is. The gateway asks before it
   * builds one per control line, which at the usual levels nobody reads.
   */
  wants?: ((event: GatewayEvent['event']) => boolean) | undefined;
}

export const noEvents: EventSink = () => {};

/** Does `sink` use events of this name? */
export function wants(sink: EventSink, event: GatewayEvent['event']): boolean {
  return sink.wants?.(event) ?? true;
}

/** The tracker's records (src/alg/transfer-log.ts) as the `login`/`transfer` events of one session. */
export function trackerEvents(records: TrackerRecord[], session: string, client: string): GatewayEvent[] {
  return records.map((r) => (r.kind === 'login' ? { event: 'login', session, client, ...r.record } : { event: 'transfer', session, client, ...r.record }));
}
