/**
 * One data connection through the gateway: a one-shot listener that accepts
 * exactly one connection from the expected peer, dials the other side, and
 * relays both ways with back-pressure and half-close. Knows nothing of FTP.
 *
 * Passive mode: listen for the client, dial the server.
 * Active mode:  listen for the server, dial the client.
 */
import net, { type Socket } from 'node:net';
import { formatEndpoint, ipOf, sameAddress, type Cidr, type Endpoint, type IpAddress } from '../protocol/address.js';
import type { DataMode, EventSink } from './events.js';
import { drawEphemeralPort, type EphemeralPorts, type PortPool } from './ports.js';
import { REASON } from '../codes.js';
import { BalancedAccepts, type DataProxyOptions } from './data-proxy-in.js';

/**
 * Reads start at the 64 KiB libuv would use and double while each read fills
 * the buffer, up to READ_MAX. Bigger reads mean fewer read and write calls
 * and callbacks per byte: relaying 1 GiB between processes on loopback
 * (2 vCPUs), 64 KiB reads into a reused buffer cost about 1.0 CPU s/GiB,
 * 1 MiB reads 0.5, 4 MiB reads 0.35, and the rate roughly doubled from 64 KiB
 * to 4 MiB; 8 and 16 MiB gained nothing more. A transfer that never fills
 * 64 KiB in one read (a listing, the idle direction) keeps the small buffer.
 */
const READ_MIN = 64 * 1024;
const READ_MAX = 4 * 1024 * 1024;

/**
 * What all relays of the process may hold together in read buffers grown
 * beyond READ_MIN: without a bound, 200 bulk transfers at once would hold
 * 800 MiB. Past the budget a relay keeps the size it has (it only gets
 * slower); the budget comes back when a channel closes.
 */
const GROWTH_BUDGET = 64 * 1024 * 1024;
let grownBytes = 0;

/** Bytes of read buffer currently held beyond READ_MIN by all relays (for tests and metrics). */
export function grownReadBuffers(): number {
  return grownBytes;
}

/**
 * READ_MIN buffers of closed relays, for the next ones. Two fresh 64 KiB
 * buffers per data connection made V8 count 128 KiB of external memory per
 * small file, and that alone started a full garbage collection every few
 * hundred transfers. A buffer comes back only once both sockets that could
 * read into it or still have a write pointing into it are destroyed.
 */
const spareBuffers: Buffer[] = [];
const SPARE_MAX = 64;

/**
 * One direction of the relay. Where it can, it reads through net's `onread`
 * into a buffer of its own, reused for every read, instead of getting a fresh
 * Buffer per read pushed through the Readable machinery: at the same 64 KiB
 * per read, that allocation, its garbage and the per-chunk stream events made
 * a pipe() relay cost about 1.8 CPU s/GiB against 1.0.
 * A reused buffer must not be read into while a write still refers to it
 * (a write the kernel did not take at once keeps pointing into it), so the
 * source is paused whenever a write did not complete synchronously, until
 * that write completes. That is also the back-pressure, and it bounds what
 * the relay holds to one read buffer per direction.
 */
class Pump {
  private buf = spareBuffers.pop() ?? Buffer.allocUnsafe(READ_MIN);
  /** This pump's share of GROWTH_BUDGET. */
  private grown = 0;
  private released = false;
  private src: Socket | undefined;
  private dst: Socket | undefined;
  private writes = 0;
  /** The write the source is paused for, 0 when reading. */
  private waitingFor = 0;

  constructor(private readonly count: (bytes: number) => void) {}

  /** For net.connect / new net.Socket: the buffer is asked for again after each read, which is when it may grow. */
  readonly onread: net.OnReadOpts = {
    buffer: () => this.buf,
    callback: (nread, buf) => {
      const full = nread === buf.length;
      this.forward(Buffer.from(buf.buffer, buf.byteOffset, nread));
      if (full && this.buf.length < READ_MAX) this.grow();
      return true;
    },
  };

