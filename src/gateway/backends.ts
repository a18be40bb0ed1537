/**
 * Several FTP servers behind one reverse listener: which one a session gets
 * (balance), which ones are skipped (passive and active health), and the
 * dialer that connects a session to its backend, optionally after reading a
 * balancer's PROXY header and before writing our own. A session keeps the
 * backend it got for its whole life: its data connections and its login
 * state live there.
 */
import type { Socket } from 'node:net';
import type { Balance, HostPort } from '../config.js';
import { ipOf, networkOf, sameAddress, type Cidr, type Endpoint, type IpAddress } from '../protocol/address.js';
import { encodeProxyHeader } from '../protocol/proxy-header.js';
import { encodeLine } from '../protocol/framer.js';
import { REASON } from '../codes.js';
import { balancerLoginStep } from '../alg/proxy-login.js';
import type { Direction, EventSink } from './events.js';
import { clientKey, connectServer } from './server.js';
import { readGreeting, readProxyLogin, type LoginDialogue } from './pre-login.js';
import { readProxyHeader } from './proxy-in.js';
import { secureServerControl, type ServerTlsOptions } from './tls.js';
import { DialRefusal, type DialContext, type DialResult, type ServerDialer } from './session.js';

export interface Backend {
  readonly target: HostPort;
  readonly label: string;
  /** Sessions on it now (least-connections). */
  sessions: number;
  /** Passive health: skipped until then (ms since the epoch). */
  downUntil: number;
  /** Active health: the last check failed; skipped until one succeeds. */
  failedCheck: boolean;
}

export interface BackendPoolOptions {
  balance: Balance;
  downMs: number;
  healthIntervalMs?: number | undefined;
  connectTimeoutMs: number;
  sendProxyProtocol?: 1 | 2 | undefined;
  /** `user`: names pinned to a backend before the hash (first match wins). */
  routes?: ReadonlyArray<{ matches: (user: string) => boolean; server: HostPort }> | undefined;
  sink: EventSink;
  /** --server-tls: each backend is secured before its greeting counts (health checks included); named by its own host unless --server-name. */
  serverTls?: { options: ServerTlsOptions; fixedName: boolean } | undefined;
  now?: () => number;
}

/** The key a sticky policy hashes; undefined for the others. */
export interface PickKey {
  client: IpAddress;
  user?: string | undefined;
}

export class BackendPool {
  readonly backends: Backend[];
  private turn = 0;
  private healthTimer: NodeJS.Timeout | undefined;
  private checking = false;
  private readonly now: () => number;

  constructor(
    targets: readonly HostPort[],
    private readonly opts: BackendPoolOptions,
  ) {
    this.backends = targets.map((target) => ({ target, label: hostPortLabel(target), sessions: 0, downUntil: 0, failedCheck: false }));
    this.now = opts.now ?? Date.now;
  }

  get balance(): Balance {
    return this.opts.balance;
  }

  isUp(b: Backend): boolean {
    return !b.failedCheck && this.now() >= b.downUntil;
  }

  /**
   * The backends to try, best first: the policy's choice, then the others
   * in ring order (failover); backends marked down are left out. Sticky
   * policies hash over all backends, up or not, so that a backend coming
   * back gets its clients back and the others keep theirs.
   */
  candidates(key: PickKey): Backend[] {
    const n = this.backends.length;
    let start: number;
    switch (this.opts.balance) {
      case 'source':
        start = hash(key.client.family === 4 ? key.client.address : networkOf(key.client, 64)) % n;
        break;
      case 'user':
        start = this.routedIndex(key.user ?? '') ?? hash(key.user ?? '') % n;
        break;
      default:
        start = this.turn++ % n;
    }
    const ring = this.backends.map((_, i) => this.backends[(start + i) % n]!).filter((b) => this.isUp(b));
    // Stable sort: equal loads keep ring order, so ties still rotate.
    if (this.opts.balance === 'least-connections') ring.sort((a, b) => a.sessions - b.sessions);
    return ring;
  }

  private routedIndex(user: string): number | undefined {
    const route = this.opts.routes?.find((r) => r.matches(user));
    if (!route) return undefined;
    const i = this.backends.findIndex((b) => b.target.host === route.server.host && b.target.port === route.server.port);
    return i < 0 ? undefined : i;
  }

  /** Passive health: a failure to connect or greet. */
  markDown(b: Backend, why: string): void {
    const wasUp = this.isUp(b);
    b.downUntil = this.now() + this.opts.downMs;
    if (wasUp) this.opts.sink({ event: 'warning', message: `backend ${b.label} down for ${this.opts.downMs / 1000} s: ${why}` });
  }

