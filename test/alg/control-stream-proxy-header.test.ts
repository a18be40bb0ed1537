/**
 * A PROXY header at the start of a control stream comes from a client the
 * gateway does not trust (a trusted balancer's is read before the stream
 * begins): refused with a 500 and PROXY_HEADER_UNTRUSTED, nothing of it
 * reaches the server, the session ends.
 */
import { describe, expect, test } from 'vitest';
import { ControlStream, type Action } from '../../src/alg/control-stream.js';
import { encodeProxyHeader, PROXY_V2_SIGNATURE } from '../../src/protocol/proxy-header.js';
import { RELAY, V4 } from './fixtures.js';

function feed(pieces: Buffer[]): { toServer: Buffer; actions: Action[] } {
  const stream = new ControlStream('s1', V4, { translator: RELAY, maxLineBytes: 512, clientLabel: '198.18.0.5:40000', now: () => 0 });
  const actions = [...stream.fromServer(Buffer.from('220 ready\r\n'))];
  for (const p of pieces) actions.push(...stream.fromClient(p));
  const toServer = Buffer.concat(actions.flatMap((a) => (a.type === 'write' && a.to === 'server' ? [a.bytes] : [])));
  return { toServer, actions };
}

const refusals = (actions: Action[]) => actions.flatMap((a) => (a.type === 'event' && a.event.event === 'refuse' ? [a.event] : []));
const closes = (actions: Action[]) => actions.filter((a): a is Extract<Action, { type: 'close' }> => a.type === 'close');
const bytewise = (b: Buffer) => [...b].map((x) => Buffer.from([x]));

const v1 = encodeProxyHeader(1, { source: { family: 4, address: '198.18.0.66', port: 1234 }, destination: { family: 4, address: '198.18.0.1', port: 21 } });
const v2 = encodeProxyHeader(2, { source: { family: 4, address: '198.18.0.66', port: 1234 }, destination: { family: 4, address: '198.18.0.1', port: 21 } });

describe('untrusted PROXY header on the control connection', () => {
  const cases: Array<[string, Buffer[], 'v1' | 'v2', string]> = [
    ['v1 in one piece, with a command behind it', [Buffer.concat([v1, Buffer.from('USER x\r\n')])], 'v1', 'PROXY TCP4 198.18.0.66 198.18.0.1 1234 21'],
    ['v1 one byte at a time (decided at "PROXY ")', bytewise(v1), 'v1', 'PROXY '],
    ['v2 in one piece', [v2], 'v2', 'PROXY v2 signature'],
    ['v2 one byte at a time (its CRLFs, NUL and QUIT never reach the server)', bytewise(v2), 'v2', 'PROXY v2 signature'],
    ['v2 signature alone', [PROXY_V2_SIGNATURE], 'v2', 'PROXY v2 signature'],
  ];
  test.each(cases)('%s', (_title, pieces, version, line) => {
    const { toServer, actions } = feed(pieces);
    expect(toServer.length).toBe(0);
    expect(refusals(actions)).toEqual([
      {
        event: 'refuse',
        session: 's1',
        kind: 'command',
        line,
        code: 'PROXY_HEADER_UNTRUSTED',
        message: `PROXY ${version} header from 198.18.0.5:40000, which is not in --proxy-protocol-from; closed`,
      },
    ]);
    expect(closes(actions)).toEqual([{ type: 'close', reason: 'PROXY header from an untrusted source', lastWords: '500 PROXY protocol header refused: this address is not a trusted load balancer' }]);
  });

  test('the first bytes are held only while they could open a header, then pass unchanged', () => {
    const { toServer, actions } = feed([Buffer.from('P'), Buffer.from('RO'), Buffer.from('T\r\nUSER x\r\n')]);
    expect(toServer.toString()).toBe('PROT\r\nUSER x\r\n');
    expect(closes(actions)).toEqual([]);
  });

  test('an empty first line (the v2 signature starts with CRLF) passes once the next byte rules v2 out', () => {
    const { toServer, actions } = feed([Buffer.from('\r\n'), Buffer.from('NOOP\r\n')]);
    expect(toServer.toString()).toBe('\r\nNOOP\r\n');
    expect(refusals(actions)).toEqual([]);
  });

  test('"PROXY" later in the session is an ordinary (unknown) command for the server', () => {
    const { toServer, actions } = feed([Buffer.from('NOOP\r\n'), Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n')]);
    expect(toServer.toString()).toBe('NOOP\r\nPROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n');
    expect(closes(actions)).toEqual([]);
  });
});

describe('first bytes that could have opened a header, then FIN', () => {
  test.each([['PRO'], ['PROXY'], ['\r\n\r\n\0']])('%j reaches the server with the end, as the partial line it is', (start) => {
    const stream = new ControlStream('s1', V4, { translator: RELAY, maxLineBytes: 512, clientLabel: '198.18.0.5:40000', now: () => 0 });
    const actions = [...stream.fromServer(Buffer.from('220 ready\r\n')), ...stream.fromClient(Buffer.from(start, 'latin1')), ...stream.peerEnded('client')];
    const toServer = Buffer.concat(actions.flatMap((a) => (a.type === 'write' && a.to === 'server' ? [a.bytes] : [])));
    expect(toServer.toString('latin1')).toBe(start);
    expect(actions.some((a) => a.type === 'end' && a.to === 'server')).toBe(true);
  });
});