  private grow(): void {
    const next = Math.min(READ_MAX, this.buf.length * 2);
    const more = next - this.buf.length;
    if (grownBytes + more > GROWTH_BUDGET) return;
    grownBytes += more;
    this.grown += more;
    this.buf = Buffer.allocUnsafe(next);
  }

  /** The channel is closed and its sockets destroyed: give the grown part back to the budget, a READ_MIN buffer to the spares. */
  release(): void {
    if (this.released) return;
    this.released = true;
    grownBytes -= this.grown;
    this.grown = 0;
    if (this.buf.length === READ_MIN && spareBuffers.length < SPARE_MAX) spareBuffers.push(this.buf);
  }

  /** `viaOnread` false: src was not built with this.onread, so its own 'data' chunks are relayed. */
  start(src: Socket, dst: Socket, viaOnread: boolean): void {
    this.src = src;
    this.dst = dst;
    if (!viaOnread) src.on('data', (chunk: Buffer) => this.forward(chunk));
    // With allowHalfOpen a FIN only ends src's readable side: forward it as a
    // FIN (after any pending write) while the other direction keeps flowing.
    src.once('end', () => dst.end());
    src.resume();
  }

  private forward(chunk: Buffer): void {
    const src = this.src!;
    const dst = this.dst!;
    this.count(chunk.length);
    const n = ++this.writes;
    dst.write(chunk, (err) => {
      // Writes complete in order, so only the one paused for can resume;
      // earlier ones that went to the kernel at once report late (next tick).
      if (!err && this.waitingFor === n) {
        this.waitingFor = 0;
        src.resume();
      }
    });
    if (dst.writableLength > 0) {
      this.waitingFor = n;
      src.pause();
    }
  }
}

/**
 * A server hands out sockets without an `onread` option. The only way to give
 * an accepted connection one is to move its handle into a new Socket (the
 * `handle` option net's own server uses; private, like `_handle`). Where that
 * is not possible, the accepted socket itself is kept and relayed through its
 * 'data' events: slower, same behaviour.
 */
function adopt(accepted: Socket, onread: net.OnReadOpts): { socket: Socket; viaOnread: boolean } {
  const holder = accepted as unknown as { _handle?: object | null };
  const handle = holder._handle;
  if (typeof handle !== 'object' || handle === null) return { socket: accepted, viaOnread: false };
  holder._handle = null;
  const socket = new net.Socket({ handle, onread, allowHalfOpen: true, pauseOnCreate: true } as net.SocketConstructorOpts);
  // Without a handle this only settles the listener's connection count.
  accepted.destroy();
  return { socket, viaOnread: true };
}

export interface DataChannelOptions {
  session: string;
  mode: DataMode;
  listenHost: string;
  pool: PortPool;
  /** Who may connect to the listener; anyone else is closed and reported. */
  acceptFrom: (peer: IpAddress) => boolean;
  acceptLabel: string;
  dialTarget: Endpoint;
  /** Local address to dial from: peers like vsftpd check that data comes from the control peer's address. */
  dialFrom?: string | undefined;
  dialFromPort?: number | undefined;
  acceptTimeoutMs: number;
  /** A relay that moves no byte for this long is closed. */
  idleTimeoutMs: number;
  sink: EventSink;
  /** Connections from these balancers start with a PROXY header naming the peer. */
  proxyIn?: DataProxyOptions | undefined;
  /**
   * Dial the target as soon as the listener is up, not once the peer is
   * accepted (passive mode: the server's data port, which it opened with its
   * 227 and accepts on only with the transfer command).
   */
  dialEarly?: boolean | undefined;
  /** Where dials draw their source port from (default: the kernel's ephemeral range; null: port 0). */
  dialPorts?: EphemeralPorts | null | undefined;
}

/** Drawn source ports a dial tries before it lets the kernel pick. */
const DIAL_PORT_TRIES = 3;

