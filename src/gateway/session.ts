/**
 * One control session's I/O: the client and server sockets, the timers, and
 * the data channels. It decides nothing: bytes go into the ControlStream
 * (src/alg/control-stream.ts) and the actions that come out are carried
 * out here. Any exception inside is this session's end, never the process's.
 */
import type { Socket } from 'node:net';
import { encodeLine } from '../protocol/framer.js';
import { formatEndpoint, ipOf, type Endpoint, type IpAddress } from '../protocol/address.js';
import { ControlStream, type Action, type DataRequest, type Side } from '../alg/control-stream.js';
import type { TranslatorConfig } from '../alg/translator.js';
import { REASON } from '../codes.js';
import type { Refusal } from '../alg/policy.js';
import { DataOpenError, type Channel, type DataPath } from './data-path.js';
import { sendUrgent } from './original-dst.js';
import { wants, type Direction, type EventSink, type GatewayEvent } from './events.js';
import { acceptTls, endOnLateTlsError, handshake, serverTlsOf, type DataTls } from './tls.js';
import type { SecureContext, TLSSocket } from 'node:tls';
import type { ClientTlsState } from '../alg/client-tls.js';

export interface SessionConfig {
  translator: TranslatorConfig;
  /** Announced to clients in passive replies; default: the address the client reached us on. */
  passiveAnnounceAddress?: IpAddress | undefined;
  /** Split horizon: the passive announce address for this client, before passiveAnnounceAddress. */
  announceFor?: ((client: IpAddress) => IpAddress | undefined) | undefined;
  /** Where active-mode listeners bind, facing the server; default: our end of the server connection. */
  activeListenAddress?: string | undefined;
  /** Source port for active-mode connections to the client (20 for clients that insist on it). */
  activeSourcePort?: number | undefined;
  dataPath: DataPath;
  maxLineBytes: number;
  /** From connect to the server's 230. */
  loginTimeoutMs: number;
  /** A control connection with no complete line and no transfer running is closed after this. */
  idleTimeoutMs: number;
  /**
   * The client believes it talks to the server's own address (transparent
   * redirect), so data reaching it must come from there, not from us.
   */
  clientSeesServerAddress?: boolean | undefined;
  /** The gateway ends the client's TLS (--tls terminate). */
  tls?: ClientTlsConfig | undefined;
}

export interface ClientTlsConfig {
  /** The certificate clients see now (re-read on reload). */
  context: () => SecureContext;
  /** Reads the certificate again (SIGHUP); throws with a one-line reason, the old one stays. */
  reload?: () => void;
  /** --require-tls */
  require: boolean;
  /** --implicit-tls: TLS from the first byte. */
  implicit: boolean;
  handshakeTimeoutMs: number;
}

export interface DialContext {
  session: string;
  sink: EventSink;
  /** The gateway ends the client's TLS: a dialer that talks to the client before login answers AUTH with it. */
  clientTls?: PreLoginTls | undefined;
}

/** What a pre-login dialogue needs to take the client into TLS itself (forward explicit: AUTH before USER). */
export interface PreLoginTls {
  /** --require-tls */
  require: boolean;
  /** The client already speaks TLS (--implicit-tls). */
  secure: boolean;
  /** After the 234: the client's socket becomes the server end of TLS, the session's client socket from now on. */
  start: () => TLSSocket;
  handshakeTimeoutMs: number;
}

export interface DialResult {
  server: Socket;
  /** Client bytes read while choosing the server (explicit proxy login), not yet handled. */
  clientLeftover?: Buffer;
  /** Server bytes read past its greeting, not yet handled. */
  serverLeftover?: Buffer;
  /** [bytes in, bytes out] the dialer already dropped, inserted or rewrote per direction. */
  ledgerSeed?: Record<Direction, Array<[number, number]>>;
  /** The user name the dialer already sent the server (forward explicit: USER name@host). */
  user?: string;
  /** The real client when a trusted balancer named it (PROXY header): for policy, data peers and logs. */
  clientAddress?: Endpoint;
  /** AUTH, PBSZ and PROT the dialer already answered (DialContext.clientTls). */
  clientTls?: ClientTlsState;
}

