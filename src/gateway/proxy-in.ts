/**
 * PROXY protocol in: a trusted load balancer starts each connection with a
 * header naming the real client. Reads exactly the header and puts back
 * whatever came with it, so the session (or the data relay) sees the
 * client's own bytes.
 */
import type { Socket } from 'node:net';
import { ProxyHeaderParser, type ProxyHeader } from '../protocol/proxy-header.js';
import { readUntil } from './read-until.js';

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
export async function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyHeaderRead> {
  const parser = new ProxyHeaderParser();
  let bytes = 0;
  const refuse = (message: string) => ({ result: { ok: false as const, message } });
  const { result, rest } = await readUntil<{ result: ProxyHeaderRead; rest?: Buffer }>(
    socket,
    timeoutMs,
    (chunk) => {
      bytes += chunk.length;
      const parsed = parser.feed(chunk);
      if (parsed.kind === 'need-more') return undefined;
      if (parsed.kind === 'error') return refuse(`bad PROXY header from a trusted source: ${parsed.message}`);
      return { result: { ok: true, header: parsed.header, bytes: bytes - parsed.rest.length }, rest: parsed.rest };
    },
    (why) =>
      refuse(
        why === 'timeout'
          ? `no PROXY header within ${timeoutMs} ms from a --proxy-protocol-from source`
          : why === 'end'
            ? 'connection closed before its PROXY header'
            : `connection failed before its PROXY header: ${why.message}`,
      ),
  );
  // Our listeners are gone: what came with the header waits in the socket for its next reader.
  if (rest?.length) socket.unshift(rest);
  return result;
}
