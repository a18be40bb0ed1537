/**
 * The control connection as a pure state machine (sans-I/O, in the style of
 * h11 and quinn-proto): bytes from either peer, data-path results and timer
 * expiries go in; a list of actions comes out — bytes to write, events,
 * data channels to open or finish, reading to pause, the session to close.
 * The caller performs them and feeds back what happened. Nothing here
 * touches a socket or a clock, so every decision is testable with bytes.
 *
 * What it owns: a framer per direction, reply assembly and holding, reply
 * ordering, the translator, the rewrite ledgers and the TLS-blind state.
 * Every byte that leaves goes through `out()`, which records it in the
 * ledger of its direction: the offset/delta contract of `rewrite` events
 * holds by construction.
 */
import { LineFramer, abortUrgentParts, encodeLine, encodeRewrittenLine, rawBody, type Framed, type FramedLine } from '../protocol/framer.js';
import { parseCommand, redactCommand, transferDirection, TRANSFER_VERBS } from '../protocol/command.js';
import { ReplyAssembler, isFinalCode, replyCode, type Reply } from '../protocol/reply.js';
import { formatEndpoint, type Cidr, type Endpoint, type IpAddress } from '../protocol/address.js';
import { ProxySignatureGate } from '../protocol/proxy-header.js';
import { proxyHeaderLine, untrustedProxyHeader, UNTRUSTED_PROXY_HEADER_REPLY } from './proxy-login.js';
import {
  ControlTranslator,
  completionAwaitsData,
  PASSIVE_REPLY_CODES,
  renderActiveCommand,
  renderPassiveReply,
  type ClientDecision,
  type ReplyDecision,
  type SentCommand,
  type SessionAddresses,
  type TranslatorConfig,
} from './translator.js';
import { ReplyOrder } from './reply-order.js';
import { AUTH_ACCEPTED, ClientTlsDialogue, type ClientTlsState } from './client-tls.js';
import { RewriteLedger } from './ledger.js';
import { TransferTracker, type DataClose, type DataPathKind, type LoginRecord, type TrackerRecord, type TransferRecord } from './transfer-log.js';
import { REASON, type ReasonCode } from '../codes.js';
import type { Refusal } from './policy.js';

export type Side = 'client' | 'server';
export type Direction = 'client->server' | 'server->client';

/**
 * Events the stream reports, for its session. Field names are the log
 * contract. Each is built as one literal of a fixed shape: log readers
 * filter long lists of them, and same-shaped objects keep that fast.
 */
export type StreamEvent =
  | { event: 'rewrite'; session: string; direction: Direction; kind: string; before: string; after: string; reason: string; offset: number; delta: number }
  | { event: 'refuse'; session: string; kind: string; line: string; code: ReasonCode; message: string }
  | { event: 'control'; session: string; direction: Direction; line: string }
  | { event: 'warning'; session: string; message: string }
  | ({ event: 'login'; session: string; client: string } & LoginRecord)
  | ({ event: 'transfer'; session: string; client: string } & TransferRecord);

/** A data channel the stream needs: where it dials, whom it accepts. */
export interface DataRequest {
  id: number;
  mode: 'active' | 'passive';
  /** The endpoint the gateway dials once its listener has been connected to. */
  target: Endpoint;
  /** The one peer the listener accepts, and networks it may also come from. */
  expectFrom: IpAddress;
  alsoFrom: readonly Cidr[];
  /** The client asked for PROT P: its end of the data connection speaks TLS. */
  protect: boolean;
}

export type DataFailure = 'ports-exhausted' | 'listeners-exceeded' | 'listen-failed' | 'kernel-nat-failed';

export type Action =
  | { type: 'write'; to: Side; bytes: Buffer }
  /**
   * ABOR as the client sent it, with its urgent byte (RFC 959 §4.1.3): write
   * `before`, then `urgent` as TCP urgent data once all before it has left,
   * then `after`; call urgentSent() when done. Nothing else goes to the
   * server meanwhile.
   */
  | { type: 'write-urgent'; to: 'server'; before: Buffer; urgent: Buffer; after: Buffer }
  /** The peer's end of stream, passed on once everything before it went out. */
  | { type: 'end'; to: Side }
  | { type: 'event'; event: StreamEvent }
  | { type: 'open-data'; request: DataRequest }
  /** Close this channel if it never got its connection (a newer PORT/PASV replaced it). */
  | { type: 'release-data'; id: number; reason: string }
  /**
   * The transfer's final reply arrived: let the channel finish (flush what it
   * relayed toward `toward` when `awaitData`), then call dataFinished(id).
   */
  | { type: 'finish-data'; id: number; code: number; awaitData: boolean; toward: Side; aborted: boolean }
  | { type: 'pause'; side: Side }
  | { type: 'resume'; side: Side }
  /** The login timer has no more use: logged in, or the login went out of sight (TLS). */
  | { type: 'login-settled' }
  /** A complete command or reply went through: the connection is not idle. */
  | { type: 'activity' }
  | { type: 'close'; reason: string; lastWords?: string }
  /**
   * TLS termination: the 234 just written was the last clear byte toward the
   * client; its socket becomes the server end of a TLS connection now.
   */
  | { type: 'start-tls'; side: 'client' };

/**
 * The gateway ends the client's TLS itself (RFC 4217): it answers AUTH, PBSZ,
 * PROT and CCC, and sees the control channel in clear text inside.
 */
export interface TlsTermination {
  /** USER before AUTH and transfers without PROT P are refused. */
  require: boolean;
  /** The client spoke TLS from its first byte (implicit FTPS). */
  secureFromStart: boolean;
  /** What a pre-login dialogue already agreed with the client (forward explicit: AUTH, PBSZ, PROT before USER). */
  agreed?: ClientTlsState | undefined;
}

