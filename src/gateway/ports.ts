/**
 * Ports for the gateway's one-shot data listeners. Without a range the kernel
 * picks (port 0). With a range, ports are handed out round-robin so that a
 * port just released (its last connection possibly still in TIME_WAIT on a
 * peer) is the last to be reused, and EADDRINUSE moves on to the next port.
 */
import type { Server } from 'node:net';

export interface PortRange {
  lo: number;
  hi: number;
}

export class PortsExhaustedError extends Error {
  readonly code = 'PORTS_EXHAUSTED';
}

export class PortPool {
  private readonly inUse = new Set<number>();
  private cursor: number;

  constructor(readonly range: PortRange | undefined) {
    this.cursor = range ? range.lo : 0;
  }

  get size(): number {
    return this.range ? this.range.hi - this.range.lo + 1 : Infinity;
  }

  get used(): number {
    return this.inUse.size;
  }

  /** Binds `server` on `host` to a free port of the pool; resolves to the port. */
  async listen(server: Server, host: string): Promise<number> {
    if (!this.range) {
      await listenOn(server, host, 0);
      return portOf(server);
    }
    const { lo, hi } = this.range;
    const span = hi - lo + 1;
    for (let i = 0; i < span; i++) {
      const port = this.cursor;
      this.cursor = port >= hi ? lo : port + 1;
      if (this.inUse.has(port)) continue;
      this.inUse.add(port);
      try {
        await listenOn(server, host, port);
        return port;
      } catch (err) {
        this.inUse.delete(port);
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
    throw new PortsExhaustedError(`no free port in ${lo}-${hi}`);
  }

  release(port: number): void {
    this.inUse.delete(port);
  }
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

function portOf(server: Server): number {
  const a = server.address();
  if (a === null || typeof a === 'string') throw new Error('listener has no port');
  return a.port;
}
