/**
 * Sessions, configurations and decision summaries shared by the alg tests.
 * Lab addresses only (LAB.md): 198.18.0.0/15 outside, 100.64.0.0/10 inside,
 * fd00::/8 for IPv6, 127.0.0.1.
 */
import { ipOf, mustCidr, type Endpoint, type IpAddress } from '../../src/protocol/address.js';
import type { ReasonCode } from '../../src/codes.js';
import {
  ControlTranslator,
  type ClientDecision,
  type ReplyDecision,
  type SessionAddresses,
  type TranslatorConfig,
} from '../../src/alg/translator.js';

export const v4 = (address: string, port: number): Endpoint => ({ family: 4, address, port });
export const v6 = (address: string, port: number): Endpoint => ({ family: 6, address, port });
export const ip = (text: string): IpAddress => ipOf(text);

/** Reverse mode, IPv4 on both sides: client outside, server inside. */
export const V4: SessionAddresses = { client: ip('198.18.0.5'), server: ip('100.64.0.10') };
/** IPv6 on both sides. */
export const V6: SessionAddresses = { client: ip('fd00::5'), server: ip('fd00:64::10') };
/** IPv6 client, IPv4 server (RFC 6384). */
export const CROSS: SessionAddresses = { client: ip('fd00::5'), server: ip('100.64.0.10') };
/** IPv4 client, IPv6 server: the other direction across families. */
export const CROSS_V4_CLIENT: SessionAddresses = { client: ip('198.18.0.5'), server: ip('fd00:64::10') };
/** Forward mode (pass): client inside, server outside behind a NAT of its own. */
export const FORWARD_V4: SessionAddresses = { client: ip('100.64.0.5'), server: ip('198.18.0.10') };

export const RELAY: TranslatorConfig = { passive: 'relay', serverNetworks: [], tls: 'refuse' };
export const PASS: TranslatorConfig = { passive: 'pass', serverNetworks: [], tls: 'refuse' };

export function relayWith(...networks: string[]): TranslatorConfig {
  return { ...RELAY, serverNetworks: networks.map(mustCidr) };
}

export function translator(addrs: SessionAddresses, config: TranslatorConfig = RELAY): ControlTranslator {
  return new ControlTranslator(addrs, config);
}

/** A client decision with local replies reduced to their code and reason code. */
export type ClientSummary =
  | Exclude<ClientDecision, { type: 'answer' }>
  | { type: 'answer'; code: number; refusal?: ReasonCode; epsvAll?: boolean };

export function summarizeClient(d: ClientDecision): ClientSummary {
  if (d.type !== 'answer') return d;
  return {
    type: 'answer',
    code: Number(d.reply.slice(0, 3)),
    ...(d.refusal ? { refusal: d.refusal.code } : {}),
    ...(d.epsvAll !== undefined ? { epsvAll: d.epsvAll } : {}),
  };
}

/** A reply decision with refusals reduced to their code and reasons left out. */
export type ReplySummary =
  | { type: 'forward' }
  | { type: 'rewrite'; lineIndex: number; text: string; kind: string }
  | (Omit<Extract<ReplyDecision, { type: 'passive' }>, 'refusal'> & { refusal?: ReasonCode })
  | { type: 'unparsed'; kind: string }
  | { type: 'answer-instead'; code: number; refusal: ReasonCode; kind: string };

export function summarizeReply(d: ReplyDecision): ReplySummary {
  switch (d.type) {
    case 'forward':
      return d;
    case 'rewrite':
      return { type: 'rewrite', lineIndex: d.lineIndex, text: d.text, kind: d.kind };
    case 'unparsed':
      return { type: 'unparsed', kind: d.kind };
    case 'answer-instead':
      return { type: 'answer-instead', code: Number(d.reply.slice(0, 3)), refusal: d.refusal.code, kind: d.kind };
    case 'passive': {
      const { refusal, ...rest } = d;
      return refusal ? { ...rest, refusal: refusal.code } : rest;
    }
  }
}
