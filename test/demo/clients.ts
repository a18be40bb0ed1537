/**
 * Test helpers: real FTP clients (Python's ftplib, curl) run as child
 * processes, and a raw control-connection client for exact replies. All of
 * them talk to loopback only.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { LineFramer } from '../../src/protocol/framer.js';
import { ReplyAssembler } from '../../src/protocol/reply.js';

export const PYTHON = '/usr/bin/python3';

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion; resolves on exit (never on a timer). */
export function run(cmd: string, args: string[]): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.once('error', reject);
    child.once('close', (code) =>
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
  });
}

/**
 * Runs an inline Python script that prints one JSON document; argv[1:] are
 * `args`. A non-zero exit fails with the script's stderr.
 */
export async function runPython<T>(script: string, args: Array<string | number>): Promise<T> {
  const r = await run(PYTHON, ['-c', script, ...args.map(String)]);
  if (r.code !== 0) throw new Error(`python exited with ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** curl with errors shown and a hard limit, so a hung transfer fails the test instead of the suite. */
export async function runCurl(args: string[]): Promise<ProcessResult> {
  return run('curl', ['-sS', '--max-time', '20', ...args]);
}

export function ftpUrl(host: string, port: number, path = '/'): string {
  return `ftp://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
}

export interface RawReply {
  code: number;
  /** All lines of the reply, without CRLF. */
  lines: string[];
  /** The last line. */
  text: string;
}

/** A control connection driven line by line; replies are assembled with the protocol core. */
export class RawFtpClient {
  private readonly framer = new LineFramer();
  private readonly assembler = new ReplyAssembler();
  private readonly replies: RawReply[] = [];
  private readonly waiters: Array<{ resolve: (r: RawReply) => void; reject: (e: Error) => void }> = [];
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.framer.push(chunk)) {
        if (f.kind !== 'line') continue;
        const ev = this.assembler.push(f);
        if (ev?.kind !== 'reply') continue;
        const lines = ev.reply.lines.map((l) => l.text);
        this.deliver({ code: ev.reply.code, lines, text: lines[lines.length - 1]! });
      }
    });
    socket.once('close', () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w.reject(new Error('control connection closed'));
    });
  }

  static connect(host: string, port: number): Promise<RawFtpClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new RawFtpClient(s));
      });
    });
  }

  /** Connects and checks the 220 greeting. */
  static async open(host: string, port: number): Promise<RawFtpClient> {
    const c = await RawFtpClient.connect(host, port);
    const greeting = await c.next();
    if (greeting.code !== 220) throw new Error(`unexpected greeting: ${greeting.text}`);
    return c;
  }

  private deliver(r: RawReply): void {
    const w = this.waiters.shift();
    if (w) w.resolve(r);
    else this.replies.push(r);
  }

  next(): Promise<RawReply> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    if (this.ended) return Promise.reject(new Error('control connection closed'));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  send(line: string | Buffer): void {
    this.socket.write(typeof line === 'string' ? `${line}\r\n` : line);
  }

  cmd(line: string): Promise<RawReply> {
    this.send(line);
    return this.next();
  }

  async login(user = 'anonymous', pass = 'test@example.org'): Promise<void> {
    const u = await this.cmd(`USER ${user}`);
    if (u.code !== 331) throw new Error(`USER: ${u.text}`);
    const p = await this.cmd(`PASS ${pass}`);
    if (p.code !== 230) throw new Error(`PASS: ${p.text}`);
  }

  /** EPSV, returning the port to connect to on the control connection's host. */
  async epsv(): Promise<number> {
    const r = await this.cmd('EPSV');
    const m = /\(\|\|\|(\d+)\|\)/.exec(r.text);
    if (r.code !== 229 || !m) throw new Error(`EPSV: ${r.text}`);
    return Number(m[1]);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function connectTo(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.once('error', reject);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

/** Everything a socket delivers until the peer closes it. */
export function readAll(s: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('error', reject);
    s.once('end', () => resolve(Buffer.concat(chunks)));
  });
}

/** Resolves with the error code of a connection attempt that must fail (e.g. ECONNREFUSED). */
export function connectError(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      reject(new Error(`${host}:${port} accepted a connection`));
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'ERROR'));
  });
}
