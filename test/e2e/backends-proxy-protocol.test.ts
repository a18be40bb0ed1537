/**
 * PROXY protocol through a real gateway on loopback. Out: a recorder in
 * front of the built-in server keeps the header the gateway sends. In: a
 * stand-in balancer dials the gateway from 127.0.0.3 and names the client.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { startDemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { encodeProxyHeader } from '../../src/protocol/proxy-header.js';
import { ipOf } from '../../src/protocol/address.js';
import type { ReverseFlags } from '../../src/config.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { startFakeBalancer, startHeaderRecorder, type HeaderRecorder } from '../helpers/proxy-protocol.js';
import type { Socket } from 'node:net';

const BALANCER = '127.0.0.3';
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function recordedBackend(): Promise<HeaderRecorder> {
  const server = await startDemoServer({ files: { '/f.txt': 'hello' } });
  const recorder = await startHeaderRecorder(server.address.port);
  cleanup.push(() => server.close(), () => recorder.close());
  return recorder;
}

async function gatewayTo(port: number, flags: Partial<ReverseFlags>): Promise<TestGateway> {
  const gw = await startTestReverse(port, flags);
  cleanup.push(() => gw.close());
  return gw;
}

async function session(port: number): Promise<FtpClient> {
  const c = await FtpClient.connect('127.0.0.1', port);
  cleanup.push(() => c.close());
  await c.login();
  return c;
}

/** The header a balancer writes for the client it accepted: the client as it saw it. */
const namesClient = (version: 1 | 2, address?: string) => (client: Socket) =>
  encodeProxyHeader(version, {
    source: { ...ipOf(address ?? client.remoteAddress!), port: client.remotePort! },
    destination: { ...ipOf(client.localAddress!), port: client.localPort! },
  });

describe('--send-proxy-protocol', () => {
  for (const version of [1, 2] as const) {
    test(`v${version}: the backend connection starts with a header naming the client; transfers work`, async () => {
      const recorder = await recordedBackend();
      const gw = await gatewayTo(recorder.port, { 'send-proxy-protocol': `v${version}` });
      const c = await session(gw.port);
      expect((await c.transfer('PASV', 'RETR /f.txt')).data.toString()).toBe('hello');
      expect((await c.transfer('PORT', 'RETR /f.txt')).data.toString()).toBe('hello');
      const open = await gw.log.waitFor('session-open');
      const clientPort = Number(open.client.split(':').pop());
      expect(recorder.errors).toEqual([]);
      expect(recorder.headers).toEqual([
        {
          version,
          command: 'proxy',
          addresses: { kind: 'inet', transport: 'tcp', source: { family: 4, address: '127.0.0.1', port: clientPort }, destination: { family: 4, address: '127.0.0.1', port: gw.port } },
          tlvs: [],
        },
      ]);
    });
  }

  test('health checks announce themselves: v2 LOCAL, v1 UNKNOWN', async () => {
    for (const version of [2, 1] as const) {
      const recorder = await recordedBackend();
      const gw = await gatewayTo(recorder.port, { 'send-proxy-protocol': `v${version}`, 'health-interval': 60 });
      // The first round runs at start.
      expect(await recorder.firstHeader()).toMatchObject({ version, command: version === 2 ? 'local' : 'proxy', addresses: { kind: 'unknown' } });
      await gw.close();
    }
  });
});

describe('--proxy-protocol-from', () => {
  for (const version of [1, 2] as const) {
    test(`v${version}: the header's client is the session's client: logs, PASV data peer, PORT bounce check`, async () => {
      const server = await startDemoServer({ files: { '/f.txt': 'hello' } });
      cleanup.push(() => server.close());
      const gw = await gatewayTo(server.address.port, { 'proxy-protocol-from': `${BALANCER}/32` });
      const lb = await startFakeBalancer(gw.port, BALANCER, namesClient(version));
      cleanup.push(() => lb.close());
      const c = await session(lb.port);
      // Data goes straight from 127.0.0.1: accepted only because the header named 127.0.0.1, not the balancer.
      expect((await c.transfer('PASV', 'RETR /f.txt')).data.toString()).toBe('hello');
      // PORT 127.0.0.1 from a session whose client were 127.0.0.3 would be refused as a bounce.
      expect((await c.transfer('PORT', 'RETR /f.txt')).data.toString()).toBe('hello');
      const open = await gw.log.waitFor('session-open');
      expect(open.client).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(gw.log.of('refuse')).toEqual([]);
    });
  }

  test('a passive data connection from anyone but the named client is refused', async () => {
    const server = await startDemoServer({ files: { '/f.txt': 'hello' } });
    cleanup.push(() => server.close());
    const gw = await gatewayTo(server.address.port, { 'proxy-protocol-from': `${BALANCER}/32`, 'data-timeout': 2 });
    const lb = await startFakeBalancer(gw.port, BALANCER, namesClient(2, '127.0.0.9'));
    cleanup.push(() => lb.close());
    const c = await session(lb.port);
    expect((await gw.log.waitFor('session-open')).client).toMatch(/^127\.0\.0\.9:/);
    // The client's side of this transfer never completes; closing the session ends it.
    void c.transfer('PASV', 'RETR /f.txt').catch(() => undefined);
    expect((await gw.log.waitFor('refuse', (e) => e.code === 'DATA_PEER_MISMATCH')).message).toMatch(/127\.0\.0\.1/);
  });

  test('in and out: the backend hears of the client the balancer named', async () => {
    const recorder = await recordedBackend();
    const gw = await gatewayTo(recorder.port, { 'proxy-protocol-from': `${BALANCER}/32`, 'send-proxy-protocol': 'v2' });
    const lb = await startFakeBalancer(gw.port, BALANCER, namesClient(1));
    cleanup.push(() => lb.close());
    const c = await session(lb.port);
    expect((await c.transfer('EPSV', 'RETR /f.txt')).data.toString()).toBe('hello');
    const open = await gw.log.waitFor('session-open');
    expect(recorder.headers).toHaveLength(1);
    expect(recorder.headers[0]!.addresses).toEqual({
      kind: 'inet',
      transport: 'tcp',
      source: { family: 4, address: '127.0.0.1', port: Number(open.client.split(':').pop()) },
      destination: { family: 4, address: '127.0.0.1', port: lb.port },
    });
  });

  test('per-client caps count the clients the headers name, not the balancer', async () => {
    const server = await startDemoServer({});
    cleanup.push(() => server.close());
    const gw = await gatewayTo(server.address.port, { 'proxy-protocol-from': `${BALANCER}/32`, 'max-sessions-per-client': 2 });
    const named = ['198.18.0.7', '198.18.0.7', '198.18.0.7', '198.18.0.8', '198.18.0.8'];
    const lb = await startFakeBalancer(gw.port, BALANCER, (client) => namesClient(2, named.shift())(client));
    cleanup.push(() => lb.close());
    const greetings: number[] = [];
    for (let i = 0; i < 5; i++) {
      const c = await FtpClient.connect('127.0.0.1', lb.port);
      cleanup.push(() => c.close());
      greetings.push((await c.read()).code);
    }
    expect(greetings).toEqual([220, 220, 421, 220, 220]);
    const refused = gw.log.of('refuse').filter((e) => e.code === 'TOO_MANY_SESSIONS');
    expect(refused.map((e) => e.message)).toEqual(['over the limit of 2 sessions from 198.18.0.7']);
  });
});