export interface ControlStreamConfig {
  translator: TranslatorConfig;
  maxLineBytes: number;
  /** The client as the log names it (address and port), on login and transfer events. */
  clientLabel: string;
  /** Milliseconds, for transfer durations: the one clock the stream reads, given by its caller. */
  now: () => number;
  /** Forward explicit mode: the dialer already sent USER with this name. */
  userSentByDialer?: string | undefined;
  tls?: TlsTermination | undefined;
  /** Whether anyone reads `control` events now (the log level may change); absent: always. */
  traceLines?: (() => boolean) | undefined;
}


/** A real multi-line 227 has two or three short lines; more is not worth holding. */
export const MAX_HELD_BYTES = 64 * 1024;
/**
 * Framed bytes waiting in one direction while it is blocked (a data channel
 * being set up, a transfer finishing): over this, reading that peer stops.
 */
export const MAX_QUEUED_BYTES = 64 * 1024;
/** Past this the peer ignored the pause; the session is closed. */
export const HARD_QUEUED_BYTES = 1024 * 1024;
/**
 * Replies of the gateway's own waiting for their turn behind a server reply,
 * and commands owed a reply: over these the client's commands wait unread.
 * A client that pipelines without reading cannot make us queue without end.
 */
export const MAX_WAITING_LOCAL_REPLIES = 32;
export const MAX_OWED_REPLIES = 256;
/** Input is framed this much at a time, as it is handled. */
const FRAME_STEP = 4096;
/** A command line this many times --max-line long, still without its end, closes the session. */
export const DROP_LIMIT_LINES = 16;
/** Refusals of one session that are logged one by one. */
export const MAX_REFUSALS_LOGGED = 100;

type ClientWait =
  | { kind: 'none' }
  /** `order`: the place the PORT/EPRT takes among the commands sent (the client's input waits, so nothing goes out before it). */
  | { kind: 'active-open'; id: number; order: number; item: FramedLine; decision: Extract<ClientDecision, { type: 'active' }> }
  /** AUTH passed through: nothing more is read until the server has answered it. */
  | { kind: 'auth' }
  /** An ABOR goes out with its urgent byte: nothing else may overtake it. */
  | { kind: 'urgent' }
  /** AUTH answered by the gateway: nothing more is read until its 234 is out and TLS started. */
  | { kind: 'start-tls' };

type ServerWait =
  | { kind: 'none' }
  /** `order`: the place of the PASV/EPSV it answers among the commands sent. */
  | { kind: 'passive-open'; id: number; order: number; reply: Reply; items: Framed[]; decision: Extract<ReplyDecision, { type: 'passive' }> }
  | { kind: 'finish'; id: number; reply: Reply; items: Framed[] };

/** How the reply being read is treated while its lines arrive. */
type ReplyMode =
  /** Not inside a multi-line reply, or inside one being held whole. */
  | { kind: 'hold' }
  /** Lines pass as they come: not a passive reply, nothing to rewrite. */
  | { kind: 'stream' }
  /** A passive reply too big to hold: dropped, answered 425 at its end. */
  | { kind: 'drop' };

type Phase = { kind: 'parsing' } | { kind: 'blind' } | { kind: 'closed' };

/** What the log and the client are told when a data channel cannot be opened. */
const DATA_FAILURES: Record<DataFailure, { code: ReasonCode; why: string }> = {
  'ports-exhausted': { code: REASON.PORTS_EXHAUSTED, why: 'no free port' },
  'listen-failed': { code: REASON.PORTS_EXHAUSTED, why: 'listen failed' },
  'listeners-exceeded': { code: REASON.DATA_LISTENERS_EXCEEDED, why: 'too many open data connections from your address' },
  'kernel-nat-failed': { code: REASON.KERNEL_NAT_FAILED, why: 'kernel mapping failed' },
};

const SIDE_OF: Record<Direction, Side> = { 'client->server': 'server', 'server->client': 'client' };

export class ControlStream {
  private phase: Phase = { kind: 'parsing' };
  private readonly translator: ControlTranslator;
  private readonly order = new ReplyOrder();
  private readonly framers: Record<Side, LineFramer>;
  private readonly replies = new ReplyAssembler();
  readonly ledgers: Record<Direction, RewriteLedger> = { 'client->server': new RewriteLedger(false), 'server->client': new RewriteLedger(false) };
  private readonly queues: Record<Side, Framed[]> = { client: [], server: [] };
  /** Bytes received and not framed yet, and how many (what waits is counted here). */
  private readonly unframed: Record<Side, Buffer[]> = { client: [], server: [] };
  private readonly queuedBytes: Record<Side, number> = { client: 0, server: 0 };
  private readonly paused: Record<Side, boolean> = { client: false, server: false };
  private readonly ended: Record<Side, boolean> = { client: false, server: false };
  /** Writes toward this peer are piling up unread (its socket is over its high-water mark). */
  private readonly congested: Record<Side, boolean> = { client: false, server: false };
  private readonly endPassed: Record<Side, boolean> = { client: false, server: false };
  private clientWait: ClientWait = { kind: 'none' };
  private serverWait: ServerWait = { kind: 'none' };
  private replyMode: ReplyMode = { kind: 'hold' };
  private held: Framed[] = [];
  private heldBytes = 0;
  /** The first bytes of a server line over the cap, while its pieces pass. */
  private overflowHead: Buffer | undefined;
  /** Inside a client command over the cap: its remaining pieces are dropped too. */
  private droppingCommand = false;
  private droppedBytes = 0;
  private loggedIn = false;
  private nextDataId = 1;
  private readonly tracker = new TransferTracker();
  private refusals = 0;
  /** The data channel the next transfer uses. */
  private currentData: number | undefined;
  /** The place among the commands sent of the PORT/PASV behind the current channel. */
  private currentOrder = 0;
  /** Commands sent to the server so far. */
  private sentCount = 0;
  private releasedData: number | undefined;
  /** The channel of the transfer the client sent ABOR for. */
  private abortedData: number | undefined;
  private actions: Action[] = [];
  /** After QUIT the server closing first is the normal end, not its doing. */
  quitSent = false;
  /** TLS termination: AUTH, PBSZ, PROT as the client and the gateway agreed them. */
  private readonly clientTls: ClientTlsDialogue | undefined;
  /** The client's first bytes wait here until they are known not to open a PROXY header. */
  private readonly proxyGate = new ProxySignatureGate();

