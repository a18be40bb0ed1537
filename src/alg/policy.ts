/**
 * Who may be announced and who may be dialled. Pure: every decision is a
 * function of the session's addresses and the configuration.
 */
import { classifyAddress, sameAddress, type Cidr, type Endpoint, type IpAddress } from '../protocol/address.js';

/** Stable reason codes: part of the interface (README), never renamed casually. */
export const REASON = {
  BOUNCE_ADDRESS: 'BOUNCE_ADDRESS',
  PRIVILEGED_PORT: 'PRIVILEGED_PORT',
  MALFORMED_ENDPOINT: 'MALFORMED_ENDPOINT',
  FOREIGN_PASSIVE_ADDRESS: 'FOREIGN_PASSIVE_ADDRESS',
  EPSV_ALL_ACTIVE: 'EPSV_ALL_ACTIVE',
  FAMILY_UNSUPPORTED: 'FAMILY_UNSUPPORTED',
  TLS_REFUSED: 'TLS_REFUSED',
  /** --require-tls: a login before AUTH TLS, or a transfer without PROT P. */
  TLS_REQUIRED: 'TLS_REQUIRED',
  /** A TLS handshake with the client or the server failed (control or data). */
  TLS_HANDSHAKE_FAILED: 'TLS_HANDSHAKE_FAILED',
  TLS_CCC_REFUSED: 'TLS_CCC_REFUSED',
  LINE_TOO_LONG: 'LINE_TOO_LONG',
  PORTS_EXHAUSTED: 'PORTS_EXHAUSTED',
  DATA_PEER_MISMATCH: 'DATA_PEER_MISMATCH',
  CLIENT_NOT_ALLOWED: 'CLIENT_NOT_ALLOWED',
  SERVER_UNREACHABLE: 'SERVER_UNREACHABLE',
  DESTINATION_NOT_ALLOWED: 'DESTINATION_NOT_ALLOWED',
  NOT_REDIRECTED: 'NOT_REDIRECTED',
  LOGIN_REQUIRED: 'LOGIN_REQUIRED',
  LOGIN_TIMEOUT: 'LOGIN_TIMEOUT',
  TOO_MANY_SESSIONS: 'TOO_MANY_SESSIONS',
  KERNEL_NAT_FAILED: 'KERNEL_NAT_FAILED',
  UNTRANSLATABLE_PASSIVE_REPLY: 'UNTRANSLATABLE_PASSIVE_REPLY',
  LINE_TIMEOUT: 'LINE_TIMEOUT',
} as const;

export type ReasonCode = (typeof REASON)[keyof typeof REASON];

export interface Refusal {
  code: ReasonCode;
  message: string;
}

/** RFC 2577 §3: ports below 1024 are privileged; a PORT to them is a classic bounce. */
export const MIN_ACTIVE_PORT = 1024;

/**
 * Anti-bounce (RFC 2577): the data connection for active mode may only go back
 * to the host that sent the command, on an unprivileged port. Anything else
 * would let a client use the server (or us) to reach a third party.
 */
export function checkActiveTarget(client: IpAddress, target: Endpoint): Refusal | undefined {
  if (!sameAddress(client, target)) {
    return {
      code: REASON.BOUNCE_ADDRESS,
      message: `address ${target.address} is not your own (${client.address}); refused as a bounce (RFC 2577)`,
    };
  }
  if (target.port < MIN_ACTIVE_PORT) {
    return { code: REASON.PRIVILEGED_PORT, message: `port ${target.port} is privileged (< ${MIN_ACTIVE_PORT}); refused (RFC 2577)` };
  }
  return undefined;
}

/**
 * Where a passive data connection may be dialled: the server itself, or a
 * network the operator declared as the server's. A server announcing anything
 * else (misconfigured masquerade address, or a hostile server steering us to
 * a third host) gets its control address instead.
 */
export function passiveDialTarget(
  server: IpAddress,
  serverNetworks: readonly Cidr[],
  announced: Endpoint,
): { target: Endpoint; refusal?: Refusal } {
  if (sameAddress(server, announced) || serverNetworks.some((n) => n.contains(announced))) {
    return { target: announced };
  }
  return {
    target: { ...server, port: announced.port },
    refusal: {
      code: REASON.FOREIGN_PASSIVE_ADDRESS,
      message: `server announced ${announced.address}, which is neither its own address ${server.address} nor in its networks; dialling ${server.address} instead`,
    },
  };
}

/** Forward mode: the LAN networks that may use the gateway by default. */
export const DEFAULT_ALLOWED_CLIENTS = ['127.0.0.0/8', '::1/128', '100.64.0.0/10', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'];

export function checkClientAllowed(client: IpAddress, allowed: readonly Cidr[]): Refusal | undefined {
  if (allowed.some((n) => n.contains(client))) return undefined;
  return { code: REASON.CLIENT_NOT_ALLOWED, message: `client ${client.address} is not in the allowed networks` };
}

/**
 * Forward mode must not be an open door into the LAN it serves, nor into the
 * gateway itself: a destination inside the networks it fronts, one of its
 * own addresses, or an address that means "this host" or "everyone"
 * (0.0.0.0, ::, multicast) is refused unless explicitly allowed.
 */
export function checkDestination(
  dest: IpAddress,
  lanNetworks: readonly Cidr[],
  allowedDestinations: readonly Cidr[],
  ownAddresses: readonly IpAddress[] = [],
): Refusal | undefined {
  if (allowedDestinations.some((n) => n.contains(dest))) return undefined;
  const cls = classifyAddress(dest);
  if (cls === 'unspecified' || cls === 'multicast' || cls === 'reserved') {
    return { code: REASON.DESTINATION_NOT_ALLOWED, message: `destination ${dest.address} is ${cls}` };
  }
  if (ownAddresses.some((a) => sameAddress(a, dest))) {
    return { code: REASON.DESTINATION_NOT_ALLOWED, message: `destination ${dest.address} is the gateway itself` };
  }
  if (lanNetworks.some((n) => n.contains(dest))) {
    return { code: REASON.DESTINATION_NOT_ALLOWED, message: `destination ${dest.address} is inside the gateway's own networks` };
  }
  return undefined;
}