  private checked(b: Backend, failure: string | undefined): void {
    const wasUp = this.isUp(b);
    b.failedCheck = failure !== undefined;
    if (failure === undefined) b.downUntil = 0;
    const isUp = this.isUp(b);
    if (wasUp !== isUp) this.opts.sink({ event: 'warning', message: `backend ${b.label} ${isUp ? 'up again' : `down: ${failure}`} (health check)` });
  }

  /** Counts the session on its backend until the server connection closes. */
  attach(b: Backend, server: Socket): void {
    b.sessions++;
    server.once('close', () => b.sessions--);
  }

  /** Connects to one backend, sends our PROXY header, and reads its greeting. */
  async connect(b: Backend, proxy: ProxyEnds | undefined): Promise<Connected> {
    const server = await connectServer(b.target, this.opts.connectTimeoutMs);
    const header = this.opts.sendProxyProtocol ? encodeProxyHeader(this.opts.sendProxyProtocol, proxy ?? {}) : Buffer.alloc(0);
    if (header.length) server.write(header);
    const tls = this.opts.serverTls;
    if (tls) {
      // TLS before the USER that `user` balancing replays: the login must never cross in clear text.
      const secured = await secureServerControl(server, tls.fixedName ? tls.options : { ...tls.options, name: b.target.host });
      return { server: secured.server, header: header.length, greeting: secured.greeting, greetingBytes: secured.greeting.length };
    }
    const seen: Buffer[] = [];
    const collect = (chunk: Buffer) => seen.push(chunk);
    server.on('data', collect);
    try {
      const { greeting, consumed, leftover } = await readGreeting(server, this.opts.connectTimeoutMs);
      if (greeting.code !== 220) throw new Error(`greeted with ${greeting.code}`);
      return { server, header: header.length, greeting: Buffer.concat(seen), greetingBytes: consumed, leftover };
    } catch (err) {
      server.destroy();
      throw err;
    } finally {
      server.off('data', collect);
    }
  }

  startHealthChecks(): void {
    const interval = this.opts.healthIntervalMs;
    if (interval === undefined || this.healthTimer) return;
    this.healthTimer = setInterval(() => void this.checkAll(), interval);
    this.healthTimer.unref();
    void this.checkAll();
  }

  /** One round of active checks: connect, 220, QUIT. Rounds never overlap. */
  async checkAll(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      await Promise.all(
        this.backends.map(async (b) => {
          try {
            // LOCAL: a check of ours, not a client's connection.
            const { server } = await this.connect(b, this.opts.sendProxyProtocol === 2 ? { command: 'local' } : undefined);
            server.end(encodeLine('QUIT'));
            server.resume();
            setTimeout(() => server.destroy(), 1_000).unref();
            this.checked(b, undefined);
          } catch (err) {
            this.checked(b, (err as Error).message);
          }
        }),
      );
    } finally {
      this.checking = false;
    }
  }

  close(): void {
    clearInterval(this.healthTimer);
    this.healthTimer = undefined;
  }
}

interface ProxyEnds {
  command?: 'local';
  source?: Endpoint;
  destination?: Endpoint;
}

interface Connected {
  server: Socket;
  /** Bytes of our PROXY header. */
  header: number;
  /** Everything the server sent, greeting included. */
  greeting: Buffer;
  greetingBytes: number;
  leftover?: Buffer | undefined;
}

function hostPortLabel(t: HostPort): string {
  return t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/** FNV-1a: stable across processes and restarts, which sticky balancing needs. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const USER_LOGIN: LoginDialogue = {
  greeting: '220 FTP server ready',
  expects: 'USER name',
  step: balancerLoginStep,
};

export interface BackendDialerOptions {
  /** Control connections from these start with a PROXY header; from anyone else none is read. */
  proxyProtocolFrom: readonly Cidr[];
  loginTimeoutMs: number;
  /** The per-client cap for clients named by a PROXY header (the listener counted only the balancer's others). */
  maxSessionsPerClient: number;
}

/** Sessions per real client behind balancers, held while the backend connection is open. */
class ClientCounts {
  private readonly counts = new Map<string, number>();

  /** Counts the session, or says why not. */
  take(client: IpAddress, max: number): string | undefined {
    const key = clientKey(client.address);
    const n = this.counts.get(key) ?? 0;
    if (n >= max) return `${max} sessions from ${key}`;
    this.counts.set(key, n + 1);
    return undefined;
  }

  release(client: IpAddress): void {
    const key = clientKey(client.address);
    const left = (this.counts.get(key) ?? 1) - 1;
    if (left > 0) this.counts.set(key, left);
    else this.counts.delete(key);
  }
}

