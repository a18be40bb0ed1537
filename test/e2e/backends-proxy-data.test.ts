/**
 * PROXY headers on data connections, through a stand-in balancer on
 * loopback that does what HAProxy does with `send-proxy-v2` on an instance's
 * passive range: the client reaches 127.0.0.2 (the public address) on the
 * control port and on every passive port, and the balancer connects to the
 * gateway on 127.0.0.1 from 127.0.0.3 (the trusted source), each connection
 * starting with a header naming the client.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import net, { type Socket } from 'node:net';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient, type DataModeName, type SimpleReply } from '../../src/client/ftp-client.js';
import { find227 } from '../../src/protocol/endpoint.js';
import { encodeProxyHeader } from '../../src/protocol/proxy-header.js';
import { ipOf } from '../../src/protocol/address.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { startBalancerRoute, type FakeBalancer } from '../helpers/proxy-protocol.js';
import { HAVE, randomFile, sha256, tempDir } from '../helpers/tools.js';
import { curlFtps, makeCertificate } from './ftps-fixtures.js';

const PUBLIC = '127.0.0.2';
const BALANCER = '127.0.0.3';
const FILE = randomFile(1 << 20);
const RANGE = 10;
const LO = 47000 + (process.pid % 100) * RANGE;

let server: DemoServer;
let gw: TestGateway;
let front = 0;
const cleanup: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  server = await startDemoServer({ files: { '/f.bin': FILE } });
  gw = await startTestReverse(server.address.port, {
    'public-address': PUBLIC,
    'proxy-protocol-from': `${BALANCER}/32`,
    'passive-ports': `${LO}-${LO + RANGE - 1}`,
    'data-timeout': 3,
  });
});
afterAll(async () => {
  await gw?.close();
  await server?.close();
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

type HeaderFor = (client: Socket) => Buffer;

/** The header a balancer writes for the client it accepted: the client as it saw it (or `address`). */
const namesClient =
  (version: 1 | 2, address?: string): HeaderFor =>
  (client) =>
    encodeProxyHeader(version, {
      source: { ...ipOf(address ?? client.remoteAddress!), port: client.remotePort! },
      destination: { ...ipOf(client.localAddress!), port: client.localPort! },
    });

/** The balancer: the control port and the whole passive range on PUBLIC. */
async function balancer(control: HeaderFor, data: HeaderFor, chunk?: number, to: { port: number; lo: number } = { port: gw.port, lo: LO }, coalesce = false): Promise<void> {
  const routes: FakeBalancer[] = [];
  cleanup.push(() => Promise.all(routes.map((r) => r.close())).then(() => undefined));
  const route = (listenPort: number, targetPort: number, header: HeaderFor, dataRoute: boolean) =>
    startBalancerRoute({ listenHost: PUBLIC, listenPort, targetPort, fromAddress: BALANCER, header, chunk, coalesce: dataRoute && coalesce }).then((r) => void routes.push(r));
  await route(0, to.port, control, false);
  front = routes[0]!.port;
  for (let p = to.lo; p < to.lo + RANGE; p++) await route(p, p, data, true);
}

async function session(): Promise<FtpClient> {
  const c = await FtpClient.connect(PUBLIC, front);
  cleanup.push(() => c.close());
  await c.login();
  return c;
}

/** STOR over PASV: the client writes at once, so its first bytes may travel with the balancer's header. */
async function upload(c: FtpClient, name: string, bytes: Buffer): Promise<SimpleReply> {
  const setup = await c.expect('PASV', (code) => code === 227);
  const to = find227(setup.text)!.endpoint;
  const data = net.connect({ host: to.address, port: to.port });
  data.on('error', () => undefined);
  await new Promise((r) => data.once('connect', r));
  const first = await c.send(`STOR ${name}`, true);
  if (first.code >= 300) {
    data.destroy();
    return first;
  }
  data.end(bytes);
  return first.code < 200 ? c.read() : first;
}

const refusals = (code: string) => gw.log.of('refuse').filter((e) => e.code === code);

describe('a trusted balancer sends a PROXY header on data connections too', () => {
  for (const version of [1, 2] as const) {
    test(`v${version}, each header split in two writes: downloads and uploads byte-exact, the data peer is the real client`, async () => {
      // v1 headers here are 44-46 bytes, v2 28: two pieces each.
      await balancer(namesClient(version), namesClient(version), version === 1 ? 24 : 16);
      const c = await session();
      const opensBefore = gw.log.of('data-open').length;
      for (const mode of ['PASV', 'EPSV'] as DataModeName[]) {
        expect(sha256((await c.transfer(mode, 'RETR /f.bin')).data)).toBe(sha256(FILE));
      }
      const name = `/up-v${version}.bin`;
      expect((await upload(c, name, FILE)).code).toBe(226);
      expect(sha256(server.files.get(name)!)).toBe(sha256(FILE));
      const opens = gw.log.of('data-open').slice(opensBefore);
      expect(opens.length).toBeGreaterThanOrEqual(2);
      // The client as the balancer saw it (127.0.0.1), never the balancer.
      for (const o of opens) expect(o.from).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(refusals('PROXY_HEADER')).toEqual([]);
      expect(refusals('DATA_PEER_MISMATCH')).toEqual([]);
      // Active mode through the balancer: the gateway dials the real client itself.
      expect(sha256((await c.transfer('PORT', 'RETR /f.bin')).data)).toBe(sha256(FILE));
    });
  }
});

