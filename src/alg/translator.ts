/**
 * The decisions of an FTP ALG, without I/O. Given the session's addresses and
 * one command or reply, say what goes out: unchanged, rewritten, answered
 * locally, or "open a data channel, then render this line with its port".
 *
 * Only a handful of verbs and codes matter (PORT/EPRT/LPRT, PASV/EPSV/LPSV,
 * 227/228/229, AUTH, EPSV ALL); everything else is forwarded byte for byte.
 */
import type { Command } from '../protocol/command.js';
import type { Cidr, Endpoint, Family, IpAddress } from '../protocol/address.js';
import { isSiteLocal, sameAddress } from '../protocol/address.js';
import {
  find227,
  find228,
  find229,
  format227Numbers,
  format229Reply,
  formatEprtArg,
  formatLprtArg,
  formatPortArg,
  parseEprtArg,
  parseLprtArg,
  parsePortArg,
  spliceText,
} from '../protocol/endpoint.js';
import { checkActiveTarget, MIN_ACTIVE_PORT, passiveDialTarget, type Refusal } from './policy.js';
import { REASON } from '../codes.js';

export type ActiveVerb = 'PORT' | 'EPRT' | 'LPRT';
export type PassiveVerb = 'PASV' | 'EPSV' | 'LPSV';

export interface TranslatorConfig {
  /**
   * relay: the gateway listens for passive data itself and announces its own
   * address (reverse mode; clients without a route to the server).
   * pass: 227/229 go through untouched, except a 227 naming a site-local
   * address other than the server's, which is corrected to the server's.
   */
  passive: 'relay' | 'pass';
  /** Networks, besides the server's own address, that passive dials may reach. */
  serverNetworks: readonly Cidr[];
  /** terminate: the control stream answers AUTH itself; here it is refused like 'refuse'. */
  tls: 'refuse' | 'passthrough' | 'terminate';
}

export interface SessionAddresses {
  /** The client's address on the control connection. */
  client: IpAddress;
  /** The server's address on the control connection. */
  server: IpAddress;
}

/** What the gateway sent to the server for a command: the context its reply needs. */
export interface SentCommand {
  verb: string;
  /** The client asked for this passive verb; its reply must be answered in its form. */
  passiveAsked?: PassiveVerb;
  epsvAll?: boolean;
  /** Its place among the commands sent to the server (1, 2, …), given when it is sent. */
  seq?: number;
}

export type ClientDecision =
  | { type: 'forward'; sent: SentCommand }
  | { type: 'forward-as'; text: string; reason: string; sent: SentCommand }
  | { type: 'answer'; reply: string; refusal?: Refusal; epsvAll?: boolean }
  | { type: 'active'; target: Endpoint; verb: ActiveVerb; delimiter: string; sent: SentCommand }
  | { type: 'tls-passthrough'; sent: SentCommand };

export type ReplyDecision =
  | { type: 'forward' }
  | { type: 'rewrite'; lineIndex: number; text: string; reason: string; kind: string }
  | {
      type: 'passive';
      /** Where the gateway dials the server's side of the data connection. */
      dial: Endpoint;
      refusal?: Refusal;
      answerAs: '227' | '228' | '229';
      /** The line that carries the endpoint, to rewrite in place; absent when the reply is replaced. */
      inPlace?: { lineIndex: number; start: number; end: number; delimiter?: string };
      /** Further lines that carry an endpoint too: rewritten alike, whichever one a client reads. */
      alsoInPlace?: Array<{ lineIndex: number; start: number; end: number }>;
      kind: '227' | '228' | '229';
    }
  | { type: 'unparsed'; kind: string; reason: string }
  /**
   * The server's reply must not reach the client (it names what the gateway
   * cannot or will not reach, or the inside address it cannot rewrite):
   * drop its bytes and send `reply` in its place, as the answer to the same
   * command; report `refusal`.
   */
  | { type: 'answer-instead'; reply: string; refusal: Refusal; kind: '227' | '228' | '229' };

const ACTIVE_VERBS = new Set<string>(['PORT', 'EPRT', 'LPRT']);
const PASSIVE_VERBS = new Set<string>(['PASV', 'EPSV', 'LPSV']);

export class ControlTranslator {
  /** RFC 2428 §4: after EPSV ALL only EPSV may set up data connections. */
  epsvAll = false;

