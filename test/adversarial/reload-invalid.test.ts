/**
 * Reload with a file an operator (or an attacker with write access to a
 * wrong place) got wrong: whatever it holds, SIGHUP changes nothing, the
 * process stays up and serves on its old listeners, and one
 * `reload-failed` event names the file and the key.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { tempDir } from '../helpers/tools.js';
import { freePort, startGatewayProcess, type GatewayProcess } from '../e2e/ops-process.js';

let server: DemoServer;
const dir = tempDir('ftp-alg-reload-adv-');
const file = join(dir.path, 'gw.yaml');
let gw: GatewayProcess;
let port: number;
let taken: net.Server;
let takenPort: number;

const listener = (name: string, p: number) => [`  - mode: reverse`, `    name: ${name}`, `    listen: 127.0.0.1:${p}`, `    server: 127.0.0.1:${server.address.port}`, `    public-address: 127.0.0.1`];

beforeAll(async () => {
  server = await startDemoServer({ files: { '/f.txt': 'still here\r\n' } });
  port = await freePort();
  taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  takenPort = (taken.address() as net.AddressInfo).port;
  writeFileSync(file, ['listeners:', ...listener('main', port)].join('\n'));
  gw = startGatewayProcess(['run', '--config', file]);
  await gw.waitFor((e) => e.event === 'listening', 'listening');
});
afterAll(async () => {
  await gw?.kill();
  taken?.close();
  await server?.close();
  dir.remove();
});

const free = await freePort();
const cases: Array<[string, () => void, RegExp, RegExp]> = [
  ['YAML that does not parse', () => writeFileSync(file, 'listeners: [\n'), /^$/, /not valid YAML/],
  ['binary junk', () => writeFileSync(file, Buffer.from([0, 1, 2, 0xff, 0xfe, 10, 0x80])), /.*/, /./],
  ['an empty file', () => writeFileSync(file, ''), /^$/, /expected a mapping/],
  ['an unknown top-level key', () => writeFileSync(file, ['listenres:', ...listener('main', port)].join('\n')), /^listenres$/, /unknown key/],
  ['a bad value deep in a listener', () => writeFileSync(file, ['listeners:', ...listener('main', port), '    passive-ports: 99999-1'].join('\n')), /^listeners\[0\]\.passive-ports$/, /port range/],
  ['two listeners of one name', () => writeFileSync(file, ['listeners:', ...listener('main', port), ...listener('main', free)].join('\n')), /^listeners\[1\]\.name$/, /already the name/],
  ['an admin endpoint on every interface', () => writeFileSync(file, ['admin-listen: "[::]:9121"', 'listeners:', ...listener('main', port)].join('\n')), /^admin-listen$/, /wildcard/],
  ['a user change (needs a restart)', () => writeFileSync(file, ['user: nobody', 'listeners:', ...listener('main', port)].join('\n')), /^user$/, /needs a restart/],
  ['an added listener whose port is taken: the other addition is not opened either', () => writeFileSync(file, ['listeners:', ...listener('main', port), ...listener('extra', free), ...listener('busy', takenPort)].join('\n')), /^listeners$/, /EADDRINUSE/],
  ['the file deleted', () => rmSync(file), /^$/, /cannot read: ENOENT/],
  ['the file now a directory', () => mkdirSync(file), /^$/, /cannot read: EISDIR/],
];

test.each(cases)('%s: nothing changes, reload-failed names the key', async (_title, edit, key, message) => {
  const before = gw.events.length;
  const listeningBefore = gw.events.filter((e) => e.event === 'listening').length;
  edit();
  gw.child.kill('SIGHUP');
  const failed = await gw.waitFor((e) => e.event === 'reload-failed' && gw.events.indexOf(e) >= before, 'reload-failed');
  expect(failed.file).toBe(file);
  expect(String(failed.key)).toMatch(key);
  expect(String(failed.message)).toMatch(message);
  expect(gw.events.slice(before).filter((e) => e.event === 'reload')).toHaveLength(0);
  // Whatever opened during the attempt is closed again: no listener more than before.
  expect(gw.events.filter((e) => e.event === 'listening').length - listeningBefore).toBeLessThanOrEqual(1);
  await expect(new Promise((resolve, reject) => net.connect(free, '127.0.0.1').once('connect', reject).once('error', resolve))).resolves.toMatchObject({ code: 'ECONNREFUSED' });
  const c = await FtpClient.connect('127.0.0.1', port);
  await c.login();
  await c.quit();
  expect(gw.child.exitCode).toBeNull();
});
