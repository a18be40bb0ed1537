/** Reverse mode: ftp-alg in front of one (NATed) FTP server. */
import type { ReverseConfig } from '../config.js';
import type { EventSink } from './events.js';
import { Gateway, fixedServerDialer, sessionLimits } from './server.js';

export function startReverseGateway(cfg: ReverseConfig, sink: EventSink): Promise<Gateway> {
  return Gateway.start({
    mode: 'reverse',
    listen: cfg.listen,
    sink,
    dialServer: fixedServerDialer(cfg.server, cfg.connectTimeoutMs),
    session: {
      translator: { passive: 'relay', serverNetworks: cfg.serverNetworks, tls: cfg.tls },
      passiveAnnounceAddress: cfg.publicAddress,
      activeListenAddress: cfg.insideAddress?.address,
      ...sessionLimits(cfg),
    },
    maxSessions: cfg.maxSessions,
    maxSessionsPerClient: cfg.maxSessionsPerClient,
  });
}
