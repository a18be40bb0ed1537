/**
 * The npm client basic-ftp (`secure: true`, explicit; `secure: 'implicit'`)
 * through --tls terminate gateways: a Node TLS client on the other side of
 * the gateway's Node TLS server, passive only (basic-ftp has no active mode).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { randomFile, sha256, tempDir } from '../helpers/tools.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { makeCertificate } from './ftps-fixtures.js';

async function roundTrip(port: number, secure: true | 'implicit', dir: string, content: Buffer, upName: string): Promise<string> {
  const client = new Client(30_000);
  try {
    await client.access({ host: '127.0.0.1', port, user: 'anonymous', password: 'x@example.org', secure, secureOptions: { rejectUnauthorized: false } });
    const chunks: Buffer[] = [];
    await client.downloadTo(new Writable({ write: (c: Buffer, _e, cb) => cb(void chunks.push(c)) }), 'f.bin');
    await client.uploadFrom(join(dir, 'f.bin'), upName);
    expect(sha256(readFileSync(join(dir, upName)))).toBe(sha256(content));
    return sha256(Buffer.concat(chunks));
  } finally {
    client.close();
  }
}

describe('basic-ftp through --tls terminate', () => {
  let dir: ReturnType<typeof tempDir>;
  let server: DemoServer;
  let explicitGw: TestGateway;
  let implicitGw: TestGateway;
  const content = randomFile(1 << 20);

  beforeAll(async () => {
    dir = tempDir();
    const { cert, key } = await makeCertificate(dir.path);
    writeFileSync(join(dir.path, 'f.bin'), content);
    server = await startDemoServer({ root: dir.path, announceAddress: '100.64.0.2' });
    explicitGw = await startTestReverse(server.address.port, { tls: 'terminate', 'tls-cert': cert, 'tls-key': key, 'require-tls': true });
    implicitGw = await startTestReverse(server.address.port, { tls: 'terminate', 'tls-cert': cert, 'tls-key': key, 'implicit-tls': true });
  });
  afterAll(async () => {
    await explicitGw?.close();
    await implicitGw?.close();
    await server?.close();
    dir?.remove();
  });

  test('secure: true (explicit, PROT P): download and upload 1 MiB', async () => {
    expect(await roundTrip(explicitGw.port, true, dir.path, content, 'up-basic-explicit.bin')).toBe(sha256(content));
    expect(explicitGw.log.of('refuse').filter((e) => e.code === 'TLS_REQUIRED')).toEqual([]);
  });

  test("secure: 'implicit': download and upload 1 MiB", async () => {
    expect(await roundTrip(implicitGw.port, 'implicit', dir.path, content, 'up-basic-implicit.bin')).toBe(sha256(content));
  });
});