  constructor(
    /** The session's id, carried by every event. */
    private readonly session: string,
    addrs: SessionAddresses,
    private readonly config: ControlStreamConfig,
    /** [bytes in, bytes out] a pre-login dialogue already dropped, inserted or rewrote per direction. */
    ledgerSeed?: Partial<Record<Direction, ReadonlyArray<readonly [number, number]>>>,
  ) {
    this.translator = new ControlTranslator(addrs, config.translator);
    const tls = config.tls;
    this.clientTls = tls && new ClientTlsDialogue(tls.require, tls.agreed ?? { secure: tls.secureFromStart });
    this.framers = { client: new LineFramer(config.maxLineBytes), server: new LineFramer(config.maxLineBytes, false) };
    if (config.userSentByDialer !== undefined) this.tracker.userSentByDialer(config.userSentByDialer);
    for (const dir of ['client->server', 'server->client'] as const) {
      for (const [before, after] of ledgerSeed?.[dir] ?? []) this.ledgers[dir].rewrote(before, after);
    }
  }

  get addrs(): SessionAddresses {
    return this.translator.addrs;
  }

  /** Bytes of an unfinished line from this peer: they do not count as activity. */
  partialLine(side: Side): boolean {
    return this.phase.kind === 'parsing' && (this.framers[side].buffered > 0 || (side === 'client' && this.proxyGate.holding > 0));
  }

  /** AUTH went through: the control channel is encrypted, nothing of ours may be written into it. */
  get blind(): boolean {
    return this.phase.kind === 'blind';
  }

  // ---- inputs ---------------------------------------------------------------

  fromClient(bytes: Buffer): Action[] {
    return this.receive('client', bytes);
  }

  fromServer(bytes: Buffer): Action[] {
    return this.receive('server', bytes);
  }

  /** The peer sent its FIN. */
  peerEnded(side: Side): Action[] {
    if (this.phase.kind === 'closed') return [];
    this.ended[side] = true;
    if (side === 'client' && this.proxyGate.holding > 0) {
      // A few first bytes that might have opened a header ("PRO"), then FIN: they are the client's, passed on with its end.
      const held = this.proxyGate.end();
      this.unframed.client.push(held);
      this.queuedBytes.client += held.length;
    }
    this.pump(side);
    return this.flush();
  }

  /** The ABOR and its urgent byte are out. */
  urgentSent(): Action[] {
    if (this.phase.kind === 'closed' || this.clientWait.kind !== 'urgent') return [];
    this.clientWait = { kind: 'none' };
    this.pump('client');
    return this.flush();
  }

  /** Writes toward `side` piled up (true) or drained (false): the rule is one for all bytes, relayed or ours. */
  congestion(side: Side, congested: boolean): Action[] {
    if (this.phase.kind === 'closed' || this.congested[side] === congested) return [];
    this.congested[side] = congested;
    if (this.phase.kind === 'blind') {
      // Bytes pass straight through: stop reading the peer that writes toward this side.
      this.actions.push({ type: congested ? 'pause' : 'resume', side: side === 'client' ? 'server' : 'client' });
      return this.flush();
    }
    if (!congested) {
      this.pump('server');
      this.pump('client');
    }
    return this.flush();
  }

  /** The listener for data request `id` is ready; `announce` is what the peer is told to connect to. */
  dataOpened(id: number, announce: Endpoint): Action[] {
    if (this.phase.kind === 'closed') return [{ type: 'release-data', id, reason: 'session closed' }];
    const cw = this.clientWait;
    const sw = this.serverWait;
    const order = cw.kind === 'active-open' && cw.id === id ? cw.order : sw.kind === 'passive-open' && sw.id === id ? sw.order : this.sentCount;
    this.adoptChannel(id, order);
    if (cw.kind === 'active-open' && cw.id === id) {
      this.clientWait = { kind: 'none' };
      const { item, decision } = cw;
      const text = renderActiveCommand(decision.verb, decision.delimiter, announce, this.addrs.client.family);
      this.replaceLine('client->server', item, text, decision.verb, `client ${formatEndpoint(decision.target)} is reached through the gateway at ${formatEndpoint(announce)}`);
      this.sent(decision.sent);
      this.pump('client');
    }
    if (sw.kind === 'passive-open' && sw.id === id) {
      this.serverWait = { kind: 'none' };
      this.emitPassive(sw.reply, sw.items, sw.decision, announce);
      this.finishReply(sw.reply.code);
      this.pump('server');
    }
    return this.flush();
  }

  dataFailed(id: number, failure: DataFailure, message: string): Action[] {
    if (this.phase.kind === 'closed') return [];
    const cw = this.clientWait;
    const sw = this.serverWait;
    const verb = cw.kind === 'active-open' && cw.id === id ? 'PORT' : 'PASV';
    const { code, why } = DATA_FAILURES[failure];
    this.refuse({ code, message: failure === 'kernel-nat-failed' ? `kernel mapping failed: ${message}` : message }, verb, '');
    const reply = `425 Can't open data connection through the gateway (${why})`;
    if (cw.kind === 'active-open' && cw.id === id) {
      this.clientWait = { kind: 'none' };
      this.out('client->server', consumed(cw.item), undefined);
      this.answer(reply);
      this.pump('client');
    }
    if (sw.kind === 'passive-open' && sw.id === id) {
      this.serverWait = { kind: 'none' };
      this.out('server->client', sw.items.reduce((n, i) => n + i.raw.length, 0), undefined);
      // In the passive reply's own turn: it answers the same PASV, before anything pipelined after it.
      this.writeLocal(reply);
      this.finishReply(sw.reply.code);
      this.pump('server');
    }
    return this.flush();
  }

  /** The channel of a finished transfer has flushed (or given up): its final reply may go. */
  dataFinished(id: number): Action[] {
    if (this.phase.kind === 'closed') return [];
    const sw = this.serverWait;
    if (sw.kind !== 'finish' || sw.id !== id) return [];
    this.serverWait = { kind: 'none' };
    if (this.currentData === id) this.currentData = undefined;
    this.emitReply(sw.reply, sw.items, new Map(), '', '');
    this.finishReply();
    this.pump('server');
    return this.flush();
  }

