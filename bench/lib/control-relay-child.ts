/**
 * The bare Node relay of the control-relay floor (control-relays.ts):
 *   control-relay-child.js LISTEN_PORT SERVER_PORT
 * Listens on 127.0.0.1:LISTEN_PORT and relays each connection to
 * 127.0.0.1:SERVER_PORT, bytes as they come, TCP_NODELAY on both legs as the
 * gateway has them, nothing parsed. Runs until a signal ends it.
 */
import net from 'node:net';

const [listenPort, serverPort] = process.argv.slice(2).map(Number);
if (!Number.isInteger(listenPort) || !Number.isInteger(serverPort)) {
  process.stderr.write('usage: control-relay-child.js LISTEN_PORT SERVER_PORT\n');
  process.exit(2);
}

net
  .createServer({ noDelay: true }, (client) => {
    const server = net.connect({ host: '127.0.0.1', port: serverPort as number, noDelay: true });
    client.on('data', (chunk: Buffer) => server.write(chunk));
    server.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('end', () => server.end());
    server.on('end', () => client.end());
    client.on('error', () => server.destroy());
    server.on('error', () => client.destroy());
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
  })
  .listen(listenPort, '127.0.0.1');
