/**
 * --require-tls: a login before AUTH TLS and a transfer without PROT P get
 * clear 5xx replies and TLS_REQUIRED events; the session stays usable.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { HAVE, python, tempDir } from '../helpers/tools.js';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { makeCertificate } from './ftps-fixtures.js';
import { reverseFromFlags } from '../../src/config.js';

/** Each command's reply, one per line, as the client saw it. */
const DIALOGUE = `
import ftplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def say(ftp, line):
    try:
        print(ftp.sendcmd(line))
    except ftplib.Error as e:
        print(e)
plain = ftplib.FTP()
plain.connect('127.0.0.1', int(sys.argv[1]), timeout=20)
say(plain, 'USER anonymous')
say(plain, 'PBSZ 0')
plain.close()
ftp = ftplib.FTP_TLS(context=ctx)
ftp.connect('127.0.0.1', int(sys.argv[1]), timeout=20)
ftp.login('anonymous', 'x@example.org')
say(ftp, 'PBSZ 0')
say(ftp, 'PROT C')
try:
    ftp.retrbinary('RETR f.bin', lambda b: None)
    print('retr ok')
except ftplib.Error as e:
    print(e)
ftp.prot_p()
data = []
ftp.retrbinary('RETR f.bin', data.append)
print('retr', len(b''.join(data)))
say(ftp, 'CCC')
ftp.quit()
`;

describe.skipIf(!HAVE.python)('reverse --tls terminate --require-tls', () => {
  let dir: ReturnType<typeof tempDir>;
  let server: DemoServer;
  let gw: TestGateway;

  beforeAll(async () => {
    dir = tempDir();
    const { cert, key } = await makeCertificate(dir.path);
    writeFileSync(join(dir.path, 'f.bin'), Buffer.alloc(1000, 7));
    server = await startDemoServer({ root: dir.path, announceAddress: '100.64.0.2' });
    gw = await startTestReverse(server.address.port, { tls: 'terminate', 'tls-cert': cert, 'tls-key': key, 'require-tls': true });
  });
  afterAll(async () => {
    await gw?.close();
    await server?.close();
    dir?.remove();
  });

  test('clear login, PROT C and an unprotected transfer are refused; PROT P works', async () => {
    const r = await python(DIALOGUE, [String(gw.port)]);
    expect(r.stderr).toBe('');
    const lines = r.stdout.toString().trim().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(/^530 TLS is required/),
      expect.stringMatching(/^503 PBSZ needs AUTH TLS first/),
      '200 PBSZ=0',
      expect.stringMatching(/^534 Clear data connections are refused/),
      expect.stringMatching(/^521 Data connections must be protected/),
      'retr 1000',
      expect.stringMatching(/^533 CCC refused/),
    ]);
    const codes = gw.log.of('refuse').map((e) => e.code);
    expect(codes.filter((c) => c === 'TLS_REQUIRED')).toHaveLength(3);
    expect(codes).toContain('TLS_CCC_REFUSED');
  });
});

describe('TLS flags are checked together', () => {
  const base = { listen: '127.0.0.1:0', server: '127.0.0.1:21', 'public-address': '127.0.0.1' };
  test.each([
    [{ tls: 'terminate' }, /^--tls-cert: is required/],
    [{ tls: 'terminate', 'tls-cert': 'c' }, /^--tls-key: is required/],
    [{ 'require-tls': true }, /^--require-tls: needs --tls terminate/],
    [{ 'implicit-tls': true, tls: 'passthrough' }, /^--implicit-tls: needs --tls terminate/],
    [{ 'server-ca': 'ca.pem' }, /^--server-ca: needs --server-tls/],
    [{ 'server-tls': 'sometimes' }, /^--server-tls: "sometimes" is not/],
    [{ tls: 'passthrough', 'server-tls': 'explicit' }, /^--server-tls: cannot be used with --tls passthrough/],
  ])('%o is refused', (flags, message) => {
    expect(() => reverseFromFlags({ ...base, ...flags })).toThrow(message);
  });

  test('a complete set is accepted', () => {
    const cfg = reverseFromFlags({ ...base, tls: 'terminate', 'tls-cert': 'c', 'tls-key': 'k', 'require-tls': true, 'server-tls': 'implicit', 'server-name': 'ftp.example.org' });
    expect(cfg.tlsTerminate).toEqual({ certFile: 'c', keyFile: 'k', implicit: false, require: true });
    expect(cfg.serverTls).toEqual({ mode: 'implicit', caFile: undefined, name: 'ftp.example.org', insecure: false });
  });
});
