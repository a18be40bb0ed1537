/**
 * The one seam between a session and its data connections. A session asks
 * for a channel and gets `{port, finish, close}`; whether the bytes are
 * relayed by this process or translated by the kernel is chosen once per
 * listener, and the session never knows which — as OpenBSD's ftp-proxy
 * calls pf through a handful of verbs it does not look behind.
 */
import { classifyAddress, ipOf, type Cidr, type Endpoint, type IpAddress } from '../protocol/address.js';
import type { DataFailure } from '../alg/control-stream.js';
import { DataChannel, isExpectedPeer } from './data.js';
import { NatChannel } from './nat-channel.js';
import { KernelNatError, type KernelNat } from './kernel-nat.js';
import { DataListenersExceededError, PortsExhaustedError, type PortPool } from './ports.js';
import type { DataMode, EventSink } from './events.js';
import { TlsRelayChannel, type DataTls } from './tls.js';
import { dataProxyFor, readsProxyHeaders } from './data-proxy-in.js';

export interface ChannelRequest {
  session: string;
  /** The client of the session: its listeners count against its quota. */
  client: IpAddress;
  mode: DataMode;
  /** Our address the peer is told to connect to. */
  listenHost: string;
  /** The one peer that may connect, and networks it may also come from. */
  expectFrom: IpAddress;
  alsoFrom: readonly Cidr[];
  /** Where the data goes once the peer is connected. */
  target: Endpoint;
  /**
   * The address the target expects data from (it checks, like vsftpd): the
   * relay dials from `dialFrom`, the kernel rewrites the source to `sourceAs`.
   */
  dialFrom?: string | undefined;
  dialFromPort?: number | undefined;
  sourceAs: IpAddress;
  /** Where this channel's events go (the session's, which also feeds its transfer log). */
  sink: EventSink;
  /** TLS ended by the gateway on either side of this connection (FTPS). */
  tls?: DataTls | undefined;
}

const needsTls = (req: ChannelRequest): req is ChannelRequest & { tls: DataTls } => Boolean(req.tls?.client ?? req.tls?.server);

export interface Channel {
  readonly port: number;
  /** Resolves once the channel is closed for good, whatever the cause. */
  readonly closed: Promise<string>;
  /** Still waiting for its one connection. */
  readonly unused: boolean;
  /** Bytes are moving or about to (connecting, relaying): the session is not idle. */
  readonly moving: boolean;
  /**
   * The transfer's final reply (`code`) arrived. Resolves when the reply may
   * go to the client: once the data has been flushed `toward` its receiver
   * when `awaitData`, or at once.
   */
  finish(code: number, awaitData: boolean, toward: 'client' | 'server'): Promise<void>;
  close(reason: string): void;
}

export interface DataPath {
  /** Rejects with DataOpenError. */
  open(request: ChannelRequest): Promise<Channel>;
  /** The port pools its listeners take from (for /metrics). */
  readonly pools: Record<DataMode, PortPool>;
}

