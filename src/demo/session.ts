/**
 * One control connection: bytes → lines (the protocol framer), a queue that
 * runs commands one at a time, replies back, and the sockets the session owns.
 * Whatever happens here stays here: every socket has an error listener, no
 * handler throws, and destroy() releases everything.
 */
import type { Socket } from 'node:net';
import { LineFramer, encodeLine } from '../protocol/framer.js';
import { parseCommand } from '../protocol/command.js';
import type { IpAddress } from '../protocol/address.js';
import { dispatch } from './commands.js';
import type { ServerSettings, SessionContext, SessionState, TransferHandle } from './context.js';
import { destroyAndWait, type PendingDataConnection } from './data-channel.js';
import { OobAbortRepair } from './oob-abort.js';

type Queued = { kind: 'line'; text: string } | { kind: 'overflow' } | { kind: 'eof' };

/** Past this many queued commands we stop reading until the queue drains. */
const QUEUE_HIGH = 64;
const QUEUE_LOW = 8;

/** Replies are sent as UTF-8 (we announce UTF8 in FEAT); encodeLine writes latin1, hence the detour. */
function utf8Line(text: string): Buffer {
  return encodeLine(Buffer.from(text, 'utf8').toString('latin1'));
}

export class DemoSession implements SessionContext {
  readonly state: SessionState = {
    user: undefined,
    loggedIn: false,
    cwd: '/',
    type: 'A',
    restOffset: 0,
    epsvAll: false,
    abortedTransfer: false,
  };

  private readonly framer = new LineFramer();
  private readonly oobAbort = new OobAbortRepair();
  private readonly queue: Queued[] = [];
  /** The running command loop, if any: shutdown waits for its current command. */
  private pumping: Promise<void> | undefined;
  private paused = false;
  private ending = false;
  private destroyed = false;

  private dataChannel: PendingDataConnection | undefined;
  private transfer: AbortController | undefined;
  /** Closing channels and finished data sockets still open: awaited on shutdown. */
  private readonly closing = new Set<Promise<void>>();
  private readonly lingering = new Set<Socket>();
  private readonly controlClosed: Promise<void>;

