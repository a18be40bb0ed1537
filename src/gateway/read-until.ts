/**
 * The gateway talking to a peer on its own, before a session relays it (a
 * balancer's PROXY header, the explicit proxy's login, a server's
 * greeting): one way to read a socket until enough has come.
 */
import type { Socket } from 'node:net';

export type ReadFailure = 'timeout' | 'end' | Error;

/**
 * Reads the paused `socket` until `take` returns something other than
 * undefined, and resolves with it; a timeout, the peer's end or an error
 * resolve with what `failed` makes of them. Either way the socket is left
 * paused and without our listeners, so bytes unshifted afterwards stay for
 * the next reader. Whatever `take` or `failed` throws rejects the read: a
 * socket handler is no place for an exception, it would end the process.
 */
export function readUntil<T>(socket: Socket, timeoutMs: number, take: (chunk: Buffer) => T | undefined, failed: (why: ReadFailure) => T): Promise<T> {
  return new Promise((resolve, reject) => {
    const finish = (outcome: () => T) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      socket.pause();
      try {
        resolve(outcome());
      } catch (err) {
        reject(err as Error);
      }
    };
    const timer = setTimeout(() => finish(() => failed('timeout')), timeoutMs);
    const onEnd = () => finish(() => failed('end'));
    const onError = (err: Error) => finish(() => failed(err));
    const onData = (chunk: Buffer) => {
      let value: T | undefined;
      try {
        value = take(chunk);
      } catch (err) {
        return finish(() => {
          throw err;
        });
      }
      if (value !== undefined) finish(() => value);
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
    socket.resume();
  });
}