/**
 * Where a dial from `dialFrom` draws its source port: nowhere (null) when it
 * binds no address, or binds the port it is given (--active-source-port).
 */
export function dialPortsFor(dialFrom: string | undefined, dialFromPort: number | undefined, ports?: EphemeralPorts | null): EphemeralPorts | null | undefined {
  return dialFrom !== undefined && dialFromPort === undefined ? ports : null;
}

/** The drawn source port was taken (bind), or taken toward this very target (connect). */
function portTaken(err: NodeJS.ErrnoException): boolean {
  return err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL';
}

/** How dialDrawing() dials, and whom it tells. */
export interface DrawingDial {
  /** Dials from this source port (undefined: the kernel's choice, or the caller's fixed port). */
  connect: (port: number | undefined) => Socket;
  /** Where ports are drawn from: undefined for the kernel's ephemeral range, null for none (no drawing). */
  ports: EphemeralPorts | null | undefined;
  /** Every socket made, at once: the caller's close() must be able to destroy one still in flight. */
  hold: (socket: Socket) => void;
  /** The dial to go on with: connecting, or failed later with its own error for the caller's listeners. */
  use: (socket: Socket) => void;
  /** A failure other than a taken port, before use(). */
  fail: (err: Error) => void;
  /** Still wanted (the channel not closed meanwhile). */
  live: () => boolean;
}

/**
 * Dials from a source port drawn from the ephemeral range, drawing again
 * while the port turns out taken, up to DIAL_PORT_TRIES, then with the
 * kernel's port 0. Not port 0 first: with the local address bound (the
 * address the peer checks), bind(addr, 0) before connect() has the kernel
 * search for a port no socket holds, 4.9 ms per dial with the range full of
 * TIME-WAIT sockets (bench/RESULTS.md, "port churn"). A taken port shows as
 * an error in the ticks after net.connect(), before any I/O callback, so the
 * socket goes to use() in the next check phase, once it has had its chance.
 */
export function dialDrawing(d: DrawingDial, triesLeft = DIAL_PORT_TRIES): void {
  const drawn = triesLeft > 0 && d.ports !== null ? drawEphemeralPort(d.ports) : undefined;
  const socket = d.connect(drawn);
  d.hold(socket);
  if (drawn === undefined) return d.use(socket);
  let failed: NodeJS.ErrnoException | undefined;
  const onError = (err: NodeJS.ErrnoException) => (failed = err);
  socket.once('error', onError);
  setImmediate(() => {
    socket.off('error', onError);
    if (!d.live()) socket.destroy();
    else if (!failed) d.use(socket);
    else if (portTaken(failed)) dialDrawing(d, triesLeft - 1);
    else d.fail(failed);
  });
}

export type DataState = 'listening' | 'connecting' | 'relaying' | 'closed';

/** Whom a data listener accepts: the one peer expected, or one from the networks also allowed. */
export function isExpectedPeer(peer: IpAddress, expectFrom: IpAddress, alsoFrom: readonly Cidr[]): boolean {
  return sameAddress(peer, expectFrom) || alsoFrom.some((n) => n.contains(peer));
}

/** How a relay dials its side of a data connection: half-open allowed, from the address (and port) the target expects. */
export function dialOptions(target: Endpoint, dialFrom: string | undefined, dialFromPort: number | undefined): net.TcpNetConnectOpts {
  return {
    host: target.address,
    port: target.port,
    family: target.family,
    allowHalfOpen: true,
    ...(dialFrom ? { localAddress: dialFrom } : {}),
    ...(dialFromPort ? { localPort: dialFromPort } : {}),
  };
}

