/**
 * Relays of the control connection alone, no FTP in them: the floor under
 * what any userspace relay of the control connection adds per command
 * (issue 14). The server's 227 names its own loopback address, so the data
 * connections go to it directly, past the relay: what these rows add is the
 * control hops and nothing else.
 *   node      a bare Node relay (control-relay-child.ts): the gateway's runtime without the gateway
 *   haproxy   HAProxy in mode tcp: an event-driven relay in C
 */
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inNamespace, waitTcpListener } from '../../scenarios/lib/lab.js';
import { HAPROXY, haproxyTcpDefaults } from '../../scenarios/lib/haproxy.js';
import { procCpuSeconds } from './common.js';
import { startDaemon, stopDaemon, type Daemon } from './procs.js';

const LIB = path.dirname(fileURLToPath(import.meta.url));

export type ControlRelayKind = 'node' | 'haproxy';

export const CONTROL_RELAY_LABEL: Record<ControlRelayKind, string> = {
  node: 'control relay only: bare Node',
  haproxy: 'control relay only: HAProxy',
};

/** The floor paths as the parts and the report name them (their result keys). */
export const CONTROL_RELAYS = [
  { key: 'controlNode', kind: 'node' },
  { key: 'controlHaproxy', kind: 'haproxy' },
] as const satisfies readonly { key: string; kind: ControlRelayKind }[];

export type ControlRelayKey = (typeof CONTROL_RELAYS)[number]['key'];

export interface ControlRelay extends Daemon {
  port: number;
  cpuSeconds(): number;
  stop(): Promise<void>;
}

/** Why a kind cannot run here, or undefined. */
export function controlRelayMissing(kind: ControlRelayKind): string | undefined {
  return kind === 'haproxy' && !existsSync(HAPROXY) ? `needs ${HAPROXY} (bash scripts/install-debian-packages.sh)` : undefined;
}

/** Resolves when the relay listens on 127.0.0.1:listenPort (in netns, if given). */
export async function startControlRelay(
  kind: ControlRelayKind,
  { dir, netns, listenPort, serverPort }: { dir: string; netns?: string | undefined; listenPort: number; serverPort: number },
): Promise<ControlRelay> {
  let cmd: string;
  let args: string[];
  if (kind === 'node') {
    [cmd, args] = [process.execPath, [path.join(LIB, 'control-relay-child.js'), String(listenPort), String(serverPort)]];
  } else {
    const conf = path.join(dir, `haproxy-control-${listenPort}.cfg`);
    const text = [...haproxyTcpDefaults(1000), 'listen control', `  bind 127.0.0.1:${listenPort}`, `  server ftp 127.0.0.1:${serverPort}`, ''].join('\n');
    writeFileSync(conf, text, { mode: 0o600 });
    // -db: foreground, no daemon, so that the PID tracked is HAProxy's own.
    [cmd, args] = [HAPROXY, ['-db', '-f', conf]];
  }
  const d = startDaemon(...inNamespace(netns, cmd, args));
  if (!(await waitTcpListener(listenPort, { netns, alive: () => !d.hasExited(), timeoutMs: 20_000 }))) {
    await stopDaemon(d);
    throw new Error(`${CONTROL_RELAY_LABEL[kind]} did not listen on 127.0.0.1:${listenPort} (exit ${await d.exited})`);
  }
  return { ...d, port: listenPort, cpuSeconds: () => procCpuSeconds(d.pid), stop: () => stopDaemon(d) };
}
