/** In-process gateways on loopback port 0, with their events. */
import { forwardFromFlags, reverseFromFlags, type ForwardFlags, type ReverseFlags } from '../../src/config.js';
import { startReverseGateway } from '../../src/gateway/reverse.js';
import { startForwardGateway } from '../../src/gateway/forward.js';
import type { Gateway } from '../../src/gateway/server.js';
import { EventLog } from './events.js';

export interface TestGateway {
  gateway: Gateway;
  port: number;
  host: string;
  log: EventLog;
  url: (path?: string, user?: string) => string;
  close: () => Promise<void>;
}

function testGateway(gateway: Gateway, log: EventLog): TestGateway {
  const { port, address: host } = gateway.address;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  return {
    gateway,
    port,
    host,
    log,
    url: (path = '/', user) => `ftp://${user ? `${user}@` : ''}${hostInUrl}:${port}${path}`,
    close: () => gateway.close(),
  };
}

export async function startTestReverse(serverPort: number, flags: Partial<ReverseFlags> = {}, serverHost = '127.0.0.1'): Promise<TestGateway> {
  const log = new EventLog();
  const cfg = reverseFromFlags({
    listen: '127.0.0.1:0',
    server: serverHost.includes(':') ? `[${serverHost}]:${serverPort}` : `${serverHost}:${serverPort}`,
    'public-address': '127.0.0.1',
    ...flags,
  });
  return testGateway(await startReverseGateway(cfg, log.sink), log);
}

/**
 * An in-process forward gateway on loopback port 0 (explicit mode unless
 * flags say otherwise). Test servers listen on loopback, on ports the kernel
 * picks: both are refused by default and opened here.
 */
export async function startTestForward(flags: Partial<ForwardFlags> = {}): Promise<TestGateway> {
  const log = new EventLog();
  const cfg = forwardFromFlags({ listen: '127.0.0.1:0', 'allow-destinations': '127.0.0.0/8,::1/128', 'allow-destination-ports': '1-65535', ...flags });
  return testGateway(await startForwardGateway(cfg, log.sink), log);
}
