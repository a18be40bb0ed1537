/**
 * One control session: the client socket, the server socket, a framer per
 * direction, the translator that decides, and the data channels it asks for.
 * It wires parts together; parsing lives in src/protocol, decisions in
 * src/alg, data relaying in data.ts.
 */
import type { Socket } from 'node:net';
import { LineFramer, abortUrgentParts, encodeLine, encodeRewrittenLine, rawBody, type Framed, type FramedLine } from '../protocol/framer.js';
import { parseCommand, redactCommand, transferDirection, TRANSFER_VERBS } from '../protocol/command.js';
import { ReplyAssembler, isFinalCode, replyCode, type Reply } from '../protocol/reply.js';
import { classifyAddress, formatEndpoint, ipOf, sameAddress, type IpAddress } from '../protocol/address.js';
import {
  ControlTranslator,
  completionAwaitsData,
  PASSIVE_REPLY_CODES,
  renderActiveCommand,
  renderPassiveReply,
  type SentCommand,
  type ClientDecision,
  type ReplyDecision,
  type TranslatorConfig,
} from '../alg/translator.js';
import { ReplyOrder } from '../alg/reply-order.js';
import { RewriteLedger } from '../alg/ledger.js';
import { REASON, type Refusal } from '../alg/policy.js';
import { DataChannel, type DataChannelOptions } from './data.js';
import { NatChannel } from './nat-channel.js';
import { KernelNatError, type KernelNat } from './kernel-nat.js';
import { sendUrgent } from './original-dst.js';
import { PortsExhaustedError, type PortPool } from './ports.js';
import type { Direction, EventSink } from './events.js';

export interface SessionConfig {
  translator: TranslatorConfig;
  /** Announced to clients in passive replies; default: the address the client reached us on. */
  passiveAnnounceAddress?: IpAddress | undefined;
  /** Where active-mode listeners bind, facing the server; default: our end of the server connection. */
  activeListenAddress?: string | undefined;
  /** Source port for active-mode connections to the client (20 for clients that insist on it). */
  activeSourcePort?: number | undefined;
  passivePool: PortPool;
  activePool: PortPool;
  acceptTimeoutMs: number;
  dataIdleTimeoutMs: number;
  /** Longest a completion reply waits for its data while no byte moves. */
  completionLingerMs: number;
  maxLineBytes: number;
  /** From connect to the server's 230. */
  loginTimeoutMs: number;
  /** A control connection with no traffic and no transfer running is closed after this. */
  idleTimeoutMs: number;
  /** Kernel data path: data connections are translated by nftables, not relayed. */
  kernelNat?: KernelNat | undefined;
  /**
   * The client believes it talks to the server's own address (transparent
   * redirect), so data reaching it must come from there, not from us.
   */
  clientSeesServerAddress?: boolean | undefined;
}

export interface DialContext {
  session: string;
  sink: EventSink;
}

export interface DialResult {
  server: Socket;
  /** Client bytes read while choosing the server (explicit proxy login), not yet handled. */
  clientLeftover?: Buffer;
  /** Server bytes read past its greeting, not yet handled. */
  serverLeftover?: Buffer;
  /** [bytes in, bytes out] the dialer already dropped, inserted or rewrote per direction. */
  ledgerSeed?: Record<Direction, Array<[number, number]>>;
}

/**
 * Finds and connects the server for a session. Rejects with a DialRefusal
 * for a policy decision (the client gets its reply), with any other error
 * when the server cannot be reached (the client gets 421).
 */
export type ServerDialer = (client: Socket, ctx: DialContext) => Promise<DialResult>;

export class DialRefusal extends Error {
  constructor(
    readonly refusal: Refusal,
    /** The reply the client gets before the gateway closes; undefined: close quietly. */
    readonly reply: string | undefined,
  ) {
    super(refusal.message);
  }
}

const CLOSE_GRACE_MS = 2_000;
/** A real multi-line 227 has two or three short lines; more is not worth holding. */
const MAX_HELD_BYTES = 64 * 1024;

