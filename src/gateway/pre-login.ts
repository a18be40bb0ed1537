/**
 * The dialogue before there is a server: the explicit proxy (and the
 * balancer that picks by user name) greets the client itself and answers it
 * until USER names where to go; with --tls terminate it takes the client
 * into TLS first (AUTH, PBSZ, PROT). And the server's greeting, read by a
 * dialer that swallows it. Both read lines through one helper.
 */
import type { Socket } from 'node:net';
import { LineFramer, encodeLine, type Framed } from '../protocol/framer.js';
import { parseCommand, redactCommand } from '../protocol/command.js';
import { ReplyAssembler, isFinalCode, type Reply } from '../protocol/reply.js';
import { LINE_BREAKING_REPLY, printableReply, untrustedProxyHeader, UNTRUSTED_PROXY_HEADER_REPLY, type PreLoginStep } from '../alg/proxy-login.js';
import { ProxySignatureGate } from '../protocol/proxy-header.js';
import { ClientTlsDialogue, PRE_LOGIN_FEATURES, type ClientTlsState } from '../alg/client-tls.js';
import { REASON } from '../codes.js';
import { DialRefusal, type DialContext } from './session.js';
import { handshake } from './tls.js';
import { readUntil, type ReadFailure } from './read-until.js';

/**
 * Reads framed lines from `socket` until `take` returns a value, then stops
 * reading (the socket is left paused) and resolves with the value and the
 * bytes read past the line that gave it. Rejects with what `failed` makes
 * of a timeout, an end or an error, or with what `take` throws: a socket
 * handler is no place for an exception, it would end the process.
 */
export function readLinesUntil<T>(
  socket: Socket,
  opts: {
    maxLineBytes: number;
    timeoutMs: number;
    failed: (why: ReadFailure) => Error;
    /** The client's first bytes open a PROXY header: what to reject with (a trusted balancer's header was read before). */
    proxyHeader?: (version: 1 | 2) => Error;
  },
  take: (item: Framed) => T | undefined,
): Promise<{ value: T; rest: Buffer }> {
  const framer = new LineFramer(opts.maxLineBytes);
  const gate = opts.proxyHeader && new ProxySignatureGate();
  return readUntil(
    socket,
    opts.timeoutMs,
    (chunk) => {
      if (gate && opts.proxyHeader) {
        const start = gate.feed(chunk);
        if (start.kind === 'wait') return undefined;
        if (start.kind === 'header') throw opts.proxyHeader(start.version);
        chunk = start.bytes;
      }
      const items = framer.push(chunk);
      for (let i = 0; i < items.length; i++) {
        const value = take(items[i]!);
        if (value === undefined) continue;
        return { value, rest: Buffer.concat([...items.slice(i + 1).map((x) => x.raw), framer.end() ?? Buffer.alloc(0)]) };
      }
      return undefined;
    },
    (why) => {
      throw opts.failed(why);
    },
  );
}

const MAX_LOGIN_LINES = 20;

/** What the gateway says and accepts while it stands in for a server not yet chosen. */
export interface LoginDialogue {
  greeting: string;
  /** What the client must send, for error replies: `USER name@host[:port]`. */
  expects: string;
  step: (verb: string, arg: string) => PreLoginStep;
}

export interface ProxyLogin {
  destination: { user: string; host: string; port: number };
  eol: '\r\n' | '\n';
  raw: Buffer;
  leftover: Buffer;
  /** Client bytes before the USER line, answered by us, never forwarded. */
  dropped: number;
  /** Bytes of our own replies to the client. */
  said: number;
  /** With --tls terminate: AUTH, PBSZ and PROT as agreed before USER. */
  tls?: ClientTlsState;
}

/** One line's outcome: the USER that names the server, or the 234 after which TLS starts. */
type LoginTurn = { kind: 'login'; destination: ProxyLogin['destination']; eol: '\r\n' | '\n'; raw: Buffer } | { kind: 'start-tls' } | { kind: 'quit' };

/**
 * The login dialogue before there is a server: only USER moves it on. With
 * `ctx.clientTls` AUTH is answered 234 and the rest of the dialogue is read
 * inside TLS; the state reached goes to the control stream with the login.
 */
