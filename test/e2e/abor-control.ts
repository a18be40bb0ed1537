/** A raw control connection for tests that send bytes no FTP client would: replies as they come. */
import net from 'node:net';
import { LineFramer } from '../../src/protocol/framer.js';
import { ReplyAssembler, isFinalCode, replyText } from '../../src/protocol/reply.js';

export interface RawControl {
  socket: net.Socket;
  /** The next final reply's text (preliminary ones are collected in `preliminary`). */
  reply: (timeoutMs?: number) => Promise<string>;
  preliminary: string[];
  send: (bytes: string | Buffer) => void;
  close: () => void;
}

export async function rawControl(port: number): Promise<RawControl> {
  const socket = net.connect(port, '127.0.0.1');
  const framer = new LineFramer(8192);
  const assembler = new ReplyAssembler();
  const finals: string[] = [];
  const preliminary: string[] = [];
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    for (const item of framer.push(chunk)) {
      if (item.kind !== 'line') continue;
      const e = assembler.push(item);
      if (e?.kind !== 'reply') continue;
      (isFinalCode(e.reply.code) ? finals : preliminary).push(replyText(e.reply));
    }
    wake?.();
  });
  socket.on('close', () => wake?.());
  socket.on('error', () => undefined);
  await new Promise((r) => socket.once('connect', r));
  const reply = async (timeoutMs = 10_000): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    while (finals.length === 0) {
      if (socket.destroyed || Date.now() > deadline) throw new Error(`no reply (connection ${socket.destroyed ? 'closed' : 'open'})`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, Math.max(0, deadline - Date.now())).unref();
      });
    }
    return finals.shift()!;
  };
  return {
    socket,
    reply,
    preliminary,
    send: (bytes) => socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes),
    close: () => socket.destroy(),
  };
}