export class DataChannel {
  state: DataState = 'listening';
  readonly port: number;
  /** Resolves once the channel is closed for good, whatever the cause. */
  readonly closed: Promise<string>;
  private resolveClosed!: (reason: string) => void;
  private readonly listener: net.Server;
  private sockets: Socket[] = [];
  private pumps: Pump[] = [];
  private acceptTimer: NodeJS.Timeout | undefined;
  private bytesIn = 0; // towards the dialled side
  private bytesOut = 0; // towards the accepted side
  private openedAt = 0;
  private progressWaiters = new Set<() => void>();
  private from = '';
  /** Which sockets have been written to the end (the sending side's FIN relayed). */
  private readonly finished = { accepted: false, dialled: false };
  private to = '';
  private readonly balanced: BalancedAccepts | undefined;
  /**
   * The dial begun with the listener (dialEarly), until the accepted peer
   * takes it. On loopback a dial costs the gateway ~0.15 ms of CPU (the
   * handshake runs in connect()); done here it overlaps the client's own
   * connect instead of delaying the RETR that arrives with it. A dial that
   * failed is made again at accept time, as without dialEarly.
   *
   * It binds the control connection's address (the server checks it) on a
   * source port drawn from the ephemeral range, not port 0: bind(addr, 0)
   * before connect() has the kernel search for a port no socket holds,
   * 4.9 ms per dial with the range full of TIME-WAIT sockets (a busy
   * gateway leaves one per transfer; bench/RESULTS.md, "port churn"). A
   * drawn port that is taken costs one more try; after DIAL_PORT_TRIES the
   * kernel picks. (The dial at accept time draws too, through dialDrawing().)
   */
  private early: { socket: Socket; pump: Pump; failed: boolean; failure: () => void; onError: (err: NodeJS.ErrnoException) => void } | undefined;

  private constructor(
    private readonly opts: DataChannelOptions,
    listener: net.Server,
    port: number,
  ) {
    this.listener = listener;
    this.port = port;
    this.closed = new Promise((r) => (this.resolveClosed = r));
    listener.on('connection', (s) => this.onConnection(s));
    // A balancer's header was read off its socket: what follows it is buffered there, so that socket is not adopted.
    if (opts.proxyIn) this.balanced = new BalancedAccepts(opts.proxyIn, (p) => this.onPeer(p.socket, p.peer, p.label, true), (code, message) => this.refuse(code, message));
    listener.on('error', (err) => this.close(`listener error: ${err.message}`));
    this.acceptTimer = setTimeout(() => this.close('accept timeout'), opts.acceptTimeoutMs);
    opts.sink({
      event: 'data-listen',
      session: opts.session,
      mode: opts.mode,
      address: opts.listenHost,
      port,
      expect: opts.acceptLabel,
    });
    if (opts.dialEarly) this.dialEarly();
  }

  /** Listens on a port of the pool; throws PortsExhaustedError when none is free. */
  static async open(opts: DataChannelOptions): Promise<DataChannel> {
    const listener = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    const port = await opts.pool.listen(listener, opts.listenHost);
    return new DataChannel(opts, listener, port);
  }

  get bytes(): number {
    return this.bytesIn + this.bytesOut;
  }

  /**
   * Resolves when the transfer is flushed `toward` the side the data goes to
   * (the client for RETR/LIST, the server for STOR): that side's socket
   * has been written to the end. The other direction may stay half open, and
   * a client that shuts its idle half early says nothing about the data.
   * Also resolves when the channel closes, and gives up when no byte has
   * moved for `idleMs`: the linger bound for holding a completion reply.
   */
  async settled(idleMs: number, toward: 'client' | 'server'): Promise<void> {
    // Passive: we accepted the client and dialled the server; active: the reverse.
    const receiver = (toward === 'client') === (this.opts.mode === 'passive') ? 'accepted' : 'dialled';
    while (this.state !== 'closed' && !this.finished[receiver]) {
      const before = this.bytes;
      let timer: NodeJS.Timeout | undefined;
      let wake: (() => void) | undefined;
      // close() wakes the waiters too; a reaction on `closed` per round would pile up while bytes flow.
      const progressed = await new Promise<boolean>((resolve) => {
        wake = () => resolve(true);
        this.progressWaiters.add(wake);
        timer = setTimeout(() => resolve(false), idleMs);
      });
      clearTimeout(timer);
      if (wake) this.progressWaiters.delete(wake);
      if (!progressed && this.bytes === before) return;
    }
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    const wasOpen = this.openedAt > 0;
    this.state = 'closed';
    clearTimeout(this.acceptTimer);
    this.closeListener();
    this.balanced?.close();
    this.dropEarly();
    for (const s of this.sockets) s.destroy();
    for (const p of this.pumps) p.release();
    for (const w of this.progressWaiters) w();
    const { session, mode } = this.opts;
    this.opts.sink({
      event: 'data-close',
      session,
      mode,
      from: this.from,
      to: this.to || formatEndpoint(this.opts.dialTarget),
      bytes: this.bytes,
      bytesUp: this.bytesIn,
      bytesDown: this.bytesOut,
      durationMs: wasOpen ? Date.now() - this.openedAt : 0,
      reason,
    });
    this.resolveClosed(reason);
  }

