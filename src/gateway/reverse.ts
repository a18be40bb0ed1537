/** Reverse mode: ftp-alg in front of one (NATed) FTP server. */
import { readFileSync } from 'node:fs';
import type { ReverseConfig } from '../config.js';
import type { EventSink } from './events.js';
import { fixedServerDialer, kernelNatFor, sessionLimits, startWithKernelNat, type Gateway } from './server.js';
import { clientTlsFor, serverTlsOptions, withServerTls } from './tls.js';

export async function startReverseGateway(cfg: ReverseConfig, sink: EventSink): Promise<Gateway> {
  const tls = clientTlsFor(cfg);
  const serverTls = serverTlsOptions(cfg, cfg.server.host, readFileSync);
  if (serverTls?.insecure) sink({ event: 'warning', message: "--server-insecure: the FTP server's certificate is not verified" });
  const plainDialer = fixedServerDialer(cfg.server, cfg.connectTimeoutMs);
  const kernelNat = await kernelNatFor(cfg, sink);
  return startWithKernelNat(kernelNat, {
    mode: 'reverse',
    listen: cfg.listen,
    sink,
    dialServer: serverTls ? withServerTls(plainDialer, serverTls) : plainDialer,
    session: {
      translator: { passive: 'relay', serverNetworks: cfg.serverNetworks, tls: cfg.tls },
      passiveAnnounceAddress: cfg.publicAddress,
      activeListenAddress: cfg.insideAddress?.address,
      tls,
      ...sessionLimits(cfg, kernelNat, sink),
    },
    maxSessions: cfg.maxSessions,
    maxSessionsPerClient: cfg.maxSessionsPerClient,
  });
}
