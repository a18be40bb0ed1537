/** Reverse mode: ftp-alg in front of one (NATed) FTP server. */
import type { ReverseConfig } from '../config.js';
import type { EventSink } from './events.js';
import { fixedServerDialer, kernelNatFor, sessionLimits, startWithKernelNat, type Gateway } from './server.js';

export async function startReverseGateway(cfg: ReverseConfig, sink: EventSink): Promise<Gateway> {
  const kernelNat = await kernelNatFor(cfg, sink);
  return startWithKernelNat(kernelNat, {
    mode: 'reverse',
    listen: cfg.listen,
    sink,
    dialServer: fixedServerDialer(cfg.server, cfg.connectTimeoutMs),
    session: {
      translator: { passive: 'relay', serverNetworks: cfg.serverNetworks, tls: cfg.tls },
      passiveAnnounceAddress: cfg.publicAddress,
      activeListenAddress: cfg.insideAddress?.address,
      ...sessionLimits(cfg, kernelNat),
    },
    maxSessions: cfg.maxSessions,
    maxSessionsPerClient: cfg.maxSessionsPerClient,
  });
}
