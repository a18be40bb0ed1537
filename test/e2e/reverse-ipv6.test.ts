/**
 * IPv6 clients through the gateway to an IPv4-only server (RFC 6384): EPSV
 * goes to the server as PASV and its 227 comes back as a 229; EPRT |2|
 * goes to the server as PORT with the gateway's IPv4 address.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { HAVE, python, randomFile, run, sha256 } from '../helpers/tools.js';

const FILE = randomFile(3 << 20);
let server: DemoServer;
let gw: TestGateway;

beforeAll(async () => {
  server = await startDemoServer({ files: { '/f.bin': FILE }, announceAddress: '100.64.0.2' });
  gw = await startTestReverse(server.address.port, { listen: '[::1]:0' });
});
afterAll(async () => {
  await gw?.close();
  await server?.close();
});

describe('IPv6 client, IPv4 server', () => {
  test.skipIf(!HAVE.curl)('curl EPSV over IPv6: the server is asked PASV, the client gets 229', async () => {
    const r = await run('curl', ['-sS', '-g', gw.url('/f.bin')]);
    expect(r.stderr).toBe('');
    expect(sha256(r.stdout)).toBe(sha256(FILE));
    const rw = gw.log.of('rewrite');
    expect(rw.some((e) => e.kind === 'EPSV' && e.after === 'PASV')).toBe(true);
    const reply = rw.find((e) => e.kind === '227' && e.direction === 'server->client');
    expect(reply?.after).toMatch(/^229 Entering Extended Passive Mode \(\|\|\|\d+\|\)$/);
  });

  test.skipIf(!HAVE.curl)('curl EPRT |2| over IPv6: the server is sent PORT with the gateway address', async () => {
    const r = await run('curl', ['-sS', '-g', '-P', '::1', gw.url('/f.bin')]);
    expect(r.stderr).toBe('');
    expect(sha256(r.stdout)).toBe(sha256(FILE));
    const rw = gw.log.of('rewrite').find((e) => e.kind === 'EPRT');
    expect(rw?.before).toMatch(/^EPRT \|2\|::1\|\d+\|$/);
    expect(rw?.after).toMatch(/^PORT 127,0,0,1,\d+,\d+$/);
  });

  test.skipIf(!HAVE.python)('Python ftplib over IPv6, passive (EPSV) and active (EPRT)', async () => {
    const script = `
import ftplib, hashlib, io, sys
for passive in (True, False):
    ftp = ftplib.FTP()
    ftp.connect('::1', int(sys.argv[1]), timeout=30)
    ftp.login()
    ftp.set_pasv(passive)
    buf = io.BytesIO()
    ftp.retrbinary('RETR /f.bin', buf.write)
    ftp.quit()
    print(hashlib.sha256(buf.getvalue()).hexdigest())
`;
    const r = await python(script, [String(gw.port)]);
    expect(r.stderr).toBe('');
    expect(r.stdout.toString().trim().split('\n')).toEqual([sha256(FILE), sha256(FILE)]);
  });

  test('PASV on an IPv6 control connection is refused with a reason', async () => {
    const { FtpClient } = await import('../../src/client/ftp-client.js');
    const c = await FtpClient.connect('::1', gw.port);
    await c.login();
    expect((await c.send('PASV')).code).toBe(500);
    await gw.log.waitFor('refuse', (e) => e.code === 'FAMILY_UNSUPPORTED');
    await c.quit();
  });
});
