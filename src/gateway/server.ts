/**
 * The gateway's listener: accepts control connections, gives each one a
 * session, keeps the registry, and shuts down gracefully.
 */
import net, { type Socket } from 'node:net';
import { ControlSession, type ServerDialer, type SessionConfig } from './session.js';
import type { CommonGatewayConfig } from '../config.js';
import { dataPortPools, type PortPool } from './ports.js';
import { REASON } from '../codes.js';
import { encodeLine } from '../protocol/framer.js';
import { formatEndpoint, ipOf, networkOf, type Cidr } from '../protocol/address.js';
import type { EventSink } from './events.js';
import { KernelNat } from './kernel-nat.js';
import { KernelDataPath, RelayDataPath } from './data-path.js';
import { keepUrgentInline } from './original-dst.js';

export interface GatewayOptions {
  mode: 'reverse' | 'forward';
  listen: { host: string; port: number };
  session: SessionConfig;
  dialServer: ServerDialer;
  sink: EventSink;
  maxSessions: number;
  maxSessionsPerClient: number;
  /** Balancers (--proxy-protocol-from): not capped here; the dialer caps the clients their headers name. */
  uncappedSources?: readonly Cidr[] | undefined;
  /** Runs once every session is gone: releases what the gateway set up (kernel table). */
  onClosed?: (() => Promise<void>) | undefined;
}

/**
 * Kernel tables in use, by name. A reload that replaces a kernel-path
 * listener starts the new gateway while the old one still drains: both use
 * the one table (creating it again would flush the old sessions' mappings),
 * and it is deleted when the last of them closes.
 */
const kernelTables = new Map<string, { nat: KernelNat; users: number }>();

/**
 * The kernel data path's table, when configured. Created before the gateway
 * listens, so that a gateway that cannot program nftables fails at start.
 */
export async function kernelNatFor(cfg: CommonGatewayConfig, sink: EventSink): Promise<KernelNat | undefined> {
  if (cfg.dataPath !== 'kernel') return undefined;
  const shared = kernelTables.get(cfg.nftTable);
  if (shared) {
    shared.users++;
    return shared.nat;
  }
  let nat: KernelNat;
  try {
    nat = await KernelNat.create(cfg.nftTable);
  } catch (err) {
    throw new Error(`--data-path kernel: ${(err as Error).message}`, { cause: err });
  }
  kernelTables.set(cfg.nftTable, { nat, users: 1 });
  const problem = await KernelNat.forwardingProblem();
  if (problem) sink({ event: 'warning', message: problem });
  return nat;
}

async function releaseKernelNat(nat: KernelNat): Promise<void> {
  const entry = [...kernelTables.entries()].find(([, e]) => e.nat === nat);
  if (entry && --entry[1].users > 0) return;
  if (entry) kernelTables.delete(entry[0]);
  await nat.close();
}

/** Starts a gateway; a kernel table made for it goes away if the start fails. */
export async function startWithKernelNat(nat: KernelNat | undefined, opts: GatewayOptions): Promise<Gateway> {
  try {
    return await Gateway.start({ ...opts, onClosed: nat ? () => releaseKernelNat(nat) : undefined });
  } catch (err) {
    await (nat && releaseKernelNat(nat).catch(() => undefined));
    throw err;
  }
}

/**
 * A listen error as one line an operator can act on: a port below 1024
 * without the capability says which capability (issue 13).
 */
export function listenError(err: NodeJS.ErrnoException, listen: { host: string; port: number }): Error {
  const hint = err.code === 'EACCES' && listen.port > 0 && listen.port < 1024 ? ': ports below 1024 need root or CAP_NET_BIND_SERVICE' : '';
  return Object.assign(new Error(`${err.message}${hint}`, { cause: err }), { code: err.code });
}

/** The parts of a session's configuration both modes take from the flags alike. */
export function sessionLimits(cfg: CommonGatewayConfig, kernelNat: KernelNat | undefined, proxyProtocolFrom?: readonly Cidr[]) {
  const { passivePool, activePool } = dataPortPools(cfg.passivePorts, cfg.activePorts, cfg.maxDataListenersPerClient);
  const pathOptions = {
    pools: { passive: passivePool, active: activePool },
    acceptTimeoutMs: cfg.acceptTimeoutMs,
    dataIdleTimeoutMs: cfg.dataIdleTimeoutMs,
    completionLingerMs: cfg.completionLingerMs,
    proxyProtocolFrom,
  };
  return {
    dataPath: kernelNat ? new KernelDataPath(kernelNat, pathOptions) : new RelayDataPath(pathOptions),
    maxLineBytes: cfg.maxLineBytes,
    loginTimeoutMs: cfg.loginTimeoutMs,
    idleTimeoutMs: cfg.idleTimeoutMs,
  };
}

