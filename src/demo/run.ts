/**
 * `ftp-alg demo` (what `npm start` runs): the built-in FTP server plays a
 * server behind a NAT — it announces an inside address it does not listen on
 * (announce only, never dialled) — and the reverse gateway in front of it on
 * loopback makes it work. One self-check transfer goes through the gateway
 * and its rewrites are printed; then it waits for real clients until Ctrl-C.
 */
import { createHash } from 'node:crypto';
import { startDemoServer } from './server.js';
import { startReverseGateway } from '../gateway/reverse.js';
import { reverseFromFlags } from '../config.js';
import { FtpClient } from '../client/ftp-client.js';
import type { EventSink, GatewayEvent } from '../gateway/events.js';
import type { Gateway } from '../gateway/server.js';

/** RFC 6598 shared address space: what a server behind a carrier NAT would announce. */
const ANNOUNCED_INSIDE_ADDRESS = '100.64.0.2';

export interface DemoOptions {
  listen: string;
  selfCheckOnly: boolean;
  sink: EventSink;
  out?: (line: string) => void;
}

function sampleFile(): Buffer {
  // Deterministic, so that the printed checksum is the same on every run.
  const b = Buffer.alloc(1 << 20);
  for (let i = 0; i < b.length; i++) b[i] = (i * 2654435761) >>> 24;
  return b;
}

/** Resolves with an exit code when done (self-check only or failure), or never while serving. */
export async function runDemo(opts: DemoOptions): Promise<number | undefined> {
  const out = opts.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const sample = sampleFile();
  const server = await startDemoServer({
    host: '127.0.0.1',
    announceAddress: ANNOUNCED_INSIDE_ADDRESS,
    files: {
      '/pub/hello.txt': 'Hello through ftp-alg!\r\n',
      '/pub/sample.bin': sample,
    },
  });
  const seen: GatewayEvent[] = [];
  const sink: EventSink = (e) => {
    seen.push(e);
    opts.sink(e);
  };
  const [listenHost] = opts.listen.startsWith('[') ? ['127.0.0.1'] : opts.listen.split(':');
  let gateway: Gateway;
  try {
    gateway = await startReverseGateway(
      reverseFromFlags({
        listen: opts.listen,
        server: `127.0.0.1:${server.address.port}`,
        'public-address': listenHost === '0.0.0.0' ? '127.0.0.1' : listenHost,
      }),
      sink,
    );
  } catch (err) {
    await server.close();
    throw err;
  }
  const { address, port } = gateway.address;
  const stop = async () => {
    await gateway.close();
    await server.close();
  };

  out(`ftp-alg demo`);
  out(`  built-in FTP server  127.0.0.1:${server.address.port}  (announces ${ANNOUNCED_INSIDE_ADDRESS} in its 227 replies, as a server behind a NAT would)`);
  out(`  ftp-alg reverse      ${address}:${port}  (rewrites them to an address that works)`);
  out('');
  out('self-check: RETR /pub/sample.bin in strict passive mode through the gateway');
  const first = seen.length;
  let ok = false;
  try {
    const client = await FtpClient.connect('127.0.0.1', port);
    try {
      await client.login();
      const { data, setup } = await client.transfer('PASV', 'RETR /pub/sample.bin');
      const want = createHash('sha256').update(sample).digest('hex');
      const got = createHash('sha256').update(data).digest('hex');
      ok = got === want;
      for (const e of seen.slice(first)) {
        if (e.event === 'rewrite') out(`  rewrite ${e.kind}: "${e.before}"  ->  "${e.after}"`);
        if (e.event === 'refuse') out(`  policy ${e.code}: ${e.message}${e.code === 'FOREIGN_PASSIVE_ADDRESS' ? ' (expected here: the demo server announces an address it does not listen on)' : ''}`);
      }
      out(`  client saw: ${setup.text}`);
      out(`  received ${data.length} bytes, sha256 ${got.slice(0, 16)}…  ${ok ? 'OK: matches the served file' : `MISMATCH (want ${want.slice(0, 16)}…)`}`);
    } finally {
      await client.quit();
    }
  } catch (err) {
    out(`  FAILED: ${(err as Error).message}`);
  }
  if (!ok || opts.selfCheckOnly) {
    await stop();
    return ok ? 0 : 1;
  }
  const url = `ftp://${address.includes(':') ? `[${address}]` : address}:${port}`;
  out('');
  out('The gateway stays up. Try it (anonymous login; files in /pub; uploads allowed):');
  out(`  curl ${url}/pub/                                       # list`);
  out(`  curl --disable-epsv --no-ftp-skip-pasv-ip ${url}/pub/hello.txt   # strict PASV: uses the rewritten 227`);
  out(`  curl -P 127.0.0.1 ${url}/pub/hello.txt                  # active mode (EPRT/PORT)`);
  // `get -o /dev/stdout` fails in lftp 4.9 (xfer:clobber is unset: it will not overwrite an existing file); cat prints it.
  out(`  lftp -e 'ls pub; cat pub/hello.txt; bye' ${url}`);
  out('Ctrl-C stops it.');
  // SIGHUP (a closed terminal, a reload habit) never ends a gateway; the demo has no file to reopen.
  const onHangup = () => opts.sink({ event: 'reopen', files: [] });
  process.on('SIGHUP', onHangup);
  await new Promise<void>((resolve) => {
    const onSignal = () => resolve();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  process.off('SIGHUP', onHangup);
  await stop();
  return 0;
}
