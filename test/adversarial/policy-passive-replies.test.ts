/**
 * A hostile or broken server's passive replies, through a reverse gateway:
 * one naming a privileged port is not dialled, one the gateway cannot read
 * never reaches the client verbatim (it would show the inside address). The
 * client gets 425 in the reply's own turn and the session goes on.
 */
import { afterAll, expect, test } from 'vitest';
import net from 'node:net';
import { FtpClient } from '../../src/client/ftp-client.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A server that answers PASV/EPSV with the next of `passive`, everything else with the minimum. */
async function hostileServer(passive: string[]): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    s.on('error', () => undefined);
    s.write('220 ready\r\n');
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const verb = buf.slice(0, i).split(' ')[0]!.trim().toUpperCase();
        buf = buf.slice(i + 1);
        if (verb === 'PASV' || verb === 'EPSV') s.write(`${passive.shift() ?? '502 no more'}\r\n`);
        else s.write(verb === 'USER' ? '331 ok\r\n' : verb === 'PASS' ? '230 ok\r\n' : '200 ok\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections };
}

async function reverseGateway(port: number): Promise<TestGateway> {
  const gw = await startTestReverse(port);
  cleanups.push(() => gw.close());
  return gw;
}

test.each([
  { title: '227 to port 21', verb: 'PASV', reply: '227 Entering Passive Mode (127,0,0,1,0,21).', code: 'PRIVILEGED_PORT' },
  { title: '229 to port 22', verb: 'EPSV', reply: '229 Entering Extended Passive Mode (|||22|)', code: 'PRIVILEGED_PORT' },
  { title: '227 with five numbers', verb: 'PASV', reply: '227 Entering Passive Mode (100,64,0,10,19).', code: 'UNTRANSLATABLE_PASSIVE_REPLY' },
  { title: '227 with a byte over 255', verb: 'PASV', reply: '227 Entering Passive Mode (100,64,0,256,19,137).', code: 'UNTRANSLATABLE_PASSIVE_REPLY' },
  { title: '229 carrying an address', verb: 'EPSV', reply: '229 Entering Extended Passive Mode (|1|100.64.0.10|5001|)', code: 'UNTRANSLATABLE_PASSIVE_REPLY' },
])('$title: 425 with $code, nothing of the reply reaches the client', async ({ verb, reply, code }) => {
  const server = await hostileServer([reply, '227 Entering Passive Mode (127,0,0,1,19,137).']);
  const gw = await reverseGateway(server.port);
  const c = await FtpClient.connect('127.0.0.1', gw.port);
  try {
    await c.login();
    const r = await c.send(verb);
    expect(r.code).toBe(425);
    expect(r.text).not.toMatch(/100|\(|\|/);
    await gw.log.waitFor('refuse', (e) => e.code === code);
    expect(gw.log.of('data-listen')).toHaveLength(0);
    // In step: the next command gets its own reply, and a good PASV works.
    expect((await c.send('NOOP')).code).toBe(200);
    expect((await c.send('PASV')).code).toBe(227);
    expect(server.connections()).toBe(1);
  } finally {
    c.close();
  }
});