  constructor(
    private readonly socket: Socket,
    readonly settings: ServerSettings,
    readonly local: IpAddress,
    readonly peer: IpAddress,
  ) {
    this.controlClosed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => void this.destroy());
    socket.on('close', () => void this.destroy());
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // The server runs with allowHalfOpen: a client that sends its last
    // commands and shuts down its side still gets the replies.
    socket.on('end', () => this.enqueue({ kind: 'eof' }));
    this.reply(220, 'ftp-alg demo FTP server ready.');
  }

  // ---- input ---------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.destroyed || this.ending) return;
    try {
      for (const framed of this.framer.push(this.oobAbort.push(chunk))) {
        if (framed.kind === 'overflow') {
          if (framed.done) this.enqueue({ kind: 'overflow' });
          continue;
        }
        // Clients send UTF-8 path names; the framer hands out latin1 text.
        const text = Buffer.from(framed.text, 'latin1').toString('utf8');
        if (this.transfer && parseCommand(text).verb === 'ABOR') {
          this.abortTransfer();
          continue;
        }
        this.enqueue({ kind: 'line', text });
      }
    } catch {
      void this.destroy();
    }
  }

  /**
   * RFC 959 §4.1.3: ABOR during a transfer closes the data connection; the
   * transfer answers 426, then ABOR answers 226. The ABOR jumps the queue so
   * that it is the very next command, whatever the client pipelined.
   */
  private abortTransfer(): void {
    this.state.abortedTransfer = true;
    this.transfer?.abort();
    this.queue.unshift({ kind: 'line', text: 'ABOR' });
  }

  private enqueue(item: Queued): void {
    this.queue.push(item);
    if (this.queue.length > QUEUE_HIGH && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    this.pumping ??= this.pump().finally(() => {
      this.pumping = undefined;
    });
  }

  private async pump(): Promise<void> {
    try {
      for (let item = this.queue.shift(); item && !this.destroyed && !this.ending; item = this.queue.shift()) {
        if (this.paused && this.queue.length < QUEUE_LOW) {
          this.paused = false;
          this.socket.resume();
        }
        if (item.kind === 'line') await dispatch(this, item.text);
        else if (item.kind === 'overflow') this.reply(500, 'Command line too long.');
        else this.quit();
      }
    } catch {
      void this.destroy();
    }
  }

  // ---- output --------------------------------------------------------------

  private write(buf: Buffer): void {
    if (this.destroyed || !this.socket.writable) return;
    this.socket.write(buf);
  }

  reply(code: number, text: string): void {
    this.sendLine(`${code} ${text}`);
  }

  replyLines(code: number, lines: string[]): void {
    if (lines.length <= 1) return this.reply(code, lines[0] ?? '');
    const out = lines.map((l, i) => (i === 0 ? `${code}-${l}` : i === lines.length - 1 ? `${code} ${l}` : l));
    this.write(Buffer.concat(out.map(utf8Line)));
  }

  sendLine(line: string): void {
    this.write(utf8Line(line));
  }

  // ---- data connections ----------------------------------------------------------

  setDataConnection(channel: PendingDataConnection | undefined): void {
    const previous = this.dataChannel;
    this.dataChannel = channel;
    if (previous) this.retire(previous);
    if (channel && this.destroyed) this.retire(channel);
  }

  takeDataConnection(): PendingDataConnection | undefined {
    const channel = this.dataChannel;
    this.dataChannel = undefined;
    return channel;
  }

  retire(channel: PendingDataConnection): void {
    this.track(channel.close());
  }

  private track(p: Promise<void>): void {
    const tracked = p.catch(() => {}).finally(() => this.closing.delete(tracked));
    this.closing.add(tracked);
  }

  beginTransfer(): TransferHandle {
    const controller = new AbortController();
    this.transfer = controller;
    if (this.destroyed) controller.abort();
    return controller;
  }

  endTransfer(t: TransferHandle): void {
    if (this.transfer === t) this.transfer = undefined;
  }

  linger(data: Socket): void {
    if (data.closed) return;
    if (this.destroyed) {
      data.destroy();
      return;
    }
    // The peer normally closes right after reading to EOF; one that does
    // not is not allowed to hold the socket for ever.
    this.lingering.add(data);
    data.once('close', () => this.lingering.delete(data));
    // Data sockets are half-open capable: after an upload our side is still
    // open, and the transfer is over, so say so.
    if (!data.writableEnded) data.end();
    data.setTimeout(this.settings.dataTimeoutMs, () => data.destroy());
  }

  // ---- ending ------------------------------------------------------------------

  quit(): void {
    if (this.ending || this.destroyed) return;
    this.ending = true;
    this.queue.length = 0;
    // Our FIN goes out after the last reply; the socket is released once it
    // is flushed rather than waiting for a peer that may never close.
    this.socket.end(() => void this.destroy());
  }

  /** Releases everything at once; resolves when every socket and listener is closed. */
  destroy(): Promise<void> {
    if (!this.destroyed) {
      this.destroyed = true;
      this.queue.length = 0;
      this.transfer?.abort();
      this.setDataConnection(undefined);
      for (const s of this.lingering) this.track(destroyAndWait(s));
      this.socket.destroy();
    }
    return this.settled();
  }

  private async settled(): Promise<void> {
    await this.controlClosed;
    // The command in progress (a transfer being aborted) may still retire a channel.
    await this.pumping;
    while (this.closing.size > 0) await Promise.all([...this.closing]);
  }

  /** Server shutdown: tell the client (best effort), then destroy. */
  shutdown(): Promise<void> {
    if (!this.destroyed && !this.ending) this.reply(421, 'Server shutting down.');
    return this.destroy();
  }
}
