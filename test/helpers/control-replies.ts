/** A hand-driven FTP control connection (plain or TLS) for hostile-input tests: whole replies, bounded in time. */
import { expect } from 'vitest';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';

/** Reads whole replies from a control connection (plain or TLS), bounded in time. */
export class Replies {
  private buffered = '';
  private waiter: (() => void) | undefined;
  ended = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffered += d.toString('latin1');
      this.waiter?.();
    });
    const end = () => {
      this.ended = true;
      this.waiter?.();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  /** The next final reply line, or 'closed'. */
  async next(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(\d{3}) .*\r?\n/m.exec(this.buffered);
      if (m) {
        this.buffered = this.buffered.slice(m.index + m[0].length);
        return m[0].trim();
      }
      if (this.ended) return 'closed';
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms; have ${JSON.stringify(this.buffered)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          this.waiter = undefined;
          resolve();
        };
      });
    }
  }

  async command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.next();
  }
}

export function connect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** A fresh control connection up to the gateway's 234: the next byte the client writes is read as TLS. */
export async function afterAuthTls(port: number): Promise<{ plain: Socket; replies: Replies }> {
  const plain = await connect(port);
  const replies = new Replies(plain);
  expect(await replies.next()).toMatch(/^220/);
  expect(await replies.command('AUTH TLS')).toMatch(/^234/);
  return { plain, replies };
}

/** AUTH TLS on a fresh control connection; the TLS socket and its replies, greeting consumed. */
export async function explicitTls(port: number): Promise<Replies> {
  const { plain } = await afterAuthTls(port);
  plain.removeAllListeners('data');
  const secure = tls.connect({ socket: plain, rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  return new Replies(secure);
}

