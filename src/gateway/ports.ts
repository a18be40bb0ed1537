/**
 * Ports for the gateway's one-shot data listeners, and how many of them one
 * client may hold.
 *
 * Without a range, a port is drawn at random from the kernel's ephemeral
 * range (its reserved ports left out) and bound by number, a few times over
 * if taken, then port 0. Not port 0 first: bind(…, 0) has the kernel search
 * the range for a port no socket holds, TIME-WAIT ones included, and a busy
 * gateway leaves one of those per transfer; with 27,000 of them the search
 * took 1.45 ms per listener (bench/RESULTS.md), where binding one number
 * looks at one port. With a range, a port is drawn
 * at random among the free ones: handed out in order, the next port is
 * predictable, and a host sharing the client's address (same NAT) could
 * connect to it first. A port released less than TIME_WAIT_MS ago is drawn
 * only when no other is free, the one released longest ago first: a peer
 * may still hold the old connection in TIME_WAIT, and a new one on the same
 * four-tuple would be refused or mixed up with it.
 *
 * Each listener can be charged to the client it was opened for (its address;
 * an IPv6 client's /64, which one host usually holds whole): past
 * `maxPerClient` open listeners, across all its sessions and both data
 * directions, the client gets no more, so that one address cannot starve
 * the range for everyone.
 */
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { networkOf, type IpAddress } from '../protocol/address.js';
import type { PortRange } from '../config.js';

export type { PortRange };

/** Linux keeps a closed connection in TIME_WAIT for 60 s (TCP_TIMEWAIT_LEN). */
export const TIME_WAIT_MS = 60_000;

export class PortsExhaustedError extends Error {
  readonly code: 'PORTS_EXHAUSTED' | 'DATA_LISTENERS_EXCEEDED' = 'PORTS_EXHAUSTED';
}

/** A client holds its share of listeners already; a subclass so that callers of PortsExhaustedError answer 425 alike. */
export class DataListenersExceededError extends PortsExhaustedError {
  override readonly code = 'DATA_LISTENERS_EXCEEDED';
}

/**
 * Open listeners per client, shared by every pool of one gateway (passive
 * and active): the cap counts them together.
 */
export class DataListenerQuota {
  private readonly held = new Map<string, number>();

  constructor(readonly maxPerClient: number) {}

  /** Listeners `owner` holds now. */
  heldBy(owner: string): number {
    return this.held.get(owner) ?? 0;
  }

  acquire(owner: string): boolean {
    const n = this.heldBy(owner);
    if (n >= this.maxPerClient) return false;
    this.held.set(owner, n + 1);
    return true;
  }

  release(owner: string): void {
    const n = this.heldBy(owner) - 1;
    if (n > 0) this.held.set(owner, n);
    else this.held.delete(owner);
  }
}

/** Whom a listener is charged to: an IPv4 address, or an IPv6 /64 (as the per-client session cap counts). */
export function ownerOf(client: IpAddress): string {
  return client.family === 4 ? client.address : networkOf(client, 64);
}

/** Where a pool without a range draws from: the kernel's ephemeral ports, less its reserved ones. */
export interface EphemeralPorts {
  range: PortRange;
  reserved: (port: number) => boolean;
}

export interface PortPoolOptions {
  quota?: DataListenerQuota | undefined;
  /** Without a range: where ports are drawn from (default: the kernel's, from /proc; null: port 0 only). */
  ephemeral?: EphemeralPorts | null;
  /** How long a released port waits before it is drawn again while others are free. */
  quarantineMs?: number;
  /** For tests: the clock. */
  now?: () => number;
}

/** What all views of one pool share: ports in use, when each was released, whom each listener is charged to. */
class PortBook {
  readonly inUse = new Set<number>();
  readonly releasedAt = new Map<number, number>();
  /** Port → the owners of the listeners on it (several only without a range, on different addresses). */
  readonly owners = new Map<number, Array<string | undefined>>();
  readonly quota: DataListenerQuota | undefined;
  readonly quarantineMs: number;
  readonly now: () => number;
  private readonly ephemeralGiven: EphemeralPorts | null | undefined;

  constructor(options: PortPoolOptions) {
    this.ephemeralGiven = options.ephemeral;
    this.quota = options.quota;
    this.quarantineMs = options.quarantineMs ?? TIME_WAIT_MS;
    this.now = options.now ?? Date.now;
  }

  get ephemeral(): EphemeralPorts | null {
    return this.ephemeralGiven === undefined ? kernelEphemeralPorts() : this.ephemeralGiven;
  }
}

export class PortPool {
  constructor(
    readonly range: PortRange | undefined,
    options: PortPoolOptions = {},
    private readonly book = new PortBook(options),
    /** Set on a view made by forClient: its listeners count against that client's quota. */
    private readonly owner?: string,
  ) {}

  /** The same pool, charging every listener it opens to `client`. */
  forClient(client: IpAddress): PortPool {
    return new PortPool(this.range, {}, this.book, ownerOf(client));
  }

  get size(): number {
    return this.range ? this.range.hi - this.range.lo + 1 : Infinity;
  }

  get used(): number {
    return this.range ? this.book.inUse.size : [...this.book.owners.values()].reduce((n, o) => n + o.length, 0);
  }

