/**
 * Plain-TCP reference points for throughput.ts, no FTP involved: one
 * process per role, all on 127.0.0.1.
 *   tcp-baseline.js source SIZE      listens; sends SIZE bytes to its first connection, then ends it
 *   tcp-baseline.js relay PORT       listens; pipes each connection to 127.0.0.1:PORT (a naive Node relay)
 *   tcp-baseline.js sink PORT        connects, reads to EOF, prints {"bytes": N, "seconds": S}
 * source and relay print {"port": N} when listening and exit when stdin ends.
 */
import net from 'node:net';

const [role, arg] = process.argv.slice(2);
const n = Number(arg);
if (!['source', 'relay', 'sink'].includes(role ?? '') || !Number.isInteger(n) || n <= 0) {
  process.stderr.write('usage: tcp-baseline.js source SIZE | relay PORT | sink PORT\n');
  process.exit(2);
}

function listening(server: net.Server): void {
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

if (role === 'source') {
  const block = Buffer.alloc(1024 * 1024, 0x5a);
  const server = net.createServer((s) => {
    server.close();
    s.on('error', () => {});
    let left = n;
    const pump = () => {
      while (left > 0) {
        const chunk = left >= block.length ? block : block.subarray(0, left);
        left -= chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
  });
  listening(server);
} else if (role === 'relay') {
  const server = net.createServer((a) => {
    const b = net.connect(n, '127.0.0.1');
    a.on('error', () => b.destroy());
    b.on('error', () => a.destroy());
    a.pipe(b);
    b.pipe(a);
  });
  listening(server);
} else {
  const t0 = process.hrtime.bigint();
  let bytes = 0;
  const s = net.connect(n, '127.0.0.1');
  s.on('data', (c: Buffer) => (bytes += c.length));
  s.on('error', (err) => {
    process.stderr.write(`sink: ${err.message}\n`);
    process.exit(1);
  });
  s.on('end', () => {
    process.stdout.write(`${JSON.stringify({ bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9 })}\n`);
    process.exit(0);
  });
}