  /** A data connection was set up (relay: connected; kernel: mapped) for the next or pending transfer. */
  dataConnected(mode: 'active' | 'passive', dataPath: DataPathKind): Action[] {
    if (this.phase.kind === 'closed') return [];
    this.tracker.dataOpened(mode, dataPath);
    return [];
  }

  /** A data connection closed: its bytes (relay), or why they are not known (kernel). */
  dataClosed(close: DataClose): Action[] {
    if (this.phase.kind === 'closed') return [];
    this.track(this.tracker.dataClosed(close, this.config.now()));
    return this.flush();
  }

  /** The session is over: transfers still open are logged with what is known. */
  sessionEnded(): StreamEvent[] {
    this.track(this.tracker.sessionClosed(this.config.now()));
    return this.flush().flatMap((a) => (a.type === 'event' ? [a.event] : []));
  }

  /** The login timer ran out before a 230. */
  loginTimedOut(timeoutMs: number): Action[] {
    if (this.phase.kind === 'closed' || this.loggedIn) return [];
    this.refuse({ code: REASON.LOGIN_TIMEOUT, message: `no successful login within ${timeoutMs} ms` }, 'session', '');
    this.close('login timeout', `421 Login timeout (${Math.round(timeoutMs / 1000)} s): closing control connection`);
    return this.flush();
  }

  /**
   * The idle timer ran out. RFC 959 servers time out idle control
   * connections too, but never in the middle of a transfer: the control
   * channel is quiet by design then. `dataMoving`: a channel is connecting
   * or relaying (the caller's knowledge of its sockets).
   */
  idleTimedOut(timeoutMs: number, dataMoving: boolean): Action[] | 'still-busy' {
    if (this.phase.kind === 'closed') return [];
    if (dataMoving) return 'still-busy';
    this.close('idle timeout', `421 Idle timeout (${Math.round(timeoutMs / 1000)} s): closing control connection`);
    return this.flush();
  }

  /** The client kept an unfinished line open for too long. */
  lineTimedOut(timeoutMs: number): Action[] {
    if (this.phase.kind === 'closed') return [];
    this.refuse({ code: REASON.LINE_TIMEOUT, message: `command line not completed within ${timeoutMs} ms` }, 'command', '');
    this.close('line timeout', `421 Command line not completed within ${Math.round(timeoutMs / 1000)} s: closing control connection`);
    return this.flush();
  }

  // ---- the two directions ---------------------------------------------------

  private receive(side: Side, bytes: Buffer): Action[] {
    if (this.phase.kind === 'closed') return [];
    if (this.phase.kind === 'blind') {
      // Encrypted records are activity: no lines can be seen any more.
      this.actions.push({ type: 'activity' });
      this.out(side === 'client' ? 'client->server' : 'server->client', bytes.length, bytes, true);
      return this.flush();
    }
    if (side === 'client') {
      const gate = this.proxyGate.feed(bytes);
      if (gate.kind === 'wait') return this.flush();
      if (gate.kind === 'header') return this.refuseProxyHeader(gate.version, gate.start);
      bytes = gate.bytes;
    }
    this.unframed[side].push(bytes);
    this.queuedBytes[side] += bytes.length;
    this.pump(side);
    return this.flush();
  }

  /**
   * A PROXY header from a client the gateway does not trust (a trusted
   * balancer's was read before this stream began). Passed on, it would be
   * a 500 from the server at best, a QUIT at worst (the v2 signature holds
   * one). The session ends: what follows comes from a balancer that
   * believes its header was read, so every later line would be put down to
   * the balancer's address, and closing is what its health check notices.
   */
  private refuseProxyHeader(version: 1 | 2, start: Buffer): Action[] {
    const refusal = untrustedProxyHeader(version, this.config.clientLabel);
    this.refuse(refusal, 'command', proxyHeaderLine(version, start));
    this.close('PROXY header from an untrusted source', UNTRUSTED_PROXY_HEADER_REPLY);
    return this.flush();
  }

  /**
   * Handles one side's input until it must wait; keeps reading paused while
   * too much waits. Bytes are framed a few KiB at a time, as they are
   * handled: what waits stays raw bytes, not thousands of little line
   * objects (a pipelined "AUTH TLS" is 10 bytes, its framed line ten times that).
   */
  private pump(side: Side): void {
    const queue = this.queues[side];
    const unframed = this.unframed[side];
    while (this.phase.kind === 'parsing' && !this.blocked(side)) {
      const item = queue.shift();
      if (item) {
        if (side === 'client') this.onClientItem(item);
        else this.onServerItem(item);
        continue;
      }
      const chunk = unframed.shift();
      if (!chunk) break;
      const piece = chunk.length > FRAME_STEP ? chunk.subarray(0, FRAME_STEP) : chunk;
      if (piece !== chunk) unframed.unshift(chunk.subarray(FRAME_STEP));
      this.queuedBytes[side] -= piece.length;
      const items = this.framers[side].push(piece);
      if (items.some((i) => i.kind === 'line' || i.done)) this.actions.push({ type: 'activity' });
      queue.push(...items);
    }
    if (this.phase.kind !== 'parsing') return;
    this.passEnd(side);
    const waiting = this.queuedBytes[side];
    if (waiting > HARD_QUEUED_BYTES) {
      this.close(`${side} sent over ${HARD_QUEUED_BYTES} bytes while paused`, side === 'client' ? '421 Too much pipelined input; closing control connection' : undefined);
      return;
    }
    const wantPaused = waiting > MAX_QUEUED_BYTES || (this.blocked(side) && (queue.length > 0 || unframed.length > 0));
    if (wantPaused !== this.paused[side]) {
      this.paused[side] = wantPaused;
      this.actions.push({ type: wantPaused ? 'pause' : 'resume', side });
    }
  }