let nextSessionNumber = 0;

function sessionId(): string {
  nextSessionNumber = (nextSessionNumber + 1) % 0x1000000;
  return `${process.pid.toString(36)}-${nextSessionNumber.toString(36)}`;
}

/**
 * Whom the per-client cap counts: an IPv4 address, or an IPv6 /64 — one
 * host usually holds a whole /64 and could otherwise take every slot.
 */
export function clientKey(remoteAddress: string): string {
  const ip = ipOf(remoteAddress);
  return ip.family === 4 ? ip.address : networkOf(ip, 64);
}

export class Gateway {
  readonly sessions = new Set<ControlSession>();
  private readonly perClient = new Map<string, number>();
  private closing = false;
  private retired: Promise<void> | undefined;
  private released: Promise<void> | undefined;
  private listenerGone: Promise<void> | undefined;
  /**
   * How the last client's ABOR urgent byte is handled: kept in line by the
   * socket (SO_OOBINLINE), or lost and the ABOR repaired by the framer.
   */
  urgentData: 'inline' | 'repair' | undefined;

  private constructor(
    private readonly listener: net.Server,
    private readonly opts: GatewayOptions,
  ) {}

  static async start(opts: GatewayOptions): Promise<Gateway> {
    // allowHalfOpen: a client that sends QUIT and shuts its side down still
    // gets the server's 221.
    const listener = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    const gateway = new Gateway(listener, opts);
    listener.on('connection', (socket) => gateway.onConnection(socket));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', (err) => reject(listenError(err, opts.listen)));
      listener.listen({ host: opts.listen.host, port: opts.listen.port }, () => {
        listener.removeAllListeners('error');
        resolve();
      });
    });
    listener.on('error', (err) => opts.sink({ event: 'warning', message: `listener error: ${err.message}` }));
    const { address, port } = gateway.address;
    opts.sink({ event: 'listening', address, port, mode: opts.mode });
    return gateway;
  }

  get address(): { address: string; port: number; family: string } {
    const a = this.listener.address() as net.AddressInfo;
    return { address: a.address, port: a.port, family: a.family };
  }

  private onConnection(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    socket.on('error', () => undefined); // a reset before the session takes over is not ours to report
    if (!socket.remoteAddress) {
      // Reset while it waited in the accept queue: nobody left to serve.
      socket.destroy();
      return;
    }
    const uncapped = this.opts.uncappedSources?.some((c) => c.contains(ipOf(socket.remoteAddress!))) ?? false;
    const client = uncapped ? '' : clientKey(socket.remoteAddress);
    const fromClient = uncapped ? 0 : (this.perClient.get(client) ?? 0);
    const { maxSessions, maxSessionsPerClient } = this.opts;
    if (this.sessions.size >= maxSessions || fromClient >= maxSessionsPerClient) {
      const which = this.sessions.size >= maxSessions ? `${maxSessions} sessions in all` : `${maxSessionsPerClient} sessions from ${client}`;
      this.refuseAtOnce(socket, `over the limit of ${which}`);
      socket.end(encodeLine(`421 Too many sessions (${which}); try again later`));
      socket.resume(); // read the client's FIN so that the socket can close
      setTimeout(() => socket.destroy(), 2_000).unref();
      return;
    }
    socket.setNoDelay(true);
    this.keepUrgentInline(socket);
    const session = new ControlSession(sessionId(), socket, this.opts.session, this.opts.sink, this.opts.dialServer);
    this.sessions.add(session);
    if (!uncapped) this.perClient.set(client, fromClient + 1);
    void session.closed.then(() => {
      this.sessions.delete(session);
      if (uncapped) return;
      const left = (this.perClient.get(client) ?? 1) - 1;
      if (left > 0) this.perClient.set(client, left);
      else this.perClient.delete(client);
    });
    session.start().catch((err: Error) => session.close(`internal error: ${err.message}`, '421 Internal gateway error'));
  }

  /** Before the first read (the socket is paused on accept), so that no urgent byte is lost. */
  private keepUrgentInline(socket: Socket): void {
    const result = keepUrgentInline(socket);
    const path = result.inline ? 'inline' : 'repair';
    if (!result.inline && this.urgentData !== 'repair') {
      this.opts.sink({ event: 'warning', message: `${result.reason}: the byte a client sends urgent with ABOR is lost; ABOR is repaired instead` });
    }
    this.urgentData = path;
  }

  /**
   * A session refused before it starts is still a session in the log:
   * `session-open` first (the client's address is logged), then why, then
   * its close — the same three events every session has.
   */
  private refuseAtOnce(socket: Socket, message: string): void {
    const session = sessionId();
    const client = formatEndpoint({ ...ipOf(socket.remoteAddress ?? '0.0.0.0'), port: socket.remotePort ?? 0 });
    const sink = this.opts.sink;
    sink({ event: 'session-open', session, client, server: '' });
    sink({ event: 'refuse', session, kind: 'session', code: REASON.TOO_MANY_SESSIONS, message });
    sink({ event: 'session-close', session, reason: REASON.TOO_MANY_SESSIONS, bytesUp: 0, bytesDown: 0, durationMs: 0 });
  }

  /** Closes the listening socket: its address is free again at once; running sessions go on. */
  stopAccepting(): void {
    this.closing = true;
    // close() releases the address at once; its callback waits for every
    // connection it accepted, which is what `listenerGone` tracks.
    this.listenerGone ??= new Promise<void>((resolve) => this.listener.close(() => resolve()));
  }

  /**
   * Reads its TLS certificate and key again (SIGHUP), for sessions that
   * start from now on. Throws with a one-line reason; the old pair stays.
   */
  reloadCertificate(): boolean {
    const tls = this.opts.session.tls;
    if (!tls?.reload) return false;
    tls.reload();
    return true;
  }

  /** Whether it still accepts new sessions (not draining). */
  get accepting(): boolean {
    return !this.closing;
  }

  /** The data port pools its sessions take from (for /metrics). */
  get pools(): { passive: PortPool; active: PortPool } {
    return this.opts.session.dataPath.pools;
  }

  /**
   * A reload removed or replaced this listener: stop accepting now, let
   * every running session end on its own (never cut), then release what it
   * set up. `close()` still ends it early (shutdown).
   */
  retire(): Promise<void> {
    this.retired ??= (async () => {
      this.stopAccepting();
      await Promise.all([...this.sessions].map((s) => s.closed));
      await this.release();
    })();
    return this.retired;
  }

  /**
   * Stops accepting, gives running sessions up to `drainMs` to finish, then
   * closes what is left. Resolves when nothing of ours is open.
   */
  async close(drainMs = 0): Promise<void> {
    this.stopAccepting();
    if (drainMs > 0 && this.sessions.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([...this.sessions].map((s) => s.closed)),
        new Promise((r) => (timer = setTimeout(r, drainMs))),
      ]);
      clearTimeout(timer);
    }
    for (const s of this.sessions) s.close('gateway shutting down');
    await this.listenerGone;
    await this.release();
    await this.retired;
  }

  /** Runs onClosed once; every caller waits for that one run (a second SIGTERM must not exit before it ends). */
  private release(): Promise<void> {
    this.released ??= this.opts.onClosed?.() ?? Promise.resolve();
    return this.released;
  }
}

/** Reverse mode: every session goes to the one configured server. */
export function fixedServerDialer(target: { host: string; port: number }, connectTimeoutMs: number): ServerDialer {
  return async () => ({ server: await connectServer(target, connectTimeoutMs) });
}

/** Connects to an FTP server; rejects with a one-line reason. */
export function connectServer(target: { host: string; port: number }, connectTimeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${target.host}:${target.port} timed out after ${connectTimeoutMs} ms`));
    }, connectTimeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      // Until the session attaches its own handler, an error (a reset right
      // after the greeting) must not become an uncaught exception; the
      // session sees the socket destroyed and reports it.
      socket.on('error', () => undefined);
      socket.setNoDelay(true);
      resolve(socket);
    });
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(`cannot connect to ${target.host}:${target.port}: ${err.code ?? err.message}`));
    };
    socket.once('error', onError);
  });
}
