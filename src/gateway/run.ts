/**
 * `ftp-alg run`: every listener of a config file in one process, and what a
 * reload (SIGHUP) does to them. Listeners are known by name (YAML `name:`,
 * default `mode@listen`): every event of a listener carries that name.
 */
import type { NamedListener, RunConfig, ServiceConfig } from '../config-file.js';
import { ConfigError } from '../config.js';
import { AppendFile, transferLogSink } from './transfer-log-file.js';
import { AdminServer } from './admin.js';
import { wants, type EventSink } from './events.js';
import { startForwardGateway } from './forward.js';
import type { GatewayMetrics } from './metrics.js';
import { startReverseGateway } from './reverse.js';
import { listenError, type Gateway } from './server.js';

interface Running {
  config: NamedListener;
  gateway: Gateway;
}

export interface ReloadDiff {
  added: string[];
  removed: string[];
  changed: string[];
}

/**
 * Every event of a listener's gateway that `sink` wants, with the listener's
 * name. The copy is skipped for the rest: at the usual log levels most
 * per-transfer events are wanted by nobody.
 */
export function listenerSink(name: string, sink: EventSink): EventSink {
  const named: EventSink = (e) => {
    if (wants(sink, e.event)) sink({ ...e, listener: name });
  };
  named.wants = (event) => wants(sink, event);
  return named;
}

async function startOne(l: NamedListener, sink: EventSink): Promise<Gateway> {
  const named = listenerSink(l.name, sink);
  return l.mode === 'reverse' ? startReverseGateway(l, named) : startForwardGateway(l, named);
}

export class ListenerSet {
  private readonly running = new Map<string, Running>();
  /** Removed or replaced by a reload, still carrying their sessions to the end. */
  private readonly retiring = new Set<Gateway>();

  private constructor(private readonly sink: EventSink) {}

  /**
   * Starts the listeners in file order. If one cannot start, those already
   * up are closed again (nothing left listening) and the error is passed on.
   */
  static async start(listeners: NamedListener[], sink: EventSink): Promise<ListenerSet> {
    const set = new ListenerSet(sink);
    try {
      for (const l of listeners) set.running.set(l.name, { config: l, gateway: await startOne(l, sink) });
      return set;
    } catch (err) {
      await set.close(0);
      throw err;
    }
  }

  /** Running listeners by name (for /metrics and /readyz). */
  get listeners(): ReadonlyArray<{ name: string; gateway: Gateway }> {
    return [...this.running.values()].map((r) => ({ name: r.config.name, gateway: r.gateway }));
  }

  /** Every gateway still open, draining ones included. */
  get gateways(): Gateway[] {
    return [...[...this.running.values()].map((r) => r.gateway), ...this.retiring];
  }

  get sessionCount(): number {
    return this.gateways.reduce((n, g) => n + g.sessions.size, 0);
  }

  get ready(): boolean {
    return this.running.size > 0 && [...this.running.values()].every((r) => r.gateway.accepting);
  }

  /**
   * Moves to `next`: listeners added are opened, removed ones stop
   * accepting and drain, changed ones are replaced (the old one drains, the
   * new one takes new sessions). Sessions already running keep the settings
   * they started with and are never cut. If a listener cannot be opened,
   * what this reload opened is closed again and the error is passed on;
   * then every listener runs as before, except that a changed listener on
   * the same address is back on its old settings.
   */
  async apply(next: NamedListener[]): Promise<ReloadDiff> {
    const wanted = new Map(next.map((l) => [l.name, l]));
    const added = next.filter((l) => !this.running.has(l.name));
    const changed = next.filter((l) => {
      const old = this.running.get(l.name);
      return old !== undefined && old.config.fingerprint !== l.fingerprint;
    });
    const removed = [...this.running.values()].filter((r) => !wanted.has(r.config.name));

    const opened: Running[] = [];
    try {
      for (const l of added) opened.push({ config: l, gateway: await startOne(l, this.sink) });
    } catch (err) {
      await Promise.all(opened.map((r) => r.gateway.close(0)));
      throw err;
    }
    for (const r of opened) this.running.set(r.config.name, r);

    for (const l of changed) {
      const old = this.running.get(l.name)!;
      // Same address: the old listener must let go of it first.
      const sameAddress = old.config.listen.host === l.listen.host && old.config.listen.port === l.listen.port && l.listen.port !== 0;
      if (sameAddress) old.gateway.stopAccepting();
      let gateway: Gateway;
      try {
        gateway = await startOne(l, this.sink);
      } catch (err) {
        if (sameAddress) {
          // Back to the old settings on the old address: nothing changed for this listener.
          this.running.set(l.name, { config: old.config, gateway: await startOne(old.config, this.sink) });
          this.retire(old.gateway);
        }
        throw err;
      }
      this.running.set(l.name, { config: l, gateway });
      this.retire(old.gateway);
    }

    for (const r of removed) {
      this.running.delete(r.config.name);
      this.retire(r.gateway);
    }
    return { added: added.map((l) => l.name), removed: removed.map((r) => r.config.name), changed: changed.map((l) => l.name) };
  }

