/**
 * Two loopback stand-ins for the PROXY protocol's other ends: a backend
 * front that records the header a gateway sends and passes the rest to a
 * real FTP server, and a "load balancer" that connects to the gateway from
 * a chosen loopback address and writes a chosen header first.
 */
import net, { type Socket } from 'node:net';
import { ProxyHeaderParser, type ProxyHeader } from '../../src/protocol/proxy-header.js';

export interface HeaderRecorder {
  port: number;
  headers: ProxyHeader[];
  /** Connections that did not start with a valid header, with the parser's message. */
  errors: string[];
  /** Resolves with the first header (recorded already or still to come). */
  firstHeader: () => Promise<ProxyHeader>;
  close: () => Promise<void>;
}

function pipeBoth(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  // A close after an end must not cut what is still queued toward the other side (a transfer's tail).
  a.on('close', () => b.end());
  b.on('close', () => a.end());
}

function listenLoopback(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

function closer(server: net.Server, sockets: Set<Socket>): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
}

/** Accepts, reads a PROXY header (required), records it, then relays to 127.0.0.1:backendPort. */
export async function startHeaderRecorder(backendPort: number): Promise<HeaderRecorder> {
  const headers: ProxyHeader[] = [];
  const errors: string[] = [];
  const sockets = new Set<Socket>();
  let announce: (h: ProxyHeader) => void = () => undefined;
  const first = new Promise<ProxyHeader>((resolve) => (announce = resolve));
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const parser = new ProxyHeaderParser();
    const onData = (chunk: Buffer) => {
      const result = parser.feed(chunk);
      if (result.kind === 'need-more') return;
      socket.off('data', onData);
      if (result.kind === 'error') {
        errors.push(result.message);
        socket.destroy();
        return;
      }
      headers.push(result.header);
      announce(result.header);
      socket.pause();
      const backend = net.connect({ host: '127.0.0.1', port: backendPort }, () => {
        if (result.rest.length) backend.write(result.rest);
        pipeBoth(socket, backend);
        socket.resume();
      });
      sockets.add(backend);
      backend.on('close', () => sockets.delete(backend));
      backend.on('error', () => socket.destroy());
    };
    socket.on('data', onData);
  });
  const port = await listenLoopback(server);
  return { port, headers, errors, firstHeader: () => first, close: closer(server, sockets) };
}

export interface FakeBalancer {
  port: number;
  close: () => Promise<void>;
}

export interface BalancerRoute {
  /** Where the balancer listens (default 127.0.0.1, port 0). */
  listenHost?: string;
  listenPort?: number;
  /** Where it connects to (default 127.0.0.1). */
  targetHost?: string;
  targetPort: number;
  /** Loopback address it connects from: the one the gateway trusts (or not). */
  fromAddress: string;
  /** What it writes first for the client it accepted (nothing when empty). */
  header: (client: Socket) => Buffer;
  /** Pieces of this many bytes, each its own write (a header split across segments). */
  chunk?: number | undefined;
  /** Hold the header until the client's first bytes and write both at once (one segment: the rest after the header). */
  coalesce?: boolean | undefined;
}

/**
 * Listens on 127.0.0.1; for each connection dials the gateway from
 * `fromAddress` (another loopback address) and writes `header(client)`
 * first, in pieces of `chunk` bytes when given (a header split across
 * segments), then relays.
 */
export function startFakeBalancer(gatewayPort: number, fromAddress: string, header: (client: Socket) => Buffer, chunk?: number): Promise<FakeBalancer> {
  return startBalancerRoute({ targetPort: gatewayPort, fromAddress, header, chunk });
}

/** One port of a stand-in balancer (HAProxy's `bind` + `server … send-proxy`), for control or data. */
export async function startBalancerRoute(route: BalancerRoute): Promise<FakeBalancer> {
  const { fromAddress, header, chunk } = route;
  if (route.coalesce && chunk) throw new Error('coalesce writes the header whole');
  const sockets = new Set<Socket>();
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    const upstream = net.connect({ host: route.targetHost ?? '127.0.0.1', port: route.targetPort, localAddress: fromAddress }, async () => {
      upstream.setNoDelay(true);
      const bytes = header(client);
      if (route.coalesce) {
        client.once('data', (first: Buffer) => {
          client.pause();
          upstream.write(Buffer.concat([bytes, first]));
          pipeBoth(client, upstream);
          client.resume();
        });
        client.resume();
        return;
      }
      if (chunk) {
        for (let at = 0; at < bytes.length; at += chunk) {
          upstream.write(bytes.subarray(at, at + chunk));
          // Each piece its own segment: wait until the kernel took it.
          await new Promise<void>((r) => setImmediate(r));
        }
      } else if (bytes.length) upstream.write(bytes);
      pipeBoth(client, upstream);
      client.resume();
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(route.listenPort ?? 0, route.listenHost ?? '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
  return { port, close: closer(server, sockets) };
}

/** A loopback port nothing listens on right now (connection refused until someone takes it). */
export async function freeLoopbackPort(): Promise<number> {
  const s = net.createServer();
  const port = await listenLoopback(s);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
