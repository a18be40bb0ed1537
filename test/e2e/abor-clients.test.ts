/**
 * Issue #18: ABOR with TCP urgent data from real clients, through a real
 * gateway to real servers, compared with the same client direct. After the
 * abort the replies come in order (426 or 226 for the transfer, then 225 or
 * 226 for ABOR) and the next transfer is byte-exact. Both ways the gateway
 * can take the urgent byte run: kept in line (SO_OOBINLINE through koffi)
 * and lost and repaired (koffi unavailable).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { forceNativeUnavailable } from '../../src/gateway/original-dst.js';
import { startTestReverse } from '../helpers/gateway.js';
import { HAVE, needs, python, randomFile, run, sha256, tempDir } from '../helpers/tools.js';
import { HAVE_VSFTPD, startLoopbackPyftpdlib, startLoopbackVsftpd, type LoopbackServer } from './abor-servers.js';

const BIG = randomFile(64 << 20);
const SMALL = randomFile(300_000);
const FILES = { 'big.bin': BIG, 'small.bin': SMALL };

/**
 * ftplib's abort() in the middle of a RETR, the data connection closed
 * first: with the data connection still open neither server answers
 * directly (pyftpdlib waits for the data to drain; vsftpd ignores the
 * urgent ABOR unless async_abor_enable=YES, and with it answers 500).
 * Prints the replies after ABOR, the next download's SHA-256 and NOOP's code.
 */
const FTPLIB_ABORT = `
import ftplib, sys, hashlib, json
host, port = sys.argv[1], int(sys.argv[2])
f = ftplib.FTP(); f.connect(host, port, timeout=20); f.login()
f.voidcmd('TYPE I')
conn = f.transfercmd('RETR big.bin')
conn.recv(65536)
conn.close()
first = f.abort()
conn.close()
replies = [first[:3]]
if first[:3] == '426':
    replies.append(f.getmultiline()[:3])
data = bytearray(); f.retrbinary('RETR small.bin', data.extend)
print(json.dumps({'replies': replies, 'sha': hashlib.sha256(data).hexdigest(), 'noop': f.voidcmd('NOOP')[:3]}))
f.quit()
`;

interface AbortOutcome {
  replies: string[];
  sha: string;
  noop: string;
}

async function ftplibAbort(port: number): Promise<AbortOutcome> {
  const r = await python(FTPLIB_ABORT, ['127.0.0.1', String(port)], 60_000);
  if (r.code !== 0) throw new Error(`ftplib exited ${r.code}: ${r.stderr.trim().split('\n').at(-1)}`);
  return JSON.parse(r.stdout.toString()) as AbortOutcome;
}

/** What ftplib, direct or through the gateway, must see. */
function expectWellAborted(o: AbortOutcome): void {
  expect(['426', '226', '225']).toContain(o.replies[0]);
  if (o.replies[0] === '426') expect(['225', '226']).toContain(o.replies[1]);
  expect(o.sha).toBe(sha256(SMALL));
  expect(o.noop).toBe('200');
}

/** lftp: `cat big | head -c 1` makes it abort the transfer; then it fetches the small file. */
async function lftpAbort(port: number): Promise<{ code: number | null; afterAbor: string[]; small: string }> {
  const dir = tempDir('ftp-alg-abor-lftp-');
  try {
    const log = join(dir.path, 'lftp.log');
    const out = join(dir.path, 'small.bin');
    const script = [
      'set net:max-retries 1',
      // pyftpdlib leaves the PASV after an aborted transfer unanswered, also directly: lftp reconnects.
      'set net:timeout 5',
      'set net:reconnect-interval-base 1',
      `debug -o ${log} 5`,
      `open ftp://127.0.0.1:${port}`,
      'cat big.bin | head -c 1 >/dev/null',
      `get small.bin -o ${out}`,
    ].join('; ');
    const r = await run('lftp', ['-c', script], { timeoutMs: 60_000 });
    const lines = readFileSync(log, 'latin1').split('\n');
    const abor = lines.findIndex((l) => l.startsWith('---> ABOR'));
    const next = lines.findIndex((l, i) => i > abor && l.startsWith('---> '));
    const afterAbor = abor === -1 ? [] : lines.slice(abor + 1, next === -1 ? undefined : next).filter((l) => l.startsWith('<--- ')).map((l) => l.slice(5, 8));
    let small = '';
    try {
      small = sha256(readFileSync(out));
    } catch {
      small = 'missing';
    }
    return { code: r.code, afterAbor, small };
  } finally {
    dir.remove();
  }
}

/**
 * tnftp (BSD ftp): Ctrl-C during a get makes it send IAC IP, then IAC as
 * urgent data, then DM ABOR; then it fetches the small file. The get is
 * rate-limited and SIGINT goes at the first hash mark, when tnftp is surely
 * inside its receive loop.
 */