export async function readProxyLogin(client: Socket, timeoutMs: number, dialogue: LoginDialogue, ctx?: DialContext): Promise<ProxyLogin> {
  const tlsHooks = ctx?.clientTls;
  const tls = tlsHooks && new ClientTlsDialogue(tlsHooks.require, { secure: tlsHooks.secure });
  const deadline = Date.now() + timeoutMs;
  let socket = client;
  let lines = 0;
  let dropped = 0;
  let said = 0;
  const say = (text: string) => {
    const line = encodeLine(printableReply(text));
    said += line.length;
    if (!socket.destroyed) socket.write(line);
  };
  const refused = (message: string, reply: string | undefined) => new DialRefusal({ code: REASON.LOGIN_REQUIRED, message }, reply);
  const failed = (why: 'timeout' | 'end' | Error) =>
    why === 'timeout'
      ? refused(`no ${dialogue.expects} within ${timeoutMs} ms`, `421 Login timeout: log in with ${dialogue.expects}`)
      : refused('client left before logging in', undefined);
  const turn = (item: Framed): LoginTurn | undefined => {
    dropped += item.raw.length;
    if (item.kind === 'overflow') {
      if (!item.done) return undefined;
      say('500 Command line too long');
    }
    if (++lines > MAX_LOGIN_LINES) {
      throw refused(`${MAX_LOGIN_LINES} commands without a usable ${dialogue.expects}`, '421 Too many commands before login');
    }
    if (item.kind === 'overflow') return undefined;
    const { verb, arg, malformed } = parseCommand(item.text);
    // The grammar takes a NUL or bare CR out of verb and argument and says so: refused here as after login.
    if (malformed) {
      say(LINE_BREAKING_REPLY);
      return undefined;
    }
    if (tls && verb === 'FEAT') {
      PRE_LOGIN_FEATURES.forEach(say);
      return undefined;
    }
    const answer = tls?.answer(verb, arg);
    if (answer) {
      if (answer.refusal) ctx?.sink({ event: 'refuse', session: ctx.session, kind: verb, line: redactCommand(item.text), code: answer.refusal.code, message: answer.refusal.message });
      say(answer.reply);
      return answer.startTls ? { kind: 'start-tls' } : undefined;
    }
    const step = dialogue.step(verb, arg);
    if (step.type === 'reply') {
      say(step.reply);
      return undefined;
    }
    if (step.type === 'quit') {
      say(step.reply);
      return { kind: 'quit' };
    }
    dropped -= item.raw.length; // the USER line itself is rewritten, not dropped
    return { kind: 'login', destination: step.destination, eol: item.eol, raw: item.raw };
  };
  say(dialogue.greeting);
  // Each pass reads until a USER, a QUIT, or an AUTH that turns the connection into TLS (at most once: a second AUTH gets 503).
  for (;;) {
    const { value, rest } = await readLinesUntil(
      socket,
      {
        maxLineBytes: 1024,
        timeoutMs: Math.max(deadline - Date.now(), 1),
        failed,
        // Only the very first bytes can open a header, before any TLS.
        ...(socket === client ? { proxyHeader: (version: 1 | 2) => new DialRefusal(untrustedProxyHeader(version, `${client.remoteAddress}:${client.remotePort}`), UNTRUSTED_PROXY_HEADER_REPLY) } : {}),
      },
      turn,
    );
    if (value.kind === 'quit') throw refused('client quit before logging in', undefined);
    if (value.kind === 'login') {
      return { destination: value.destination, eol: value.eol, raw: value.raw, leftover: rest, dropped, said, ...(tls ? { tls: { ...tls.state } } : {}) };
    }
    // The 234 was the last clear byte: anything behind AUTH would be read as TLS, or be run as a command never meant to be clear text.
    if (rest.length > 0) {
      throw new DialRefusal({ code: REASON.TLS_HANDSHAKE_FAILED, message: 'clear-text bytes after AUTH, before the TLS handshake' }, undefined, 'tls');
    }
    if (!tlsHooks) throw new Error('AUTH answered 234 without TLS configured');
    const secure = tlsHooks.start();
    socket = secure;
    try {
      await handshake(secure, Math.min(tlsHooks.handshakeTimeoutMs, Math.max(deadline - Date.now(), 1)), 'server');
    } catch (err) {
      throw new DialRefusal({ code: REASON.TLS_HANDSHAKE_FAILED, message: `TLS handshake with the client failed: ${(err as Error).message}` }, undefined, 'tls');
    }
  }
}

/** Reads the server's greeting (120 then 220, possibly multi-line). */
export async function readGreeting(server: Socket, timeoutMs: number): Promise<{ greeting: Reply; consumed: number; leftover?: Buffer }> {
  let consumed = 0;
  const replies = new ReplyAssembler(200);
  const failed = (why: 'timeout' | 'end' | Error) =>
    new Error(why === 'timeout' ? `no greeting from the server within ${timeoutMs} ms` : why === 'end' ? 'server closed the connection before greeting' : `server connection failed: ${why.message}`);
  const { value: greeting, rest } = await readLinesUntil(server, { maxLineBytes: 4096, timeoutMs, failed }, (item) => {
    consumed += item.raw.length;
    if (item.kind !== 'line') return undefined;
    const ev = replies.push(item);
    return ev?.kind === 'reply' && isFinalCode(ev.reply.code) ? ev.reply : undefined;
  });
  return { greeting, consumed, ...(rest.length ? { leftover: rest } : {}) };
}