  private closeListener(): void {
    if (!this.listener.listening) return;
    // The port goes back to the pool as soon as nobody listens on it, not
    // when close()'s callback runs: that waits for the accepted connection
    // to end, and a client asks for its next PASV right after the 226.
    this.listener.close();
    this.opts.pool.release(this.port);
  }

  private refuse(code: (typeof REASON)[keyof typeof REASON], message: string): void {
    this.opts.sink({ event: 'refuse', session: this.opts.session, kind: `data-${this.opts.mode}`, code, message });
  }

  private onConnection(accepted: Socket): void {
    if (this.state === 'listening' && this.balanced?.takes(accepted)) return;
    const peer = accepted.remoteAddress ? ipOf(accepted.remoteAddress) : undefined;
    this.onPeer(accepted, peer && { ...peer, port: accepted.remotePort ?? 0 }, `${accepted.remoteAddress}:${accepted.remotePort}`, false);
  }

  private onPeer(accepted: Socket, peer: Endpoint | undefined, label: string, headerRead: boolean): void {
    if (this.state !== 'listening' || !peer || !this.opts.acceptFrom(peer)) {
      accepted.destroy();
      this.refuse(REASON.DATA_PEER_MISMATCH, `data connection from ${label}, expected ${this.opts.acceptLabel}; closed`);
      return;
    }
    clearTimeout(this.acceptTimer);
    this.closeListener();
    this.balanced?.close();
    this.state = 'connecting';
    this.from = formatEndpoint(peer);
    const up = new Pump((n) => this.progress(n, 0));
    const early = this.takeEarly();
    const down = early?.pump ?? this.dialledPump();
    this.pumps = [up, down];
    const { socket: client, viaOnread } = headerRead ? { socket: accepted, viaOnread: false } : adopt(accepted, up.onread);
    // Nagle would hold a short last segment (the tail of a listing, a small
    // file written in two parts) until the peer's ACK, which a delayed ACK
    // can put off by up to 40 ms; the relay writes what it has read at once.
    client.setNoDelay(true);
    this.track(client);
    const { dialTarget, acceptTimeoutMs } = this.opts;
    const wire = (dialled: Socket) => {
      this.track(dialled);
      dialled.setTimeout(acceptTimeoutMs, () => {
        if (this.state === 'connecting') this.close(`connect to ${formatEndpoint(dialTarget)} timed out`);
      });
      const connected = () => {
        if (this.state !== 'connecting') return;
        this.state = 'relaying';
        this.openedAt = Date.now();
        this.to = formatEndpoint(dialTarget);
        this.opts.sink({ event: 'data-open', session: this.opts.session, mode: this.opts.mode, from: this.from, to: this.to });
        this.relay(client, dialled, up, down, viaOnread);
      };
      if (dialled.connecting) dialled.once('connect', connected);
      else connected();
    };
    if (early) wire(early.socket);
    else {
      const { dialFrom, dialFromPort, dialPorts } = this.opts;
      dialDrawing({
        connect: (port) => this.dial(down, port),
        ports: dialPortsFor(dialFrom, dialFromPort, dialPorts),
        // Destroyed with the others by close(); wire() tracks the one that goes on.
        hold: (socket) => this.sockets.push(socket),
        use: wire,
        fail: (err) => this.close(err.message),
        live: () => this.state === 'connecting',
      });
    }
  }

