/**
 * The admin endpoint (`--admin-listen`, off by default): GET /metrics
 * (Prometheus text), /healthz (200 serving, 503 draining), /readyz (200 once
 * every listener is bound). Read-only, no authentication: it binds loopback
 * or one address the operator named (config-file.ts: parseAdminListen).
 *
 * It faces whoever can reach that address, so it is held to the same rule
 * as the gateway: nothing a peer sends may hurt the process. Node's HTTP
 * parser refuses malformed requests and oversize headers itself (400/431);
 * the limits below bound slow, idle and numerous peers.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Registry } from 'prom-client';

export interface AdminState {
  /** false while draining (after SIGTERM): /healthz answers 503. */
  serving: () => boolean;
  /** true once every listener is bound: /readyz answers 200. */
  ready: () => boolean;
  registry: Registry;
}

/** Limits for peers of the admin endpoint; a scraper needs far less. */
export const ADMIN_LIMITS = {
  maxConnections: 32,
  maxHeaderBytes: 8 * 1024,
  /** A request must arrive whole within this (slowloris). */
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  /** An idle kept-alive connection is closed after this. */
  keepAliveMs: 5_000,
  /** How often Node checks the two timeouts above. */
  checkIntervalMs: 1_000,
  /** Requests on one connection, then it is closed: a pipelined flood ends there. */
  requestsPerConnection: 16,
  /**
   * A rendering of /metrics is reused for this long: rendering costs CPU
   * (milliseconds), and a peer asking in a loop must not take the event
   * loop from the FTP sessions. Scrapers ask every 10-60 s.
   */
  metricsCacheMs: 1_000,
};

/** What Node's HTTP parser found wrong → the status the peer gets (default 400). */
const CLIENT_ERROR_STATUS: Record<string, string> = {
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  HPE_INVALID_VERSION: '505 HTTP Version Not Supported',
};

export class AdminServer {
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: http.Server) {}

  static async start(listen: { host: string; port: number }, state: AdminState): Promise<AdminServer> {
    const metrics = cachedMetrics(state.registry);
    const server = http.createServer(
      {
        maxHeaderSize: ADMIN_LIMITS.maxHeaderBytes,
        headersTimeout: ADMIN_LIMITS.headersTimeoutMs,
        requestTimeout: ADMIN_LIMITS.requestTimeoutMs,
        keepAliveTimeout: ADMIN_LIMITS.keepAliveMs,
        connectionsCheckingInterval: ADMIN_LIMITS.checkIntervalMs,
      },
      (req, res) => void respond(req, res, state, metrics),
    );
    server.maxConnections = ADMIN_LIMITS.maxConnections;
    server.maxRequestsPerSocket = ADMIN_LIMITS.requestsPerConnection;
    // No header of ours may wait on a peer that never reads: one write, then done.
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      const status = CLIENT_ERROR_STATUS[err.code ?? ''] ?? '400 Bad Request';
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
      socket.destroy();
    });
    const admin = new AdminServer(server);
    server.on('connection', (socket: Socket) => {
      admin.sockets.add(socket);
      socket.on('close', () => admin.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: listen.host, port: listen.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return admin;
  }

  get address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

/** /metrics text, rendered at most once per metricsCacheMs however often it is asked for. */
function cachedMetrics(registry: Registry): () => Promise<string> {
  let last: { at: number; text: Promise<string> } | undefined;
  return () => {
    const now = Date.now();
    if (!last || now - last.at >= ADMIN_LIMITS.metricsCacheMs) last = { at: now, text: registry.metrics() };
    return last.text;
  };
}

async function respond(req: http.IncomingMessage, res: http.ServerResponse, state: AdminState, metrics: () => Promise<string>): Promise<void> {
  // A request body is never wanted; do not read one.
  const path = (req.url ?? '').split('?', 1)[0];
  const send = (code: number, type: string, body: string, extra: http.OutgoingHttpHeaders = {}) => {
    res.writeHead(code, { 'Content-Type': type, 'Cache-Control': 'no-store', ...extra });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(405, 'text/plain', 'method not allowed: GET or HEAD\n', { Allow: 'GET, HEAD', Connection: 'close' });
    return;
  }
  const text = 'text/plain; charset=utf-8';
  switch (path) {
    case '/metrics':
      try {
        send(200, state.registry.contentType, await metrics());
      } catch (err) {
        send(500, text, `metrics failed: ${(err as Error).message}\n`);
      }
      return;
    case '/healthz':
      if (state.serving()) send(200, text, 'serving\n');
      else send(503, text, 'draining\n');
      return;
    case '/readyz':
      if (state.ready()) send(200, text, 'ready\n');
      else send(503, text, 'not ready: a listener is not bound\n');
      return;
    default:
      send(404, text, 'not found: /metrics, /healthz, /readyz\n');
  }
}
