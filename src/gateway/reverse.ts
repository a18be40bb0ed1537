/** Reverse mode: ftp-alg in front of one or several (NATed) FTP servers. */
import { readFileSync } from 'node:fs';
import type { ReverseConfig } from '../config.js';
import type { IpAddress } from '../protocol/address.js';
import type { EventSink } from './events.js';
import { BackendPool, backendDialer } from './backends.js';
import { fixedServerDialer, kernelNatFor, sessionLimits, startWithKernelNat, type Gateway } from './server.js';
import type { ServerDialer } from './session.js';
import { clientTlsFor, serverTlsOptions, withServerTls, type ServerTlsOptions } from './tls.js';

export async function startReverseGateway(cfg: ReverseConfig, sink: EventSink): Promise<Gateway> {
  const tls = clientTlsFor(cfg);
  const serverTls = serverTlsOptions(cfg, cfg.server.host, readFileSync);
  if (serverTls?.insecure) sink({ event: 'warning', message: "--server-insecure: the FTP server's certificate is not verified" });
  const kernelNat = await kernelNatFor(cfg, sink);
  const { dialServer, pool } = dialerFor(cfg, sink, serverTls);
  const gateway = await startWithKernelNat(kernelNat, {
    mode: 'reverse',
    listen: cfg.listen,
    sink,
    // A pool secures each backend itself, before `user` balancing replays the login.
    dialServer: serverTls && !pool ? withServerTls(dialServer, serverTls) : dialServer,
    session: {
      translator: { passive: 'relay', serverNetworks: cfg.serverNetworks, tls: cfg.tls },
      passiveAnnounceAddress: cfg.publicAddress,
      announceFor: announceFor(cfg),
      activeListenAddress: cfg.insideAddress?.address,
      tls,
      ...sessionLimits(cfg, kernelNat, cfg.proxyProtocolFrom),
    },
    maxSessions: cfg.maxSessions,
    maxSessionsPerClient: cfg.maxSessionsPerClient,
    uncappedSources: cfg.proxyProtocolFrom,
  }).catch((err: unknown) => {
    pool?.close();
    throw err;
  });
  if (pool) {
    pool.startHealthChecks();
    const close = gateway.close.bind(gateway);
    gateway.close = (drainMs?: number) => {
      pool.close();
      return close(drainMs);
    };
  }
  return gateway;
}

/** One plain server keeps the direct dialer: the greeting reaches the client untouched. */
function dialerFor(cfg: ReverseConfig, sink: EventSink, serverTls: ServerTlsOptions | undefined): { dialServer: ServerDialer; pool?: BackendPool } {
  const plain =
    cfg.servers.length <= 1 && cfg.balance !== 'user' && cfg.sendProxyProtocol === undefined && cfg.proxyProtocolFrom.length === 0 && cfg.healthIntervalMs === undefined;
  if (plain) return { dialServer: fixedServerDialer(cfg.server, cfg.connectTimeoutMs) };
  const pool = new BackendPool(cfg.servers, {
    balance: cfg.balance,
    downMs: cfg.backendDownMs,
    healthIntervalMs: cfg.healthIntervalMs,
    connectTimeoutMs: cfg.connectTimeoutMs,
    sendProxyProtocol: cfg.sendProxyProtocol,
    routes: cfg.routes,
    serverTls: serverTls && { options: serverTls, fixedName: cfg.serverTls.name !== undefined || cfg.servers.length <= 1 },
    sink,
  });
  const dialServer = backendDialer(pool, { proxyProtocolFrom: cfg.proxyProtocolFrom, loginTimeoutMs: cfg.loginTimeoutMs, maxSessionsPerClient: cfg.maxSessionsPerClient });
  return { dialServer, pool };
}

/** Split horizon: the first `--announce` network holding the client names the address. */
function announceFor(cfg: ReverseConfig): ((client: IpAddress) => IpAddress | undefined) | undefined {
  if (cfg.announce.length === 0) return undefined;
  return (client) => cfg.announce.find((rule) => rule.network.contains(client))?.address;
}