const TNFTP_ABORT = `
import subprocess, sys, signal, os
port, out = sys.argv[1], sys.argv[2]
p = subprocess.Popen(['tnftp', '-n', '-v', '-d', '127.0.0.1', port], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
p.stdin.write(('user anonymous x\\nbinary\\nepsv4 off\\nrate get 1000000\\nhash 65536\\nget big.bin /dev/null\\n'
               'hash off\\nget small.bin %s\\nquit\\n' % out).encode()); p.stdin.flush()
seen, sent = b'', False
while True:
    b = os.read(p.stdout.fileno(), 4096)
    if not b: break
    seen += b
    if not sent and b'---> RETR big.bin' in seen and b'#' in seen.split(b'---> RETR big.bin', 1)[1]:
        p.send_signal(signal.SIGINT); sent = True
p.wait(timeout=30)
sys.stdout.write(seen.decode('latin1'))
`;

async function tnftpAbort(port: number): Promise<{ afterRetr: string[]; small: string }> {
  const dir = tempDir('ftp-alg-abor-tnftp-');
  try {
    const out = join(dir.path, 'small.bin');
    const r = await python(TNFTP_ABORT, [String(port), out], 60_000);
    const text = r.stdout.toString('latin1').replace(/#/g, '');
    const big = text.slice(text.indexOf('---> RETR big.bin'), text.indexOf('---> SIZE small.bin'));
    const afterRetr = big.split('\n').filter((l) => /^\d{3} /.test(l)).map((l) => l.slice(0, 3));
    let small = 'missing';
    try {
      small = sha256(readFileSync(out));
    } catch {
      // stays missing
    }
    return { afterRetr, small };
  } finally {
    dir.remove();
  }
}

/**
 * Runs a client direct, then through a fresh gateway; both outcomes must
 * pass `check`, and the server saw exactly one well-formed ABOR.
 */
async function directAndThrough<T>(serverPort: number, client: (port: number) => Promise<T>, check: (o: T) => void): Promise<void> {
  check(await client(serverPort));
  const gw = await startTestReverse(serverPort);
  try {
    check(await client(gw.port));
    const sent = gw.log.of('control').filter((e) => e.direction === 'client->server').map((e) => e.line);
    expect(sent.filter((l) => /ABOR/i.test(l))).toEqual(['ABOR']);
    expect(gw.gateway.urgentData).toBe('inline');
  } finally {
    await gw.close();
  }
}

const SERVERS = [
  { name: 'pyftpdlib', skip: needs('pyftpdlib', 'python3-pyftpdlib not installed'), start: startLoopbackPyftpdlib },
  { name: 'vsftpd', skip: HAVE_VSFTPD ? '' : ' [skipped: needs root and vsftpd]', start: startLoopbackVsftpd },
] as const;

const PATHS = [
  { path: 'inline', force: undefined },
  { path: 'repair', force: 'koffi disabled by the test' },
] as const;

afterEach(() => forceNativeUnavailable(undefined));

for (const server of SERVERS) {
  describe(`ABOR against ${server.name}${server.skip}`, () => {
    let srv: LoopbackServer | undefined;
    beforeAll(async () => {
      if (!server.skip) srv = await server.start(FILES);
    }, 30_000);
    afterAll(async () => {
      await srv?.stop();
    });

    test.skipIf(!!server.skip || !HAVE.python)('ftplib abort() direct: the reference', async () => {
      expectWellAborted(await ftplibAbort(srv!.port));
    }, 90_000);

    for (const { path, force } of PATHS) {
      test.skipIf(!!server.skip || !HAVE.python)(`ftplib abort() through the gateway, urgent byte ${path}`, async () => {
        forceNativeUnavailable(force);
        const gw = await startTestReverse(srv!.port);
        try {
          expectWellAborted(await ftplibAbort(gw.port));
          expect(gw.gateway.urgentData).toBe(path);
          // The server saw one well-formed ABOR, never ABOR glued to what came next.
          const sent = gw.log.of('control').filter((e) => e.direction === 'client->server').map((e) => e.line);
          expect(sent.filter((l) => /ABOR/i.test(l))).toEqual(['ABOR']);
          const replies = gw.log.of('control').filter((e) => e.direction === 'server->client').map((e) => e.line);
          expect(replies.filter((l) => l.startsWith('500'))).toEqual([]);
        } finally {
          await gw.close();
        }
      }, 90_000);
    }

    test.skipIf(!!server.skip || !HAVE.tnftp || !HAVE.python)('tnftp Ctrl-C during get, then get: direct and through the gateway alike', () =>
      directAndThrough(srv!.port, tnftpAbort, (o) => {
        expect(o.small).toBe(sha256(SMALL));
        expect(['125', '150']).toContain(o.afterRetr[0]);
        // The transfer's end (426 or 226) and ABOR's own reply; pyftpdlib may fold them into one 226.
        expect(o.afterRetr.slice(1).join(' ')).toMatch(/^(?:(?:426|226) (?:225|226)|226)$/);
      }), 120_000);

    test.skipIf(!!server.skip || !HAVE.lftp)('lftp `cat | head -c 1` then get: direct and through the gateway alike', () =>
      directAndThrough(srv!.port, lftpAbort, (o) => {
        expect(o.small).toBe(sha256(SMALL));
        expect(o.afterAbor).toHaveLength(2);
        expect(['426', '226']).toContain(o.afterAbor[0]);
        expect(['225', '226']).toContain(o.afterAbor[1]);
      }), 120_000);
  });
}