  /**
   * Whether one side's input must wait. Both sides write to the client (the
   * server's replies, our own answers to the client's commands), so a client
   * that does not read stops both; a server that does not read stops the client.
   */
  private blocked(side: Side): boolean {
    if (this.congested.client) return true;
    if (side === 'server') return this.serverWait.kind !== 'none';
    return (
      this.congested.server ||
      this.clientWait.kind !== 'none' ||
      this.order.waitingLocals >= MAX_WAITING_LOCAL_REPLIES ||
      this.order.owed >= MAX_OWED_REPLIES
    );
  }

  /** The peer's FIN goes on once everything it sent before has been handled. */
  private passEnd(side: Side): void {
    if (!this.ended[side] || this.endPassed[side] || this.queues[side].length > 0 || this.unframed[side].length > 0 || this.blocked(side)) return;
    this.endPassed[side] = true;
    const dir: Direction = side === 'client' ? 'client->server' : 'server->client';
    const tail = this.framers[side].end();
    if (tail) this.out(dir, tail.length, tail, true);
    this.actions.push({ type: 'end', to: SIDE_OF[dir] });
  }

  // ---- client → server ------------------------------------------------------

  private onClientItem(item: Framed): void {
    if (item.kind === 'overflow') {
      // A command over the cap is dropped, never forwarded in pieces: the
      // server would see a truncated command, the rest as another one.
      this.out('client->server', item.raw.length, undefined);
      if (!this.droppingCommand) {
        this.refuse({ code: REASON.LINE_TOO_LONG, message: `command longer than ${this.config.maxLineBytes} bytes dropped` }, 'command', item.raw.subarray(0, 40).toString('latin1'));
        this.answer(`500 Command line too long (over ${this.config.maxLineBytes} bytes)`);
        this.droppedBytes = 0;
      }
      this.droppingCommand = !item.done;
      this.droppedBytes += item.raw.length;
      // No client needs a command line many times the cap; reading and
      // dropping one that never ends would only burn the gateway's time.
      if (this.droppingCommand && this.droppedBytes > DROP_LIMIT_LINES * this.config.maxLineBytes) {
        this.close('line far over the limit', `421 Command line over ${DROP_LIMIT_LINES * this.config.maxLineBytes} bytes without an end; closing control connection`);
      }
      return;
    }
    this.trace('client->server', item.text, redactCommand);
    const cmd = parseCommand(item.text);
    if (cmd.malformed) {
      // No two servers read such a line alike: one may take it for PORT.
      this.out('client->server', consumed(item), undefined);
      this.refuse({ code: REASON.MALFORMED_COMMAND, message: cmd.malformed }, cmd.verb || 'command', item.text);
      this.answer(`500 Syntax error, command unrecognized (${cmd.malformed})`);
      return;
    }
    if (cmd.verb === 'QUIT') this.quitSent = true;
    if (this.clientTls && this.onTlsCommand(this.clientTls, cmd.verb, cmd.arg, item)) return;
    const decision = this.translator.onClientCommand(cmd);
    if (decision.type !== 'answer') this.track(this.tracker.commandSent({ verb: cmd.verb, argument: cmd.arg }, this.config.now()));
    switch (decision.type) {
      case 'forward':
        this.sent(decision.sent);
        if (cmd.verb === 'ABOR') return this.forwardAbort(item);
        this.passLine('client->server', item);
        return;
      case 'tls-passthrough':
        this.passLine('client->server', item);
        this.sent(decision.sent);
        // After a 234 the client's next bytes are TLS, after a refusal plain
        // FTP again: nothing more is read until the server has answered.
        this.clientWait = { kind: 'auth' };
        return;
      case 'forward-as':
        this.replaceLine('client->server', item, decision.text, cmd.verb, decision.reason);
        this.sent(decision.sent);
        return;
      case 'answer':
        this.out('client->server', consumed(item), undefined);
        if (decision.refusal) this.refuse(decision.refusal, cmd.verb, item.text);
        this.answer(decision.reply);
        return;
      case 'active': {
        const id = this.nextDataId++;
        const order = this.sentCount + 1;
        this.clientWait = { kind: 'active-open', id, order, item, decision };
        this.requestData(order, {
          id,
          mode: 'active',
          target: decision.target,
          expectFrom: this.addrs.server,
          alsoFrom: this.config.translator.serverNetworks,
          protect: this.protects,
        });
        return;
      }
    }
  }

  /**
   * RFC 4217's commands, answered by the gateway when it terminates TLS
   * (the server never sees them: its side of TLS is the dialer's). Returns
   * whether the command was handled here.
   */
  private onTlsCommand(tls: ClientTlsDialogue, verb: string, arg: string, item: FramedLine): boolean {
    const answer = tls.answer(verb, arg);
    if (!answer) return false;
    this.out('client->server', consumed(item), undefined);
    if (answer.refusal) this.refuse(answer.refusal, verb, item.text);
    if (answer.startTls) this.clientWait = { kind: 'start-tls' };
    this.answer(answer.reply);
    return true;
  }

  /** The client asked for PROT P: its end of each data connection speaks TLS. */
  private get protects(): boolean {
    return this.clientTls?.state.protect ?? false;
  }

  /**
   * The server (plain behind us) does not list what the gateway now offers,
   * and a client that reads FEAT before trying AUTH (RFC 4217 §6) would not
   * try it. Added before the reply's last line, the only one not yet passed on.
   */
  private advertiseTls(reply: Reply): void {
    if (reply.code !== 211 || reply.lines.length < 2) return;
    const listed = new Set(reply.lines.map((l) => l.text.trim().split(' ')[0]!.toUpperCase()));
    const missing = ['AUTH TLS', 'PBSZ', 'PROT'].filter((f) => !listed.has(f.split(' ')[0]!));
    if (missing.length === 0) return;
    const text = missing.map((f) => ` ${f}`).join('\n');
    this.rewrite('server->client', 'FEAT', '', text, 0, Buffer.from(missing.map((f) => ` ${f}\r\n`).join(''), 'latin1'), 'the gateway ends TLS itself: its features are listed');
  }

  // ---- server → client ------------------------------------------------------