/**
 * Finds and connects the server for a session. Rejects with a DialRefusal
 * for a policy decision (the client gets its reply), with any other error
 * when the server cannot be reached (the client gets 421).
 */
export type ServerDialer = (client: Socket, ctx: DialContext) => Promise<DialResult>;

export class DialRefusal extends Error {
  constructor(
    readonly refusal: Refusal,
    /** The reply the client gets before the gateway closes; undefined: close quietly. */
    readonly reply: string | undefined,
    /** The `kind` of its refuse event. */
    readonly kind = 'connect',
  ) {
    super(refusal.message);
  }
}

const CLOSE_GRACE_MS = 2_000;
/** An unfinished command line gets this long at most (bounded by the idle timeout too). */
const LINE_TIMEOUT_MS = 60_000;

type Phase =
  | { kind: 'dialling' }
  | { kind: 'running'; server: Socket; stream: ControlStream }
  | { kind: 'closed'; reason: string };

export class ControlSession {
  readonly closed: Promise<void>;
  private resolveClosed: () => void = () => undefined;
  private phase: Phase = { kind: 'dialling' };
  private readonly channels = new Map<number, Channel>();
  private readonly timers: { login?: NodeJS.Timeout; idle?: NodeJS.Timeout; line?: NodeJS.Timeout } = {};
  private readonly openedAt = Date.now();
  private bytesUp = 0;
  private bytesDown = 0;
  private readonly ended = { client: false, server: false };
  /** Which side sent its FIN first: says who ended the session. */
  private firstEnd: Side | undefined;
  private readonly pauses = new Map<Socket, Set<string>>();
  /** Peers whose socket is over its high-water mark, until 'drain'. */
  private readonly congested = new Set<Side>();

