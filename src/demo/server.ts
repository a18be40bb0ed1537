/**
 * The built-in FTP server of `ftp-alg demo` and of the gateway's end-to-end
 * tests: a listener and a registry of sessions. Commands are in commands.ts,
 * one control connection in session.ts, data connections in data-channel.ts.
 */
import net, { type AddressInfo } from 'node:net';
import { parseIp, type IpAddress } from '../protocol/address.js';
import type { ServerSettings } from './context.js';
import { FolderStore } from './folder-store.js';
import { DemoSession } from './session.js';
import { MemoryStore } from './store.js';

export interface DemoServerOptions {
  /** Default '127.0.0.1'; '::1' works too. */
  host?: string;
  /** Default 0 (ephemeral). */
  port?: number;
  /**
   * Address announced in 227 replies instead of the real local address
   * (simulates a server behind NAT announcing its inside address). Announce
   * only: the server never dials it. IPv4, since 227 can carry nothing else.
   */
  announceAddress?: string;
  /** Serve this folder (read/write) instead of the in-memory tree. */
  root?: string;
  /** Initial in-memory files: path → content. */
  files?: Record<string, Buffer | string>;
  /** user → password; 'anonymous' and 'ftp' are always accepted with any password. */
  users?: Record<string, string>;
  /**
   * When true (default), refuse PORT/EPRT to an address other than the
   * control peer (like vsftpd's default) and accept passive data connections
   * only from the control peer's address.
   */
  strict?: boolean;
  /** How long a transfer waits for its data connection before 425. Default 30 000. */
  dataTimeoutMs?: number;
  /**
   * Dial the client's PORT/EPRT endpoint at once and answer "200 Active data
   * connection established." (or 425), as pyftpdlib does, instead of when
   * the transfer command comes: a client must accept before it sends PORT.
   */
  connectAtPort?: boolean;
}

export interface DemoServer {
  /** The actual bound address. */
  readonly address: { host: string; port: number };
  /**
   * The in-memory tree (absolute paths like '/pub/hello.txt'), readable by
   * tests after STOR. Empty and unused when serving a folder (`root`).
   */
  readonly files: Map<string, Buffer>;
  /** Closes the listener, all sessions and data sockets; resolves when everything is closed. */
  close(): Promise<void>;
}

function listen(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function announcedAddress(text: string | undefined): IpAddress | undefined {
  if (text === undefined) return undefined;
  const ip = parseIp(text);
  if (!ip || ip.family !== 4) throw new Error(`announceAddress must be an IPv4 address (227 carries IPv4 only): ${text}`);
  return ip;
}

export async function startDemoServer(opts: DemoServerOptions = {}): Promise<DemoServer> {
  const memory = new MemoryStore(opts.files ?? {});
  const dataTimeoutMs = opts.dataTimeoutMs ?? 30_000;
  if (!(dataTimeoutMs > 0)) throw new Error(`dataTimeoutMs must be positive: ${dataTimeoutMs}`);
  const settings: ServerSettings = {
    store: opts.root !== undefined ? await FolderStore.open(opts.root) : memory,
    users: { ...opts.users },
    announce: announcedAddress(opts.announceAddress),
    strict: opts.strict ?? true,
    dataTimeoutMs,
    connectAtPort: opts.connectAtPort ?? false,
  };

  const sessions = new Set<DemoSession>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    // Replies are small writes: with Nagle, a 226 written while the 150 is
    // unacknowledged waits for the client's delayed ACK (about 40 ms).
    socket.setNoDelay(true);
    const local = socket.localAddress === undefined ? undefined : parseIp(socket.localAddress);
    const peer = socket.remoteAddress === undefined ? undefined : parseIp(socket.remoteAddress);
    if (!local || !peer) {
      // Gone before we looked at it.
      socket.destroy();
      return;
    }
    const session = new DemoSession(socket, settings, local, peer);
    sessions.add(session);
    socket.once('close', () => sessions.delete(session));
  });

  await listen(server, opts.host ?? '127.0.0.1', opts.port ?? 0);
  // Accept errors (EMFILE, …) concern one connection attempt, not the server.
  server.on('error', () => {});
  const bound = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  return {
    address: { host: bound.address, port: bound.port },
    files: memory.files,
    close() {
      closing ??= (async () => {
        const listenerClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        await Promise.all([...sessions].map((s) => s.shutdown()));
        await listenerClosed;
      })();
      return closing;
    },
  };
}