  private onServerItem(item: Framed): void {
    if (item.kind === 'overflow') return this.onServerOverflow(item);
    this.trace('server->client', item.text);
    const event = this.replies.push(item);
    if (!event) return this.onReplyLine(item);
    if (event.kind === 'stray') {
      this.out('server->client', item.raw.length, item.raw, true);
      return;
    }
    this.onReplyEnd(event.reply, item);
  }

  /**
   * Replies are not ours to drop: an overlong one passes through as is, in
   * its place, and still counts as a line, or replies and commands fall out
   * of step. Only a passive reply never passes unread: it is dropped and
   * answered 425, so that an inside address cannot leak through it.
   */
  private onServerOverflow(item: Extract<Framed, { kind: 'overflow' }>): void {
    if (!this.overflowHead) {
      this.overflowHead = item.raw.subarray(0, 4);
      const code = this.replies.inReply ? undefined : replyCode(this.overflowHead.toString('latin1'));
      if (code !== undefined && PASSIVE_REPLY_CODES.has(code) && this.replyMode.kind === 'hold') this.startDropping();
    }
    if (this.replyMode.kind === 'hold' && this.held.length > 0) this.hold(item);
    else this.out('server->client', item.raw.length, this.replyMode.kind === 'drop' ? undefined : item.raw, this.replyMode.kind !== 'drop');
    if (!item.done) return;
    const event = this.replies.pushOverlong(this.overflowHead);
    this.overflowHead = undefined;
    if (event?.kind === 'reply') this.onReplyEnd(event.reply, undefined);
  }

  /** A line inside a reply that is not complete yet: held, streamed or dropped. */
  private onReplyLine(item: FramedLine): void {
    if (this.replyMode.kind === 'hold' && this.held.length === 0) {
      const code = replyCode(item.text);
      if (code !== undefined && !PASSIVE_REPLY_CODES.has(code)) this.replyMode = { kind: 'stream' };
    }
    switch (this.replyMode.kind) {
      case 'stream':
        this.out('server->client', item.raw.length, item.raw, true);
        return;
      case 'drop':
        this.out('server->client', item.raw.length, undefined);
        return;
      case 'hold':
        this.hold(item);
    }
  }

  private hold(item: Framed): void {
    if (this.heldBytes + item.raw.length > MAX_HELD_BYTES) {
      this.startDropping();
      this.out('server->client', item.raw.length, undefined);
      return;
    }
    this.held.push(item);
    this.heldBytes += item.raw.length;
  }

  private startDropping(): void {
    this.event({ event: 'warning', session: this.session, message: `a passive reply over ${MAX_HELD_BYTES} bytes (or a line over the cap): not relayed` });
    this.out('server->client', this.heldBytes, undefined);
    this.held = [];
    this.heldBytes = 0;
    this.replyMode = { kind: 'drop' };
  }

  /** The last line of a reply arrived (`last` undefined: an overlong line, already passed on). */
  private onReplyEnd(reply: Reply, last: FramedLine | undefined): void {
    const mode = this.replyMode;
    const held = this.held;
    this.replyMode = { kind: 'hold' };
    this.held = [];
    this.heldBytes = 0;
    if (mode.kind === 'drop') {
      if (last) this.out('server->client', last.raw.length, undefined);
      // Only passive replies are ever dropped, so the code is one of theirs.
      this.answerInstead(this.translator.untranslatable(String(reply.code) as '227' | '228' | '229', 'more than the gateway holds'), reply);
      return;
    }
    const tail = last ? [last] : [];
    // A streamed reply's earlier lines are already out: the rest passes on, nothing is rewritten.
    const streamed = mode.kind === 'stream' || last === undefined;
    this.onServerReply(reply, streamed, mode.kind === 'stream' ? tail : [...held, ...tail]);
  }

  private onServerReply(reply: Reply, streamed: boolean, items: Framed[]): void {
    if (reply.code === 230 && !this.loggedIn) {
      this.loggedIn = true;
      this.actions.push({ type: 'login-settled' });
    }
    if (!isFinalCode(reply.code)) {
      this.emitReply(reply, items, new Map(), '', '');
      return;
    }
    const sent = this.order.answers(reply.code);
    this.track(this.tracker.finalReply(sent, reply.code, this.config.now()));
    const decision: ReplyDecision = streamed ? { type: 'forward' } : this.translator.onServerReply(reply.code, reply.lines.map(rawBody), sent);
    switch (decision.type) {
      case 'passive':
        return this.onPassiveReply(reply, items, decision, sent?.seq ?? this.sentCount);
      case 'answer-instead':
        // Dropped, and answered in the server reply's own turn: it answers the same command.
        this.out('server->client', items.reduce((n, i) => n + i.raw.length, 0), undefined);
        this.answerInstead(decision, reply);
        return;
      case 'unparsed':
        this.event({ event: 'warning', session: this.session, message: `${decision.reason}: passed unchanged` });
        break;
      case 'rewrite':
        this.emitReply(reply, items, new Map([[decision.lineIndex, decision.text]]), decision.kind, decision.reason);
        this.finishReply(reply.code);
        return;
      case 'forward':
        break;
    }
    if (sent !== undefined && TRANSFER_VERBS.has(sent.verb) && this.currentData !== undefined) {
      // The completion reply reaches the client only after the data relayed
      // so far has been flushed to it: a client that sees 226 first may
      // close the data connection and lose the tail.
      const id = this.currentData;
      // After ABOR the client reads no more data: the channel closes at
      // once instead of waiting to flush (RFC 959 §4.1.3).
      const aborted = this.abortedData === id;
      if (aborted) this.abortedData = undefined;
      this.serverWait = { kind: 'finish', id, reply, items };
      this.actions.push({
        type: 'finish-data',
        id,
        code: reply.code,
        awaitData: !aborted && completionAwaitsData(reply.code),
        toward: transferDirection(sent.verb) === 'to-server' ? 'server' : 'client',
        aborted,
      });
      return;
    }
    // Only before a final line still held: after it, the lines would fall between replies.
    if (sent?.verb === 'FEAT' && this.config.tls && streamed && items.length > 0) this.advertiseTls(reply);
    this.emitReply(reply, items, new Map(), '', '');
    if (sent?.verb === 'AUTH' && this.clientWait.kind === 'auth') {
      this.clientWait = { kind: 'none' };
      if (reply.code === 234) {
        // Nothing may be parsed any more, not even what the client queued.
        for (const r of this.order.finalReplied(reply.code)) this.writeLocal(r);
        this.goBlind();
        return;
      }
    }
    this.finishReply(reply.code);
  }