  /**
   * Binds `server` on `host` to a port of the pool; resolves to the port.
   * Throws DataListenersExceededError when the owner holds its share, and
   * PortsExhaustedError when no port is free.
   */
  async listen(server: Server, host: string): Promise<number> {
    const { owner, book } = this;
    if (owner !== undefined && book.quota && !book.quota.acquire(owner)) {
      throw new DataListenersExceededError(`client ${owner} already holds ${book.quota.maxPerClient} data listeners`);
    }
    try {
      const port = this.range ? await this.listenInRange(server, host, this.range) : await listenAnywhere(server, host, book.ephemeral);
      book.owners.set(port, [...(book.owners.get(port) ?? []), owner]);
      return port;
    } catch (err) {
      if (owner !== undefined) book.quota?.release(owner);
      throw err;
    }
  }

  release(port: number): void {
    const { book } = this;
    const owners = book.owners.get(port);
    if (!owners) return; // released already
    const owner = owners.pop();
    if (owners.length === 0) book.owners.delete(port);
    if (owner !== undefined) book.quota?.release(owner);
    if (this.range) {
      book.inUse.delete(port);
      book.releasedAt.set(port, book.now());
    }
  }

  private async listenInRange(server: Server, host: string, { lo, hi }: PortRange): Promise<number> {
    const { book } = this;
    const now = book.now();
    const rested: number[] = [];
    const resting: number[] = [];
    for (let port = lo; port <= hi; port++) {
      if (book.inUse.has(port)) continue;
      const released = book.releasedAt.get(port);
      if (released === undefined || now - released >= book.quarantineMs) rested.push(port);
      else resting.push(port);
    }
    // Only when every free port is resting: the one released longest ago.
    resting.sort((a, b) => book.releasedAt.get(b)! - book.releasedAt.get(a)!);
    while (rested.length > 0 || resting.length > 0) {
      const port = rested.length > 0 ? takeRandom(rested) : resting.pop()!;
      book.inUse.add(port);
      try {
        await listenOn(server, host, port);
        return port;
      } catch (err) {
        book.inUse.delete(port);
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
    throw new PortsExhaustedError(`no free port in ${lo}-${hi}`);
  }
}

/** The passive and active pools of one gateway, sharing one per-client quota. */
export function dataPortPools(
  passive: PortRange | undefined,
  active: PortRange | undefined,
  maxPerClient: number,
): { passivePool: PortPool; activePool: PortPool } {
  const quota = new DataListenerQuota(maxPerClient);
  return { passivePool: new PortPool(passive, { quota }), activePool: new PortPool(active, { quota }) };
}

/** Removes and returns an element drawn uniformly (crypto RNG: the next port must not be guessable). */
function takeRandom(ports: number[]): number {
  const i = randomInt(ports.length);
  const port = ports[i]!;
  ports[i] = ports[ports.length - 1]!;
  ports.pop();
  return port;
}

/** Numbered binds tried before port 0: enough when most of the range is free, few when it is not. */
const ANYWHERE_TRIES = 4;

/** `lo hi` as in /proc/sys/net/ipv4/ip_local_port_range; undefined unless a sane range. */
export function parseLocalPortRange(text: string): PortRange | undefined {
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
  const lo = Number(m?.[1]);
  const hi = Number(m?.[2]);
  return m && lo >= 1 && lo <= hi && hi <= 65535 ? { lo, hi } : undefined;
}

/** `8080,9000-9010` as in /proc/sys/net/ipv4/ip_local_reserved_ports (empty: none). */
export function parseReservedPorts(text: string): (port: number) => boolean {
  const spans = text
    .trim()
    .split(',')
    .filter((t) => t !== '')
    .map((t) => t.split('-').map(Number) as [number, number?]);
  return (port) => spans.some(([lo, hi]) => port === lo || (hi !== undefined && port >= lo && port <= hi));
}

let ephemeral: EphemeralPorts | null | undefined;

/** The kernel's ephemeral range, read once; null where /proc does not say (then port 0 it is). */
function kernelEphemeralPorts(): EphemeralPorts | null {
  if (ephemeral !== undefined) return ephemeral;
  const read = (name: string) => {
    try {
      return readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8');
    } catch {
      return undefined;
    }
  };
  const range = parseLocalPortRange(read('ip_local_port_range') ?? '');
  ephemeral = range ? { range, reserved: parseReservedPorts(read('ip_local_reserved_ports') ?? '') } : null;
  return ephemeral;
}

/** Draws past reserved ports before giving up: enough unless nearly the whole range is reserved. */
const RESERVED_REDRAWS = 8;

/** A port of the ephemeral range drawn at random (crypto RNG), not a reserved one; undefined when none can be drawn. */
export function drawEphemeralPort(ports: EphemeralPorts | null = kernelEphemeralPorts()): number | undefined {
  if (!ports) return undefined;
  for (let i = 0; i < RESERVED_REDRAWS; i++) {
    const port = randomInt(ports.range.lo, ports.range.hi + 1);
    if (!ports.reserved(port)) return port;
  }
  return undefined;
}

async function listenAnywhere(server: Server, host: string, ports: EphemeralPorts | null): Promise<number> {
  for (let i = 0; ports && i < ANYWHERE_TRIES; i++) {
    const port = drawEphemeralPort(ports);
    if (port === undefined) continue;
    try {
      await listenOn(server, host, port);
      return port;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
  await listenOn(server, host, 0);
  const a = server.address();
  if (a === null || typeof a === 'string') throw new Error('listener has no port');
  return a.port;
}

function listenOn(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host, port, exclusive: true });
  });
}