/**
 * The reverse dialer over a pool: who the client is (PROXY header from a
 * trusted balancer, else the socket), which backend (the pool's policy,
 * after USER for `user`), then the first backend in the pool's order that
 * connects and greets with 220.
 */
export function backendDialer(pool: BackendPool, opts: BackendDialerOptions): ServerDialer {
  const counts = new ClientCounts();
  return async (client, ctx) => {
    const socketPeer: Endpoint = { ...ipOf(client.remoteAddress ?? '0.0.0.0'), port: client.remotePort ?? 0 };
    const real: BalancedClient = { headerBytes: 0, source: socketPeer, destination: { ...ipOf(client.localAddress ?? '0.0.0.0'), port: client.localPort ?? 0 } };
    if (opts.proxyProtocolFrom.some((c) => c.contains(socketPeer))) {
      const read = await readProxyHeader(client, opts.loginTimeoutMs);
      // The balancer, not the client, failed: nothing we could say would reach a person.
      if (!read.ok) throw new DialRefusal({ code: REASON.PROXY_HEADER, message: read.message }, undefined);
      const { header, bytes } = read;
      real.headerBytes = bytes;
      if (header.addresses.kind === 'inet') Object.assign(real, { source: header.addresses.source, destination: header.addresses.destination });
      // LOCAL, UNKNOWN or AF_UNIX: the balancer's own connection stands for the client.
      const over = counts.take(real.source, opts.maxSessionsPerClient);
      if (over) throw new DialRefusal({ code: REASON.TOO_MANY_SESSIONS, message: `over the limit of ${over}` }, `421 Too many sessions (${over}); try again later`);
      const counted = real.source;
      try {
        const dialled = await dialBackend(pool, client, ctx, real, socketPeer, opts.loginTimeoutMs);
        dialled.server.once('close', () => counts.release(counted));
        return dialled;
      } catch (err) {
        counts.release(counted);
        throw err;
      }
    }
    return dialBackend(pool, client, ctx, real, socketPeer, opts.loginTimeoutMs);
  };
}

/** Who the client is, as the balancer's header (if any) says. */
interface BalancedClient {
  source: Endpoint;
  destination: Endpoint;
  /** Bytes of the balancer's header, read before the client's own. */
  headerBytes: number;
}

async function dialBackend(pool: BackendPool, client: Socket, ctx: DialContext, real: BalancedClient, socketPeer: Endpoint, loginTimeoutMs: number): Promise<DialResult> {
  // With --tls terminate the client may send AUTH before USER: the dialogue answers it, as the explicit proxy's does.
  const login = pool.balance === 'user' ? await readProxyLogin(client, loginTimeoutMs, USER_LOGIN, ctx) : undefined;
  const tried: string[] = [];
  for (const b of pool.candidates({ client: real.source, user: login?.destination.user })) {
    let c: Connected;
    try {
      c = await pool.connect(b, real);
    } catch (err) {
      pool.markDown(b, (err as Error).message);
      tried.push(`${b.label}: ${(err as Error).message}`);
      continue;
    }
    pool.attach(b, c.server);
    const seed: Record<Direction, Array<[number, number]>> = { 'client->server': [], 'server->client': [] };
    if (real.headerBytes || c.header) seed['client->server'].push([real.headerBytes, c.header]);
    const clientAddress = sameAddress(real.source, socketPeer) && real.source.port === socketPeer.port ? undefined : real.source;
    if (!login) {
      // The session relays the greeting itself; we only looked at it.
      return { server: c.server, serverLeftover: c.greeting, ledgerSeed: seed, ...(clientAddress ? { clientAddress } : {}) } satisfies DialResult;
    }
    // user: the client had our greeting; the backend's is swallowed and the USER line replayed unchanged.
    c.server.write(login.raw);
    seed['client->server'].push([login.dropped, 0], [login.raw.length, login.raw.length]);
    seed['server->client'].push([0, login.said], [c.greetingBytes, 0]);
    return {
      server: c.server,
      // Its answer is the login the transfer log and the `login` event record.
      user: login.destination.user,
      clientLeftover: login.leftover,
      ...(login.tls ? { clientTls: login.tls } : {}),
      ...(c.leftover ? { serverLeftover: c.leftover } : {}),
      ledgerSeed: seed,
      ...(clientAddress ? { clientAddress } : {}),
    } satisfies DialResult;
  }
  throw new DialRefusal(
    { code: REASON.NO_BACKEND, message: tried.length ? `no backend answered: ${tried.join('; ')}` : `all ${pool.backends.length} backends are marked down` },
    // Which servers exist and why they failed is for the log, not the client.
    '421 Service not available: no FTP server is available, try again later',
  );
}
