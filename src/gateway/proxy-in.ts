/**
 * PROXY protocol in: a trusted load balancer starts each connection with a
 * header naming the real client. Reads exactly the header and puts back
 * whatever came with it, so the session sees the client's own bytes.
 */
import type { Socket } from 'node:net';
import { ProxyHeaderParser, type ProxyHeader } from '../protocol/proxy-header.js';
import { REASON } from '../codes.js';
import { DialRefusal } from './session.js';

export interface ReceivedProxyHeader {
  header: ProxyHeader;
  /** Bytes the header took on the wire. */
  bytes: number;
}

export function readProxyHeader(client: Socket, timeoutMs: number): Promise<ReceivedProxyHeader> {
  return new Promise((resolve, reject) => {
    const parser = new ProxyHeaderParser();
    let bytes = 0;
    const done = (err: Error | undefined, value?: ReceivedProxyHeader, rest?: Buffer) => {
      clearTimeout(timer);
      client.off('data', onData);
      client.off('end', onEnd);
      client.off('close', onEnd);
      client.pause();
      if (rest?.length) client.unshift(rest);
      if (err) reject(err);
      else resolve(value!);
    };
    // The balancer, not the client, failed: nothing we could say would reach a person.
    const refuse = (message: string) => done(new DialRefusal({ code: REASON.PROXY_HEADER, message }, undefined));
    const timer = setTimeout(() => refuse(`no PROXY header within ${timeoutMs} ms from a --proxy-protocol-from source`), timeoutMs);
    const onEnd = () => refuse('connection closed before its PROXY header');
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      const result = parser.feed(chunk);
      if (result.kind === 'need-more') return;
      if (result.kind === 'error') return refuse(`bad PROXY header from a trusted source: ${result.message}`);
      done(undefined, { header: result.header, bytes: bytes - result.rest.length }, result.rest);
    };
    client.on('data', onData);
    client.once('end', onEnd);
    client.once('close', onEnd);
    client.resume();
  });
}