test('an upload whose first bytes share the segment of the header: every byte after the header reaches the server', async () => {
  await balancer(namesClient(1), namesClient(1), undefined, undefined, true);
  const c = await session();
  expect((await upload(c, '/coalesced.bin', FILE)).code).toBe(226);
  expect(sha256(server.files.get('/coalesced.bin')!)).toBe(sha256(FILE));
});

describe('data connections from the balancer that do not name the client are refused', () => {
  // The transfer itself then waits for the server's own data timeout: only the gateway's decision is awaited here.
  test('no header: the connection is closed (PROXY_HEADER) and nothing of it reaches the server', async () => {
    await balancer(namesClient(2), () => Buffer.alloc(0));
    const c = await session();
    // An upload: the client's bytes come first where the header should be.
    upload(c, '/no-header.bin', FILE).catch(() => undefined);
    const refused = await gw.log.waitFor('refuse', (e) => e.code === 'PROXY_HEADER' && e.kind === 'data-passive');
    expect(refused.message).toMatch(/^data connection from 127\.0\.0\.3:\d+: bad PROXY header from a trusted source: no PROXY protocol signature; closed$/);
    expect(server.files.has('/no-header.bin')).toBe(false);
    expect(gw.log.of('data-open').filter((e) => e.from.startsWith('127.0.0.3'))).toEqual([]);
  });

  test('a v2 LOCAL header (a health check) names no client: refused', async () => {
    await balancer(namesClient(2), () => encodeProxyHeader(2, { command: 'local' }));
    const c = await session();
    c.transfer('PASV', 'RETR /f.bin').catch(() => undefined);
    const refused = await gw.log.waitFor('refuse', (e) => e.code === 'PROXY_HEADER' && /names no client \(LOCAL\)/.test(e.message));
    expect(refused.kind).toBe('data-passive');
  });

  test('a header naming another client than the control connection is refused by the data-peer check', async () => {
    await balancer(namesClient(1), namesClient(1, '127.0.0.66'));
    const c = await session();
    c.transfer('PASV', 'RETR /f.bin').catch(() => undefined);
    const refused = await gw.log.waitFor('refuse', (e) => e.code === 'DATA_PEER_MISMATCH');
    expect(refused.message).toMatch(/^data connection from 127\.0\.0\.66:\d+ \(PROXY header from 127\.0\.0\.3:\d+\), expected 127\.0\.0\.1; closed$/);
    expect(gw.log.of('data-open').filter((e) => e.from.startsWith('127.0.0.66'))).toEqual([]);
  });
});

describe('FTPS data connections (--tls terminate) from the balancer', () => {
  const TLS_LO = 46000 + (process.pid % 100) * RANGE;

  test.skipIf(!HAVE.curl)('curl --ssl-reqd: the ClientHello in the same segment as the header reaches the handshake; download byte-exact', async () => {
    const dir = tempDir();
    cleanup.push(() => dir.remove());
    const { cert, key } = await makeCertificate(dir.path);
    const tlsGw = await startTestReverse(server.address.port, {
      'public-address': PUBLIC,
      'proxy-protocol-from': `${BALANCER}/32`,
      'passive-ports': `${TLS_LO}-${TLS_LO + RANGE - 1}`,
      tls: 'terminate',
      'tls-cert': cert,
      'tls-key': key,
    });
    cleanup.push(() => tlsGw.close());
    await balancer(namesClient(2), namesClient(2), undefined, { port: tlsGw.port, lo: TLS_LO }, true);
    for (const mode of [['--disable-epsv', '--no-ftp-skip-pasv-ip'], []]) {
      const r = await curlFtps([...mode, `ftp://${PUBLIC}:${front}/f.bin`]);
      expect(r.stderr).toBe('');
      expect(sha256(r.stdout)).toBe(sha256(FILE));
    }
    const opens = tlsGw.log.of('data-open');
    expect(opens).toHaveLength(2);
    for (const o of opens) expect(o.from).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(tlsGw.log.of('refuse')).toEqual([]);
  });
});
