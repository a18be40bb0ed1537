/**
 * PROXY headers on data connections. A balancer that forwards an instance's
 * passive range (HAProxy `send-proxy-v2`) connects from its own address; its
 * header says which client it accepted, and that client is the peer the
 * data-peer check must see. One header per accepted connection, read before
 * anything is relayed; a trusted source without a valid header gets nothing.
 */
import type { Socket } from 'node:net';
import { formatEndpoint, ipOf, type Cidr, type Endpoint } from '../protocol/address.js';
import { REASON, type ReasonCode } from '../codes.js';
import { readProxyHeader } from './proxy-in.js';

export interface DataProxyOptions {
  /** Balancers (--proxy-protocol-from) whose data connections must start with a header. */
  from: readonly Cidr[];
  /** Longest wait for a whole header on one connection. */
  timeoutMs: number;
}

/**
 * Headers read at once on one listener. A balancer opens one connection per
 * client attempt, and only the session's own client should be dialling this
 * port: more than a few at once is someone sweeping the passive range.
 */
export const MAX_PENDING_HEADERS = 8;

export interface BalancedPeer {
  socket: Socket;
  /** The client the header names. */
  peer: Endpoint;
  /** For logs: the client, and the balancer it came through. */
  label: string;
}

/** The accepted connections of one data listener that come from a balancer. */
export class BalancedAccepts {
  private readonly pending = new Set<Socket>();

  constructor(
    private readonly opts: DataProxyOptions,
    /** The header named a client: the listener's own peer check decides. */
    private readonly onPeer: (peer: BalancedPeer) => void,
    private readonly onRefused: (code: ReasonCode, message: string) => void,
  ) {}

  /** True when `socket` is a balancer's: it is then handled here, and handed to onPeer once its header names the client. */
  takes(socket: Socket): boolean {
    const balancer = socket.remoteAddress ? ipOf(socket.remoteAddress) : undefined;
    if (!balancer || !this.opts.from.some((c) => c.contains(balancer))) return false;
    const via = formatEndpoint({ ...balancer, port: socket.remotePort ?? 0 });
    if (this.pending.size >= MAX_PENDING_HEADERS) {
      socket.destroy();
      this.onRefused(REASON.PROXY_HEADER, `data connection from ${via}: already ${MAX_PENDING_HEADERS} PROXY headers being read on this port; closed`);
      return true;
    }
    this.pending.add(socket);
    void readProxyHeader(socket, this.opts.timeoutMs).then((read) => {
      if (!this.pending.delete(socket)) return; // closed meanwhile
      const refuse = (message: string) => {
        socket.destroy();
        this.onRefused(REASON.PROXY_HEADER, `data connection from ${via}: ${message}; closed`);
      };
      if (!read.ok) return refuse(read.message);
      const { addresses } = read.header;
      // LOCAL, UNKNOWN or AF_UNIX name no client, and the balancer itself is not the session's client.
      if (addresses.kind !== 'inet') return refuse(`PROXY header names no client (${read.header.command === 'local' ? 'LOCAL' : addresses.kind})`);
      this.onPeer({ socket, peer: addresses.source, label: `${formatEndpoint(addresses.source)} (PROXY header from ${via})` });
    });
    return true;
  }

  /** The listener is done: connections still sending their header go. */
  close(): void {
    for (const s of this.pending) s.destroy();
    this.pending.clear();
  }
}

/** A balancer sends its header as soon as it has connected; waiting longer only holds a port. */
const HEADER_TIMEOUT_MS = 5000;

/**
 * Only passive listeners can be behind a balancer: in active mode the
 * gateway listens for the FTP server, which it dials directly.
 */
export function readsProxyHeaders(mode: 'passive' | 'active', from: readonly Cidr[] | undefined): from is readonly Cidr[] {
  return mode === 'passive' && Boolean(from?.length);
}

export function dataProxyFor(mode: 'passive' | 'active', from: readonly Cidr[] | undefined, acceptTimeoutMs: number): DataProxyOptions | undefined {
  if (!readsProxyHeaders(mode, from)) return undefined;
  // Well inside the listener's own window, so a silent balancer is reported as such, not as an accept timeout.
  return { from, timeoutMs: Math.min(HEADER_TIMEOUT_MS, Math.floor(acceptTimeoutMs / 2)) };
}
