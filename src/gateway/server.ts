/**
 * The gateway's listener: accepts control connections, gives each one a
 * session, keeps the registry, and shuts down gracefully.
 */
import net, { type Socket } from 'node:net';
import { ControlSession, type ServerDialer, type SessionConfig } from './session.js';
import type { CommonGatewayConfig } from '../config.js';
import { PortPool } from './ports.js';
import { REASON } from '../alg/policy.js';
import { encodeLine } from '../protocol/framer.js';
import { ipOf, networkOf, type Cidr } from '../protocol/address.js';
import type { EventSink } from './events.js';
import { KernelNat } from './kernel-nat.js';
import { KernelDataPath, RelayDataPath } from './data-path.js';

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
 * The kernel data path's table, when configured. Created before the gateway
 * listens, so that a gateway that cannot program nftables fails at start.
 */
export async function kernelNatFor(cfg: CommonGatewayConfig, sink: EventSink): Promise<KernelNat | undefined> {
  if (cfg.dataPath !== 'kernel') return undefined;
  let nat: KernelNat;
  try {
    nat = await KernelNat.create(cfg.nftTable);
  } catch (err) {
    throw new Error(`--data-path kernel: ${(err as Error).message}`, { cause: err });
  }
  const problem = await KernelNat.forwardingProblem();
  if (problem) sink({ event: 'warning', message: problem });
  return nat;
}

/** Starts a gateway; a kernel table made for it goes away if the start fails. */
export async function startWithKernelNat(nat: KernelNat | undefined, opts: GatewayOptions): Promise<Gateway> {
  try {
    return await Gateway.start({ ...opts, onClosed: nat ? () => nat.close() : undefined });
  } catch (err) {
    await nat?.close().catch(() => undefined);
    throw err;
  }
}

/** The parts of a session's configuration both modes take from the flags alike. */
export function sessionLimits(cfg: CommonGatewayConfig, kernelNat: KernelNat | undefined, sink: EventSink) {
  const pathOptions = {
    pools: { passive: new PortPool(cfg.passivePorts), active: new PortPool(cfg.activePorts) },
    acceptTimeoutMs: cfg.acceptTimeoutMs,
    dataIdleTimeoutMs: cfg.dataIdleTimeoutMs,
    completionLingerMs: cfg.completionLingerMs,
    sink,
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
      listener.once('error', reject);
      listener.listen({ host: opts.listen.host, port: opts.listen.port }, () => {
        listener.off('error', reject);
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
      this.opts.sink({ event: 'refuse', kind: 'session', code: REASON.TOO_MANY_SESSIONS, message: `over the limit of ${which}` });
      socket.end(encodeLine(`421 Too many sessions (${which}); try again later`));
      socket.resume(); // read the client's FIN so that the socket can close
      setTimeout(() => socket.destroy(), 2_000).unref();
      return;
    }
    socket.setNoDelay(true);
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

  /**
   * Stops accepting, gives running sessions up to `drainMs` to finish, then
   * closes what is left. Resolves when nothing of ours is open.
   */
  async close(drainMs = 0): Promise<void> {
    this.closing = true;
    const stopped = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    if (drainMs > 0 && this.sessions.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([...this.sessions].map((s) => s.closed)),
        new Promise((r) => (timer = setTimeout(r, drainMs))),
      ]);
      clearTimeout(timer);
    }
    for (const s of this.sessions) s.close('gateway shutting down');
    await stopped;
    const onClosed = this.opts.onClosed;
    this.opts.onClosed = undefined;
    await onClosed?.();
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
