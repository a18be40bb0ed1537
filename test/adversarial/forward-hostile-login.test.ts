/**
 * Forward mode, explicit proxy, against a hostile client before login: a
 * line whose destination carries a NUL or a bare CR once made the reply
 * builder throw inside a socket handler and ended the whole process. Here a
 * real `ftp-alg forward` process takes each such line, answers it with one
 * clean 5xx, and goes on serving: the same connection, and a fresh client
 * that logs in through it to a real server and lists a directory.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';

const CLI = join(process.cwd(), 'dist/cli.js');

interface GatewayProcess {
  child: ChildProcess;
  port: number;
  /** Resolves with the exit code if the process ends. */
  exited: Promise<number | null>;
  stderr: () => string;
}

/** A real gateway process; resolves once it says where it listens. */
function startGatewayProcess(args: string[]): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [CLI, 'forward', '--listen', '127.0.0.1:0', '--log-format', 'json', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${stderr}`)), 20_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /"event":"listening".*?"port":(\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), exited, stderr: () => stderr });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code}: ${stderr}`));
    });
  });
}

let server: DemoServer;
let gw: GatewayProcess;

beforeAll(async () => {
  server = await startDemoServer({ files: { '/hello.txt': Buffer.from('hello\n') } });
  gw = await startGatewayProcess(['--allow-destinations', '127.0.0.0/8', '--allow-destination-ports', String(server.address.port)]);
});
afterAll(async () => {
  gw?.child.kill('SIGKILL');
  await server?.close();
});

const HOSTILE_LINES: Array<{ title: string; line: Buffer }> = [
  { title: 'NUL as the destination', line: Buffer.from('USER a@\0\r\n', 'latin1') },
  { title: 'NUL inside the destination', line: Buffer.from('USER a@ftp\0.example\r\n', 'latin1') },
  { title: 'bare CR inside the destination', line: Buffer.from('USER a@ftp\r.example\r\n', 'latin1') },
  { title: 'bare CR then a second command', line: Buffer.from('USER a@h\rPORT 127,0,0,1,0,25\r\n', 'latin1') },
  { title: 'NUL in the port', line: Buffer.from('USER a@127.0.0.1:2\0 1\r\n', 'latin1') },
  { title: 'bytes above 0x7f in the destination', line: Buffer.from('USER a@h\xe9\x85st\r\n', 'latin1') },
  { title: 'NUL in another verb before login', line: Buffer.from('NOOP\0\r\n', 'latin1') },
];

test.each(HOSTILE_LINES)('$title: one 5xx reply of printable text, the session goes on', async ({ line }) => {
  const c = await FtpClient.connect('127.0.0.1', gw.port);
  try {
    expect((await c.read()).code).toBe(220);
    c.socket.write(line);
    const r = await c.read();
    expect(r.code).toBeGreaterThanOrEqual(500);
    expect(r.code).toBeLessThan(600);
    expect(r.text).toMatch(/^[\x20-\x7e]*$/);
    // The same connection is still served: the line was refused, not fatal.
    expect((await c.send('NOOP')).code).toBe(200);
  } finally {
    c.close();
  }
});

test('after every hostile line the process is alive and a fresh client logs in through it', async () => {
  const c = await FtpClient.connect('127.0.0.1', gw.port);
  try {
    expect((await c.read()).code).toBe(220);
    expect((await c.send(`USER anonymous@127.0.0.1:${server.address.port}`)).code).toBe(331);
    expect((await c.send('PASS x')).code).toBe(230);
    const listing = await c.transfer('EPSV', 'NLST /');
    expect(listing.data.toString()).toMatch(/hello\.txt/);
    await c.quit();
  } finally {
    c.close();
  }
  expect(gw.child.exitCode).toBeNull();
  expect(gw.stderr()).not.toMatch(/uncaught|TypeError|Error: refusing to encode/i);
});
