/**
 * The real `ftp-alg` binary as a service: spawned with JSON logs on stderr,
 * its events parsed as they come, waited on (no sleeps), and killed at the
 * end if a test left it running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import http from 'node:http';
import net from 'node:net';
import { FtpClient } from '../../src/client/ftp-client.js';
import { procMemory } from '../../scenarios/lib/process.js';

export const CLI = join(process.cwd(), 'dist/cli.js');

export type LogLine = Record<string, unknown> & { event: string };

export interface GatewayProcess {
  child: ChildProcess;
  events: LogLine[];
  stderr: () => string;
  waitFor: (pred: (e: LogLine) => boolean, what: string, timeoutMs?: number) => Promise<LogLine>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill: () => Promise<void>;
}

/** `prefix`: a command that runs node (setpriv …); `nodeArgs`: node's own flags (a small heap). */
export function startGatewayProcess(args: string[], opts: { prefix?: string[]; nodeArgs?: string[] } = {}): GatewayProcess {
  const argv = [...(opts.prefix ?? []), process.execPath, ...(opts.nodeArgs ?? []), CLI, ...args, '--log-format', 'json'];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: LogLine[] = [];
  let text = '';
  let partial = '';
  const waiters: Array<() => void> = [];
  child.stderr!.on('data', (d: Buffer) => {
    text += d.toString();
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      try {
        events.push(JSON.parse(line) as LogLine);
      } catch {
        // not an event line (e.g. a fatal one-line error)
      }
    }
    for (const w of [...waiters]) w();
  });
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let gone = false;
  void exited.then(() => {
    gone = true;
    for (const w of [...waiters]) w();
  });
  const waitFor = (pred: (e: LogLine) => boolean, what: string, timeoutMs = 15_000) =>
    new Promise<LogLine>((resolve, reject) => {
      const check = () => {
        const hit = events.find(pred);
        if (hit) return finish(() => resolve(hit));
        if (gone) return finish(() => reject(new Error(`exited before ${what}; stderr:\n${text}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`no ${what} within ${timeoutMs} ms; stderr:\n${text}`))), timeoutMs);
      const finish = (f: () => void) => {
        clearTimeout(timer);
        waiters.splice(waiters.indexOf(check), 1);
        f();
      };
      waiters.push(check);
      check();
    });
  return {
    child,
    events,
    stderr: () => text,
    waitFor,
    exited,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Resident memory of the process now, from /proc. */
export function rssBytes(gw: GatewayProcess): number {
  return gw.child.pid === undefined ? 0 : procMemory(gw.child.pid).rss || 0;
}

/** The port a listener of this name (or the only one) bound. */
export async function listeningPort(gw: GatewayProcess, listener?: string): Promise<number> {
  const e = await gw.waitFor((x) => x.event === 'listening' && (listener === undefined || x.listener === listener), `listening ${listener ?? ''}`);
  return Number(e.port);
}

export interface HttpAnswer {
  status: number;
  body: string;
}

export function httpGet(port: number, path: string): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timeout`)));
    req.on('error', reject);
  });
}

/** A metric's value from Prometheus text, 0 when the series is absent. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** A free loopback port for a listener the test names in a file (closed again at once). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * A download held in flight: logged in, EPSV, data connected and paused,
 * RETR answered 150. Nothing moves until `finish()` reads it to the end.
 */
export async function heldDownload(port: number, path: string): Promise<{ client: FtpClient; data: net.Socket; finish: () => Promise<{ data: Buffer; final: number }> }> {
  const client = await FtpClient.connect('127.0.0.1', port);
  await client.login();
  const epsv = await client.send('EPSV');
  if (epsv.code !== 229) throw new Error(`EPSV: ${epsv.text}`);
  const data = net.connect({ host: '127.0.0.1', port: Number(/\|\|\|(\d+)\|/.exec(epsv.text)![1]) });
  await new Promise<void>((resolve, reject) => {
    data.once('connect', () => resolve());
    data.once('error', reject);
  });
  data.pause();
  const started = await client.send(`RETR ${path}`, true);
  if (started.code !== 150) throw new Error(`RETR: ${started.text}`);
  const chunks: Buffer[] = [];
  data.on('data', (d: Buffer) => chunks.push(d));
  const ended = new Promise<void>((resolve) => data.once('close', () => resolve()));
  return {
    client,
    data,
    finish: async () => {
      data.resume();
      await ended;
      return { data: Buffer.concat(chunks), final: (await client.read()).code };
    },
  };
}
