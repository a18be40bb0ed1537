/**
 * The native path for TCP urgent data (issue #18): SO_OOBINLINE on an
 * accepted socket keeps the byte a client sends urgent, send(MSG_OOB) sends
 * one, and without koffi the gateway says it falls back to repairing ABOR.
 */
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { forceNativeUnavailable, keepUrgentInline, sendUrgent, urgentInline } from '../../src/gateway/original-dst.js';
import { startTestReverse } from '../helpers/gateway.js';

const linux = process.platform === 'linux';

/** A connected pair on loopback; `accepted` is paused, as the gateway's are. */
async function pair(): Promise<{ client: net.Socket; accepted: net.Socket; close: () => void }> {
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  const a = await accepted;
  return { client, accepted: a, close: () => (client.destroy(), a.destroy(), server.close()) };
}

/** Everything the accepted socket reads until `end` arrives. */
function readUntil(socket: net.Socket, end: string): Promise<string> {
  return new Promise((resolve) => {
    let seen = '';
    socket.on('data', (d: Buffer) => {
      seen += d.toString('latin1');
      if (seen.endsWith(end)) resolve(seen);
    });
    socket.resume();
  });
}

/** ftplib's abort(): the whole ABOR line as urgent data, then the next command. */
async function ftplibAbort(client: net.Socket): Promise<void> {
  await new Promise<void>((r) => client.write(Buffer.alloc(0), () => r()));
  expect(sendUrgent(client, Buffer.from('ABOR\r\n'))).toBe(true);
  client.write('NOOP\r\n');
}

afterEach(() => forceNativeUnavailable(undefined));

describe.skipIf(!linux)('urgent data through koffi', () => {
  test.each([
    { title: 'SO_OOBINLINE keeps the urgent LF of ftplib’s ABOR in the stream', inline: true, expected: 'ABOR\r\nNOOP\r\n' },
    { title: 'without SO_OOBINLINE the urgent LF is lost (what the framer must repair)', inline: false, expected: 'ABOR\rNOOP\r\n' },
  ])('$title', async ({ inline, expected }) => {
    const p = await pair();
    try {
      if (inline) expect(keepUrgentInline(p.accepted)).toEqual({ inline: true });
      expect(urgentInline(p.accepted)).toBe(inline);
      const seen = readUntil(p.accepted, 'NOOP\r\n');
      await ftplibAbort(p.client);
      expect(await seen).toBe(expected);
    } finally {
      p.close();
    }
  });

  test('without koffi: no inline, a reason, and sendUrgent declines', async () => {
    forceNativeUnavailable('koffi disabled by the test');
    const p = await pair();
    try {
      expect(keepUrgentInline(p.accepted)).toEqual({ inline: false, reason: 'SO_OOBINLINE: koffi disabled by the test' });
      expect(sendUrgent(p.client, Buffer.from('x'))).toBe(false);
    } finally {
      p.close();
    }
  });
});

describe.skipIf(!linux)('the gateway says which path its client sockets take', () => {
  async function connectOnce(): Promise<{ path: string | undefined; warnings: string[] }> {
    const upstream = net.createServer((s) => s.end('220 hi\r\n'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const gw = await startTestReverse((upstream.address() as net.AddressInfo).port);
    try {
      const c = net.connect(gw.port, '127.0.0.1');
      await new Promise((r) => c.once('data', r));
      c.destroy();
      const warnings = gw.log.of('warning').map((e) => e.message);
      return { path: gw.gateway.urgentData, warnings };
    } finally {
      await gw.close();
      upstream.close();
    }
  }

  test('koffi available: inline, no warning', async () => {
    const { path, warnings } = await connectOnce();
    expect(path).toBe('inline');
    expect(warnings.filter((w) => w.includes('SO_OOBINLINE'))).toEqual([]);
  });

  test('koffi unavailable: repair, and one warning that says so', async () => {
    forceNativeUnavailable('koffi disabled by the test');
    const { path, warnings } = await connectOnce();
    expect(path).toBe('repair');
    expect(warnings.filter((w) => w.includes('SO_OOBINLINE'))).toEqual([
      'SO_OOBINLINE: koffi disabled by the test: the byte a client sends urgent with ABOR is lost; ABOR is repaired instead',
    ]);
  });
});