export class ControlSession {
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private server: Socket | undefined;
  private translator: ControlTranslator | undefined;
  private readonly order = new ReplyOrder();
  private readonly clientFramer: LineFramer;
  private readonly serverFramer: LineFramer;
  private readonly replies = new ReplyAssembler();
  private readonly ledgers = { 'client->server': new RewriteLedger(), 'server->client': new RewriteLedger() };
  private readonly clientQueue: Framed[] = [];
  private readonly serverQueue: Framed[] = [];
  private pumping = { client: false, server: false };
  private ended = { client: false, server: false };
  /** Which side sent its FIN first: says who ended the session. */
  private firstEnd: 'client' | 'server' | undefined;
  /** After QUIT the server closing first is the normal end, not its doing. */
  private quitSent = false;
  /**
   * What arrived of a multi-line passive reply, held until the reply is
   * complete (the endpoint may be on any line): its lines and any pieces of
   * lines over the cap, in order.
   */
  private held: Framed[] = [];
  private heldBytes = 0;
  private streamingReply = false;
  /** The first bytes of a server line over the cap, while its pieces pass. */
  private overflowHead: Buffer | undefined;
  /** Code of the final reply being handled: says which queued command it answers. */
  private lastFinalCode: number | undefined;
  /** The data channel the next transfer uses. */
  private data: DataChannel | NatChannel | undefined;
  /** The channel of the transfer the client sent ABOR for. */
  private abortedChannel: DataChannel | NatChannel | undefined;
  /** Every channel not yet closed, the current one and any still draining. */
  private readonly channels = new Set<DataChannel | NatChannel>();
  private overflowing = false;
  /** After AUTH passthrough: bytes go through untouched, nothing is parsed. */
  private blind = { client: false, server: false };
  private closeReason: string | undefined;
  private readonly openedAt = Date.now();
  private bytesUp = 0;
  private bytesDown = 0;
  private loginTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private loggedIn = false;
  private readonly pauses = new Map<Socket, Set<string>>();
  /** Set while an AUTH passed through awaits the server's answer. */
  private authAnswered: (() => void) | undefined;

