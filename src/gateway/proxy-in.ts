/**
 * PROXY protocol in: a trusted load balancer starts each connection with a
 * header naming the real client. Reads exactly the header and puts back
 * whatever came with it, so the session (or the data relay) sees the
 * client's own bytes.
 */
import type { Socket } from 'node:net';
import { ProxyHeaderParser, type ProxyHeader } from '../protocol/proxy-header.js';

export interface ReceivedProxyHeader {
  header: ProxyHeader;
  /** Bytes the header took on the wire. */
  bytes: number;
}

/** A header, or why there is none (the caller decides what a refusal means on its connection). */
export type ProxyHeaderRead = ({ ok: true } & ReceivedProxyHeader) | { ok: false; message: string };

/**
 * Resolves once one header has been read, the connection ended or failed,
 * or `timeoutMs` passed. Leaves the socket paused either way; the bytes
 * after the header are unshifted back into it.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyHeaderRead> {
  return new Promise((resolve) => {
    const parser = new ProxyHeaderParser();
    let bytes = 0;
    const done = (result: ProxyHeaderRead, rest?: Buffer) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      socket.pause();
      if (rest?.length) socket.unshift(rest);
      resolve(result);
    };
    const refuse = (message: string) => done({ ok: false, message });
    const timer = setTimeout(() => refuse(`no PROXY header within ${timeoutMs} ms from a --proxy-protocol-from source`), timeoutMs);
    const onEnd = () => refuse('connection closed before its PROXY header');
    const onError = (err: Error) => refuse(`connection failed before its PROXY header: ${err.message}`);
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      const result = parser.feed(chunk);
      if (result.kind === 'need-more') return;
      if (result.kind === 'error') return refuse(`bad PROXY header from a trusted source: ${result.message}`);
      done({ ok: true, header: result.header, bytes: bytes - result.rest.length }, result.rest);
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
    socket.resume();
  });
}