  constructor(
    readonly id: string,
    /** Becomes a TLSSocket when the gateway ends the client's TLS. */
    private client: Socket,
    private readonly config: SessionConfig,
    private readonly sink: EventSink,
    private readonly dialServer: ServerDialer,
  ) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
  }

  /** Set by the dialer when a balancer's PROXY header named the real client. */
  private realClient: Endpoint | undefined;
  /** What the dialer reports, held until session-open is out; undefined from then on. */
  private dialEvents: GatewayEvent[] | undefined = [];

  /**
   * session-open, once, before anything else of this session: also when the
   * client resets during the dial and close() comes first (metrics count
   * sessions by these two events; a close before its open would leak one).
   */
  private announce(server: string): void {
    const held = this.dialEvents;
    if (!held) return;
    this.dialEvents = undefined;
    this.sink({ event: 'session-open', session: this.id, client: this.clientLabel, server });
    for (const e of held) this.sink(e);
  }

  get clientLabel(): string {
    return formatEndpoint(this.realClient ?? { ...ipOf(this.client.remoteAddress ?? '0.0.0.0'), port: this.client.remotePort ?? 0 });
  }

  async start(): Promise<void> {
    const client = this.client;
    client.pause();
    client.on('error', (err) => this.close(`client error: ${err.message}`));
    client.on('close', () => this.guarded(() => this.onSocketClosed()));
    if (this.config.tls?.implicit && !(await this.implicitHandshake(this.config.tls))) return;
    // session-open comes first, always: what the dialer reports waits for it.
    const dialSink: EventSink = (e) => (this.dialEvents ? this.dialEvents.push(e) : this.sink(e));
    let dialled: DialResult;
    try {
      // this.client: already TLS with --implicit-tls.
      dialled = await this.dialServer(this.client, { session: this.id, sink: dialSink, clientTls: this.preLoginTls() });
    } catch (err) {
      this.announce('-');
      // Closed while dialling (the client reset): that is the session's end, already reported.
      if (this.phase.kind === 'closed') return;
      const refusal: Refusal =
        err instanceof DialRefusal ? err.refusal : { code: REASON.SERVER_UNREACHABLE, message: (err as Error).message };
      // The server's address and errno are for the log, not for the Internet.
      const reply = err instanceof DialRefusal ? err.reply : '421 Service not available: the FTP server cannot be reached';
      this.sink({ event: 'refuse', session: this.id, kind: err instanceof DialRefusal ? err.kind : 'connect', code: refusal.code, message: refusal.message });
      this.close(`${refusal.code === REASON.SERVER_UNREACHABLE ? 'server unreachable' : refusal.code}: ${refusal.message}`, reply);
      return;
    }
    const server = dialled.server;
    this.realClient = dialled.clientAddress;
    const serverLabel = server.remoteAddress ? formatEndpoint({ ...ipOf(server.remoteAddress), port: server.remotePort ?? 0 }) : '-';
    this.announce(serverLabel);
    if (this.phase.kind === 'closed') {
      server.destroy();
      return;
    }
    if (!client.remoteAddress || !server.remoteAddress || server.destroyed) {
      // Reset while we were connecting (or while the dialer talked to the server).
      server.destroy();
      this.close(server.destroyed || !server.remoteAddress ? 'server vanished before the session started' : 'client vanished before the session started');
      return;
    }
    const tls = this.config.tls;
    const stream = new ControlStream(
      this.id,
      { client: this.realClient ?? ipOf(client.remoteAddress), server: ipOf(server.remoteAddress) },
      {
        translator: this.config.translator,
        maxLineBytes: this.config.maxLineBytes,
        clientLabel: this.clientLabel,
        now: Date.now,
        userSentByDialer: dialled.user,
        tls: tls ? { require: tls.require, secureFromStart: tls.implicit, agreed: dialled.clientTls } : undefined,
        traceLines: () => wants(this.sink, 'control'),
      },
      dialled.ledgerSeed,
    );
    this.phase = { kind: 'running', server, stream };
    this.timers.login = setTimeout(() => this.guarded(() => this.perform(stream.loginTimedOut(this.config.loginTimeoutMs))), this.config.loginTimeoutMs);
    this.timers.idle = setTimeout(() => this.guarded(() => this.onIdle(stream)), this.config.idleTimeoutMs);
    server.on('error', (err) => this.close(`server error: ${err.message}`));
    server.on('close', () => this.guarded(() => this.onSocketClosed()));
    server.on('data', (chunk: Buffer) => this.guarded(() => this.onBytes('server', chunk)));
    server.on('end', () => this.guarded(() => this.onEnd('server')));
    this.listenToClient();
    if (dialled.serverLeftover?.length) this.onBytes('server', dialled.serverLeftover);
    if (dialled.clientLeftover?.length) this.onBytes('client', dialled.clientLeftover);
    // A dialer that read the server's greeting left the socket paused.
    this.resumeFor(server, 'start');
    this.resumeFor(this.client, 'start');
  }

  private listenToClient(): void {
    const client = this.client;
    client.on('data', (chunk: Buffer) => this.guarded(() => this.onBytes('client', chunk)));
    client.on('end', () => this.guarded(() => this.onEnd('client')));
  }

  /**
   * The 234 has been handed to the socket: bytes from here on are TLS. The
   * plain socket's listeners move to the TLS socket that now owns it.
   */
  private startClientTls(tls: ClientTlsConfig): void {
    const plain = this.client;
    plain.removeAllListeners('data');
    plain.removeAllListeners('end');
    const secure = this.wrapClient(tls);
    this.watchHandshake(secure, tls).catch(() => undefined);
    this.listenToClient();
    if (!this.pauses.get(plain)?.size) secure.resume();
    else this.pauses.set(secure, this.pauses.get(plain)!);
  }

  private wrapClient(tls: ClientTlsConfig): TLSSocket {
    const secure = acceptTls(this.client, tls.context());
    this.client = secure;
    // Until the handshake is done, its failure is watchHandshake's to report, with its code.
    let ready = false;
    secure.once('secure', () => (ready = true));
    secure.on('error', (err) => ready && this.close(`client error: ${err.message}`));
    endOnLateTlsError(secure);
    secure.on('close', () => this.guarded(() => this.onSocketClosed()));
    return secure;
  }

  /** A failed handshake is the session's end, reported with its code. */
  private async watchHandshake(secure: TLSSocket, tls: ClientTlsConfig, beforeReport?: () => void): Promise<boolean> {
    try {
      await handshake(secure, tls.handshakeTimeoutMs, 'server');
      return true;
    } catch (err) {
      beforeReport?.();
      // Closed meanwhile (the client reset mid-handshake): its end is already reported.
      if (this.phase.kind === 'closed') return false;
      const message = `TLS handshake with the client failed: ${(err as Error).message}`;
      this.sink({ event: 'refuse', session: this.id, kind: 'tls', code: REASON.TLS_HANDSHAKE_FAILED, message });
      this.close(message);
      return false;
    }
  }

  /** For a dialer that answers AUTH before login; the handshake is its to await and report. */
  private preLoginTls(): PreLoginTls | undefined {
    const tls = this.config.tls;
    if (!tls) return undefined;
    return { require: tls.require, secure: tls.implicit, start: () => this.wrapClient(tls), handshakeTimeoutMs: tls.handshakeTimeoutMs };
  }

  /** Implicit FTPS: the handshake comes before anything else, the server is not dialled for a client that fails it. */
  private async implicitHandshake(tls: ClientTlsConfig): Promise<boolean> {
    const secure = this.wrapClient(tls);
    // session-open comes first, always, also for a client that never got as far as the server.
    const ok = await this.watchHandshake(secure, tls, () => this.announce('-'));
    if (ok) secure.pause();
    return ok && this.phase.kind !== 'closed';
  }

  /** Closes everything the session holds; the first reason given is the one reported. */
  close(reason: string, lastWords?: string): void {
    if (this.phase.kind === 'closed') return;
    this.announce('-');
    const running = this.phase.kind === 'running' ? this.phase : undefined;
    this.phase = { kind: 'closed', reason };
    clearTimeout(this.timers.login);
    clearTimeout(this.timers.idle);
    clearTimeout(this.timers.line);
    for (const channel of this.channels.values()) channel.close(`session closed: ${reason}`);
    this.channels.clear();
    running?.server.destroy();
    for (const e of running?.stream.sessionEnded() ?? []) this.sink(e);
    // No plain-text words into a stream the client reads as TLS.
    const words = lastWords !== undefined && !running?.stream.blind ? encodeLine(oneLine(lastWords)) : undefined;
    if (words && !this.client.destroyed && !this.client.writableEnded) {
      // Let the last reply reach the client: end() flushes, destroy() would
      // drop it. A client that never reads it is cut off after a grace period.
      this.client.end(words);
      setTimeout(() => this.client.destroy(), CLOSE_GRACE_MS).unref();
    } else {
      this.client.destroy();
    }
    try {
      this.sink({
        event: 'session-close',
        session: this.id,
        reason,
        bytesUp: this.bytesUp,
        bytesDown: this.bytesDown,
        durationMs: Date.now() - this.openedAt,
      });
    } finally {
      // Leaves the gateway's registry even if a log subscriber failed on its last event.
      this.resolveClosed();
    }
  }

  /**
   * The session's one error boundary: whatever throws while handling its
   * sockets, timers or channels ends this session with a 421, and nothing else.
   */
  private guarded(work: () => void): void {
    try {
      work();
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      // Nothing may escape from here to the event loop: the fault may be in
      // the very sink that reports it.
      try {
        this.sink({ event: 'internal-error', session: this.id, message: e.message, stack: e.stack ?? '' });
      } catch {
        // reported by nobody, then; the session still ends
      }
      try {
        this.close('internal-error', '421 Internal gateway error; closing control connection');
      } catch {
        // close() has let go of everything before its last event
      }
    }
  }

  private onBytes(side: Side, chunk: Buffer): void {
    if (this.phase.kind !== 'running') return;
    if (side === 'client') this.bytesUp += chunk.length;
    else this.bytesDown += chunk.length;
    const stream = this.phase.stream;
    this.perform(side === 'client' ? stream.fromClient(chunk) : stream.fromServer(chunk));
    if (side === 'client') this.watchLine(stream);
  }

  private onEnd(side: Side): void {
    this.ended[side] = true;
    this.firstEnd ??= side;
    if (this.phase.kind === 'running') this.perform(this.phase.stream.peerEnded(side));
  }

  /** Bytes of an unfinished line are not activity; an unfinished line has a deadline. */
  private watchLine(stream: ControlStream): void {
    if (!stream.partialLine('client')) {
      clearTimeout(this.timers.line);
      this.timers.line = undefined;
      return;
    }
    if (this.timers.line) return;
    const ms = Math.min(LINE_TIMEOUT_MS, this.config.idleTimeoutMs);
    this.timers.line = setTimeout(() => this.guarded(() => this.perform(stream.lineTimedOut(ms))), ms);
  }

  private onIdle(stream: ControlStream): void {
    const moving = [...this.channels.values()].some((c) => c.moving);
    const result = stream.idleTimedOut(this.config.idleTimeoutMs, moving);
    if (result === 'still-busy') this.timers.idle?.refresh();
    else this.perform(result);
  }

  private onSocketClosed(): void {
    if (this.phase.kind === 'closed') return;
    const server = this.phase.kind === 'running' ? this.phase.server : undefined;
    const c = this.client.destroyed;
    const s = server?.destroyed ?? true;
    const quit = this.phase.kind === 'running' && this.phase.stream.quitSent;
    if (c && s) this.close(quit ? 'client quit' : this.firstEnd === 'server' ? 'server closed the control connection' : 'client closed the control connection');
    else if (c && !this.ended.client) this.close('client vanished');
    else if (s && !this.ended.server && server) this.close('server vanished');
  }

  // ---- carrying out the stream's actions -----------------------------------

  /**
   * Carries out actions in order. Consecutive writes to one peer go out as
   * one socket write: a pipelining client gets hundreds of replies from one
   * read, and one write each would cost more than everything else here.
   */
  private perform(actions: Action[]): void {
    const pending: Record<Side, Buffer[]> = { client: [], server: [] };
    const flush = () => {
      for (const side of ['client', 'server'] as const) {
        const bufs = pending[side];
        if (bufs.length === 0 || this.phase.kind !== 'running') continue;
        pending[side] = [];
        const { server, stream } = this.phase;
        this.write(side, side === 'client' ? this.client : server, bufs.length === 1 ? (bufs[0] as Buffer) : Buffer.concat(bufs), stream);
      }
    };
    try {
      this.carryOut(actions, pending, flush);
    } finally {
      flush();
    }
  }

  private carryOut(actions: Action[], pending: Record<Side, Buffer[]>, flush: () => void): void {
    for (const action of actions) {
      if (this.phase.kind !== 'running') return;
      if (action.type === 'write') {
        pending[action.to].push(action.bytes);
        continue;
      }
      // What the log says need not wait for the bytes; everything else comes after them.
      if (action.type !== 'event') flush();
      if (this.phase.kind !== 'running') return;
      const { server, stream } = this.phase;
      switch (action.type) {
        case 'write-urgent':
          this.writeUrgent(server, action.before, action.urgent, action.after, stream);
          break;
        case 'end': {
          const socket = action.to === 'client' ? this.client : server;
          if (!socket.writableEnded) socket.end();
          break;
        }
        case 'event':
          this.sink(action.event);
          break;
        case 'open-data':
          this.openData(action.request, server, stream);
          break;
        case 'release-data': {
          // Replaced: closed if it never got its connection; one in use ends by itself.
          const channel = this.channels.get(action.id);
          if (channel?.unused) channel.close(action.reason);
          this.channels.delete(action.id);
          break;
        }
        case 'finish-data':
          this.finishData(action, stream);
          break;
        case 'pause':
          this.pauseFor(action.side === 'client' ? this.client : server, 'stream');
          break;
        case 'resume':
          this.resumeFor(action.side === 'client' ? this.client : server, 'stream');
          break;
        case 'login-settled':
          clearTimeout(this.timers.login);
          break;
        case 'activity':
          this.timers.idle?.refresh();
          break;
        case 'close':
          this.close(action.reason, action.lastWords);
          break;
        case 'start-tls':
          if (this.config.tls) this.startClientTls(this.config.tls);
          else this.close('internal-error: start-tls without TLS configured');
          break;
      }
    }
  }

  private openData(request: DataRequest, server: Socket, stream: ControlStream): void {
    const active = request.mode === 'active';
    const serverIp = stream.addrs.server;
    const listenHost = active ? (this.config.activeListenAddress ?? server.localAddress) : this.client.localAddress;
    const ours = active ? this.client.localAddress : server.localAddress;
    if (!listenHost || !ours) {
      this.perform(stream.dataFailed(request.id, 'listen-failed', 'a socket of this session has no local address'));
      return;
    }
    const sourceAs = active ? (this.config.clientSeesServerAddress ? serverIp : ipOf(ours)) : ipOf(ours);
    this.config.dataPath
      .open({
        session: this.id,
        client: stream.addrs.client,
        mode: request.mode,
        listenHost,
        expectFrom: request.expectFrom,
        alsoFrom: request.alsoFrom,
        target: request.target,
        dialFrom: ours,
        dialFromPort: active ? this.config.activeSourcePort : undefined,
        sourceAs,
        sink: this.dataEvents(stream),
        tls: this.dataTls(request, server),
      })
      .then(
        (channel) =>
          this.guarded(() => {
            if (this.phase.kind !== 'running') {
              channel.close(`session closed: ${this.phase.kind === 'closed' ? this.phase.reason : 'not running'}`);
              return;
            }
            this.channels.set(request.id, channel);
            // Forgotten once closed and no longer moving: a kernel mapping's transfer runs on after
            // the mapping's accept window, until its final reply (see forget()).
            void channel.closed.then(() => this.forget(request.id, channel));
            const announceIp = active ? ipOf(listenHost) : (this.config.announceFor?.(stream.addrs.client) ?? this.config.passiveAnnounceAddress ?? ipOf(listenHost));
            this.perform(stream.dataOpened(request.id, { ...announceIp, port: channel.port }));
          }),
        (err: unknown) =>
          this.guarded(() => {
            if (err instanceof DataOpenError) this.perform(stream.dataFailed(request.id, err.failure, err.message));
            else throw err;
          }),
      );
  }

  /**
   * The sink for one channel's events: logged as they are, and fed to the
   * transfer log. A channel that never connected (replaced, timed out)
   * carried no transfer, whatever its close says.
   */
  private dataEvents(stream: ControlStream): EventSink {
    let connected = false;
    return (e) => {
      this.guarded(() => {
        this.sink(e);
        if (this.phase.kind !== 'running') return;
        if (e.event === 'data-open' || (e.event === 'data-nat' && e.action === 'map')) {
          connected = true;
          this.perform(stream.dataConnected(e.mode, e.event === 'data-open' ? 'relay' : 'kernel'));
        } else if (connected && e.event === 'data-close') {
          this.perform(stream.dataClosed({ bytesUp: e.bytesUp, bytesDown: e.bytesDown }));
        } else if (connected && e.event === 'data-nat' && e.action === 'unmap') {
          this.perform(stream.dataClosed({ bytesOmitted: 'kernel data path: the bytes never pass through the gateway' }));
        }
      });
    };
  }

  /** Which sides of a data connection speak TLS: the client's as it asked (PROT), the server's as its control connection does. */
  private dataTls(request: DataRequest, server: Socket): DataTls | undefined {
    const client = request.protect && this.config.tls ? this.config.tls.context() : undefined;
    const serverSide = serverTlsOf(server);
    return client || serverSide ? { client, server: serverSide } : undefined;
  }

  /** A channel the session no longer needs to close or ask about. */
  private forget(id: number, channel: Channel): void {
    if (this.channels.get(id) === channel && !channel.moving) this.channels.delete(id);
  }

  private finishData(action: Extract<Action, { type: 'finish-data' }>, stream: ControlStream): void {
    const { id, code, awaitData, toward, aborted } = action;
    const channel = this.channels.get(id);
    if (aborted) channel?.close(`the client aborted the transfer (ABOR); ${code} from the server`);
    const finished = channel ? channel.finish(code, awaitData, toward) : Promise.resolve();
    finished.then(
      () =>
        this.guarded(() => {
          if (channel) void channel.closed.then(() => this.forget(id, channel));
          this.perform(stream.dataFinished(id));
        }),
      (err: unknown) =>
        this.guarded(() => {
          throw err;
        }),
    );
  }

  /**
   * The urgent byte bypasses Node's write queue (a send with MSG_OOB on the
   * socket), so it goes only once everything before it has left; where it
   * cannot (no native call), the bytes go as ordinary data.
   */
  private writeUrgent(server: Socket, before: Buffer, urgent: Buffer, after: Buffer, stream: ControlStream): void {
    const rest = () =>
      this.guarded(() => {
        if (this.phase.kind !== 'running' || server.destroyed || server.writableEnded) return;
        if (!sendUrgent(server, urgent)) server.write(urgent);
        // The same back-pressure as every other write: a server that stops reading stops the client being read.
        this.write('server', server, after, stream);
        this.perform(stream.urgentSent());
      });
    if (server.destroyed || server.writableEnded) return;
    server.write(before, rest);
  }

  private write(to: Side, dest: Socket, buf: Buffer, stream: ControlStream): void {
    if (dest.destroyed || dest.writableEnded) return;
    if (dest.write(buf)) return;
    // A peer that does not read is not read from: the stream stops taking
    // input that would write to it until its socket drains.
    if (this.congested.has(to)) return;
    this.congested.add(to);
    this.perform(stream.congestion(to, true));
    dest.once('drain', () =>
      this.guarded(() => {
        this.congested.delete(to);
        this.perform(stream.congestion(to, false));
      }),
    );
  }

  /**
   * Reading from a socket stops for several reasons at once (the stream
   * waiting, a dialer that left it paused); it resumes only when none is
   * left, so that one cannot undo another.
   */
  private pauseFor(socket: Socket, reason: string): void {
    let reasons = this.pauses.get(socket);
    if (!reasons) this.pauses.set(socket, (reasons = new Set()));
    reasons.add(reason);
    socket.pause();
  }

  private resumeFor(socket: Socket, reason: string): void {
    const reasons = this.pauses.get(socket);
    reasons?.delete(reason);
    if (this.phase.kind !== 'closed' && (!reasons || reasons.size === 0)) socket.resume();
  }
}

/** Peer text inside a reply we write: one line, no CR/LF/NUL. */
function oneLine(text: string): string {
  return text.replace(/[\r\n\0]+/g, ' ').replace(/[^\x20-\x7e]/g, '?');
}