export class DataOpenError extends Error {
  constructor(
    readonly failure: DataFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface DataPathOptions {
  pools: Record<DataMode, PortPool>;
  acceptTimeoutMs: number;
  dataIdleTimeoutMs: number;
  /** Longest a completion reply waits for its data while no byte moves. */
  completionLingerMs: number;
  /** Balancers whose passive data connections start with a PROXY header (reverse --proxy-protocol-from). */
  proxyProtocolFrom?: readonly Cidr[] | undefined;
}

/** Data bytes pass through this process, with back-pressure both ways. */
export class RelayDataPath implements DataPath {
  constructor(private readonly opts: DataPathOptions) {}

  get pools(): Record<DataMode, PortPool> {
    return this.opts.pools;
  }

  async open(req: ChannelRequest): Promise<Channel> {
    const { pools, acceptTimeoutMs, dataIdleTimeoutMs } = this.opts;
    const sink = req.sink;
    if (needsTls(req)) return opening(req.listenHost, () => TlsRelayChannel.open(req, this.opts));
    const channel = await opening(req.listenHost, () =>
      DataChannel.open({
        session: req.session,
        mode: req.mode,
        listenHost: req.listenHost,
        pool: pools[req.mode].forClient(req.client),
        acceptFrom: (peer) => isExpectedPeer(peer, req.expectFrom, req.alsoFrom),
        acceptLabel: req.expectFrom.address,
        dialTarget: req.target,
        dialFrom: req.dialFrom,
        dialFromPort: req.dialFromPort,
        acceptTimeoutMs,
        idleTimeoutMs: dataIdleTimeoutMs,
        sink,
        proxyIn: dataProxyFor(req.mode, this.opts.proxyProtocolFrom, acceptTimeoutMs),
        dialEarly: req.mode === 'passive',
      }),
    );
    return new RelayedChannel(channel, this.opts.completionLingerMs);
  }
}

/** What both kinds of channel have in common, as the session sees it. */
abstract class ChannelOf<C extends DataChannel | NatChannel> implements Channel {
  constructor(protected readonly channel: C) {}

  get port(): number {
    return this.channel.port;
  }

  get closed(): Promise<string> {
    return this.channel.closed;
  }

  get unused(): boolean {
    return this.channel.state === 'listening';
  }

  abstract get moving(): boolean;
  abstract finish(code: number, awaitData: boolean, toward: 'client' | 'server'): Promise<void>;

  close(reason: string): void {
    this.channel.close(reason);
  }
}

class RelayedChannel extends ChannelOf<DataChannel> {
  constructor(
    channel: DataChannel,
    private readonly lingerMs: number,
  ) {
    super(channel);
  }

  get moving(): boolean {
    return this.channel.state === 'relaying' || this.channel.state === 'connecting';
  }

  async finish(code: number, awaitData: boolean, toward: 'client' | 'server'): Promise<void> {
    const state = this.channel.state;
    // A 2xx before anyone connected: the server was quicker than the client,
    // whose connection is still on its way; wait for it as for any data.
    if (awaitData && (state === 'relaying' || state === 'connecting' || (state === 'listening' && code < 300))) {
      await this.channel.settled(this.lingerMs, toward);
    }
    if (this.channel.state === 'listening') this.channel.close(`transfer ended with ${code} before a data connection`);
  }
}

/**
 * Data connections translated by nftables (kernel-nat.ts). Netfilter cannot
 * turn an IPv6 connection into an IPv4 one, and a connection between
 * loopback and another interface is dropped as martian: those are relayed.
 */
export class KernelDataPath implements DataPath {
  private readonly relay: RelayDataPath;

  constructor(
    private readonly nat: KernelNat,
    private readonly opts: DataPathOptions,
  ) {
    this.relay = new RelayDataPath(opts);
  }

  get pools(): Record<DataMode, PortPool> {
    return this.opts.pools;
  }

  async open(req: ChannelRequest): Promise<Channel> {
    const loopback = (ip: IpAddress) => classifyAddress(ip) === 'loopback';
    const source = req.expectFrom;
    const all = [source, req.target, ipOf(req.listenHost), req.sourceAs];
    // The kernel cannot decrypt: a data connection with TLS ended here is
    // relayed; nor can it read a balancer's PROXY header.
    const balanced = readsProxyHeaders(req.mode, this.opts.proxyProtocolFrom);
    if (!all.every((a) => a.family === source.family) || loopback(source) !== loopback(req.target) || needsTls(req) || balanced) return this.relay.open(req);
    const { pools, acceptTimeoutMs } = this.opts;
    const sink = req.sink;
    const channel = await opening(req.listenHost, () =>
      NatChannel.open({
        session: req.session,
        mode: req.mode,
        listenHost: req.listenHost,
        pool: pools[req.mode].forClient(req.client),
        nat: this.nat,
        source,
        target: req.target,
        snatTo: req.sourceAs,
        acceptTimeoutMs,
        sink,
      }),
    );
    return new TranslatedChannel(channel);
  }
}

class TranslatedChannel extends ChannelOf<NatChannel> {
  private done = false;

  /**
   * The kernel moves the bytes out of our sight, long after the mapping's
   * accept window: a transfer counts as running until its final reply.
   */
  get moving(): boolean {
    return !this.done;
  }

  /** Nothing of ours to flush; the mapping has served its transfer. */
  finish(code: number): Promise<void> {
    this.done = true;
    this.channel.close(`transfer ended with ${code}`);
    return Promise.resolve();
  }

  override close(reason: string): void {
    this.done = true;
    super.close(reason);
  }
}

/** Runs an open and turns its failure into the one error the session understands. */
async function opening<T>(listenHost: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (err) {
    if (err instanceof KernelNatError) throw new DataOpenError('kernel-nat-failed', err.message);
    if (err instanceof DataListenersExceededError) throw new DataOpenError('listeners-exceeded', err.message);
    if (err instanceof PortsExhaustedError) throw new DataOpenError('ports-exhausted', err.message);
    throw new DataOpenError('listen-failed', `cannot listen on ${listenHost}: ${(err as Error).message}`);
  }
}