  private dialledPump(): Pump {
    return new Pump((n) => this.progress(0, n));
  }

  private dial(pump: Pump, drawnPort?: number): Socket {
    const { dialTarget, dialFrom, dialFromPort } = this.opts;
    const socket = net.connect({
      ...dialOptions(dialTarget, dialFrom, dialFromPort ?? drawnPort),
      onread: pump.onread,
      noDelay: true,
    });
    // onread delivers bytes whether or not anyone listens: read nothing before relay() has wired both pumps.
    socket.pause();
    return socket;
  }

  private dialEarly(triesLeft = DIAL_PORT_TRIES): void {
    const pump = this.dialledPump();
    const { dialFrom, dialFromPort, dialPorts } = this.opts;
    const ports = dialPortsFor(dialFrom, dialFromPort, dialPorts);
    const drawn = triesLeft > 0 && ports !== null ? drawEphemeralPort(ports) : undefined;
    // Not the channel's end: the dial is made again when the peer comes.
    const failure = () => (early.failed = true);
    const onError = (err: NodeJS.ErrnoException) => {
      // A bind or connect error comes before any I/O callback, so no peer has taken this dial yet.
      if (drawn !== undefined && portTaken(err) && this.early === early && this.state === 'listening') {
        this.dropEarly();
        this.dialEarly(triesLeft - 1);
      } else failure();
    };
    const early = { socket: this.dial(pump, drawn), pump, failed: false, failure, onError };
    early.socket.on('error', onError).on('close', failure);
    this.early = early;
  }

  /** The early dial, still on its way or connected, for the peer just accepted; undefined when there is none. */
  private takeEarly(): { socket: Socket; pump: Pump } | undefined {
    const early = this.early;
    if (!early || early.failed || early.socket.destroyed) {
      this.dropEarly();
      return undefined;
    }
    this.early = undefined;
    early.socket.off('error', early.onError).off('close', early.failure);
    return early;
  }

  private dropEarly(): void {
    if (!this.early) return;
    this.early.socket.destroy();
    this.early.pump.release();
    this.early = undefined;
  }

  private track(s: Socket): void {
    this.sockets.push(s);
    s.on('error', (err) => this.close(`${err.message}`));
    s.on('close', () => this.onSocketClose());
  }

  private onSocketClose(): void {
    if (this.state === 'closed') return;
    if (this.state !== 'relaying') {
      this.close('peer closed before the relay started');
      return;
    }
    if (this.sockets.every((s) => s.destroyed)) this.close('complete');
  }

  /** a: the accepted socket, b: the dialled one; `up` reads a, `down` reads b. */
  private relay(a: Socket, b: Socket, up: Pump, down: Pump, aViaOnread: boolean): void {
    const idle = this.opts.idleTimeoutMs;
    for (const s of [a, b]) {
      s.setTimeout(idle, () => this.close(`idle for ${idle} ms`));
    }
    a.once('finish', () => this.flushed('accepted'));
    b.once('finish', () => this.flushed('dialled'));
    up.start(a, b, aViaOnread);
    down.start(b, a, true);
  }

  private flushed(side: 'accepted' | 'dialled'): void {
    this.finished[side] = true;
    this.progress(0, 0);
  }

  private progress(up: number, down: number): void {
    this.bytesIn += up;
    this.bytesOut += down;
    if (this.progressWaiters.size > 0) {
      for (const w of this.progressWaiters) w();
      this.progressWaiters.clear();
    }
  }
}
