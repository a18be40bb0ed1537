/**
 * Who may be announced and who may be dialled. Pure: every decision is a
 * function of the session's addresses and the configuration.
 */
import { REASON, type ReasonCode } from '../codes.js';
import {
  classifyAddress,
  embeddedIpv4,
  formatEndpoint,
  sameAddress,
  type AddressClass,
  type Cidr,
  type Endpoint,
  type IpAddress,
} from '../protocol/address.js';

/** Stable reason codes: part of the interface (README), never renamed casually. */

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

/** Ports as the operator lists them: `21`, `21,990`, `2121-2130`. */
export type PortList = ReadonlyArray<{ lo: number; hi: number }>;

/** Forward mode: FTP's own port, so that the gateway cannot be used to talk to SMTP or anything else. */
export const DEFAULT_DESTINATION_PORTS = '21';

export interface DestinationPolicy {
  /** The networks the gateway serves (its --allow-clients): it must not be a way into them. */
  lanNetworks: readonly Cidr[];
  /** --allow-destinations: the only way to open an address refused below. */
  allowed: readonly Cidr[];
  /** --allow-destination-ports. */
  ports: PortList;
}

/**
 * Addresses no forward destination may have, whatever --allow-clients says:
 * this host (loopback, unspecified, which Linux dials as loopback), the link
 * (link-local, which holds the cloud metadata service 169.254.169.254) and
 * everyone (multicast, 240/4 with the limited broadcast 255.255.255.255).
 */
const NEVER_DESTINATION: ReadonlySet<AddressClass> = new Set(['unspecified', 'loopback', 'link-local', 'multicast', 'reserved']);

/**
 * Forward mode must not be an open door into the gateway itself, its link,
 * or the LAN it serves. Refused unless --allow-destinations names the
 * address: the classes above, the gateway's own addresses (and broadcast
 * addresses), the LAN networks, and any of these hidden in an IPv6 form
 * that embeds an IPv4 address (NAT64, IPv4-compatible). A port outside
 * --allow-destination-ports is refused in every case.
 */
export function checkDestination(dest: Endpoint, policy: DestinationPolicy, ownAddresses: readonly IpAddress[] = []): Refusal | undefined {
  const refused = (why: string): Refusal => ({ code: REASON.DESTINATION_NOT_ALLOWED, message: `destination ${formatEndpoint(dest)}: ${why}` });
  if (!policy.ports.some((r) => dest.port >= r.lo && dest.port <= r.hi)) return refused(`port ${dest.port} is not an allowed destination port`);
  if (policy.allowed.some((n) => n.contains(dest))) return undefined;
  const embedded = embeddedIpv4(dest);
  for (const ip of embedded ? [dest, embedded] : [dest]) {
    const as = ip === dest ? '' : ` (embeds ${ip.address})`;
    const cls = classifyAddress(ip);
    if (NEVER_DESTINATION.has(cls)) return refused(`${cls} address${as}`);
    if (ownAddresses.some((a) => sameAddress(a, ip))) return refused(`the gateway's own address${as}`);
    if (policy.lanNetworks.some((n) => n.contains(ip))) return refused(`inside the gateway's own networks${as}`);
  }
  return undefined;
}
