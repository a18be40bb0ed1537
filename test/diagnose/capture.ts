/**
 * tcpdump inside a test namespace while a piece of a test runs, stopped only
 * once the file provably holds everything before a marker.
 */
import { readFileSync, watch } from 'node:fs';
import type { NatTopology } from '../helpers/netns.js';
import { readCapture, type TcpSegment } from '../../src/diagnose/pcap.js';

/** A SYN to this closed port of the server marks the end of a capture. */
export const MARKER_PORT = 9;

/**
 * tcpdump in `ns` on every interface while `fn` runs; resolves with the
 * capture file. tcpdump may still hold packets when told to stop, so before
 * stopping it a marker (a SYN to a closed port of the server, which `filter`
 * must keep) is sent, and the capture is stopped only once the file shows
 * it: everything before it is written by then.
 */
export async function capture(topo: NatTopology, ns: string, file: string, fn: () => Promise<void>, filter = 'tcp', marker: { ns: string; host: string } = { ns: topo.ns.client, host: topo.addr.server }): Promise<string> {
  // --immediate-mode: otherwise packets wait in the kernel's ring-buffer block
  // until its timeout; -B: a bigger buffer, so that a loaded machine drops nothing.
  const child = topo.spawn(ns, 'tcpdump', ['-i', 'any', '--immediate-mode', '-B', '32768', '-U', '-n', '-w', file, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (/listening on/.test(err)) resolve();
    });
    child.once('exit', () => reject(new Error(`tcpdump exited: ${err}`)));
  });
  try {
    await fn();
    await topo.exec(marker.ns, 'curl', ['-s', '--max-time', '2', `telnet://${marker.host}:${MARKER_PORT}`], { input: '' });
    await fileShows(file, (segments) => segments.some((x) => x.dst.port === MARKER_PORT || x.src.port === MARKER_PORT), 15_000);
  } finally {
    child.kill('SIGINT');
    await exited;
  }
  return file;
}

/** Resolves once `check` passes on the capture so far; re-checks on every change of the file. */
export function fileShows(file: string, check: (segments: TcpSegment[]) => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const watcher = watch(file);
    const done = (err?: Error) => {
      clearTimeout(timer);
      watcher.close();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error(`${file} did not show the marker within ${timeoutMs} ms`)), timeoutMs);
    const test = () => {
      if (check(readCapture(readFileSync(file), file, { allowTruncatedTail: true }).segments)) done();
    };
    watcher.on('change', test);
    test();
  });
}