  /** The client gets the gateway's answer instead of a passive reply it must not see. */
  private answerInstead(decision: Extract<ReplyDecision, { type: 'answer-instead' }>, reply: Reply): void {
    this.refuse(decision.refusal, decision.kind, reply.lines.map((l) => l.text).join(' | ').slice(0, 200));
    this.writeLocal(decision.reply);
    this.finishReply(reply.code);
  }

  private onPassiveReply(reply: Reply, items: Framed[], decision: Extract<ReplyDecision, { type: 'passive' }>, order: number): void {
    if (decision.refusal) this.refuse(decision.refusal, decision.kind, reply.lines.map((l) => l.text).join(' | '));
    const id = this.nextDataId++;
    this.serverWait = { kind: 'passive-open', id, order, reply, items, decision };
    this.requestData(order, { id, mode: 'passive', target: decision.dial, expectFrom: this.addrs.client, alsoFrom: [], protect: this.protects });
  }

  private emitPassive(reply: Reply, items: Framed[], decision: Extract<ReplyDecision, { type: 'passive' }>, announced: Endpoint): void {
    const texts = reply.lines.map(rawBody);
    const rendered = renderPassiveReply(decision, texts, announced);
    const reason = `server data endpoint ${formatEndpoint(decision.dial)} is reached through the gateway at ${formatEndpoint(announced)}`;
    if (decision.inPlace) {
      // Every line that carried an endpoint was rewritten; the rest pass as they came.
      const replace = new Map(rendered.flatMap((text, i): Array<[number, string]> => (text !== texts[i] ? [[i, text]] : [])));
      this.emitReply(reply, items, replace, decision.kind, reason);
      return;
    }
    // Answered in another form (227 as 229 for an IPv6 client): the reply is replaced whole.
    const before = reply.lines.map((l) => l.text).join('\n');
    const bytes = encodeLine(rendered.join('\r\n'), reply.lines.at(-1)?.eol ?? '\r\n');
    const rawBytes = items.reduce((n, i) => n + i.raw.length, 0);
    this.rewrite('server->client', decision.kind, before, rendered.join('\n'), rawBytes, bytes, reason + ` (${decision.kind} answered as ${decision.answerAs})`);
  }

  private sent(cmd: SentCommand): void {
    cmd.seq = ++this.sentCount;
    this.order.sent(cmd);
  }

  /**
   * RFC 959: the last PORT/PASV given wins; an unused listener must not stay
   * open. "Last" is the order the server got them in (`order`), not the
   * order their channels come up in: a 227 answering a PASV pipelined before
   * a PORT arrives after the PORT went out, and must not unseat its channel.
   */
  private requestData(order: number, request: DataRequest): void {
    if (order > this.currentOrder) this.releaseCurrent();
    this.actions.push({ type: 'open-data', request });
  }

  /**
   * The client's PORT and the server's 227 are handled side by side, so
   * another channel may have become current while this one was set up: the
   * one whose command the server got last wins, the other is released.
   */
  private adoptChannel(id: number, order: number): void {
    if (this.currentData === id) return;
    if (this.currentData !== undefined && order < this.currentOrder) {
      this.actions.push({ type: 'release-data', id, reason: 'replaced by a new data channel' });
      return;
    }
    this.releaseCurrent();
    this.currentData = id;
    this.currentOrder = order;
  }

  /**
   * The current channel stays current (a transfer's final reply may still
   * need it) but is released once: the session closes it if it never got
   * its connection.
   */
  private releaseCurrent(): void {
    if (this.currentData === undefined || this.releasedData === this.currentData) return;
    this.releasedData = this.currentData;
    this.actions.push({ type: 'release-data', id: this.currentData, reason: 'replaced by a new data channel' });
  }

  /** AUTH accepted and passed through: from here on bytes pass untouched, nothing is parsed. */
  private goBlind(): void {
    this.phase = { kind: 'blind' };
    this.event({ event: 'warning', session: this.session, message: 'AUTH accepted and passed through: the control channel is encrypted from here, no more rewriting' });
    this.actions.push({ type: 'login-settled' });
    for (const side of ['server', 'client'] as const) {
      const dir: Direction = side === 'client' ? 'client->server' : 'server->client';
      // In the order they came: lines framed, the partial line after them, bytes not framed yet.
      const rest = [...this.queues[side].splice(0).map((i) => i.raw), this.framers[side].end(), ...this.unframed[side].splice(0)].filter((b): b is Buffer => b !== undefined);
      this.queuedBytes[side] = 0;
      for (const b of rest) this.out(dir, b.length, b, true);
      // From here a side is read unless the peer it writes to is congested (see congestion()).
      const stalled = this.congested[side === 'client' ? 'server' : 'client'];
      if (this.paused[side] !== stalled) {
        this.paused[side] = stalled;
        this.actions.push({ type: stalled ? 'pause' : 'resume', side });
      }
      if (this.ended[side] && !this.endPassed[side]) {
        this.endPassed[side] = true;
        this.actions.push({ type: 'end', to: SIDE_OF[dir] });
      }
    }
  }

  // ---- output ---------------------------------------------------------------

  private finishReply(code?: number): void {
    for (const reply of this.order.finalReplied(code)) this.writeLocal(reply);
    // Local replies that were waiting went out: the client may be read again.
    this.pump('client');
  }

