/**
 * Issue #12 item 3 end to end: lines that a lenient server reads as PORT,
 * EPRT or AUTH go through a real gateway (reverse mode, loopback) to a real
 * server, and come out validated and rewritten, or refused with a code.
 * Today's main forwarded every one of them unvalidated.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { needs } from '../helpers/tools.js';
import { HAVE_VSFTPD, startLoopbackPyftpdlib, startLoopbackVsftpd, type LoopbackServer } from '../e2e/abor-servers.js';
import { rawControl, type RawControl } from '../e2e/abor-control.js';

const SERVERS = [
  { name: 'pyftpdlib', skip: needs('pyftpdlib', 'python3-pyftpdlib not installed'), start: startLoopbackPyftpdlib },
  { name: 'vsftpd', skip: HAVE_VSFTPD ? '' : ' [skipped: needs root and vsftpd]', start: startLoopbackVsftpd },
] as const;

/** A port on 127.0.0.2 as h1,…,p2: not the client's own address, so a bounce. */
const BOUNCE_PORT = '127,0,0,2,4,1';

const HOSTILE: Array<{ title: string; line: string; reply: RegExp; code: string }> = [
  { title: 'PORT<TAB> to another host', line: `PORT\t${BOUNCE_PORT}\r\n`, reply: /^500 PORT refused: address 127\.0\.0\.2 is not your own/, code: 'BOUNCE_ADDRESS' },
  { title: 'PORT<VT> to another host', line: `PORT\v${BOUNCE_PORT}\r\n`, reply: /^500 PORT refused: address 127\.0\.0\.2/, code: 'BOUNCE_ADDRESS' },
  { title: 'EPRT<TAB> to another host', line: 'EPRT\t|1|127.0.0.2|1025|\r\n', reply: /^500 EPRT refused: address 127\.0\.0\.2/, code: 'BOUNCE_ADDRESS' },
  { title: 'PORT<TAB> to a privileged port of the client', line: 'PORT\t127,0,0,1,0,25\r\n', reply: /^501 PORT refused: port 25 is privileged/, code: 'PRIVILEGED_PORT' },
  { title: 'AUTH<TAB>TLS', line: 'AUTH\tTLS\r\n', reply: /^534 TLS is not available through this FTP gateway/, code: 'TLS_REFUSED' },
  { title: 'NOOP<CR>PORT', line: `NOOP\rPORT ${BOUNCE_PORT}\r\n`, reply: /^500 Syntax error, command unrecognized \(bare CR inside the command line\)$/, code: 'MALFORMED_COMMAND' },
  { title: 'PORT<CR>arg (ProFTPD reads PORT)', line: `PORT\r${BOUNCE_PORT}\r\n`, reply: /^500 Syntax error, command unrecognized \(bare CR/, code: 'MALFORMED_COMMAND' },
  { title: 'PORT arg<NUL>junk (all four read PORT)', line: `PORT ${BOUNCE_PORT}\0junk\r\n`, reply: /^500 Syntax error, command unrecognized \(NUL inside/, code: 'MALFORMED_COMMAND' },
  { title: 'PA<U+017F>V (pyftpdlib reads PASV)', line: 'PA\xc5\xbfV\r\n', reply: /^500 Syntax error, command unrecognized \(byte 0xc5/, code: 'MALFORMED_COMMAND' },
];

for (const server of SERVERS) {
  describe(`hostile command lines through the gateway to ${server.name}${server.skip}`, () => {
    let srv: LoopbackServer | undefined;
    let gw: TestGateway | undefined;
    let c: RawControl;

    beforeAll(async () => {
      if (server.skip) return;
      srv = await server.start({ 'f.txt': Buffer.from('hello\n') });
      gw = await startTestReverse(srv.port);
      c = await rawControl(gw.port);
      expect(await c.reply()).toMatch(/^220/);
      c.send('USER anonymous\r\n');
      const user = await c.reply();
      if (user.startsWith('331')) {
        c.send('PASS guest@\r\n');
        expect(await c.reply()).toMatch(/^230/);
      } else {
        expect(user).toMatch(/^230/);
      }
    }, 30_000);

    afterAll(async () => {
      c?.close();
      await gw?.close();
      await srv?.stop();
    });

    test.skipIf(!!server.skip).each(HOSTILE)('$title: refused with $code', async ({ line, reply, code }) => {
      const before = gw!.log.of('refuse').length;
      c.send(line);
      expect(await c.reply()).toMatch(reply);
      const refusals = gw!.log.of('refuse').slice(before);
      expect(refusals.map((r) => r.code)).toEqual([code]);
      // The session goes on: the next command is the server's to answer.
      c.send('NOOP\r\n');
      expect(await c.reply()).toMatch(/^200/);
    });

    test.skipIf(!!server.skip)('PORT<TAB> naming the client itself: validated, rewritten, and the server sees a plain PORT', async () => {
      const listener = net.createServer((s) => s.destroy());
      await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
      try {
        const port = (listener.address() as net.AddressInfo).port;
        const before = gw!.log.of('rewrite').length;
        c.send(`PORT\t127,0,0,1,${port >> 8},${port & 255}\r\n`);
        expect(await c.reply()).toMatch(/^200/);
        const [rewrite] = gw!.log.of('rewrite').slice(before);
        expect(rewrite).toMatchObject({ direction: 'client->server', kind: 'PORT', before: `PORT\t127,0,0,1,${port >> 8},${port & 255}` });
        expect(rewrite?.after).toMatch(/^PORT 127,0,0,1,\d+,\d+$/);
      } finally {
        listener.close();
      }
    });
  });
}
