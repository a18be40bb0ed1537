/**
 * The data connection of one transfer, set up by PASV/EPSV (we listen) or
 * PORT/EPRT (we dial when the transfer command comes). No protocol knowledge:
 * the commands decide, this only moves sockets.
 */
import net, { type Server, type Socket } from 'node:net';
import { parseIp, sameAddress, type Endpoint, type IpAddress } from '../protocol/address.js';

export interface PendingDataConnection {
  readonly mode: 'passive' | 'active';
  /**
   * The connected data socket, once. Rejects after `timeoutMs` or when
   * `signal` aborts. The caller owns the socket from then on.
   */
  connect(timeoutMs: number, signal: AbortSignal): Promise<Socket>;
  /** Stops listening / dialling and drops an unclaimed socket; resolves when all is closed. */
  close(): Promise<void>;
}

export class DataConnectError extends Error {
  constructor(readonly reason: 'timeout' | 'aborted' | 'refused' | 'closed') {
    super(`data connection ${reason}`);
    this.name = 'DataConnectError';
  }
}

/** Socket errors must never go unhandled (an 'error' event without listener throws). */
function ignoreErrors(s: Socket | Server): void {
  s.on('error', () => {});
}

export function destroyAndWait(s: Socket): Promise<void> {
  if (s.closed) return Promise.resolve();
  return new Promise((resolve) => {
    s.once('close', () => resolve());
    s.destroy();
  });
}

/** Waits for `connect`-style completion with a timeout and an abort signal. */
function waitFor<T>(
  timeoutMs: number,
  signal: AbortSignal,
  start: (settle: (err: DataConnectError | undefined, value?: T) => void) => void,
  onFail: () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const settle = (err: DataConnectError | undefined, value?: T): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (err) {
        onFail();
        reject(err);
      } else {
        resolve(value as T);
      }
    };
    const onAbort = (): void => settle(new DataConnectError('aborted'));
    const timer = setTimeout(() => settle(new DataConnectError('timeout')), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) {
      onAbort();
      return;
    }
    start(settle);
  });
}

/**
 * A one-shot listener: accepts one connection, then stops listening. With
 * `allowedPeer`, connections from any other address are dropped and the
 * listener keeps waiting for the right one (vsftpd's pasv_promiscuous=NO),
 * so a third party cannot steal the transfer by racing the client.
 */
export class PassiveListener implements PendingDataConnection {
  readonly mode = 'passive';
  readonly port: number;
  private accepted: Socket | undefined;
  private claimed = false;
  private waiter: ((s: Socket) => void) | undefined;
  private readonly serverClosed: Promise<void>;

  private constructor(
    private readonly server: Server,
    private readonly allowedPeer: IpAddress | undefined,
  ) {
    this.port = (server.address() as net.AddressInfo).port;
    this.serverClosed = new Promise((resolve) => server.once('close', () => resolve()));
    server.on('connection', (s) => this.onConnection(s));
  }

  static open(host: string, allowedPeer?: IpAddress): Promise<PassiveListener> {
    return new Promise((resolve, reject) => {
      // allowHalfOpen: a client that shuts its own (idle) half during a RETR
      // still gets the whole file.
      const server = net.createServer({ allowHalfOpen: true });
      server.once('error', reject);
      server.listen({ host, port: 0, exclusive: true }, () => {
        server.off('error', reject);
        ignoreErrors(server);
        resolve(new PassiveListener(server, allowedPeer));
      });
    });
  }

  private onConnection(s: Socket): void {
    ignoreErrors(s);
    const remote = s.remoteAddress === undefined ? undefined : parseIp(s.remoteAddress);
    if (this.accepted || !remote || (this.allowedPeer && !sameAddress(remote, this.allowedPeer))) {
      s.destroy();
      return;
    }
    this.accepted = s;
    this.server.close();
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.(s);
  }

  connect(timeoutMs: number, signal: AbortSignal): Promise<Socket> {
    if (this.claimed) return Promise.reject(new DataConnectError('closed'));
    const claim = (s: Socket): Socket => {
      this.claimed = true;
      return s;
    };
    if (this.accepted) return Promise.resolve(claim(this.accepted));
    return waitFor<Socket>(
      timeoutMs,
      signal,
      (settle) => {
        this.waiter = (s) => settle(undefined, claim(s));
      },
      () => {
        this.waiter = undefined;
      },
    );
  }

  async close(): Promise<void> {
    this.waiter = undefined;
    if (this.server.listening) this.server.close();
    // An accepted socket nobody claimed is ours to drop; a claimed one belongs
    // to the transfer (the server's 'close' waits for it as well).
    if (this.accepted && !this.claimed) await destroyAndWait(this.accepted);
    await this.serverClosed;
  }
}

/**
 * PORT/EPRT: dials the client's endpoint when the transfer command comes, or
 * at once when told to (`dialNow`, what pyftpdlib does at PORT time).
 */
export class ActiveConnector implements PendingDataConnection {
  readonly mode = 'active';
  private pending: Socket | undefined;
  private used = false;
  private early: Promise<Socket> | undefined;

  /** `localAddress`: bind the data connection to the control connection's local address. */
  constructor(
    readonly target: Endpoint,
    private readonly localAddress: IpAddress | undefined,
  ) {}

  /** Dials now; the transfer's connect() then hands over this connection. */
  dialNow(timeoutMs: number, signal: AbortSignal): Promise<Socket> {
    this.early ??= this.dial(timeoutMs, signal);
    return this.early;
  }

  connect(timeoutMs: number, signal: AbortSignal): Promise<Socket> {
    if (this.early) {
      const early = this.early;
      this.early = undefined;
      return early;
    }
    return this.dial(timeoutMs, signal);
  }

  private dial(timeoutMs: number, signal: AbortSignal): Promise<Socket> {
    if (this.used) return Promise.reject(new DataConnectError('closed'));
    this.used = true;
    const local = this.localAddress?.family === this.target.family ? this.localAddress.address : undefined;
    return waitFor<Socket>(
      timeoutMs,
      signal,
      (settle) => {
        const s = net.connect({ host: this.target.address, port: this.target.port, localAddress: local, allowHalfOpen: true });
        ignoreErrors(s);
        this.pending = s;
        s.once('connect', () => {
          this.pending = undefined;
          settle(undefined, s);
        });
        s.once('error', () => settle(new DataConnectError('refused')));
        s.once('close', () => settle(new DataConnectError('refused')));
      },
      () => {
        this.pending?.destroy();
      },
    );
  }

  async close(): Promise<void> {
    const s = this.pending;
    this.pending = undefined;
    if (s) await destroyAndWait(s);
    // A connection dialled at PORT time that no transfer claimed is ours to drop.
    const early = this.early;
    this.early = undefined;
    if (early) await early.then(destroyAndWait, () => undefined);
  }
}