  constructor(
    readonly id: string,
    private readonly client: Socket,
    private readonly config: SessionConfig,
    private readonly sink: EventSink,
    private readonly dialServer: ServerDialer,
  ) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.clientFramer = new LineFramer(config.maxLineBytes);
    this.serverFramer = new LineFramer(config.maxLineBytes);
  }

  get clientLabel(): string {
    return `${formatEndpoint({ ...ipOf(this.client.remoteAddress ?? '0.0.0.0'), port: this.client.remotePort ?? 0 })}`;
  }

  async start(): Promise<void> {
    const client = this.client;
    client.pause();
    client.on('error', (err) => this.close(`client error: ${err.message}`));
    client.on('close', () => this.onSocketClosed());
    let dialled: DialResult;
    try {
      dialled = await this.dialServer(client, { session: this.id, sink: this.sink });
    } catch (err) {
      const refusal: Refusal =
        err instanceof DialRefusal ? err.refusal : { code: REASON.SERVER_UNREACHABLE, message: (err as Error).message };
      const reply = err instanceof DialRefusal ? err.reply : `421 Service not available: ${oneLine(refusal.message)}`;
      this.sink({ event: 'refuse', session: this.id, kind: 'connect', code: refusal.code, message: refusal.message });
      this.close(`${refusal.code === REASON.SERVER_UNREACHABLE ? 'server unreachable' : refusal.code}: ${refusal.message}`, reply);
      return;
    }
    const server = dialled.server;
    if (this.closeReason) {
      server.destroy();
      return;
    }
    this.server = server;
    if (!client.remoteAddress || !server.remoteAddress || server.destroyed) {
      // Reset while we were connecting (or while the dialer talked to the server).
      this.close(server.destroyed || !server.remoteAddress ? 'server vanished before the session started' : 'client vanished before the session started');
      return;
    }
    const clientIp = ipOf(client.remoteAddress);
    const serverIp = ipOf(server.remoteAddress);
    this.translator = new ControlTranslator({ client: clientIp, server: serverIp }, this.config.translator);
    this.sink({
      event: 'session-open',
      session: this.id,
      client: this.clientLabel,
      server: formatEndpoint({ ...serverIp, port: server.remotePort ?? 0 }),
    });
    this.loginTimer = setTimeout(() => {
      this.refuse({ code: REASON.LOGIN_TIMEOUT, message: `no successful login within ${this.config.loginTimeoutMs} ms` }, 'session', '');
      this.close('login timeout', `421 Login timeout (${Math.round(this.config.loginTimeoutMs / 1000)} s): closing control connection`);
    }, this.config.loginTimeoutMs);
    this.idleTimer = setTimeout(() => this.onIdle(), this.config.idleTimeoutMs);
    server.on('error', (err) => this.close(`server error: ${err.message}`));
    server.on('close', () => this.onSocketClosed());
    server.on('data', (chunk: Buffer) => this.onServerData(chunk));
    server.on('end', () => {
      this.ended.server = true;
      this.firstEnd ??= 'server';
      void this.pumpServer();
    });
    client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    client.on('end', () => {
      this.ended.client = true;
      this.firstEnd ??= 'client';
      void this.pumpClient();
    });
    for (const dir of ['client->server', 'server->client'] as const) {
      for (const [before, after] of dialled.ledgerSeed?.[dir] ?? []) this.ledgers[dir].rewrote(before, after);
    }
    if (dialled.serverLeftover?.length) this.onServerData(dialled.serverLeftover);
    if (dialled.clientLeftover?.length) this.onClientData(dialled.clientLeftover);
    // A dialer that read the server's greeting left the socket paused.
    server.resume();
    client.resume();
  }

  /** Closes everything the session holds; the first reason given is the one reported. */
  close(reason: string, lastWords?: string): void {
    if (this.closeReason) return;
    this.closeReason = reason;
    clearTimeout(this.loginTimer);
    clearTimeout(this.idleTimer);
    this.authAnswered?.();
    for (const channel of this.channels) channel.close(`session closed: ${reason}`);
    this.server?.destroy();
    // No plain-text words into a stream the client reads as TLS.
    const words = lastWords !== undefined && !this.blind.server ? encodeLine(oneLine(lastWords)) : undefined;
    if (words && !this.client.destroyed && !this.client.writableEnded) {
      // Let the last reply reach the client: end() flushes, destroy() would
      // drop it. A client that never reads it is cut off after a grace period.
      this.client.end(words);
      setTimeout(() => this.client.destroy(), CLOSE_GRACE_MS).unref();
    } else {
      this.client.destroy();
    }
    this.sink({
      event: 'session-close',
      session: this.id,
      reason,
      bytesUp: this.bytesUp,
      bytesDown: this.bytesDown,
      durationMs: Date.now() - this.openedAt,
    });
    this.resolveClosed();
  }

  private onIdle(): void {
    if (this.closeReason) return;
    // A transfer command still waiting for its final reply counts too: on
    // the kernel data path no byte of it passes here.
    const transferring = this.order.awaitsTransfer() || [...this.channels].some((c) => c.state === 'relaying' || c.state === 'connecting');
    if (transferring) {
      // RFC 959 servers time out idle control connections too, but never in
      // the middle of a transfer: the control channel is quiet by design then.
      this.idleTimer?.refresh();
      return;
    }
    this.close('idle timeout', `421 Idle timeout (${Math.round(this.config.idleTimeoutMs / 1000)} s): closing control connection`);
  }

  private onSocketClosed(): void {
    if (this.closeReason) return;
    const c = this.client.destroyed;
    const s = this.server?.destroyed ?? true;
    if (c && s) this.close(this.quitSent ? 'client quit' : this.firstEnd === 'server' ? 'server closed the control connection' : 'client closed the control connection');
    else if (c && !this.ended.client) this.close('client vanished');
    else if (s && !this.ended.server && this.server) this.close('server vanished');
  }

  // ---- client → server ------------------------------------------------------

  private onClientData(chunk: Buffer): void {
    this.bytesUp += chunk.length;
    this.idleTimer?.refresh();
    if (this.blind.client) {
      this.write(this.server!, chunk, 'client->server');
      return;
    }
    this.clientQueue.push(...this.clientFramer.push(chunk));
    void this.pumpClient();
  }

  private async pumpClient(): Promise<void> {
    if (this.pumping.client || this.closeReason) return;
    this.pumping.client = true;
    try {
      while (this.clientQueue.length > 0 && !this.closeReason) {
        const item = this.clientQueue.shift()!;
        if (this.blind.client) {
          this.write(this.server!, item.raw, 'client->server');
          continue;
        }
        const pending = this.onClientItem(item);
        if (pending) {
          this.pauseFor(this.client, 'pump');
          await pending;
          this.resumeFor(this.client, 'pump');
        }
      }
      if (this.ended.client && !this.closeReason && this.server && !this.server.writableEnded) {
        const tail = this.clientFramer.end();
        if (tail) this.write(this.server, tail, 'client->server');
        this.server.end();
      }
    } catch (err) {
      this.close(`internal error: ${(err as Error).message}`, '421 Internal gateway error; closing control connection');
    } finally {
      this.pumping.client = false;
    }
  }

  private onClientItem(item: Framed): Promise<void> | void {
    const server = this.server!;
    if (item.kind === 'overflow') {
      // A command over the cap is dropped, never forwarded in pieces: the
      // server would see a truncated command, the rest as another one.
      this.ledgers['client->server'].rewrote(item.raw.length, 0);
      if (!this.overflowing) {
        this.refuse({ code: REASON.LINE_TOO_LONG, message: `command longer than ${this.config.maxLineBytes} bytes dropped` }, 'command', item.raw.subarray(0, 40).toString('latin1'));
        this.answer(`500 Command line too long (over ${this.config.maxLineBytes} bytes)`);
      }
      this.overflowing = !item.done;
      return;
    }
    this.trace('client->server', redactCommand(item.text));
    const cmd = parseCommand(item.text);
    if (cmd.malformed) {
      this.ledgers['client->server'].rewrote(item.received ?? item.raw.length, 0);
      this.refuse({ code: REASON.MALFORMED_COMMAND, message: cmd.malformed }, cmd.verb || 'command', item.text);
      this.answer(`500 Syntax error, command unrecognized (${cmd.malformed})`);
      return;
    }
    if (cmd.verb === 'QUIT') this.quitSent = true;
    const decision: ClientDecision = this.translator!.onClientCommand(cmd);
    switch (decision.type) {
      case 'forward':
        this.order.sent(decision.sent);
        if (cmd.verb === 'ABOR') return this.passAbort(server, item);
        this.pass(server, item, 'client->server');
        return;
      case 'tls-passthrough':
        this.pass(server, item, 'client->server');
        this.order.sent(decision.sent);
        // Read nothing more from the client until the server has answered:
        // after a 234 its next bytes are TLS, after a refusal plain FTP again.
        return new Promise<void>((resolve) => (this.authAnswered = resolve));
      case 'forward-as':
        this.rewriteOut(server, item, decision.text, 'client->server', cmd.verb, decision.reason);
        this.order.sent(decision.sent);
        return;
      case 'answer':
        this.ledgers['client->server'].rewrote(item.raw.length, 0);
        if (decision.refusal) this.refuse(decision.refusal, cmd.verb, item.text);
        this.answer(decision.reply);
        return;
      case 'active':
        return this.openActive(item, decision);
    }
  }

  private async openActive(item: FramedLine, decision: Extract<ClientDecision, { type: 'active' }>): Promise<void> {
    const server = this.server!;
    const serverIp = ipOf(server.remoteAddress!);
    const listenHost = this.config.activeListenAddress ?? server.localAddress!;
    // The client expects data from the address it sends its commands to.
    const clientPeer = this.config.clientSeesServerAddress ? serverIp : ipOf(this.client.localAddress!);
    const kernel = this.kernelPath(serverIp, decision.target, ipOf(listenHost), clientPeer);
    const channel = kernel
      ? await this.openData('active', listenHost, () =>
          NatChannel.open({
            ...this.natOptions('active', listenHost, this.config.activePool, kernel),
            source: serverIp,
            target: decision.target,
            snatTo: clientPeer,
          }),
        )
      : await this.openData('active', listenHost, () =>
          DataChannel.open({
            ...this.relayOptions(),
            mode: 'active',
            listenHost,
            pool: this.config.activePool,
            acceptFrom: (peer) => sameAddress(peer, serverIp) || this.config.translator.serverNetworks.some((n) => n.contains(peer)),
            acceptLabel: serverIp.address,
            dialTarget: decision.target,
            dialFrom: this.client.localAddress,
            dialFromPort: this.config.activeSourcePort,
          }),
        );
    if (!channel) {
      this.ledgers['client->server'].rewrote(item.raw.length, 0);
      return;
    }
    const listen = { ...ipOf(listenHost), port: channel.port };
    const text = renderActiveCommand(decision.verb, decision.delimiter, listen, this.translator!.addrs.client.family);
    this.rewriteOut(server, item, text, 'client->server', decision.verb, `client ${formatEndpoint(decision.target)} is reached through the gateway at ${formatEndpoint(listen)}`);
    this.order.sent(decision.sent);
  }

  // ---- server → client ------------------------------------------------------

  private onServerData(chunk: Buffer): void {
    this.bytesDown += chunk.length;
    this.idleTimer?.refresh();
    if (this.blind.server) {
      this.write(this.client, chunk, 'server->client');
      return;
    }
    this.serverQueue.push(...this.serverFramer.push(chunk));
    void this.pumpServer();
  }

  private async pumpServer(): Promise<void> {
    if (this.pumping.server || this.closeReason) return;
    this.pumping.server = true;
    try {
      while (this.serverQueue.length > 0 && !this.closeReason) {
        const item = this.serverQueue.shift()!;
        if (this.blind.server) {
          this.write(this.client, item.raw, 'server->client');
          continue;
        }
        const pending = this.onServerItem(item);
        if (pending) {
          this.pauseFor(this.server!, 'pump');
          await pending;
          this.resumeFor(this.server!, 'pump');
        }
      }
      if (this.ended.server && !this.closeReason && !this.client.writableEnded) {
        const tail = this.serverFramer.end();
        if (tail) this.write(this.client, tail, 'server->client');
        this.client.end();
      }
    } catch (err) {
      this.close(`internal error: ${(err as Error).message}`, '421 Internal gateway error; closing control connection');
    } finally {
      this.pumping.server = false;
    }
  }

  private onServerItem(item: Framed): Promise<void> | void {
    if (item.kind === 'overflow') {
      // Replies are not ours to drop: an overlong one passes through as is,
      // in its place inside a reply being held. It still counts as a line,
      // or replies and commands would fall out of step.
      this.overflowHead ??= item.raw.subarray(0, 4);
      if (this.held.length > 0) this.hold(item);
      else this.pass(this.client, item, 'server->client');
      if (!item.done) return;
      const event = this.replies.pushOverlong(this.overflowHead);
      this.overflowHead = undefined;
      if (event?.kind !== 'reply') return;
      const items = this.held;
      this.streamingReply = false;
      this.held = [];
      this.heldBytes = 0;
      // Its last line is already out: pass the rest on, rewrite nothing.
      return this.onServerReply(event.reply, true, items);
    }
    this.trace('server->client', item.text);
    const event = this.replies.push(item);
    if (!event) {
      // Inside a multi-line reply. Passive replies are held whole; the rest
      // stream through.
      const first = this.held.find((h): h is FramedLine => h.kind === 'line') ?? item;
      const code = replyCode(first.text);
      if (this.streamingReply || (this.held.length === 0 && code !== undefined && !PASSIVE_REPLY_CODES.has(code))) {
        this.streamingReply = true;
        this.pass(this.client, item, 'server->client');
      } else {
        this.hold(item);
      }
      return;
    }
    if (event.kind === 'stray') {
      this.pass(this.client, item, 'server->client');
      return;
    }
    const items = this.streamingReply ? [item] : [...this.held, item];
    const streamed = this.streamingReply;
    this.streamingReply = false;
    this.held = [];
    this.heldBytes = 0;
    return this.onServerReply(event.reply, streamed, items);
  }

  private hold(item: Framed): void {
    if (this.heldBytes + item.raw.length > MAX_HELD_BYTES) {
      this.sink({ event: 'warning', session: this.id, message: `a passive reply over ${MAX_HELD_BYTES} bytes: relayed unchanged, not rewritten` });
      for (const h of this.held) this.pass(this.client, h, 'server->client');
      this.pass(this.client, item, 'server->client');
      this.held = [];
      this.heldBytes = 0;
      this.streamingReply = true;
      return;
    }
    this.held.push(item);
    this.heldBytes += item.raw.length;
  }

  /** Sends a reply's items in order; `replace` maps a line index of the reply to its new text. */
  private emitReply(reply: Reply, items: Framed[], replace: Map<number, string>, kind: string, reason: string): void {
    for (const item of items) {
      const index = item.kind === 'line' ? reply.lines.indexOf(item) : -1;
      const text = replace.get(index);
      if (item.kind === 'line' && text !== undefined) this.rewriteOut(this.client, item, text, 'server->client', kind, reason);
      else this.pass(this.client, item, 'server->client');
    }
  }

  private onServerReply(reply: Reply, streamed: boolean, items: Framed[]): Promise<void> | void {
    if (reply.code === 230 && !this.loggedIn) {
      this.loggedIn = true;
      clearTimeout(this.loginTimer);
    }
    if (!isFinalCode(reply.code)) {
      this.emitReply(reply, items, new Map(), '', '');
      return;
    }
    const sent = this.order.answers(reply.code);
    this.lastFinalCode = reply.code;
    const decision: ReplyDecision = streamed
      ? { type: 'forward' }
      : this.translator!.onServerReply(reply.code, reply.lines.map(rawBody), sent);
    if (decision.type === 'passive') return this.openPassive(reply, items, decision);
    if (decision.type === 'unparsed') {
      this.sink({ event: 'warning', session: this.id, message: `${decision.reason}: passed unchanged` });
    }
    if (decision.type === 'rewrite') {
      this.emitReply(reply, items, new Map([[decision.lineIndex, decision.text]]), decision.kind, decision.reason);
      this.finishReply();
      return;
    }
    const isTransferEnd = sent !== undefined && TRANSFER_VERBS.has(sent.verb) && this.data !== undefined;
    if (isTransferEnd) return this.completeTransfer(reply, items, sent);
    this.emitReply(reply, items, new Map(), '', '');
    if (sent?.verb === 'AUTH' && this.authAnswered) {
      if (reply.code === 234) this.goBlind();
      this.authAnswered();
      this.authAnswered = undefined;
    }
    this.finishReply();
  }

  /**
   * The completion reply of a transfer reaches the client only after the data
   * relayed so far has been flushed to it: a client that sees 226 first may
   * close the data connection and lose the tail (or report a short file).
   */
  private async completeTransfer(reply: Reply, items: Framed[], sent: SentCommand): Promise<void> {
    const channel = this.data!;
    if (channel === this.abortedChannel) {
      this.abortedChannel = undefined;
      channel.close(`the client aborted the transfer (ABOR); ${reply.code} from the server`);
    }
    const waitForData =
      channel instanceof DataChannel &&
      completionAwaitsData(reply.code) &&
      (channel.state === 'relaying' || channel.state === 'connecting' || (channel.state === 'listening' && reply.code < 300));
    if (waitForData) await channel.settled(this.config.completionLingerMs, transferDirection(sent.verb) === 'to-server' ? 'server' : 'client');
    if (channel instanceof NatChannel) channel.close(`transfer ended with ${reply.code}`);
    else if (channel.state === 'listening') channel.close(`transfer ended with ${reply.code} before a data connection`);
    if (this.data === channel) {
      this.data = undefined;
    }
    if (this.closeReason) return;
    this.emitReply(reply, items, new Map(), '', '');
    this.finishReply();
  }

  private async openPassive(reply: Reply, items: Framed[], decision: Extract<ReplyDecision, { type: 'passive' }>): Promise<void> {
    const client = this.client;
    const clientIp = this.translator!.addrs.client;
    const listenHost = client.localAddress!;
    if (decision.refusal) this.refuse(decision.refusal, decision.kind, reply.lines.map((l) => l.text).join(' | '));
    const serverSide = ipOf(this.server!.localAddress!);
    const kernel = this.kernelPath(clientIp, decision.dial, ipOf(listenHost), serverSide);
    const channel = kernel
      ? await this.openData('passive', listenHost, () =>
          NatChannel.open({
            ...this.natOptions('passive', listenHost, this.config.passivePool, kernel),
            source: clientIp,
            target: decision.dial,
            // The server expects data from the address it gets our commands from.
            snatTo: serverSide,
          }),
        )
      : await this.openData('passive', listenHost, () =>
          DataChannel.open({
            ...this.relayOptions(),
            mode: 'passive',
            listenHost,
            pool: this.config.passivePool,
            acceptFrom: (peer) => sameAddress(peer, clientIp),
            acceptLabel: clientIp.address,
            dialTarget: decision.dial,
            dialFrom: this.server!.localAddress,
          }),
        );
    const rawBytes = items.reduce((n, i) => n + i.raw.length, 0);
    if (!channel) {
      this.ledgers['server->client'].rewrote(rawBytes, 0);
      this.finishReply();
      return;
    }
    const announcedIp = this.config.passiveAnnounceAddress ?? ipOf(listenHost);
    const announced = { ...announcedIp, port: channel.port };
    const texts = reply.lines.map(rawBody);
    const out = renderPassiveReply(decision, texts, announced);
    const reason = `server data endpoint ${formatEndpoint(decision.dial)} is reached through the gateway at ${formatEndpoint(announced)}`;
    if (decision.inPlace) {
      // Every line that carried an endpoint was rewritten; the rest pass as they came.
      const replace = new Map(out.flatMap((text, i): Array<[number, string]> => (text !== texts[i] ? [[i, text]] : [])));
      this.emitReply(reply, items, replace, decision.kind, reason);
    } else {
      // Answered in another form (227 as 229 for an IPv6 client): the reply is replaced whole.
      const before = reply.lines.map((l) => l.text).join('\n');
      const after = encodeLine(out.join('\r\n'), reply.lines.at(-1)!.eol);
      this.emitRewrite('server->client', decision.kind, before, out.join('\n'), rawBytes, after, reason + ` (${decision.kind} answered as ${decision.answerAs})`);
      this.write(client, after, 'server->client');
    }
    this.finishReply();
  }

  /**
   * The kernel path when configured and possible: netfilter cannot turn an
   * IPv6 connection into an IPv4 one, and a connection between loopback and
   * another interface is dropped as martian, so those are relayed.
   */
  private kernelPath(source: IpAddress, target: IpAddress, ...others: IpAddress[]): KernelNat | undefined {
    const nat = this.config.kernelNat;
    if (!nat) return undefined;
    const all = [source, target, ...others];
    const loopback = (ip: IpAddress) => classifyAddress(ip) === 'loopback';
    return all.every((a) => a.family === source.family) && loopback(source) === loopback(target) ? nat : undefined;
  }

  private natOptions(mode: 'active' | 'passive', listenHost: string, pool: PortPool, nat: KernelNat) {
    return { session: this.id, mode, listenHost, pool, nat, acceptTimeoutMs: this.config.acceptTimeoutMs, sink: this.sink };
  }

  private relayOptions(): Pick<DataChannelOptions, 'session' | 'acceptTimeoutMs' | 'idleTimeoutMs' | 'sink'> {
    return { session: this.id, acceptTimeoutMs: this.config.acceptTimeoutMs, idleTimeoutMs: this.config.dataIdleTimeoutMs, sink: this.sink };
  }

  private async openData(
    mode: 'active' | 'passive',
    listenHost: string,
    open: () => Promise<DataChannel | NatChannel>,
  ): Promise<DataChannel | NatChannel | undefined> {
    // A new PORT/PASV replaces the previous data channel (RFC 959: the last
    // one given wins); an unused listener must not stay open.
    if (this.data && this.data.state === 'listening') this.data.close('replaced by a new data channel');
    try {
      const channel = await open();
      if (this.closeReason) {
        channel.close(`session closed: ${this.closeReason}`);
        return undefined;
      }
      // Another PORT/PASV may have opened a channel while this one was
      // being set up (the client's PORT and the server's 227 are handled
      // side by side): the last one wins here too.
      const previous = this.data;
      if (previous && previous !== channel && previous.state === 'listening') previous.close('replaced by a new data channel');
      this.data = channel;
      this.channels.add(channel);
      void channel.closed.then(() => this.channels.delete(channel));
      return channel;
    } catch (err) {
      const verb = mode === 'active' ? 'PORT' : 'PASV';
      if (err instanceof KernelNatError) {
        this.refuse({ code: REASON.KERNEL_NAT_FAILED, message: `kernel mapping failed: ${err.message}` }, verb, '');
        this.answer("425 Can't open data connection through the gateway (kernel mapping failed)");
        return undefined;
      }
      const exhausted = err instanceof PortsExhaustedError;
      const message = exhausted ? err.message : `cannot listen on ${listenHost}: ${(err as Error).message}`;
      this.refuse({ code: REASON.PORTS_EXHAUSTED, message }, verb, '');
      this.answer(`425 Can't open data connection through the gateway (${exhausted ? 'no free port' : 'listen failed'})`);
      return undefined;
    }
  }

  private goBlind(): void {
    this.sink({ event: 'warning', session: this.id, message: 'AUTH accepted and passed through: the control channel is encrypted from here, no more rewriting' });
    this.blind.client = true;
    this.blind.server = true;
    // The login (and its 230) now happens inside TLS, out of our sight.
    clearTimeout(this.loginTimer);
    const rest = [...this.serverQueue.splice(0).map((i) => i.raw), this.serverFramer.end()].filter((b): b is Buffer => !!b);
    for (const b of rest) this.write(this.client, b, 'server->client');
    const clientRest = [...this.clientQueue.splice(0).map((i) => i.raw), this.clientFramer.end()].filter((b): b is Buffer => !!b);
    for (const b of clientRest) this.write(this.server!, b, 'client->server');
  }

  // ---- output helpers -------------------------------------------------------

  private finishReply(): void {
    for (const reply of this.order.finalReplied(this.lastFinalCode)) this.writeLocal(reply);
  }

  /** Answers the client ourselves, in its turn (see ReplyOrder). */
  private answer(reply: string): void {
    for (const r of this.order.local(reply)) this.writeLocal(r);
  }

  private writeLocal(reply: string): void {
    const buf = encodeLine(reply);
    this.ledgers['server->client'].rewrote(0, buf.length);
    this.trace('server->client', `${reply} (from the gateway)`);
    this.write(this.client, buf, 'server->client');
  }

  private pass(dest: Socket, item: Framed, dir: Direction): void {
    this.account(item, dir);
    this.write(dest, item.raw, dir);
  }

  /** A line the framer repaired stands for another number of input bytes than it has. */
  private account(item: Framed, dir: Direction): void {
    const received = item.kind === 'line' ? item.received : undefined;
    if (received === undefined) this.ledgers[dir].passed(item.raw.length);
    else this.ledgers[dir].rewrote(received, item.raw.length);
  }

  /**
   * ABOR with urgent data, as the client sent it: a server that aborts on
   * SIGURG (vsftpd with async_abor_enable) notices nothing else during a
   * transfer. The urgent byte goes once all before it has reached the
   * kernel, or it would overtake it. The server
   * decides how the transfer ends; its completion reply then closes the data
   * channel at once (RFC 959 §4.1.3) instead of waiting for data the
   * aborting client no longer reads.
   */
  private async passAbort(server: Socket, item: FramedLine): Promise<void> {
    this.account(item, 'client->server');
    if (server.destroyed || server.writableEnded) return;
    const [before, urgent, after] = abortUrgentParts(item.raw);
    await new Promise<void>((resolve) => server.write(before, () => resolve()));
    if (!sendUrgent(server, urgent)) this.write(server, urgent, 'client->server');
    this.write(server, after, 'client->server');
    this.abortedChannel = this.data;
  }

  /**
   * Sends `text` in place of `item`. Client commands we rewrite are wholly
   * ours (strict encoding); server replies are the server's bytes with our
   * endpoint spliced in.
   */
  private rewriteOut(dest: Socket, item: FramedLine, text: string, dir: Direction, kind: string, reason: string): void {
    const out = dir === 'client->server' ? encodeLine(text, item.eol) : encodeRewrittenLine(text, item.eol);
    this.emitRewrite(dir, kind, item.text, text, item.raw.length, out, reason);
    this.write(dest, out, dir);
  }

  private emitRewrite(dir: Direction, kind: string, before: string, after: string, beforeBytes: number, out: Buffer, reason: string): void {
    const entry = this.ledgers[dir].rewrote(beforeBytes, out.length);
    this.sink({ event: 'rewrite', session: this.id, direction: dir, kind, before, after, reason, offset: entry.offset, delta: entry.delta });
  }

  private write(dest: Socket, buf: Buffer, dir: Direction): void {
    if (dest.destroyed || dest.writableEnded) return;
    if (!dest.write(buf)) {
      // Control lines are small, but a peer that stops reading must not make
      // us buffer without bound: stop reading from the other side meanwhile.
      const src = dir === 'client->server' ? this.client : this.server;
      if (!src) return;
      this.pauseFor(src, 'back-pressure');
      dest.once('drain', () => this.resumeFor(src, 'back-pressure'));
    }
  }

  /**
   * Reading from a socket stops for several reasons at once (a pump waiting
   * on I/O, back-pressure from the other side); it resumes only when none is
   * left, so that one cannot undo another.
   */
  private pauseFor(socket: Socket, reason: string): void {
    let reasons = this.pauses.get(socket);
    if (!reasons) this.pauses.set(socket, (reasons = new Set()));
    reasons.add(reason);
    socket.pause();
  }

  private resumeFor(socket: Socket, reason: string): void {
    const reasons = this.pauses.get(socket);
    reasons?.delete(reason);
    if (!this.closeReason && (!reasons || reasons.size === 0)) socket.resume();
  }

  private refuse(refusal: Refusal, kind: string, line: string): void {
    this.sink({ event: 'refuse', session: this.id, kind, line: redactCommand(line), code: refusal.code, message: refusal.message });
  }

  private trace(direction: Direction, line: string): void {
    this.sink({ event: 'control', session: this.id, direction, line });
  }
}

/** Peer text inside a reply we write: one line, no CR/LF/NUL. */
function oneLine(text: string): string {
  return text.replace(/[\r\n\0]+/g, ' ').replace(/[^\x20-\x7e]/g, '?');
}