  private retire(gateway: Gateway): void {
    this.retiring.add(gateway);
    void gateway.retire().finally(() => this.retiring.delete(gateway));
  }

  /** Shutdown: every listener, draining ones too, gets `drainMs`, then what is left is closed. */
  async close(drainMs: number): Promise<void> {
    await Promise.all(this.gateways.map((g) => g.close(drainMs)));
  }
}

/** Starts every listener of a file; kept for callers that need only the gateways. */
export async function startListeners(cfg: { listeners: NamedListener[] }, sink: EventSink): Promise<Gateway[]> {
  return (await ListenerSet.start(cfg.listeners, sink)).gateways;
}

/** What a running service needs besides its listeners. */
export interface ServiceOptions {
  service: ServiceConfig;
  listeners: NamedListener[];
  /** The log; metrics and the transfer log are added here. */
  log: EventSink;
  /** `run --config`: where reloads read from. Single mode: undefined (SIGHUP only reopens files). */
  configFile?: { path: string; read: () => RunConfig } | undefined;
  /** Applies a new log level on reload. */
  setLogLevel?: ((level: NonNullable<RunConfig['logLevel']>) => void) | undefined;
}

/**
 * A gateway process: its listeners, the admin endpoint, the transfer log,
 * and what signals do to them (the CLI maps signals to these methods).
 */
export class Service {
  private metrics: GatewayMetrics | undefined;
  private admin: AdminServer | undefined;
  private transferLog: AppendFile | undefined;
  private draining = false;
  private reloading: Promise<void> = Promise.resolve();
  readonly sink: EventSink;

  private constructor(
    private service: ServiceConfig,
    private readonly opts: ServiceOptions,
    private set: ListenerSet | undefined,
  ) {
    this.sink = (e) => {
      opts.log(e);
      this.metrics?.sink(e);
      if (this.transferLog && e.event === 'transfer') this.xfer(e);
    };
    // Metrics count no control lines; the transfer log takes only transfers.
    this.sink.wants = (event) => wants(opts.log, event) || (this.metrics !== undefined && event !== 'control') || (this.transferLog !== undefined && event === 'transfer');
  }

  /** Opens the transfer log, the admin endpoint, then the listeners; any failure closes what was opened. */
  static async start(opts: ServiceOptions): Promise<Service> {
    const s = new Service(opts.service, opts, undefined);
    try {
      if (opts.service.transferLog) s.transferLog = new AppendFile(opts.service.transferLog);
      if (opts.service.adminListen) await s.openAdmin(opts.service.adminListen);
      s.set = await ListenerSet.start(opts.listeners, s.sink);
      return s;
    } catch (err) {
      await s.admin?.close();
      s.transferLog?.close();
      throw err;
    }
  }

  get listeners(): ListenerSet | undefined {
    return this.set;
  }

  get adminAddress(): { address: string; port: number } | undefined {
    return this.admin?.address;
  }

  private xfer(e: Parameters<EventSink>[0]): void {
    try {
      transferLogSink(this.transferLog!)(e);
    } catch (err) {
      this.opts.log({ event: 'warning', message: `transfer log ${this.transferLog!.path}: ${(err as Error).message}` });
    }
  }

