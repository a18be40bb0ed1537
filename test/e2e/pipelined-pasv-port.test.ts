/**
 * A client that pipelines PASV, then PORT, then RETR: the server takes the
 * last one given (RFC 959), so the file must come to the client's PORT
 * listener through the gateway's active channel, even when the 227 for the
 * earlier PASV reaches the gateway after the PORT went out. Real sockets,
 * the built-in server behind `ftp-alg reverse`.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { randomFile, sha256, tempDir } from '../helpers/tools.js';

const FILE = randomFile(256 * 1024);

describe('pipelined PASV, PORT, RETR through ftp-alg reverse', () => {
  let dir: ReturnType<typeof tempDir>;
  let server: DemoServer;
  let gw: TestGateway;

  beforeAll(async () => {
    dir = tempDir();
    writeFileSync(join(dir.path, 'f.bin'), FILE);
    server = await startDemoServer({ root: dir.path, announceAddress: '127.0.0.1' });
    gw = await startTestReverse(server.address.port);
  });
  afterAll(async () => {
    await gw?.close();
    await server?.close();
    dir?.remove();
  });

  for (let round = 1; round <= 3; round++) {
    test(`round ${round}: the file arrives on the PORT listener, the passive channel is released unused`, async () => {
      const c = await FtpClient.connect('127.0.0.1', gw.port);
      const mine = net.createServer();
      try {
        await c.login();
        await new Promise<void>((r) => mine.listen(0, '127.0.0.1', r));
        const port = (mine.address() as net.AddressInfo).port;
        const received = new Promise<Buffer>((resolve, reject) => {
          mine.once('connection', (s) => {
            const chunks: Buffer[] = [];
            s.on('data', (d: Buffer) => chunks.push(d));
            s.on('end', () => resolve(Buffer.concat(chunks)));
            s.on('error', reject);
          });
        });
        const replaced = () => gw.log.of('data-close').filter((e) => /replaced by a new data channel/.test(String(e.reason))).length;
        const before = replaced();
        // This round's passive channel, not an earlier round's.
        const released = gw.log.waitFor('data-close', () => replaced() > before);
        c.socket.write(`TYPE I\r\nPASV\r\nPORT 127,0,0,1,${port >> 8},${port & 255}\r\nRETR f.bin\r\n`);
        const codes = [];
        for (let i = 0; i < 4; i++) codes.push((await c.read()).code);
        expect(codes).toEqual([200, 227, 200, 226]);
        expect(sha256(await received)).toBe(sha256(FILE));
        await released;
        await c.quit();
      } finally {
        mine.close();
        c.socket.destroy();
      }
    });
  }
});
