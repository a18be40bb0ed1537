/**
 * TLS at the gateway (RFC 4217, FTPS): the certificate it shows clients, the
 * TLS it speaks to servers (with the control connection's session resumed
 * on every data connection, as vsftpd's require_ssl_reuse demands), and the
 * data channel that ends TLS on one or both sides. The control stream sees
 * clear text in between; nothing here parses more than the server's
 * replies to the gateway's own AUTH, PBSZ and PROT.
 */
import { readFileSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import tls, { type SecureContext, type TLSSocket } from 'node:tls';
import { formatEndpoint, ipOf, type Endpoint } from '../protocol/address.js';
import { LineFramer } from '../protocol/framer.js';
import { ReplyAssembler, type Reply } from '../protocol/reply.js';
import { REASON } from '../codes.js';
import type { Channel, ChannelRequest, DataPathOptions } from './data-path.js';
import { DialRefusal, type ClientTlsConfig, type ServerDialer } from './session.js';
import type { CommonGatewayConfig } from '../config.js';
import type { GatewayEvent } from './events.js';
import { BalancedAccepts, dataProxyFor } from './data-proxy-in.js';
import { dialDrawing, dialOptions, dialPortsFor, isExpectedPeer } from './data.js';

// ---- the gateway's own certificate -----------------------------------------

/**
 * The certificate and key clients see. Read at start, so that a bad file is
 * a one-line error then and not a failed handshake later; `reload()` reads
 * them again (sessions already running keep theirs).
 */
export class CertificateStore {
  private current: SecureContext;

  constructor(
    private readonly certFile: string,
    private readonly keyFile: string,
  ) {
    this.current = this.load();
  }

  get context(): SecureContext {
    return this.current;
  }

  /** Throws with a one-line reason; the old certificate stays in use then. */
  reload(): void {
    this.current = this.load();
  }

  private load(): SecureContext {
    const cert = readPem('--tls-cert', this.certFile);
    const key = readPem('--tls-key', this.keyFile);
    try {
      return tls.createSecureContext({ cert, key });
    } catch (err) {
      throw new Error(`--tls-cert/--tls-key: ${this.certFile} and ${this.keyFile} are not a matching PEM certificate and key (${(err as Error).message})`, { cause: err });
    }
  }
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/**
 * Makes `socket` the server end of a TLS connection with the client. Its
 * 'data', 'end' and 'close' belong to the returned socket from now on.
 */
export function acceptTls(socket: Socket, context: SecureContext): TLSSocket {
  return new tls.TLSSocket(socket, { isServer: true, secureContext: context });
}

/**
 * Made outside a tls.Server, Node never hands a server TLSSocket over
 * ("releases control"): an error after the handshake (a record whose MAC
 * fails, an alert) is only emitted as '_tlsError', with no 'error' and no
 * close, and the connection sits dead until a timeout. For a control
 * connection that is a session held for --login-timeout or --idle-timeout;
 * this makes such an error the socket's end. For a data connection that
 * only carries an upload (nothing written to surface the error) it is a
 * transfer held for --data-idle-timeout. The caller listens for 'error';
 * handshake failures keep their own path (handshake()).
 */
export function endOnLateTlsError(secure: TLSSocket): void {
  secure.once('secure', () => secure.on('_tlsError', (err: Error) => secure.destroy(err)));
}

/**
 * Resolves once the handshake is done; rejects with its one-line reason (or
 * after `timeoutMs`). `role` is ours: as the TLS client, 'secure' comes
 * before the certificate is verified, 'secureConnect' only after.
 */
export function handshake(socket: TLSSocket, timeoutMs: number, role: 'server' | 'client'): Promise<void> {
  const doneEvent = role === 'server' ? 'secure' : 'secureConnect';
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      socket.off(doneEvent, onSecure);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off('end', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onSecure = () => done();
    const onError = (err: Error) => done(new Error(tlsReason(err)));
    const onClose = () => done(new Error('connection closed during the TLS handshake'));
    const timer = setTimeout(() => done(new Error(`TLS handshake not completed within ${timeoutMs} ms`)), timeoutMs);
    socket.once(doneEvent, onSecure);
    socket.once('error', onError);
    socket.once('close', onClose);
    // Half-open sockets: the peer's FIN alone ends a handshake, it can never complete.
    socket.once('end', onClose);
  });
}

/** OpenSSL's reasons are long and mention source files: the part an admin can act on. */
export function tlsReason(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  const reason = (err as { reason?: string }).reason;
  return (reason ?? err.message.split('\n')[0] ?? 'TLS error') + (code ? ` (${code})` : '');
}

// ---- TLS toward the server -------------------------------------------------

export interface ServerTlsOptions {
  mode: 'explicit' | 'implicit';
  /** PEM CA bundle; undefined: the system's CAs. */
  ca?: Buffer | undefined;
  /** The name the server's certificate must carry (also sent as SNI when it is a name). */
  name: string;
  /** Skip verification (--server-insecure). */
  insecure: boolean;
  timeoutMs: number;
}

/** What a data connection needs to speak TLS to the server as the control connection does. */
export interface ServerTlsLink {
  options: ServerTlsOptions;
  /** The control connection's latest session, to be resumed (vsftpd: require_ssl_reuse). */
  session(): Buffer | undefined;
}

const links = new WeakMap<Socket, ServerTlsLink>();

/** The server-side TLS of a control connection made by withServerTls(), if any. */
export function serverTlsOf(server: Socket): ServerTlsLink | undefined {
  return links.get(server);
}

export function connectTls(socket: Socket, options: ServerTlsOptions, session?: Buffer): TLSSocket {
  return tls.connect({
    socket,
    ...(net.isIP(options.name) ? {} : { servername: options.name }),
    ...(options.ca ? { ca: options.ca } : {}),
    rejectUnauthorized: !options.insecure,
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity(options.name, cert),
    ...(session ? { session } : {}),
  });
}

/**
 * Speaks TLS to the server on behalf of every session: implicit from the
 * first byte, or explicit with AUTH TLS after the greeting; then PBSZ 0 and
 * PROT P. The greeting is handed to the session as if it had just arrived;
 * the client never sees the gateway's own commands.
 */
export function withServerTls(inner: ServerDialer, options: ServerTlsOptions): ServerDialer {
  return async (client, ctx) => {
    const dialled = await inner(client, ctx);
    const { server, greeting } = await secureServerControl(dialled.server, options, dialled.serverLeftover);
    return { ...dialled, server, serverLeftover: greeting };
  };
}

/**
 * TLS on a server's control connection that has just been connected (its
 * greeting not yet read): implicit or explicit, then PBSZ 0 and PROT P.
 * Resolves with the TLS socket (paused, known to serverTlsOf() for the data
 * connections) and the greeting's bytes; rejects with a DialRefusal, the
 * plain socket destroyed.
 */
export async function secureServerControl(plain: Socket, options: ServerTlsOptions, leftover?: Buffer): Promise<{ server: Socket; greeting: Buffer }> {
  try {
    let socket: Socket = plain;
    let latest: Buffer | undefined;
    const secure = async () => {
      const t = connectTls(socket, options);
      // handshake() reports the first error; a late one must not become an uncaught exception.
      t.on('error', () => undefined);
      t.on('session', (s: Buffer) => (latest = s));
      await handshake(t, options.timeoutMs, 'client');
      return t;
    };
    if (options.mode === 'implicit') socket = await secure();
    let replies = new ReplyReader(socket, options.timeoutMs, leftover);
    const greeting = await replies.next();
    if (greeting.reply.code !== 220) throw new ServerTlsError(`server greeted with ${greeting.reply.code}`);
    if (options.mode === 'explicit') {
      await command(socket, replies, 'AUTH TLS', 234);
      replies.detach();
      socket = await secure();
      replies = new ReplyReader(socket, options.timeoutMs);
    }
    await command(socket, replies, 'PBSZ 0', 200);
    await command(socket, replies, 'PROT P', 200);
    replies.detach();
    socket.pause();
    socket.on('error', () => undefined);
    const secured = socket;
    links.set(secured, { options, session: () => latest ?? (secured as TLSSocket).getSession?.() });
    return { server: secured, greeting: greeting.raw };
  } catch (err) {
    plain.destroy();
    const message = `TLS to the server failed: ${err instanceof ServerTlsError ? err.message : tlsReason(err as Error)}`;
    throw new DialRefusal({ code: REASON.TLS_HANDSHAKE_FAILED, message }, '421 Service not available: secure connection to the FTP server failed');
  }
}

class ServerTlsError extends Error {}

async function command(socket: Socket, replies: ReplyReader, line: string, expect: number): Promise<void> {
  socket.write(`${line}\r\n`);
  const { reply } = await replies.next();
  if (reply.code !== expect) throw new ServerTlsError(`${line.split(' ')[0]} answered ${reply.lines.map((l) => l.text).join(' ').slice(0, 120)}`);
}

/** Reads whole replies from the server while the gateway talks to it alone. */
class ReplyReader {
  private readonly framer = new LineFramer(4096);
  private readonly assembler = new ReplyAssembler();
  private readonly ready: Array<{ reply: Reply; raw: Buffer }> = [];
  private raw: Buffer[] = [];
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;
  private readonly onData = (chunk: Buffer) => this.take(chunk);
  private readonly onEnd = () => this.fail(new ServerTlsError('server closed the connection'));
  private readonly onError = (err: Error) => this.fail(err);

  constructor(
    private readonly socket: Socket,
    private readonly timeoutMs: number,
    leftover?: Buffer,
  ) {
    if (leftover?.length) this.take(leftover);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.resume();
  }

  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('error', this.onError);
    this.socket.pause();
  }

  async next(): Promise<{ reply: Reply; raw: Buffer }> {
    const deadline = Date.now() + this.timeoutMs;
    while (this.ready.length === 0) {
      if (this.failure) throw this.failure;
      const left = deadline - Date.now();
      if (left <= 0) throw new ServerTlsError(`no reply within ${this.timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.ready.shift()!;
  }

  private take(chunk: Buffer): void {
    for (const item of this.framer.push(chunk)) {
      this.raw.push(item.raw);
      if (item.kind !== 'line') return this.fail(new ServerTlsError('reply line too long'));
      const event = this.assembler.push(item);
      if (event?.kind === 'reply') {
        this.ready.push({ reply: event.reply, raw: Buffer.concat(this.raw) });
        this.raw = [];
      }
    }
    this.wake();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}

// ---- data connections with TLS on one side or both -------------------------

export interface DataTls {
  /** The client asked for PROT P: the gateway is its TLS server. */
  client?: SecureContext | undefined;
  /** The server speaks TLS: the gateway is its TLS client, resuming the control session. */
  server?: ServerTlsLink | undefined;
}

type TlsChannelState = 'listening' | 'connecting' | 'relaying' | 'closed';

/**
 * A relayed data connection with TLS ended here. The kernel cannot decrypt,
 * so these are always relayed, with stream back-pressure (TLS records are
 * copied once anyway; data.ts's zero-copy reads do not apply).
 * In both modes the FTP client is the TLS client (RFC 4217 §7), whoever dials.
 */
export class TlsRelayChannel implements Channel {
  private state: TlsChannelState = 'listening';
  readonly closed: Promise<string>;
  private resolveClosed!: (reason: string) => void;
  private readonly sockets: Socket[] = [];
  private acceptTimer: NodeJS.Timeout | undefined;
  private bytesToDialled = 0;
  private bytesToAccepted = 0;
  private openedAt = 0;
  private from = '';
  private readonly flushed = { client: false, server: false };
  private readonly waiters = new Set<() => void>();
  /** TLS sockets whose handshake is done: their errors are the relay's, not the handshake's. */
  private readonly secured = new Set<Socket>();
  private readonly handshakes = new Map<Socket, Promise<void>>();
  /** Connections from a balancer: their header names the peer (and what came with it stays in the socket for the handshake). */
  private readonly balanced: BalancedAccepts | undefined;

  private constructor(
    private readonly req: ChannelRequest & { tls: DataTls },
    private readonly opts: DataPathOptions,
    private readonly listener: net.Server,
    readonly port: number,
  ) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    listener.on('connection', (s: Socket) => this.onConnection(s));
    listener.on('error', (err) => this.close(`listener error: ${err.message}`));
    const proxyIn = dataProxyFor(req.mode, opts.proxyProtocolFrom, opts.acceptTimeoutMs);
    if (proxyIn) this.balanced = new BalancedAccepts(proxyIn, ({ socket, peer, label }) => this.onPeer(socket, peer, label), (code, message) => this.refuse(code, message));
    this.acceptTimer = setTimeout(() => this.close('accept timeout'), opts.acceptTimeoutMs);
    req.sink({ event: 'data-listen', session: req.session, mode: req.mode, address: req.listenHost, port, expect: req.expectFrom.address });
  }

  static async open(req: ChannelRequest & { tls: DataTls }, opts: DataPathOptions): Promise<TlsRelayChannel> {
    const listener = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    const port = await opts.pools[req.mode].forClient(req.client).listen(listener, req.listenHost);
    return new TlsRelayChannel(req, opts, listener, port);
  }

  get unused(): boolean {
    return this.state === 'listening';
  }

  get moving(): boolean {
    return this.state === 'connecting' || this.state === 'relaying';
  }

  async finish(code: number, awaitData: boolean, toward: 'client' | 'server'): Promise<void> {
    if (awaitData && (this.moving || (this.state === 'listening' && code < 300))) await this.settled(toward);
    if (this.state === 'listening') this.close(`transfer ended with ${code} before a data connection`);
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.acceptTimer);
    this.closeListener();
    this.balanced?.close();
    this.sockets.forEach((s) => s.destroy());
    this.waiters.forEach((wake) => wake());
    this.req.sink(this.closeEvent(reason));
    this.resolveClosed(reason);
  }

  /** The same data-close as a plain relay's: bytesUp counts toward the dialled side. */
  private closeEvent(reason: string): GatewayEvent {
    const up = this.bytesToDialled;
    const down = this.bytesToAccepted;
    const durationMs = this.openedAt > 0 ? Date.now() - this.openedAt : 0;
    const { session, mode, target } = this.req;
    return { event: 'data-close', session, mode, from: this.from, to: formatEndpoint(target), bytes: up + down, bytesUp: up, bytesDown: down, durationMs, reason };
  }

  /** Until the receiver's socket is written to the end, the channel closes, or no byte moves for the linger time. */
  private async settled(toward: 'client' | 'server'): Promise<void> {
    while (this.state !== 'closed' && !this.flushed[toward]) {
      const before = this.bytesToDialled + this.bytesToAccepted;
      let timer: NodeJS.Timeout | undefined;
      let wake: (() => void) | undefined;
      const woken = await new Promise<boolean>((resolve) => {
        wake = () => resolve(true);
        this.waiters.add(wake);
        timer = setTimeout(() => resolve(false), this.opts.completionLingerMs);
      });
      clearTimeout(timer);
      if (wake) this.waiters.delete(wake);
      if (!woken && this.bytesToDialled + this.bytesToAccepted === before) return;
    }
  }

  private progress(toDialled: number, toAccepted: number): void {
    this.bytesToDialled += toDialled;
    this.bytesToAccepted += toAccepted;
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  private closeListener(): void {
    if (!this.listener.listening) return;
    this.listener.close();
    this.opts.pools[this.req.mode].release(this.port);
  }

  private refuse(code: (typeof REASON)[keyof typeof REASON], message: string): void {
    this.req.sink({ event: 'refuse', session: this.req.session, kind: `data-${this.req.mode}`, code, message });
  }

  private onConnection(accepted: Socket): void {
    if (this.state === 'listening' && this.balanced?.takes(accepted)) return;
    const peer = accepted.remoteAddress ? ipOf(accepted.remoteAddress) : undefined;
    this.onPeer(accepted, peer && { ...peer, port: accepted.remotePort ?? 0 }, `${accepted.remoteAddress}:${accepted.remotePort}`);
  }

  /**
   * A balancer's connection may hold bytes read after its header (a
   * ClientHello in the same segment): TLSSocket feeds a socket's buffered
   * bytes to the handshake before reading from its handle.
   */
  private onPeer(accepted: Socket, peer: Endpoint | undefined, label: string): void {
    const { expectFrom, alsoFrom } = this.req;
    if (this.state !== 'listening' || !peer || !isExpectedPeer(peer, expectFrom, alsoFrom)) {
      accepted.destroy();
      this.refuse(REASON.DATA_PEER_MISMATCH, `data connection from ${label}, expected ${expectFrom.address}; closed`);
      return;
    }
    clearTimeout(this.acceptTimer);
    this.closeListener();
    this.balanced?.close();
    this.state = 'connecting';
    this.from = formatEndpoint(peer);
    const { target, dialFrom, dialFromPort } = this.req;
    this.track(accepted);
    dialDrawing({
      connect: (port) => net.connect(dialOptions(target, dialFrom, dialFromPort ?? port)).pause(),
      ports: dialPortsFor(dialFrom, dialFromPort),
      // Destroyed with the others by close(); track() watches the one that goes on.
      hold: (socket) => this.sockets.push(socket),
      use: (dialled) => this.relayThrough(accepted, this.track(dialled)),
      fail: (err) => this.close(tlsReason(err)),
      live: () => this.state === 'connecting',
    });
  }

  private relayThrough(accepted: Socket, dialled: Socket): void {
    const { target } = this.req;
    // Passive: the client connected to us; active: we dial the client.
    const passive = this.req.mode === 'passive';
    const clientRaw = passive ? accepted : dialled;
    const serverRaw = passive ? dialled : accepted;
    const clientEnd = this.secureClientSide(clientRaw);
    const tcpReady = new Promise<void>((resolve) => (dialled.connecting ? dialled.once('connect', () => resolve()) : resolve()));
    dialled.setTimeout(this.opts.acceptTimeoutMs, () => {
      if (this.state === 'connecting') this.close(`connect to ${formatEndpoint(target)} timed out`);
    });
    // The server's handshake waits for the client's: a direct client starts
    // its TLS only once it wants the transfer, and servers like pyftpdlib
    // reset a data connection whose ClientHello comes before the transfer
    // command (as it would from the gateway in active mode, at PORT time).
    Promise.all([tcpReady, clientEnd === clientRaw ? undefined : this.shake(clientEnd as TLSSocket, 'client')]).then(
      () => {
        if (this.state !== 'connecting') return;
        const serverEnd = this.secureServerSide(serverRaw);
        if (serverEnd !== serverRaw) this.shake(serverEnd as TLSSocket, 'server').catch((err: Error) => this.close(err.message));
        // Relaying starts before the server's handshake ends: a TLS socket
        // holds what is written to it until it is secure, and a server that
        // sends nothing (an empty file) and closes at once must still have
        // its EOF relayed.
        this.state = 'relaying';
        this.openedAt = Date.now();
        this.req.sink({ event: 'data-open', session: this.req.session, mode: this.req.mode, from: this.from, to: formatEndpoint(target) });
        this.relay(clientEnd, serverEnd);
      },
      (err: Error) => this.close(err.message),
    );
  }

  private secureClientSide(raw: Socket): Socket {
    const context = this.req.tls.client;
    if (!context) return raw;
    const secure = acceptTls(raw, context);
    // An upload only reads from this socket: a bad record would never surface through a write.
    endOnLateTlsError(secure);
    return this.track(secure);
  }

  private secureServerSide(raw: Socket): Socket {
    const link = this.req.tls.server;
    if (!link) return raw;
    return this.track(connectTls(raw, link.options, link.session()));
  }

  private shake(socket: TLSSocket, side: 'client' | 'server'): Promise<void> {
    const done = this.shakeOnce(socket, side);
    this.handshakes.set(socket, done);
    return done;
  }

  private async shakeOnce(socket: TLSSocket, side: 'client' | 'server'): Promise<void> {
    try {
      await handshake(socket, this.opts.acceptTimeoutMs, side === 'client' ? 'server' : 'client');
    } catch (err) {
      const message = `TLS handshake with the ${side} on the data connection failed: ${(err as Error).message}`;
      this.refuse(REASON.TLS_HANDSHAKE_FAILED, message);
      throw new Error(message, { cause: err });
    }
    this.secured.add(socket);
    if (side === 'server' && socket.isSessionReused() === false && this.req.tls.server?.session()) {
      this.req.sink({ event: 'warning', session: this.req.session, message: 'the server did not resume the control TLS session on a data connection' });
    }
  }

  private track<T extends Socket>(s: T): T {
    this.sockets.push(s);
    s.on('error', (err) => {
      // A handshake's failure is shake()'s to report, with its code.
      if (s instanceof tls.TLSSocket && !this.secured.has(s)) return;
      this.close(tlsReason(err));
    });
    s.on('close', () => {
      if (this.state === 'closed') return;
      if (this.state !== 'relaying') this.close('peer closed before the relay started');
      else if (this.sockets.every((x) => x.destroyed)) this.close('complete');
    });
    return s;
  }

  private relay(clientEnd: Socket, serverEnd: Socket): void {
    const idle = this.opts.dataIdleTimeoutMs;
    const toDialled = this.req.mode === 'passive' ? 'server' : 'client';
    for (const [src, dst, toward] of [
      [clientEnd, serverEnd, 'server'],
      [serverEnd, clientEnd, 'client'],
    ] as const) {
      src.setTimeout(idle, () => this.close(`idle for ${idle} ms`));
      dst.once('finish', () => {
        this.flushed[toward] = true;
        this.progress(0, 0);
      });
      src.on('data', (chunk: Buffer) => {
        if (toward === toDialled) this.progress(chunk.length, 0);
        else this.progress(0, chunk.length);
        if (!dst.write(chunk)) src.pause();
      });
      dst.on('drain', () => src.resume());
      // A FIN (TLS: close_notify) ends one direction; the other keeps flowing.
      // Ending a TLS socket mid-handshake would abort it (an empty upload): end once it is secure.
      src.once('end', () => {
        const shaking = this.handshakes.get(dst);
        if (shaking) shaking.then(() => dst.end(), () => undefined);
        else dst.end();
      });
      src.resume();
    }
  }
}

// ---- from the configuration ------------------------------------------------

/** The session's client-side TLS, certificate loaded now (a bad file fails the start). */
export function clientTlsFor(cfg: CommonGatewayConfig): ClientTlsConfig | undefined {
  const t = cfg.tlsTerminate;
  if (cfg.tls !== 'terminate' || !t) return undefined;
  const store = new CertificateStore(t.certFile, t.keyFile);
  return { context: () => store.context, reload: () => store.reload(), require: t.require, implicit: t.implicit, handshakeTimeoutMs: cfg.connectTimeoutMs };
}

export function serverTlsOptions(cfg: CommonGatewayConfig, serverHost: string, read: (file: string) => Buffer): ServerTlsOptions | undefined {
  const s = cfg.serverTls;
  if (s.mode === 'off') return undefined;
  let ca: Buffer | undefined;
  if (s.caFile) {
    try {
      ca = read(s.caFile);
    } catch (err) {
      throw new Error(`--server-ca: cannot read ${s.caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  }
  return { mode: s.mode, ca, name: s.name ?? serverHost, insecure: s.insecure, timeoutMs: cfg.connectTimeoutMs };
}
