/**
 * Split horizon on loopback: one listener, two kinds of client. A client in
 * an --announce network is told that network's address in 227; anyone else
 * the public address. The "outside" client comes through a stand-in
 * balancer whose PROXY header names it, so both share one listener.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { encodeProxyHeader } from '../../src/protocol/proxy-header.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { startFakeBalancer, type FakeBalancer } from '../helpers/proxy-protocol.js';

let server: DemoServer;
let gw: TestGateway;
let lb: FakeBalancer;

beforeAll(async () => {
  server = await startDemoServer({ files: { '/f.txt': 'hello' } });
  gw = await startTestReverse(server.address.port, {
    'public-address': '198.18.0.99',
    announce: ['100.64.0.0/10=100.64.0.1', '127.0.0.0/8=127.0.0.1'],
    'proxy-protocol-from': '127.0.0.3/32',
  });
  lb = await startFakeBalancer(gw.port, '127.0.0.3', (client) =>
    encodeProxyHeader(2, { source: { family: 4, address: '198.18.0.7', port: client.remotePort! }, destination: { family: 4, address: '198.18.0.99', port: 21 } }),
  );
});
afterAll(async () => {
  await lb?.close();
  await gw?.close();
  await server?.close();
});

test('a client inside an --announce network gets its address and transfers', async () => {
  const c = await FtpClient.connect('127.0.0.1', gw.port);
  try {
    await c.login();
    const { data, announced } = await c.transfer('PASV', 'RETR /f.txt');
    expect(announced?.address).toBe('127.0.0.1');
    expect(data.toString()).toBe('hello');
  } finally {
    c.close();
  }
});

test('a client outside every --announce network is told the public address', async () => {
  const c = await FtpClient.connect('127.0.0.1', lb.port);
  try {
    await c.login();
    const pasv = await c.send('PASV');
    expect(pasv.code).toBe(227);
    expect(pasv.text).toMatch(/\(198,18,0,99,\d+,\d+\)/);
  } finally {
    c.close();
  }
});