  constructor(
    readonly addrs: SessionAddresses,
    readonly config: TranslatorConfig,
  ) {}

  /**
   * IPv6 client, IPv4 server: the one direction where RFC 6384 translation
   * is needed (an IPv6 server knows EPSV; a 227 could not describe it).
   */
  get v6ClientV4Server(): boolean {
    return this.addrs.client.family === 6 && this.addrs.server.family === 4;
  }

  onClientCommand(cmd: Command): ClientDecision {
    const { verb, arg } = cmd;
    if (verb === 'AUTH' && /^(TLS|SSL|TLS-C|TLS-P)\b/i.test(arg.trim())) {
      if (this.config.tls === 'passthrough') return { type: 'tls-passthrough', sent: { verb } };
      return {
        type: 'answer',
        reply: '534 TLS is not available through this FTP gateway; use plain FTP or connect directly',
        refusal: { code: REASON.TLS_REFUSED, message: 'AUTH refused: an encrypted control channel cannot be rewritten' },
      };
    }
    if (this.epsvAll && (ACTIVE_VERBS.has(verb) || verb === 'PASV' || verb === 'LPSV')) {
      return {
        type: 'answer',
        reply: `501 ${verb} not allowed after EPSV ALL`,
        refusal: { code: REASON.EPSV_ALL_ACTIVE, message: `${verb} after EPSV ALL (RFC 2428 §4)` },
      };
    }
    if (verb === 'REIN') this.epsvAll = false; // RFC 959: REIN resets the session to just after connect
    if (ACTIVE_VERBS.has(verb)) return this.onActive(verb as ActiveVerb, arg);
    if (PASSIVE_VERBS.has(verb)) return this.onPassive(verb as PassiveVerb, arg);
    return { type: 'forward', sent: { verb } };
  }

  private onActive(verb: ActiveVerb, arg: string): ClientDecision {
    const named = verb === 'PORT' ? parsePortArg(arg) : verb === 'EPRT' ? parseEprtArg(arg) : parseLprtArg(arg);
    if (!named) {
      return {
        type: 'answer',
        reply: `501 Syntax error in ${verb} argument`,
        refusal: { code: REASON.MALFORMED_ENDPOINT, message: `${verb} argument does not parse` },
      };
    }
    const target = this.ownAddressIfUnspecified(named);
    if (verb === 'EPRT' && target.family !== this.addrs.client.family) {
      // RFC 2428 §2: reply 522 and list the families we support.
      return {
        type: 'answer',
        reply: `522 Network protocol not supported, use (${this.addrs.client.family === 4 ? 1 : 2})`,
        refusal: { code: REASON.FAMILY_UNSUPPORTED, message: `EPRT names IPv${target.family}, the control connection is IPv${this.addrs.client.family}` },
      };
    }
    const refusal = checkActiveTarget(this.addrs.client, target);
    if (refusal) {
      return { type: 'answer', reply: `${refusal.code === REASON.PRIVILEGED_PORT ? 501 : 500} ${verb} refused: ${refusal.message}`, refusal };
    }
    const delimiter = verb === 'EPRT' ? arg.trim()[0]! : '|';
    return { type: 'active', target, verb, delimiter, sent: { verb } };
  }

  /**
   * The unspecified address in PORT/EPRT/LPRT means "the address this
   * connection comes from" (lftp sends `EPRT |2|::|port|` when its data
   * socket is unbound; vsftpd accepts it). It cannot point at a third party,
   * so it stands for the client's own control address, in the same family.
   */
  private ownAddressIfUnspecified(target: Endpoint): Endpoint {
    const unspecified = target.address === '0.0.0.0' || target.address === '::';
    return unspecified && target.family === this.addrs.client.family ? { ...this.addrs.client, port: target.port } : target;
  }