  /**
   * ABOR goes on in the client's form, its urgent byte as urgent data: a
   * server that aborts on SIGURG notices nothing else during a transfer.
   */
  private forwardAbort(item: FramedLine): void {
    const [before, urgent, after] = abortUrgentParts(item.raw);
    this.record('client->server', consumed(item), item.raw.length, item.received === undefined);
    this.actions.push({ type: 'write-urgent', to: 'server', before, urgent, after });
    this.clientWait = { kind: 'urgent' };
    this.abortedData = this.currentData;
  }

  /** A line passed on as it came (a line the framer repaired stands for another number of input bytes). */
  private passLine(dir: Direction, item: FramedLine): void {
    this.out(dir, consumed(item), item.raw, item.received === undefined);
  }

  /** Answers the client ourselves, in its turn (see ReplyOrder). */
  private answer(reply: string): void {
    for (const r of this.order.local(reply)) this.writeLocal(r);
  }

  private writeLocal(reply: string): void {
    this.trace('server->client', `${reply} (from the gateway)`);
    this.out('server->client', 0, encodeLine(reply));
    if (reply === AUTH_ACCEPTED && this.clientWait.kind === 'start-tls') this.startClientTls();
  }

  /**
   * The 234 is out: the client's next byte is its ClientHello. Any command it
   * sent behind AUTH would be read as TLS, or be a command it never meant to
   * be clear text; the session cannot go on either way.
   */
  private startClientTls(): void {
    this.clientWait = { kind: 'none' };
    if (this.queues.client.length > 0 || this.unframed.client.length > 0 || this.framers.client.buffered > 0) {
      this.refuse({ code: REASON.TLS_HANDSHAKE_FAILED, message: 'clear-text bytes after AUTH, before the TLS handshake' }, 'AUTH', '');
      this.close('clear-text bytes after AUTH');
      return;
    }
    this.actions.push({ type: 'start-tls', side: 'client' });
  }

  /** Sends a reply's items in order; `replace` maps a line index of the reply to its new text. */
  private emitReply(reply: Reply, items: Framed[], replace: Map<number, string>, kind: string, reason: string): void {
    for (const item of items) {
      const index = item.kind === 'line' ? reply.lines.indexOf(item) : -1;
      const text = replace.get(index);
      if (item.kind === 'line' && text !== undefined) this.replaceLine('server->client', item, text, kind, reason);
      else this.out('server->client', item.raw.length, item.raw, true);
    }
  }

  /**
   * Sends `text` in place of `item`. Client commands we rewrite are wholly
   * ours (strict encoding); server replies are the server's bytes with our
   * endpoint spliced in.
   */
  private replaceLine(dir: Direction, item: FramedLine, text: string, kind: string, reason: string): void {
    const bytes = dir === 'client->server' ? encodeLine(text, item.eol) : encodeRewrittenLine(text, item.eol);
    this.rewrite(dir, kind, item.text, text, consumed(item), bytes, reason);
  }

  private rewrite(dir: Direction, kind: string, before: string, after: string, consumed: number, bytes: Buffer, reason: string): void {
    const entry = this.out(dir, consumed, bytes);
    this.event({ event: 'rewrite', session: this.session, direction: dir, kind, before, after, reason, offset: entry?.offset ?? 0, delta: entry?.delta ?? 0 });
  }

  /**
   * The one way out: `consumed` input bytes of `dir` became `bytes` (none:
   * dropped). Unchanged bytes are `passed`, everything else is a ledger
   * entry, so the ledger always matches what was written.
   */
  private out(dir: Direction, consumed: number, bytes: Buffer | undefined, unchanged = false) {
    const entry = this.record(dir, consumed, bytes?.length ?? 0, unchanged && bytes !== undefined);
    if (bytes && bytes.length > 0) this.actions.push({ type: 'write', to: SIDE_OF[dir], bytes });
    return entry;
  }

  /** The ledger's half of out(), for bytes that leave by another action. */
  private record(dir: Direction, consumed: number, produced: number, unchanged: boolean) {
    if (unchanged) {
      this.ledgers[dir].passed(consumed);
      return undefined;
    }
    return this.ledgers[dir].rewrote(consumed, produced);
  }

  /**
   * A client can make the gateway refuse thousands of commands a second;
   * each refusal logged would turn that into a log flood (and a blocked
   * process, when the log is written synchronously). Past the cap, one
   * warning says so and further refusals of this session go unlogged.
   */
  private refuse(refusal: Refusal, kind: string, line: string): void {
    this.refusals++;
    if (this.refusals > MAX_REFUSALS_LOGGED) return;
    if (this.refusals === MAX_REFUSALS_LOGGED) {
      this.event({ event: 'warning', session: this.session, message: `${MAX_REFUSALS_LOGGED} refusals in this session: further ones are not logged` });
    }
    this.event({ event: 'refuse', session: this.session, kind, line: redactCommand(line), code: refusal.code, message: refusal.message });
  }

  /** `redact` runs only for a line that is traced. */
  private trace(direction: Direction, line: string, redact?: (line: string) => string): void {
    if (this.config.traceLines && !this.config.traceLines()) return;
    this.event({ event: 'control', session: this.session, direction, line: redact ? redact(line) : line });
  }

  /** Transfer-log records as events: one `login` per attempt, one `transfer` per data transfer. */
  private track(records: TrackerRecord[]): void {
    const client = this.config.clientLabel;
    for (const r of records) {
      this.event(r.kind === 'login' ? { event: 'login', session: this.session, client, ...r.record } : { event: 'transfer', session: this.session, client, ...r.record });
    }
  }

  private event(event: StreamEvent): void {
    this.actions.push({ type: 'event', event });
  }

  private close(reason: string, lastWords?: string): void {
    if (this.phase.kind === 'closed') return;
    this.phase = { kind: 'closed' };
    this.actions.push(lastWords === undefined ? { type: 'close', reason } : { type: 'close', reason, lastWords });
  }

  private flush(): Action[] {
    const out = this.actions;
    this.actions = [];
    return out;
  }
}


/** Input bytes a framed item stands for: a line the framer repaired (a lost urgent byte) differs from its bytes. */
function consumed(item: Framed): number {
  return item.kind === 'line' ? (item.received ?? item.raw.length) : item.raw.length;
}
