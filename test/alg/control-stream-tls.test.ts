/**
 * TLS termination in the control stream, without sockets: the stream
 * answers AUTH, PBSZ, PROT and CCC itself, asks the session to start TLS
 * right after its 234, and marks data requests with the client's PROT.
 */
import { describe, expect, test } from 'vitest';
import { ControlStream, type Action, type TlsTermination } from '../../src/alg/control-stream.js';
import { RELAY, V4, v4 } from './fixtures.js';

function stream(tls: Partial<TlsTermination> = {}): ControlStream {
  const s = new ControlStream('s1', V4, { translator: RELAY, maxLineBytes: 512, clientLabel: '198.18.0.5:40000', now: () => 0, tls: { require: false, secureFromStart: false, ...tls } });
  s.fromServer(Buffer.from('220 ready\r\n'));
  return s;
}

const writes = (actions: Action[], to: 'client' | 'server') =>
  actions.flatMap((a) => (a.type === 'write' && a.to === to ? [a.bytes.toString('latin1')] : [])).join('');
const refusals = (actions: Action[]) => actions.flatMap((a) => (a.type === 'event' && a.event.event === 'refuse' ? [a.event.code] : []));
const say = (s: ControlStream, line: string) => s.fromClient(Buffer.from(`${line}\r\n`));