  private onPassive(verb: PassiveVerb, arg: string): ClientDecision {
    const all = verb === 'EPSV' && arg.trim().toUpperCase() === 'ALL';
    if (this.addrs.client.family === 6 && verb === 'PASV') {
      return {
        type: 'answer',
        reply: '500 PASV cannot describe an IPv6 address; use EPSV',
        refusal: { code: REASON.FAMILY_UNSUPPORTED, message: 'PASV on an IPv6 control connection' },
      };
    }
    if (!this.v6ClientV4Server || verb !== 'EPSV') {
      if (all) this.epsvAll = true;
      return { type: 'forward', sent: { verb, passiveAsked: verb, epsvAll: all } };
    }
    // IPv6 client, IPv4 server (RFC 6384 §4): an IPv4-only server may not know
    // EPSV, so ask with PASV and answer the 227 as a 229. EPSV ALL is ours to
    // honour then: the server never sees it.
    if (all) {
      this.epsvAll = true;
      return { type: 'answer', reply: '200 EPSV ALL command successful.', epsvAll: true };
    }
    return {
      type: 'forward-as',
      text: 'PASV',
      reason: 'IPv6 client, IPv4 server: EPSV sent as PASV (RFC 6384)',
      sent: { verb: 'PASV', passiveAsked: 'EPSV' },
    };
  }

  /**
   * A final reply from the server, with the command it answers (undefined for
   * the greeting or an unsolicited reply). Only passive replies matter.
   */
  onServerReply(code: number, lines: readonly string[], sent: SentCommand | undefined): ReplyDecision {
    if (code !== 227 && code !== 228 && code !== 229) return { type: 'forward' };
    const kind = String(code) as '227' | '228' | '229';
    const found = this.findEndpoint(kind, lines);
    if (!found) {
      // Passed on, it would show the client the inside address we could not rewrite.
      if (this.config.passive === 'relay') return this.untranslatable(kind, 'no endpoint the gateway can read');
      return { type: 'unparsed', kind, reason: `${kind} reply without a usable endpoint` };
    }
    const { lineIndex, start, end, endpoint, delimiter } = found;
    const asked = sent?.passiveAsked;

    if (this.config.passive === 'pass') {
      return this.passThrough(kind, lines, found);
    }
    if (endpoint.port < MIN_ACTIVE_PORT) {
      // RFC 2577 as for PORT: a hostile server would have us connect to its
      // (or, with --server-networks, a neighbour's) SSH or SMTP port.
      return {
        type: 'answer-instead',
        reply: "425 Can't open data connection: the server named a privileged port",
        refusal: { code: REASON.PRIVILEGED_PORT, message: `server's ${kind} names port ${endpoint.port} (< ${MIN_ACTIVE_PORT}); not dialled (RFC 2577)` },
        kind,
      };
    }

    const { target, refusal } = passiveDialTarget(this.addrs.server, this.config.serverNetworks, endpoint);
    // Answer in the form the client asked for; an IPv6 client cannot use a 227.
    const answerAs: '227' | '228' | '229' =
      asked === 'LPSV' ? '228' : asked === 'EPSV' || (this.addrs.client.family === 6 && kind === '227') ? '229' : kind;
    const inPlace = answerAs === kind ? { lineIndex, start, end, ...(delimiter ? { delimiter } : {}) } : undefined;
    const also = inPlace ? this.findMoreEndpoints(kind, lines, lineIndex) : [];
    return {
      type: 'passive',
      dial: target,
      ...(refusal ? { refusal } : {}),
      answerAs,
      ...(inPlace ? { inPlace } : {}),
      ...(also.length ? { alsoInPlace: also } : {}),
      kind,
    };
  }

  /**
   * A passive reply the gateway cannot rewrite: unreadable, or too big to
   * hold (the session calls this for one it had to stop holding). The client
   * gets 425 instead, never the server's text.
   */
  untranslatable(kind: '227' | '228' | '229', why: string): Extract<ReplyDecision, { type: 'answer-instead' }> {
    return {
      type: 'answer-instead',
      reply: "425 Can't open data connection: the server's passive reply could not be translated",
      refusal: { code: REASON.UNTRANSLATABLE_PASSIVE_REPLY, message: `${kind} reply with ${why}; not relayed` },
      kind,
    };
  }

  private passThrough(kind: string, lines: readonly string[], found: FoundReplyEndpoint): ReplyDecision {
    const { endpoint, lineIndex, start, end } = found;
    if (kind !== '227' || sameAddress(endpoint, this.addrs.server) || !isSiteLocal(endpoint)) return { type: 'forward' };
    if (this.addrs.server.family !== 4) return { type: 'forward' };
    // The server sits behind a NAT of its own and announces its inside
    // address: the only address that can work is the one we reached it at.
    const fixed = { ...this.addrs.server, port: endpoint.port };
    return {
      type: 'rewrite',
      lineIndex,
      text: spliceText(lines[lineIndex]!, start, end, format227Numbers(fixed)),
      reason: `server announced site-local ${endpoint.address}, not its control address ${this.addrs.server.address}: server behind NAT`,
      kind,
    };
  }

