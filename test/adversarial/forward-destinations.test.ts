/**
 * Forward mode must not reach what a gateway never should, whatever
 * --allow-clients says: with --allow-clients narrowed to 127.0.0.1/32, a
 * service bound on 127.0.0.2 on the gateway host was reachable, and any
 * destination port was. Real sockets on loopback; every refused destination
 * is refused before anything is dialled.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import net from 'node:net';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { startTestForward, type TestGateway } from '../helpers/gateway.js';

let server: DemoServer;
/** A non-FTP service on loopback: what a relay to "any port" would reach. */
let other: net.Server;
let otherPort: number;
let otherConnections = 0;
const gateways: TestGateway[] = [];

beforeAll(async () => {
  server = await startDemoServer({ host: '127.0.0.2', files: { '/f.txt': Buffer.from('inside\n') } });
  other = net.createServer((s) => {
    otherConnections++;
    s.end('220 smtp.example ESMTP\r\n');
  });
  await new Promise<void>((r) => other.listen(0, '127.0.0.2', r));
  otherPort = (other.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await server?.close();
  await new Promise((r) => other?.close(r));
});

async function gatewayWith(flags: Parameters<typeof startTestForward>[0]): Promise<TestGateway> {
  const g = await startTestForward({ 'allow-clients': '127.0.0.1/32', 'allow-destinations': undefined, 'allow-destination-ports': undefined, ...flags });
  gateways.push(g);
  return g;
}

async function login(g: TestGateway, dest: string): Promise<{ code: number; text: string; client: FtpClient }> {
  const c = await FtpClient.connect('127.0.0.1', g.port);
  expect((await c.read()).code).toBe(220);
  const r = await c.send(`USER anonymous@${dest}`);
  return { ...r, client: c };
}

describe('refused by default, independent of --allow-clients', () => {
  test.each([
    ['127.0.0.2, the demo server', () => `127.0.0.2:${server.address.port}`],
    ['127.0.0.2 in its IPv4-mapped form', () => `[::ffff:127.0.0.2]:${server.address.port}`],
    ['the gateway itself', () => `127.0.0.1:21`],
  ])('%s: 530 and DESTINATION_NOT_ALLOWED, nothing dialled', async (_title, dest) => {
    const g = await gatewayWith({ 'allow-destination-ports': '1-65535' });
    const { code, client } = await login(g, dest());
    expect(code).toBe(530);
    await g.log.waitFor('refuse', (e) => e.code === 'DESTINATION_NOT_ALLOWED');
    // The session is logged (session-open comes first, always), but no server was reached.
    expect(g.log.of('session-open').map((e) => e.server)).toEqual(['-']);
    client.close();
  });

  test('a port outside --allow-destination-ports (default 21) is refused even for an allowed address', async () => {
    const g = await gatewayWith({ 'allow-destinations': '127.0.0.2/32' });
    const { code, client } = await login(g, `127.0.0.2:${otherPort}`);
    expect(code).toBe(530);
    const refusal = await g.log.waitFor('refuse', (e) => e.code === 'DESTINATION_NOT_ALLOWED');
    expect(refusal.message).toMatch(new RegExp(`port ${otherPort} is not an allowed destination port`));
    expect(otherConnections).toBe(0);
    client.close();
  });
});

test('--allow-destinations and --allow-destination-ports open exactly what they name', async () => {
  const g = await gatewayWith({ 'allow-destinations': '127.0.0.2/32', 'allow-destination-ports': `21,${server.address.port}` });
  const { code, client } = await login(g, `127.0.0.2:${server.address.port}`);
  expect(code).toBe(331);
  expect((await client.send('PASS x')).code).toBe(230);
  expect((await client.transfer('EPSV', 'RETR /f.txt')).data.toString()).toBe('inside\n');
  await client.quit();
  // 127.0.0.3 is still loopback, and not named.
  const other3 = await login(g, `127.0.0.3:${server.address.port}`);
  expect(other3.code).toBe(530);
  other3.client.close();
});
