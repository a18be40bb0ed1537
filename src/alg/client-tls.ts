/**
 * RFC 4217's commands as the gateway answers them when it ends the client's
 * TLS itself (--tls terminate): AUTH, PBSZ, PROT, CCC, REIN, and what
 * --require-tls refuses. Pure: one state per client, a verb in, a reply out.
 * The control stream asks it after login; the explicit proxy's pre-login
 * dialogue asks the same one before there is a server, and hands the state
 * it reached on to the stream.
 */
import { TRANSFER_VERBS } from '../protocol/command.js';
import { REASON } from '../codes.js';
import type { Refusal } from './policy.js';

/** How far the client got with TLS on its control connection. */
export interface ClientTlsState {
  /** The control connection is (about to be) encrypted. */
  secure: boolean;
  pbsz: boolean;
  /** PROT P (RFC 4217 §9): its data connections speak TLS. C until it asks. */
  protect: boolean;
}

export const AUTH_ACCEPTED = '234 AUTH accepted: proceed with the TLS handshake';

/**
 * FEAT before there is a server (explicit proxy): what the gateway itself
 * offers. lftp with ftp:ssl-force reads FEAT first and gives up on a
 * server that does not list AUTH TLS (RFC 4217 §6).
 */
export const PRE_LOGIN_FEATURES = ['211-Features:', ' AUTH TLS', ' PBSZ', ' PROT', '211 End'];

/** Verbs that need a login, refused before AUTH under --require-tls (with USER itself). */
const LOGIN_VERBS = new Set(['USER', 'PASS', 'ACCT']);

export interface TlsCommandAnswer {
  reply: string;
  /** Logged as a refusal with this code. */
  refusal?: Refusal;
  /** The reply is the 234: the client's next byte is its ClientHello. */
  startTls?: true;
}

export class ClientTlsDialogue {
  private readonly current: ClientTlsState;

  constructor(
    /** --require-tls: USER before AUTH and transfers without PROT P are refused. */
    private readonly require: boolean,
    start: Partial<ClientTlsState> = {},
  ) {
    this.current = { secure: false, pbsz: false, protect: false, ...start };
  }

  get state(): Readonly<ClientTlsState> {
    return this.current;
  }

  /** The gateway's answer to `verb`, or undefined: not a matter of TLS, handle it as usual. */
  answer(verb: string, arg: string): TlsCommandAnswer | undefined {
    const s = this.current;
    const notYet = { reply: `503 ${verb} needs AUTH TLS first` };
    switch (verb) {
      case 'AUTH':
        if (s.secure) return { reply: '503 TLS is already in use on this connection' };
        if (!/^(TLS|SSL|TLS-C|TLS-P)$/i.test(arg.trim())) return { reply: '504 AUTH mechanism not supported: use AUTH TLS' };
        s.secure = true;
        return { reply: AUTH_ACCEPTED, startTls: true };
      case 'PBSZ':
        if (!s.secure) return notYet;
        s.pbsz = true;
        return { reply: '200 PBSZ=0' };
      case 'PROT': {
        if (!s.secure) return notYet;
        if (!s.pbsz) return { reply: '503 PROT needs PBSZ first' };
        const level = arg.trim().toUpperCase();
        if (level === 'P') {
          s.protect = true;
          return { reply: '200 Protection level set to Private' };
        }
        if (level !== 'C') return { reply: `536 Protection level ${level.slice(0, 8)} not supported: use C or P` };
        if (this.require) {
          return { reply: '534 Clear data connections are refused by policy: use PROT P', refusal: { code: REASON.TLS_REQUIRED, message: 'PROT C refused: TLS is required on data connections' } };
        }
        s.protect = false;
        return { reply: '200 Protection level set to Clear' };
      }
      case 'REIN':
        // RFC 4217 §11: REIN would drop TLS and go back to clear text under the client's feet.
        return s.secure ? { reply: '502 REIN is not available over TLS through this gateway' } : undefined;
      case 'CCC':
        // Clear text again would put our rewrites back in sight of every middlebox, and the client's password too.
        return { reply: '533 CCC refused: the control connection stays encrypted', refusal: { code: REASON.TLS_CCC_REFUSED, message: 'CCC refused: the control connection stays encrypted' } };
    }
    if (!this.require) return undefined;
    if (!s.secure && LOGIN_VERBS.has(verb)) {
      return { reply: '530 TLS is required: send AUTH TLS before logging in', refusal: { code: REASON.TLS_REQUIRED, message: `${verb} before AUTH TLS refused` } };
    }
    if (!s.protect && TRANSFER_VERBS.has(verb)) {
      return { reply: '521 Data connections must be protected: send PBSZ 0 and PROT P first', refusal: { code: REASON.TLS_REQUIRED, message: `${verb} without PROT P refused` } };
    }
    return undefined;
  }
}
