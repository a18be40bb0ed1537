/**
 * --tls terminate with --data-path kernel: the kernel cannot decrypt, so a
 * PROT P data connection is relayed by the gateway, while a PROT C one
 * (clear between client and gateway, clear to the plain server) is still
 * handed to nftables.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { HAVE, needs, randomFile, sha256, tempDir } from '../helpers/tools.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { ftplibTls, makeCertificate } from './ftps-fixtures.js';

describe.skipIf(!HAVE.root || !HAVE.python)(`--tls terminate on the kernel data path${needs('root', 'programs nftables: run as root')}`, () => {
  let dir: ReturnType<typeof tempDir>;
  let server: DemoServer;
  let gw: TestGateway;
  const content = randomFile(1 << 20);

  beforeAll(async () => {
    dir = tempDir();
    const { cert, key } = await makeCertificate(dir.path);
    writeFileSync(join(dir.path, 'f.bin'), content);
    server = await startDemoServer({ root: dir.path });
    gw = await startTestReverse(server.address.port, { tls: 'terminate', 'tls-cert': cert, 'tls-key': key, 'data-path': 'kernel', 'nft-table': 'ftp_alg_tls_wt' });
  });
  afterAll(async () => {
    await gw?.close();
    await server?.close();
    dir?.remove();
  });

  test('PROT P: relayed (the gateway ends TLS), not mapped', async () => {
    const listens = gw.log.of('data-listen').length;
    const maps = gw.log.of('data-nat').length;
    const r = await ftplibTls(gw.port, 'passive', 'f.bin', join(dir.path, 'f.bin'), 'up-p.bin');
    expect(r.stderr).toBe('');
    expect(r.stdout.toString().trim()).toBe(sha256(content));
    expect(gw.log.of('data-listen').length).toBe(listens + 2);
    expect(gw.log.of('data-nat').length).toBe(maps);
  });

  test('PROT C: the kernel translates, as for plain FTP', async () => {
    const listens = gw.log.of('data-listen').length;
    const r = await ftplibTls(gw.port, 'passive', 'f.bin', join(dir.path, 'f.bin'), 'up-c.bin', { prot: 'C' });
    expect(r.stderr).toBe('');
    expect(r.stdout.toString().trim()).toBe(sha256(content));
    expect(gw.log.of('data-listen').length).toBe(listens);
    expect(gw.log.of('data-nat').filter((e) => e.action === 'map').length).toBeGreaterThanOrEqual(2);
  });
});
