/**
 * Forward mode's wiring: ftp-alg on the gateway of a LAN whose clients go
 * out through a NAT. The server is chosen per session: by the client
 * (explicit proxy, `USER name@host`, after the pre-login dialogue of
 * pre-login.ts), or by where the client was going before nftables
 * redirected it to us (transparent; the rules: transparent-nft-ruleset.ts).
 */
import { readFileSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import type { Socket } from 'node:net';
import type { ForwardConfig } from '../config.js';
import { encodeLine } from '../protocol/framer.js';
import { broadcastOf, formatEndpoint, ipOf, parseCidr, parseIp, type Cidr, type Endpoint, type IpAddress } from '../protocol/address.js';
import { preLoginStep } from '../alg/proxy-login.js';
import { checkClientAllowed, checkDestination, type DestinationPolicy } from '../alg/policy.js';
import { REASON } from '../codes.js';
import type { EventSink } from './events.js';
import { connectServer, kernelNatFor, sessionLimits, startWithKernelNat, type Gateway } from './server.js';
import { DialRefusal, type DialContext, type ServerDialer } from './session.js';
import { originalDestination } from './original-dst.js';
import { readGreeting, readProxyLogin, type LoginDialogue } from './pre-login.js';
import { clientTlsFor, secureServerControl, serverTlsOptions, type ServerTlsOptions } from './tls.js';

/**
 * This host's interface addresses and the broadcast address of each IPv4
 * interface network, read at each use: interfaces come and go.
 */
function ownAddresses(): IpAddress[] {
  return Object.values(networkInterfaces())
    .flat()
    .flatMap((i) => {
      const cidr = i?.cidr ? parseCidr(i.cidr) : undefined;
      return [i ? parseIp(i.address) : undefined, cidr ? broadcastOf(cidr) : undefined];
    })
    .filter((ip): ip is IpAddress => ip !== undefined);
}

export async function startForwardGateway(cfg: ForwardConfig, sink: EventSink): Promise<Gateway> {
  // Certificates and CA are read now: a bad file fails the start, not a session.
  const tls = clientTlsFor(cfg);
  // The name the server's certificate must carry is per session (USER name@host) unless --server-name says it.
  const serverTls = serverTlsOptions(cfg, '', readFileSync);
  if (serverTls?.insecure) sink({ event: 'warning', message: "--server-insecure: the FTP server's certificate is not verified" });
  const kernelNat = await kernelNatFor(cfg, sink);
  const policy: ForwardPolicy = {
    allowClients: cfg.allowClients,
    destinations: { lanNetworks: cfg.allowClients, allowed: cfg.allowDestinations, ports: cfg.allowDestinationPorts },
    connectTimeoutMs: cfg.connectTimeoutMs,
    loginTimeoutMs: cfg.loginTimeoutMs,
    serverTls: serverTls && { options: serverTls, fixedName: cfg.serverTls.name !== undefined },
  };
  return startWithKernelNat(kernelNat, {
    mode: 'forward',
    listen: cfg.listen,
    sink,
    dialServer: cfg.transparent ? transparentDialer(policy) : explicitDialer(policy),
    session: {
      translator: { passive: cfg.passive, serverNetworks: [], tls: cfg.tls },
      // Relayed passive data is announced at the address the client reached us on.
      passiveAnnounceAddress: undefined,
      activeListenAddress: cfg.publicAddress?.address,
      activeSourcePort: cfg.activeSourcePort,
      ...sessionLimits(cfg, kernelNat),
      clientSeesServerAddress: cfg.transparent,
      tls,
    },
    maxSessions: cfg.maxSessions,
    maxSessionsPerClient: cfg.maxSessionsPerClient,
  });
}

interface ForwardPolicy {
  allowClients: readonly Cidr[];
  destinations: DestinationPolicy;
  connectTimeoutMs: number;
  loginTimeoutMs: number;
  /** --server-tls explicit|implicit; the name checked is the destination's unless --server-name fixed it. */
  serverTls?: { options: ServerTlsOptions; fixedName: boolean } | undefined;
}

function admitClient(client: Socket, policy: ForwardPolicy): void {
  const refusal = checkClientAllowed(ipOf(client.remoteAddress ?? '0.0.0.0'), policy.allowClients);
  // An outsider gets nothing that helps it probe further: one line, then close.
  if (refusal) throw new DialRefusal(refusal, '421 Not allowed to use this gateway');
}

/** The gateway, its link and the LAN it serves are no destinations (policy.ts: checkDestination). */
function admitDestination(dest: Endpoint, policy: ForwardPolicy, reply: string): void {
  const refusal = checkDestination(dest, policy.destinations, ownAddresses());
  if (refusal) throw new DialRefusal(refusal, reply);
}

function transparentDialer(policy: ForwardPolicy): ServerDialer {
  return async (client) => {
    admitClient(client, policy);
    let dest;
    try {
      dest = originalDestination(client);
    } catch (err) {
      throw new DialRefusal(
        { code: REASON.NOT_REDIRECTED, message: (err as Error).message },
        '421 This is a transparent FTP gateway: connect to an FTP server, not to the gateway',
      );
    }
    const local = ipOf(client.localAddress ?? '0.0.0.0');
    if (dest.address === local.address && dest.port === client.localPort) {
      throw new DialRefusal({ code: REASON.NOT_REDIRECTED, message: 'connection was addressed to the gateway itself' }, '421 This is a transparent FTP gateway: connect to an FTP server, not to the gateway');
    }
    admitDestination(dest, policy, `421 Destination ${formatEndpoint(dest)} is not allowed through this gateway`);
    return { server: await connectServer({ host: dest.address, port: dest.port }, policy.connectTimeoutMs) };
  };
}

/**
 * Explicit proxy: greet the client ourselves (and take it into TLS when it
 * asks, with --tls terminate), wait for `USER name@host`, connect there,
 * swallow the server's greeting (the client already had ours; with
 * --server-tls, after our own AUTH, PBSZ and PROT) and send `USER name`.
 * From then on the session relays as usual; the server's answer to USER is
 * the first reply the client sees from it.
 */
function explicitDialer(policy: ForwardPolicy): ServerDialer {
  return async (client, ctx) => {
    admitClient(client, policy);
    const login = await readProxyLogin(client, policy.loginTimeoutMs, EXPLICIT_PROXY_LOGIN, ctx);
    const { destination, eol, raw, leftover, dropped, said } = login;
    let address: IpAddress;
    try {
      address = parseIp(destination.host) ?? ipOf((await lookup(destination.host)).address);
    } catch (err) {
      throw new DialRefusal(
        { code: REASON.SERVER_UNREACHABLE, message: `cannot resolve ${destination.host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` },
        `421 Cannot resolve ${destination.host}`,
      );
    }
    admitDestination({ ...address, port: destination.port }, policy, `530 Destination ${formatEndpoint({ ...address, port: destination.port })} is not allowed through this gateway`);
    const target = { host: address.address, port: destination.port };
    let server: Socket;
    try {
      server = await connectServer(target, policy.connectTimeoutMs);
    } catch (err) {
      throw new DialRefusal({ code: REASON.SERVER_UNREACHABLE, message: (err as Error).message }, `421 ${(err as Error).message}`);
    }
    try {
      let greetingBytes: number;
      let serverLeftover: Buffer | undefined;
      if (policy.serverTls) {
        const { options, fixedName } = policy.serverTls;
        const secured = await secureServerControl(server, fixedName ? options : { ...options, name: destination.host });
        server = secured.server;
        greetingBytes = secured.greeting.length;
      } else {
        const read = await readGreeting(server, policy.connectTimeoutMs);
        if (read.greeting.code !== 220) {
          const text = read.greeting.lines.map((l) => l.text).join(' ');
          throw new DialRefusal({ code: REASON.SERVER_UNREACHABLE, message: `server greeted with ${text}` }, `421 ${formatEndpoint({ ...address, port: destination.port })} says: ${text}`);
        }
        greetingBytes = read.consumed;
        serverLeftover = read.leftover;
      }
      const userLine = encodeLine(`USER ${destination.user}`, eol);
      server.write(userLine);
      report(ctx, raw, userLine, destination.host, destination.port, dropped);
      return {
        server,
        user: destination.user,
        clientLeftover: leftover,
        ...(login.tls ? { clientTls: login.tls } : {}),
        ...(serverLeftover ? { serverLeftover } : {}),
        // What the login dialogue did to each stream, so that the session's
        // rewrite offsets and deltas count from the real start of the streams.
        ledgerSeed: {
          'client->server': [
            [dropped, 0],
            [raw.length, userLine.length],
          ],
          'server->client': [
            [0, said],
            [greetingBytes, 0],
          ],
        },
      };
    } catch (err) {
      server.destroy();
      throw err;
    }
  };
}

function report(ctx: DialContext, before: Buffer, after: Buffer, host: string, port: number, offset: number): void {
  ctx.sink({
    event: 'rewrite',
    session: ctx.session,
    direction: 'client->server',
    kind: 'USER',
    before: before.toString('latin1').replace(/\r?\n$/, ''),
    after: after.toString('latin1').replace(/\r?\n$/, ''),
    reason: `explicit proxy login: destination ${host}:${port}`,
    offset,
    // Commands answered before USER never reached the server.
    delta: after.length - before.length - offset,
  });
}

const EXPLICIT_PROXY_LOGIN: LoginDialogue = {
  greeting: '220 ftp-alg FTP proxy: log in with USER name@host[:port]',
  expects: 'USER name@host[:port]',
  step: preLoginStep,
};
