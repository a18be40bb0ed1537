/**
 * What the gateway reports. The gateway calls one sink; logs, tests and
 * metrics subscribe to it. Field names are the log contract (DESIGN.md).
 */
import type { ReasonCode } from '../codes.js';
import type { Direction } from '../alg/control-stream.js';

export type { Direction };

export type GatewayEvent =
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
    }
  | { event: 'control'; session: string; direction: Direction; line: string }
  | { event: 'warning'; session?: string; message: string }
  /** A bug met inside a session: that session ends, the process goes on. */
  | { event: 'internal-error'; session: string; message: string; stack: string }
  | { event: 'shutdown'; reason: string; sessions: number };

export type DataMode = 'active' | 'passive';

export type EventSink = (e: GatewayEvent) => void;

export const noEvents: EventSink = () => {};