describe('control stream with --tls terminate', () => {
  test('AUTH TLS: 234 from the gateway, then start-tls, nothing to the server', () => {
    const s = stream();
    const actions = say(s, 'AUTH TLS');
    expect(writes(actions, 'client')).toMatch(/^234 /);
    expect(writes(actions, 'server')).toBe('');
    const kinds = actions.map((a) => a.type);
    // The 234 is written before TLS starts: its bytes are the last clear ones.
    expect(kinds.indexOf('start-tls')).toBeGreaterThan(kinds.indexOf('write'));
  });

  test('AUTH SSL is accepted; a second AUTH and an unknown mechanism are not', () => {
    expect(writes(say(stream(), 'AUTH SSL'), 'client')).toMatch(/^234 /);
    const s = stream();
    say(s, 'AUTH TLS');
    expect(writes(say(s, 'AUTH TLS'), 'client')).toMatch(/^503 /);
    expect(writes(say(stream(), 'AUTH KERBEROS'), 'client')).toMatch(/^504 /);
  });

  test('the 234 waits its turn behind a reply the server owes, and TLS starts with it', () => {
    const s = stream();
    say(s, 'NOOP');
    const early = say(s, 'AUTH TLS');
    expect(early.some((a) => a.type === 'start-tls')).toBe(false);
    const later = s.fromServer(Buffer.from('200 ok\r\n'));
    expect(writes(later, 'client')).toMatch(/^200 ok\r\n234 /);
    expect(later.some((a) => a.type === 'start-tls')).toBe(true);
  });

  test('clear bytes behind AUTH (before the handshake) end the session with a code', () => {
    const s = stream();
    const actions = s.fromClient(Buffer.from('AUTH TLS\r\nUSER x\r\n'));
    expect(actions.some((a) => a.type === 'start-tls')).toBe(false);
    expect(refusals(actions)).toContain('TLS_HANDSHAKE_FAILED');
    expect(actions.some((a) => a.type === 'close')).toBe(true);
  });

  test('clear bytes that arrive while the 234 waits behind an owed reply are never run as commands (STARTTLS injection)', () => {
    const s = stream();
    say(s, 'NOOP');
    say(s, 'AUTH TLS');
    const injected = say(s, 'USER injected-in-clear');
    expect(writes(injected, 'server')).toBe('');
    const later = s.fromServer(Buffer.from('200 ok\r\n'));
    expect(writes(later, 'server')).toBe('');
    expect(later.some((a) => a.type === 'start-tls')).toBe(false);
    expect(refusals(later)).toContain('TLS_HANDSHAKE_FAILED');
    expect(later.some((a) => a.type === 'close')).toBe(true);
  });

  test('PBSZ and PROT need AUTH first, then are answered by the gateway', () => {
    const s = stream();
    expect(writes(say(s, 'PBSZ 0'), 'client')).toMatch(/^503 /);
    expect(writes(say(s, 'PROT P'), 'client')).toMatch(/^503 /);
    say(s, 'AUTH TLS');
    expect(writes(say(s, 'PROT P'), 'client')).toMatch(/^503 PROT needs PBSZ/);
    const pbsz = say(s, 'PBSZ 0');
    expect(writes(pbsz, 'client')).toBe('200 PBSZ=0\r\n');
    expect(writes(say(s, 'PROT P'), 'client')).toMatch(/^200 /);
    expect(writes(say(s, 'PROT E'), 'client')).toMatch(/^536 /);
  });

  test('data requests carry the PROT level the client asked for', () => {
    const s = stream({ secureFromStart: true });
    const clear = say(s, 'PORT 198,18,0,5,200,1');
    expect(clear.find((a) => a.type === 'open-data')).toMatchObject({ request: { protect: false } });
    const id = (clear.find((a) => a.type === 'open-data') as Extract<Action, { type: 'open-data' }>).request.id;
    s.dataOpened(id, v4('100.64.0.1', 40001));
    s.fromServer(Buffer.from('200 PORT ok\r\n'));
    say(s, 'PBSZ 0');
    say(s, 'PROT P');
    const protectedReq = say(s, 'PORT 198,18,0,5,200,2');
    expect(protectedReq.find((a) => a.type === 'open-data')).toMatchObject({ request: { protect: true } });
  });

  test('what a pre-login dialogue agreed (AUTH, PBSZ, PROT P before USER) holds in the stream', () => {
    const s = stream({ require: true, agreed: { secure: true, pbsz: true, protect: true } });
    const retr = say(s, 'PORT 198,18,0,5,200,1');
    expect(retr.find((a) => a.type === 'open-data')).toMatchObject({ request: { protect: true } });
    expect(writes(say(stream({ agreed: { secure: true, pbsz: true, protect: false } }), 'AUTH TLS'), 'client')).toMatch(/^503 /);
    expect(writes(say(stream({ agreed: { secure: true, pbsz: true, protect: false } }), 'PROT P'), 'client')).toMatch(/^200 /);
  });

  test('CCC is refused with TLS_CCC_REFUSED', () => {
    const s = stream({ secureFromStart: true });
    const actions = say(s, 'CCC');
    expect(writes(actions, 'client')).toMatch(/^533 /);
    expect(refusals(actions)).toEqual(['TLS_CCC_REFUSED']);
  });

  test('--require-tls: USER before AUTH, PROT C and transfers without PROT P are refused', () => {
    const s = stream({ require: true });
    const user = say(s, 'USER anonymous');
    expect(writes(user, 'client')).toMatch(/^530 /);
    expect(writes(user, 'server')).toBe('');
    say(s, 'AUTH TLS');
    expect(writes(say(s, 'USER anonymous'), 'server')).toBe('USER anonymous\r\n');
    s.fromServer(Buffer.from('331 password\r\n'));
    say(s, 'PBSZ 0');
    expect(writes(say(s, 'PROT C'), 'client')).toMatch(/^534 /);
    const retr = say(s, 'RETR f');
    expect(writes(retr, 'client')).toMatch(/^521 /);
    expect(refusals(retr)).toEqual(['TLS_REQUIRED']);
    say(s, 'PROT P');
    expect(writes(say(s, 'RETR f'), 'server')).toBe('RETR f\r\n');
  });

  test('FEAT lists AUTH TLS, PBSZ and PROT when the server does not; once only', () => {
    const s = stream();
    say(s, 'FEAT');
    const actions = s.fromServer(Buffer.from('211-Features:\r\n EPSV\r\n PBSZ\r\n211 End\r\n'));
    expect(writes(actions, 'client')).toBe('211-Features:\r\n EPSV\r\n PBSZ\r\n AUTH TLS\r\n PROT\r\n211 End\r\n');
    const rewrite = actions.find((a) => a.type === 'event' && a.event.event === 'rewrite');
    expect(rewrite).toMatchObject({ event: { kind: 'FEAT', delta: ' AUTH TLS\r\n PROT\r\n'.length } });
  });

  test('REIN over TLS is refused (it would drop TLS)', () => {
    const s = stream({ secureFromStart: true });
    const actions = say(s, 'REIN');
    expect(writes(actions, 'client')).toMatch(/^502 /);
    expect(writes(actions, 'server')).toBe('');
  });

  test('without termination AUTH goes to the translator as before (refused, 534)', () => {
    const s = new ControlStream('s1', V4, { translator: RELAY, maxLineBytes: 512, clientLabel: '198.18.0.5:40000', now: () => 0 });
    s.fromServer(Buffer.from('220 ready\r\n'));
    const actions = say(s, 'AUTH TLS');
    expect(writes(actions, 'client')).toMatch(/^534 /);
    expect(actions.some((a) => a.type === 'start-tls')).toBe(false);
  });
});
