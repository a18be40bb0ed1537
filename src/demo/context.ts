/**
 * What a command handler sees of its session: the state the commands share,
 * the server-wide settings, and the few actions that touch sockets. The
 * session (session.ts) implements it; handlers (commands.ts, transfer.ts)
 * never see a socket of the control connection.
 */
import type { Socket } from 'node:net';
import type { IpAddress } from '../protocol/address.js';
import type { PendingDataConnection } from './data-channel.js';
import type { FileStore } from './store.js';

export interface ServerSettings {
  store: FileStore;
  users: Readonly<Record<string, string>>;
  /** Announced in 227 instead of the control connection's local address. */
  announce: IpAddress | undefined;
  strict: boolean;
  dataTimeoutMs: number;
  /** Dial the client at PORT/EPRT time, as pyftpdlib does, instead of at the transfer command. */
  connectAtPort: boolean;
}

export interface SessionState {
  /** Name given by USER, until PASS settles it. */
  user: string | undefined;
  loggedIn: boolean;
  cwd: string;
  type: 'A' | 'I';
  /** REST offset for the next RETR. */
  restOffset: number;
  /** RFC 2428 §4: after EPSV ALL only EPSV may set up data connections. */
  epsvAll: boolean;
  /** Set when ABOR interrupted a transfer: the queued ABOR then answers 226. */
  abortedTransfer: boolean;
}

/** One running transfer, as the session sees it: ABOR and shutdown abort it. */
export interface TransferHandle {
  readonly signal: AbortSignal;
}

export interface SessionContext {
  readonly state: SessionState;
  readonly settings: ServerSettings;
  /** Control connection addresses, IPv4-mapped IPv6 folded to IPv4. */
  readonly local: IpAddress;
  readonly peer: IpAddress;

  reply(code: number, text: string): void;
  /** `code-first` … `code last` (RFC 959 §4.2 multi-line reply). */
  replyLines(code: number, lines: string[]): void;
  /** A complete reply line built elsewhere (e.g. format227Reply). */
  sendLine(line: string): void;

  /** Replaces the data channel set up by PASV/EPSV/PORT/EPRT, closing the previous one. */
  setDataConnection(channel: PendingDataConnection | undefined): void;
  /** Takes the data channel for a transfer command; the caller must hand it back with retire(). */
  takeDataConnection(): PendingDataConnection | undefined;
  retire(channel: PendingDataConnection): void;

  beginTransfer(): TransferHandle;
  endTransfer(t: TransferHandle): void;
  /** A data socket whose transfer completed: closed by the peer, or by us at the latest on shutdown. */
  linger(data: Socket): void;

  /** Ends the control connection once the replies written so far are flushed. */
  quit(): void;
}
