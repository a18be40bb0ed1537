/**
 * Prometheus metrics, counted from the gateway's events: a sink subscriber
 * like the log, never a second bookkeeping inside the gateway (DESIGN.md).
 * Only what no event carries — how many ports of a pool are taken right now
 * — is read at scrape time from the pools themselves.
 *
 * Label values come from the gateway (listener names, reason codes, rewrite
 * kinds), never from a peer: a client cannot grow the series count.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EventSink, GatewayEvent } from './events.js';
import type { PortPool } from './ports.js';

export interface PoolSource {
  listeners: ReadonlyArray<{ name: string; gateway: { pools: { passive: PortPool; active: PortPool } } }>;
}

/** Session close reasons are free text ("server error: read ECONNRESET"); the label is its first words. */
export function closeReasonLabel(reason: string): string {
  const head = reason.split(':', 1)[0]!.trim();
  return /^[A-Za-z][A-Za-z _-]{0,39}$/.test(head) ? head.replace(/ /g, '_') : 'other';
}

/** Listener label of an event; single-mode gateways are named too, so '' is rare. */
const where = (e: GatewayEvent) => e.listener ?? '';

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly open = new Map<string, string>();
  private readonly sessionsActive: Gauge;
  private readonly sessionsTotal: Counter;
  private readonly refusals: Counter;
  private readonly rewrites: Counter;
  private readonly dataConnections: Counter;
  private readonly transfers: Counter;
  private readonly transferBytes: Counter;
  private readonly transferSeconds: Histogram;
  private readonly logins: Counter;
  private readonly kernelMappings: Counter;
  private readonly kernelMappingSeconds: Histogram;
  private readonly reloads: Counter;

  constructor(pools: () => PoolSource | undefined) {
    const registers = [this.registry];
    const counter = (name: string, help: string, labelNames: string[]) => new Counter({ name, help, labelNames, registers });
    this.sessionsActive = new Gauge({ name: 'ftp_alg_sessions_active', help: 'control sessions open now', labelNames: ['listener'], registers });
    this.sessionsTotal = counter('ftp_alg_sessions_total', 'control sessions ended, by close reason', ['listener', 'reason']);
    this.refusals = counter('ftp_alg_refusals_total', 'refusals by reason code (README: Reason codes)', ['listener', 'code']);
    this.rewrites = counter('ftp_alg_rewrites_total', 'control lines rewritten, by kind (PORT, EPRT, 227, 229, …)', ['listener', 'kind']);
    this.dataConnections = counter('ftp_alg_data_connections_total', 'data connections set up, by mode and data path', ['listener', 'mode', 'data_path']);
    this.transfers = counter('ftp_alg_transfers_total', 'data transfers ended, by direction and final reply class', ['listener', 'direction', 'result']);
    this.transferBytes = counter('ftp_alg_transfer_bytes_total', 'data bytes moved, by direction as the user sees it', ['listener', 'direction']);
    this.transferSeconds = new Histogram({
      name: 'ftp_alg_transfer_duration_seconds',
      help: 'transfer command to its end',
      labelNames: ['listener', 'direction'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800],
      registers,
    });
    this.logins = counter('ftp_alg_logins_total', 'login attempts answered, ok (2xx) or failed', ['listener', 'result']);
    this.kernelMappings = counter('ftp_alg_kernel_mapping_operations_total', 'kernel data path: nftables mappings added (map) and removed (unmap)', ['listener', 'action']);
    this.kernelMappingSeconds = new Histogram({
      name: 'ftp_alg_kernel_mapping_duration_seconds',
      help: 'kernel data path: time nft took for one mapping operation',
      labelNames: ['listener', 'action'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    this.reloads = counter('ftp_alg_reloads_total', 'configuration reloads, applied (ok) or refused (failed)', ['result']);
    const ports = (name: string, help: string, value: (p: PortPool) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['listener', 'pool'],
        registers,
        collect() {
          this.reset();
          for (const l of pools()?.listeners ?? []) {
            for (const [pool, p] of Object.entries(l.gateway.pools)) {
              const v = value(p);
              if (v !== undefined) this.set({ listener: l.name, pool }, v);
            }
          }
        },
      });
    ports('ftp_alg_ports_in_use', 'data ports of a range taken now', (p) => (p.range ? p.used : undefined));
    ports('ftp_alg_ports_free', 'data ports of a range free now', (p) => (p.range ? p.size - p.used : undefined));
    collectDefaultMetrics({ register: this.registry });
  }

  readonly sink: EventSink = (e) => {
    const listener = where(e);
    switch (e.event) {
      case 'session-open':
        this.open.set(e.session, listener);
        this.sessionsActive.inc({ listener });
        return;
      case 'session-close': {
        const opened = this.open.get(e.session);
        if (opened !== undefined) {
          this.open.delete(e.session);
          this.sessionsActive.dec({ listener: opened });
        }
        this.sessionsTotal.inc({ listener, reason: closeReasonLabel(e.reason) });
        return;
      }
      case 'refuse':
        this.refusals.inc({ listener, code: e.code });
        return;
      case 'rewrite':
        this.rewrites.inc({ listener, kind: e.kind });
        return;
      case 'data-open':
        this.dataConnections.inc({ listener, mode: e.mode, data_path: 'relay' });
        return;
      case 'data-nat':
        this.kernelMappings.inc({ listener, action: e.action });
        if (e.action === 'map') this.dataConnections.inc({ listener, mode: e.mode, data_path: 'kernel' });
        if (e.durationMs !== undefined) this.kernelMappingSeconds.observe({ listener, action: e.action }, e.durationMs / 1000);
        return;
      case 'transfer': {
        const labels = { listener, direction: e.direction };
        this.transfers.inc({ ...labels, result: e.reply >= 200 && e.reply < 300 ? 'ok' : 'failed' });
        if (e.bytes !== undefined) this.transferBytes.inc(labels, e.bytes);
        this.transferSeconds.observe(labels, e.durationMs / 1000);
        return;
      }
      case 'login':
        this.logins.inc({ listener, result: e.reply >= 200 && e.reply < 300 ? 'ok' : 'failed' });
        return;
      case 'reload':
        this.reloads.inc({ result: 'ok' });
        return;
      case 'reload-failed':
        this.reloads.inc({ result: 'failed' });
        return;
      default:
        return;
    }
  };
}
