/**
 * Who may be announced and who may be dialled. Pure: every decision is a
 * function of the session's addresses and the configuration.
 */
import { sameAddress, type Cidr, type Endpoint, type IpAddress } from '../protocol/address.js';

/** Stable reason codes: part of the interface (README), never renamed casually. */
export const REASON = {
  BOUNCE_ADDRESS: 'BOUNCE_ADDRESS',
  PRIVILEGED_PORT: 'PRIVILEGED_PORT',
  MALFORMED_ENDPOINT: 'MALFORMED_ENDPOINT',
  FOREIGN_PASSIVE_ADDRESS: 'FOREIGN_PASSIVE_ADDRESS',
  EPSV_ALL_ACTIVE: 'EPSV_ALL_ACTIVE',
  FAMILY_UNSUPPORTED: 'FAMILY_UNSUPPORTED',
  TLS_REFUSED: 'TLS_REFUSED',
  LINE_TOO_LONG: 'LINE_TOO_LONG',
  PORTS_EXHAUSTED: 'PORTS_EXHAUSTED',
  DATA_PEER_MISMATCH: 'DATA_PEER_MISMATCH',
  CLIENT_NOT_ALLOWED: 'CLIENT_NOT_ALLOWED',
  SERVER_UNREACHABLE: 'SERVER_UNREACHABLE',
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
