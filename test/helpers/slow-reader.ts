/** A transfer whose reader stays paused for a while: the control channel is quiet meanwhile. */
import { expect } from 'vitest';
import net from 'node:net';
import type { FtpClient } from '../../src/client/ftp-client.js';

/**
 * EPSV, connect, RETR `path`, then keep the data connection paused for
 * `quietMs` (time passing is the stimulus: idle timers must not fire while
 * a transfer is open), run `whilePaused`, and read to the end. Resolves
 * with the bytes and the final reply's code.
 */
export async function pausedRetr(c: FtpClient, path: string, quietMs: number, whilePaused: () => void): Promise<{ data: Buffer; final: number }> {
  const epsv = await c.send('EPSV');
  expect(epsv.code, epsv.text).toBe(229);
  const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)![1]);
  const data = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    data.once('connect', () => resolve());
    data.once('error', reject);
  });
  data.pause();
  expect((await c.send(`RETR ${path}`, true)).code).toBe(150);
  await new Promise((r) => setTimeout(r, quietMs));
  whilePaused();
  const chunks: Buffer[] = [];
  data.on('data', (d: Buffer) => chunks.push(d));
  const ended = new Promise((r) => data.once('end', r));
  data.resume();
  await ended;
  return { data: Buffer.concat(chunks), final: (await c.read()).code };
}