  private async openAdmin(listen: NonNullable<ServiceConfig['adminListen']>): Promise<void> {
    // prom-client is loaded only when metrics are asked for: every other command starts faster.
    const { GatewayMetrics: Metrics } = await import('./metrics.js');
    this.metrics ??= new Metrics(() => this.set);
    const metrics = this.metrics;
    try {
      this.admin = await AdminServer.start(listen, {
        serving: () => !this.draining,
        ready: () => !this.draining && (this.set?.ready ?? false),
        registry: metrics.registry,
      });
    } catch (err) {
      throw new Error(`admin endpoint: cannot listen: ${listenError(err as NodeJS.ErrnoException, listen).message}`, { cause: err });
    }
    if (!listen.loopback) {
      this.sink({ event: 'warning', message: `admin endpoint on ${listen.host}:${listen.port}, not loopback: /metrics is readable by anyone who reaches that address (no authentication)` });
    }
  }

  /**
   * SIGHUP. Reopens the transfer log; with a config file, re-reads it and
   * applies it. An invalid file changes nothing: a `reload-failed` event
   * names the file and the key. Reloads run one after another.
   */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(() => this.reloadNow());
    return this.reloading;
  }

  private async reloadNow(): Promise<void> {
    const reopened = this.reopenFiles();
    this.reloadCertificates();
    const file = this.opts.configFile;
    if (!file) {
      this.sink({ event: 'reopen', files: reopened });
      return;
    }
    const failed = (key: string, message: string) => this.sink({ event: 'reload-failed', file: file.path, key, message });
    let next: RunConfig;
    try {
      next = file.read();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const key = err.key.startsWith(`${file.path}: `) ? err.key.slice(file.path.length + 2) : err.key.startsWith(file.path) ? '' : err.key;
      failed(key, err.detail);
      return;
    }
    // Who we run as was settled at start, after binding: it cannot change now.
    for (const k of ['user', 'group'] as const) {
      if (next[k] !== this.service[k]) return failed(k, `changed from ${this.service[k] ?? '(none)'} to ${next[k] ?? '(none)'}: needs a restart`);
    }
    const adminChanged = JSON.stringify(next.adminListen) !== JSON.stringify(this.service.adminListen);
    let diff: ReloadDiff;
    try {
      diff = await this.set!.apply(next.listeners);
    } catch (err) {
      return failed('listeners', (err as Error).message);
    }
    if (next.transferLog !== this.service.transferLog) this.switchTransferLog(next.transferLog);
    if (adminChanged) {
      await this.admin?.close();
      this.admin = undefined;
      if (next.adminListen) {
        try {
          await this.openAdmin(next.adminListen);
        } catch (err) {
          this.sink({ event: 'warning', message: (err as Error).message });
        }
      }
    }
    if (next.logLevel) this.opts.setLogLevel?.(next.logLevel);
    this.service = next;
    this.sink({ event: 'reload', file: file.path, ...diff });
  }

  private switchTransferLog(path: string | undefined): void {
    try {
      const file = path ? new AppendFile(path) : undefined;
      this.transferLog?.close();
      this.transferLog = file;
    } catch (err) {
      this.sink({ event: 'warning', message: `transfer log ${path}: ${(err as Error).message}; still writing to ${this.transferLog?.path ?? 'nothing'}` });
    }
  }

  /**
   * Renewed certificates (certbot, an internal CA) are put in place and
   * announced with SIGHUP: every listener that ends TLS reads its pair
   * again. A pair that does not load leaves the old one in use.
   */
  private reloadCertificates(): void {
    for (const g of this.set?.gateways ?? []) {
      try {
        g.reloadCertificate();
      } catch (err) {
        this.sink({ event: 'warning', message: `certificate not re-read, the old one stays in use: ${(err as Error).message}` });
      }
    }
  }

  /** logrotate moved our files away: open them again by name. */
  private reopenFiles(): string[] {
    if (!this.transferLog) return [];
    try {
      this.transferLog.reopen();
      return [this.transferLog.path];
    } catch (err) {
      this.sink({ event: 'warning', message: `cannot reopen ${this.transferLog.path}: ${(err as Error).message}; still writing to the old file` });
      return [];
    }
  }

  get sessionCount(): number {
    return this.set?.sessionCount ?? 0;
  }

  get drainMs(): number {
    return this.service.drainMs;
  }

  /**
   * SIGTERM: stop accepting everywhere (/healthz turns 503), let sessions
   * finish for up to `drainMs`, close the rest, release what we installed.
   */
  async shutdown(drainMs: number): Promise<void> {
    this.draining = true;
    try {
      await this.set?.close(drainMs);
    } finally {
      await this.admin?.close();
      this.transferLog?.close();
      this.transferLog = undefined;
    }
  }
}