  private findMoreEndpoints(kind: '227' | '228' | '229', lines: readonly string[], after: number): Array<{ lineIndex: number; start: number; end: number }> {
    const more: Array<{ lineIndex: number; start: number; end: number }> = [];
    for (let i = after + 1; i < lines.length; i++) {
      const f = this.findEndpoint(kind, [lines[i]!]);
      if (f) more.push({ lineIndex: i, start: f.start, end: f.end });
    }
    return more;
  }

  /**
   * The first endpoint of the reply, line by line: RFC 1123 tells clients to
   * take the first one in the text, so that is the one the server means.
   */
  private findEndpoint(kind: '227' | '228' | '229', lines: readonly string[]): FoundReplyEndpoint | undefined {
    for (let i = 0; i < lines.length; i++) {
      const text = lines[i]!;
      if (kind === '227') {
        const f = find227(text);
        if (f) return { lineIndex: i, start: f.start, end: f.end, endpoint: f.endpoint };
      } else if (kind === '228') {
        const f = find228(text);
        if (f) return { lineIndex: i, start: f.start, end: f.end, endpoint: f.endpoint };
      } else {
        const f = find229(text);
        if (f) {
          return { lineIndex: i, start: f.start, end: f.end, endpoint: { ...this.addrs.server, port: f.port }, delimiter: f.delimiter };
        }
      }
    }
    return undefined;
  }
}

interface FoundReplyEndpoint {
  lineIndex: number;
  start: number;
  end: number;
  endpoint: Endpoint;
  delimiter?: string;
}

/** The command to send the server once the gateway listens at `listen`. */
export function renderActiveCommand(verb: ActiveVerb, delimiter: string, listen: Endpoint, clientFamily: Family): string {
  // Same family on both sides: keep the client's verb. Across families
  // (RFC 6384) use the form an older server surely knows.
  const out: ActiveVerb = listen.family === clientFamily ? verb : listen.family === 4 ? 'PORT' : 'EPRT';
  if (out === 'PORT' && listen.family === 4) return `PORT ${formatPortArg(listen)}`;
  if (out === 'LPRT') return `LPRT ${formatLprtArg(listen)}`;
  return `EPRT ${formatEprtArg(listen, out === verb ? delimiter : '|')}`;
}

/** The passive reply for the client once the gateway listens and announces `announced`. */
export function renderPassiveReply(
  decision: Extract<ReplyDecision, { type: 'passive' }>,
  lines: readonly string[],
  announced: Endpoint,
): string[] {
  const { inPlace, answerAs } = decision;
  if (inPlace) {
    const replacement =
      answerAs === '229' ? String(announced.port) : answerAs === '228' ? formatLprtArg(announced) : formatPortArg(announced);
    const spans = [inPlace, ...(decision.alsoInPlace ?? [])];
    return lines.map((l, i) => {
      const span = spans.find((x) => x.lineIndex === i);
      return span ? spliceText(l, span.start, span.end, replacement) : l;
    });
  }
  if (answerAs === '229') return [format229Reply(announced.port)];
  if (answerAs === '228') return [`228 Entering Long Passive Mode (${formatLprtArg(announced)})`];
  return [`227 Entering Passive Mode (${formatPortArg(announced)}).`];
}

/** Replies that carry a data endpoint: held whole when multi-line, rewritten. */
export const PASSIVE_REPLY_CODES: ReadonlySet<number> = new Set([227, 228, 229]);

/**
 * Must this final reply to a transfer command wait until the relayed data
 * has been flushed to its receiver? 2xx says the transfer is done and
 * 426/451 that it stopped after whatever did move: a client that sees them
 * first may close the data connection and lose the tail. Others (421, 5xx
 * refusals) say nothing about data and go at once.
 */
export function completionAwaitsData(code: number): boolean {
  return (code >= 200 && code < 300) || code === 426 || code === 451;
}
