/**
 * One data connection on the kernel data path: a reserved port of ours and
 * a kernel mapping (see kernel-nat.ts) that sends the expected peer's
 * connection to that port straight on to the real endpoint. The bytes never
 * pass through this process, so there is nothing to relay, count or flush.
 *
 * The port is held by a listener that should never see a connection: one
 * that arrives did not match the mapping (another source, or after the
 * kernel timeout) and is closed and reported, as the relay would.
 */
import net from 'node:net';
import { formatEndpoint, ipOf, type Endpoint, type IpAddress } from '../protocol/address.js';
import { REASON } from '../codes.js';
import type { DataMode, EventSink } from './events.js';
import type { PortPool } from './ports.js';
import type { KernelNat, NatMapping } from './kernel-nat.js';

export interface NatChannelOptions {
  session: string;
  mode: DataMode;
  /** Our address the peer is told to connect to. */
  listenHost: string;
  pool: PortPool;
  nat: KernelNat;
  /** The one address the data connection may come from. */
  source: IpAddress;
  target: Endpoint;
  snatTo?: IpAddress | undefined;
  /** How long the mapping waits for its connection (a kernel timeout too). */
  acceptTimeoutMs: number;
  sink: EventSink;
}

export class NatChannel {
  /**
   * 'listening' while the mapping waits for its connection. A connection
   * already set up keeps its translation (conntrack) whatever happens here.
   */
  state: 'listening' | 'closed' = 'listening';
  readonly closed: Promise<string>;
  private resolveClosed!: (reason: string) => void;
  /** As the relay's listener: the mapping and the port are given up after the accept window. */
  private readonly acceptTimer: NodeJS.Timeout;

  private constructor(
    private readonly opts: NatChannelOptions,
    private readonly listener: net.Server,
    readonly port: number,
    private readonly mapping: NatMapping,
  ) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.acceptTimer = setTimeout(() => this.close('accept window over'), opts.acceptTimeoutMs);
    listener.on('connection', (s) => {
      const from = `${s.remoteAddress}:${s.remotePort}`;
      s.destroy();
      opts.sink({
        event: 'refuse',
        session: opts.session,
        kind: `data-${opts.mode}`,
        code: REASON.DATA_PEER_MISMATCH,
        message: `data connection from ${from} did not match the kernel mapping (expected from ${opts.source.address} within ${opts.acceptTimeoutMs} ms); closed`,
      });
    });
    listener.on('error', () => undefined);
  }

  /** Reserves a port and installs the mapping; throws PortsExhaustedError or KernelNatError. */
  static async open(opts: NatChannelOptions): Promise<NatChannel> {
    const listener = net.createServer();
    const port = await opts.pool.listen(listener, opts.listenHost);
    const mapping: NatMapping = {
      source: opts.source,
      via: { ...ipOf(opts.listenHost), port },
      target: opts.target,
      // A source that already is the address the target expects needs no SNAT.
      snatTo: opts.snatTo && opts.snatTo.address !== opts.source.address ? opts.snatTo : undefined,
    };
    try {
      await opts.nat.add(mapping, opts.acceptTimeoutMs);
    } catch (err) {
      listener.close();
      opts.pool.release(port);
      throw err;
    }
    opts.sink({
      event: 'data-nat',
      session: opts.session,
      mode: opts.mode,
      action: 'map',
      from: opts.source.address,
      via: formatEndpoint(mapping.via),
      to: formatEndpoint(opts.target),
      ...(mapping.snatTo ? { sourceAs: mapping.snatTo.address } : {}),
    });
    return new NatChannel(opts, listener, port, mapping);
  }

  /** The kernel delivers the bytes itself: nothing of ours to wait for. */
  settled(): Promise<void> {
    return Promise.resolve();
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.acceptTimer);
    this.listener.close();
    this.opts.pool.release(this.port);
    const { session, mode, sink } = this.opts;
    // Connections already set up keep their translation: conntrack holds it.
    this.opts.nat.remove(this.mapping).catch((err: Error) => sink({ event: 'warning', session, message: `kernel mapping for ${formatEndpoint(this.mapping.via)} not removed: ${err.message}` }));
    sink({ event: 'data-nat', session, mode, action: 'unmap', from: this.opts.source.address, via: formatEndpoint(this.mapping.via), to: formatEndpoint(this.opts.target), reason });
    this.resolveClosed(reason);
  }
}

