/**
 * ControlTranslator: every rewrite and every refusal, table-driven, for IPv4,
 * IPv6 and IPv6-client/IPv4-server sessions; the renderers with exact
 * strings; and properties that the gateway never dials outside policy.
 *
 * Local replies are compared by code and reason code (their wording is for
 * people); a separate table pins the exact text of each kind of refusal.
 */
import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { parseCommand } from '../../src/protocol/command.js';
import { mustCidr, parseIp, sameAddress, type Cidr, type Endpoint, type Family } from '../../src/protocol/address.js';
import { find227, find228, find229, formatEprtArg, formatLprtArg, formatPortArg } from '../../src/protocol/endpoint.js';
import { REASON, type ReasonCode } from '../../src/codes.js';
import {
  renderActiveCommand,
  renderPassiveReply,
  type ActiveVerb,
  type ClientDecision,
  type PassiveVerb,
  type ReplyDecision,
  type SentCommand,
  type SessionAddresses,
  type TranslatorConfig,
} from '../../src/alg/translator.js';
import {
  CROSS,
  CROSS_V4_CLIENT,
  FORWARD_V4,
  PASS,
  RELAY,
  V4,
  V6,
  ip,
  relayWith,
  summarizeClient,
  summarizeReply,
  translator,
  v4,
  v6,
  type ClientSummary,
  type ReplySummary,
} from './fixtures.js';

// ---- expected-value shorthands ----------------------------------------------

const active = (target: Endpoint, verb: ActiveVerb, delimiter = '|'): ClientSummary => ({
  type: 'active',
  target,
  verb,
  delimiter,
  sent: { verb },
});
const refused = (code: number, refusal: ReasonCode): ClientSummary => ({ type: 'answer', code, refusal });
const forward = (verb: string): ClientSummary => ({ type: 'forward', sent: { verb } });
const passiveForward = (verb: PassiveVerb, epsvAll = false): ClientSummary => ({
  type: 'forward',
  sent: { verb, passiveAsked: verb, epsvAll },
});
const EPSV_AS_PASV: ClientSummary = {
  type: 'forward-as',
  text: 'PASV',
  reason: 'IPv6 client, IPv4 server: EPSV sent as PASV (RFC 6384)',
  sent: { verb: 'PASV', passiveAsked: 'EPSV' },
};

// LPRT arguments (RFC 1639) for the IPv6 addresses used below.
const LPRT_FD00_5 = '6,16,253,0,0,0,0,0,0,0,0,0,0,0,0,0,0,5,2,19,137'; // [fd00::5]:5001
const LPRT_FD00_99 = '6,16,253,0,0,0,0,0,0,0,0,0,0,0,0,0,0,153,2,19,137'; // [fd00::99]:5001
const LPRT_FD00_64_10 = '6,16,253,0,0,100,0,0,0,0,0,0,0,0,0,0,0,16,2,19,137'; // [fd00:64::10]:5001

interface CommandCase {
  title: string;
  input: string;
  expected: ClientSummary;
}

function decide(addrs: SessionAddresses, line: string, config: TranslatorConfig = RELAY): ClientDecision {
  return translator(addrs, config).onClientCommand(parseCommand(line));
}

// ---- client commands: IPv4 client, IPv4 server ----------------------------------

// Client 198.18.0.5 (outside), server 100.64.0.10 (inside).
const V4_COMMANDS: CommandCase[] = [
  // accepted: back to the client itself, unprivileged port
  { title: 'PORT to the client', input: 'PORT 198,18,0,5,19,137', expected: active(v4('198.18.0.5', 5001), 'PORT') },
  { title: 'lower-case verb', input: 'port 198,18,0,5,19,137', expected: active(v4('198.18.0.5', 5001), 'PORT') },
  { title: 'zero-padded PORT', input: 'PORT 198,018,000,005,019,137', expected: active(v4('198.18.0.5', 5001), 'PORT') },
  { title: 'PORT at 1024, the lowest allowed', input: 'PORT 198,18,0,5,4,0', expected: active(v4('198.18.0.5', 1024), 'PORT') },
  { title: 'PORT at 65535', input: 'PORT 198,18,0,5,255,255', expected: active(v4('198.18.0.5', 65535), 'PORT') },
  { title: 'EPRT |1|', input: 'EPRT |1|198.18.0.5|5001|', expected: active(v4('198.18.0.5', 5001), 'EPRT') },
  { title: 'EPRT with ! as delimiter', input: 'EPRT !1!198.18.0.5!5001!', expected: active(v4('198.18.0.5', 5001), 'EPRT', '!') },
  { title: 'EPRT after two spaces', input: 'EPRT  |1|198.18.0.5|5001|', expected: active(v4('198.18.0.5', 5001), 'EPRT') },
  { title: 'LPRT 4,4', input: 'LPRT 4,4,198,18,0,5,2,19,137', expected: active(v4('198.18.0.5', 5001), 'LPRT') },
  // the unspecified address means the client's own control address (lftp with an unbound data socket)
  { title: 'PORT 0,0,0,0 is the client itself', input: 'PORT 0,0,0,0,19,137', expected: active(v4('198.18.0.5', 5001), 'PORT') },
  { title: 'EPRT |1|0.0.0.0| is the client itself', input: 'EPRT |1|0.0.0.0|5001|', expected: active(v4('198.18.0.5', 5001), 'EPRT') },
  { title: 'LPRT 4,4 with 0.0.0.0 is the client itself', input: 'LPRT 4,4,0,0,0,0,2,19,137', expected: active(v4('198.18.0.5', 5001), 'LPRT') },
  { title: 'PORT 0,0,0,0 to a privileged port', input: 'PORT 0,0,0,0,0,25', expected: refused(501, REASON.PRIVILEGED_PORT) },
  { title: 'PORT 0,0,0,1 is another host', input: 'PORT 0,0,0,1,19,137', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'EPRT |2|::| from an IPv4 client', input: 'EPRT |2|::|5001|', expected: refused(522, REASON.FAMILY_UNSUPPORTED) },
  // anti-bounce (RFC 2577)
  { title: 'PORT to a third host', input: 'PORT 198,18,0,99,19,137', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'PORT to the server', input: 'PORT 100,64,0,10,19,137', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'PORT to loopback', input: 'PORT 127,0,0,1,19,137', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'PORT to a third host, privileged port: address first', input: 'PORT 198,18,0,99,0,25', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'EPRT to a third host', input: 'EPRT |1|198.18.0.99|5001|', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'LPRT to a third host', input: 'LPRT 4,4,198,18,0,99,2,19,137', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'LPRT 6,16 from an IPv4 client', input: `LPRT ${LPRT_FD00_5}`, expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'PORT to port 21', input: 'PORT 198,18,0,5,0,21', expected: refused(501, REASON.PRIVILEGED_PORT) },
  { title: 'PORT to 1023', input: 'PORT 198,18,0,5,3,255', expected: refused(501, REASON.PRIVILEGED_PORT) },
  { title: 'EPRT to port 80', input: 'EPRT |1|198.18.0.5|80|', expected: refused(501, REASON.PRIVILEGED_PORT) },
  { title: 'LPRT to port 22', input: 'LPRT 4,4,198,18,0,5,2,0,22', expected: refused(501, REASON.PRIVILEGED_PORT) },
  // RFC 2428 §2: a family the control connection does not use
  { title: 'EPRT |2| from an IPv4 client', input: 'EPRT |2|fd00::5|5001|', expected: refused(522, REASON.FAMILY_UNSUPPORTED) },
  // malformed
  { title: 'PORT without argument', input: 'PORT', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  { title: 'PORT with five numbers', input: 'PORT 198,18,0,5,19', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  { title: 'PORT to port 0', input: 'PORT 198,18,0,5,0,0', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  { title: 'PORT with a byte over 255', input: 'PORT 198,18,0,256,19,137', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  { title: 'PORT in host:port form', input: 'PORT 198.18.0.5:5001', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  { title: 'EPRT with family 3', input: 'EPRT |3|198.18.0.5|5001|', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  { title: 'EPRT without the closing delimiter', input: 'EPRT |1|198.18.0.5|5001', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  { title: 'EPRT with a digit as delimiter', input: 'EPRT 1119811810151500111', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  { title: 'EPRT |2| with a v4-mapped address', input: 'EPRT |2|::ffff:198.18.0.5|5001|', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  { title: 'LPRT cut short', input: 'LPRT 4,4,198,18,0,5,2,19', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  // passive: forwarded, remembering what the client asked
  { title: 'PASV', input: 'PASV', expected: passiveForward('PASV') },
  { title: 'lower-case pasv', input: 'pasv', expected: passiveForward('PASV') },
  { title: 'EPSV', input: 'EPSV', expected: passiveForward('EPSV') },
  { title: 'EPSV 1', input: 'EPSV 1', expected: passiveForward('EPSV') },
  { title: 'LPSV', input: 'LPSV', expected: passiveForward('LPSV') },
  { title: 'EPSV ALL', input: 'EPSV ALL', expected: passiveForward('EPSV', true) },
  { title: 'epsv all', input: 'epsv all', expected: passiveForward('EPSV', true) },
  // AUTH under tls: 'refuse'
  { title: 'AUTH TLS', input: 'AUTH TLS', expected: refused(534, REASON.TLS_REFUSED) },
  { title: 'AUTH SSL', input: 'AUTH SSL', expected: refused(534, REASON.TLS_REFUSED) },
  { title: 'auth tls', input: 'auth tls', expected: refused(534, REASON.TLS_REFUSED) },
  { title: 'AUTH TLS-C', input: 'AUTH TLS-C', expected: refused(534, REASON.TLS_REFUSED) },
  { title: 'AUTH TLS-P', input: 'AUTH TLS-P', expected: refused(534, REASON.TLS_REFUSED) },
  { title: 'AUTH GSSAPI is not TLS', input: 'AUTH GSSAPI', expected: forward('AUTH') },
  { title: 'AUTH TLSX is not TLS', input: 'AUTH TLSX', expected: forward('AUTH') },
  // everything else goes through
  { title: 'USER', input: 'USER anonymous', expected: forward('USER') },
  { title: 'PASS', input: 'PASS secret', expected: forward('PASS') },
  { title: 'RETR', input: 'RETR file.txt', expected: forward('RETR') },
  { title: 'LIST', input: 'LIST', expected: forward('LIST') },
  { title: 'leading spaces', input: '   NOOP', expected: forward('NOOP') },
  { title: 'garbage with numbers', input: 'xyzzy 198,18,0,99,0,25', expected: forward('XYZZY') },
  { title: 'PORTS is not PORT', input: 'PORTS 198,18,0,99,0,25', expected: forward('PORTS') },
  { title: 'EPSVALL is not EPSV ALL', input: 'EPSVALL', expected: forward('EPSVALL') },
  { title: 'empty line', input: '', expected: forward('') },
];

// ---- client commands: IPv6 client, IPv6 server ----------------------------------

// Client fd00::5, server fd00:64::10.
const V6_COMMANDS: CommandCase[] = [
  { title: 'EPRT |2| to the client', input: 'EPRT |2|fd00::5|5001|', expected: active(v6('fd00::5', 5001), 'EPRT') },
  { title: 'EPRT with the address spelled out in capitals', input: 'EPRT |2|FD00:0:0:0:0:0:0:5|5001|', expected: active(v6('fd00::5', 5001), 'EPRT') },
  { title: 'EPRT with ! as delimiter', input: 'EPRT !2!fd00::5!5001!', expected: active(v6('fd00::5', 5001), 'EPRT', '!') },
  { title: 'LPRT 6,16', input: `LPRT ${LPRT_FD00_5}`, expected: active(v6('fd00::5', 5001), 'LPRT') },
  { title: 'EPRT |2|::| is the client itself (lftp)', input: 'EPRT |2|::|5001|', expected: active(v6('fd00::5', 5001), 'EPRT') },
  { title: 'EPRT |2|0::0| is the client itself', input: 'EPRT |2|0::0|5001|', expected: active(v6('fd00::5', 5001), 'EPRT') },
  { title: 'EPRT |2|::| to a privileged port', input: 'EPRT |2|::|22|', expected: refused(501, REASON.PRIVILEGED_PORT) },
  { title: 'EPRT |1|0.0.0.0| from an IPv6 client', input: 'EPRT |1|0.0.0.0|5001|', expected: refused(522, REASON.FAMILY_UNSUPPORTED) },
  { title: 'PORT 0,0,0,0 cannot name an IPv6 client', input: 'PORT 0,0,0,0,19,137', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'EPRT to a third host', input: 'EPRT |2|fd00::99|5001|', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'EPRT to the server', input: 'EPRT |2|fd00:64::10|5001|', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'EPRT to ::1', input: 'EPRT |2|::1|5001|', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'LPRT to a third host', input: `LPRT ${LPRT_FD00_99}`, expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'LPRT to the server', input: `LPRT ${LPRT_FD00_64_10}`, expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'PORT cannot name an IPv6 client', input: 'PORT 198,18,0,5,19,137', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'LPRT 4,4 from an IPv6 client', input: 'LPRT 4,4,198,18,0,5,2,19,137', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'EPRT to port 21', input: 'EPRT |2|fd00::5|21|', expected: refused(501, REASON.PRIVILEGED_PORT) },
  { title: 'EPRT to 1023', input: 'EPRT |2|fd00::5|1023|', expected: refused(501, REASON.PRIVILEGED_PORT) },
  { title: 'EPRT |1| from an IPv6 client', input: 'EPRT |1|198.18.0.5|5001|', expected: refused(522, REASON.FAMILY_UNSUPPORTED) },
  { title: 'EPRT without a port', input: 'EPRT |2|fd00::5|', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  { title: 'EPRT with a zone id', input: 'EPRT |2|fe80::1%eth0|5001|', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  { title: 'EPRT with brackets', input: 'EPRT |2|[fd00::5]|5001|', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  { title: 'PASV cannot describe IPv6', input: 'PASV', expected: refused(500, REASON.FAMILY_UNSUPPORTED) },
  { title: 'EPSV', input: 'EPSV', expected: passiveForward('EPSV') },
  { title: 'EPSV 2', input: 'EPSV 2', expected: passiveForward('EPSV') },
  { title: 'LPSV', input: 'LPSV', expected: passiveForward('LPSV') },
  { title: 'EPSV ALL', input: 'EPSV ALL', expected: passiveForward('EPSV', true) },
  { title: 'AUTH TLS', input: 'AUTH TLS', expected: refused(534, REASON.TLS_REFUSED) },
  { title: 'USER', input: 'USER anonymous', expected: forward('USER') },
  { title: 'empty line', input: '', expected: forward('') },
];

// ---- client commands: IPv6 client, IPv4 server (RFC 6384) -------------------------

// Client fd00::5, server 100.64.0.10.
const CROSS_COMMANDS: CommandCase[] = [
  { title: 'EPRT |2| to the client', input: 'EPRT |2|fd00::5|5001|', expected: active(v6('fd00::5', 5001), 'EPRT') },
  { title: 'EPRT with ! as delimiter', input: 'EPRT !2!fd00::5!5001!', expected: active(v6('fd00::5', 5001), 'EPRT', '!') },
  { title: 'LPRT 6,16', input: `LPRT ${LPRT_FD00_5}`, expected: active(v6('fd00::5', 5001), 'LPRT') },
  { title: 'EPRT |2|::| is the client itself', input: 'EPRT |2|::|5001|', expected: active(v6('fd00::5', 5001), 'EPRT') },
  { title: 'PORT cannot name an IPv6 client', input: 'PORT 198,18,0,5,19,137', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'PORT to the server', input: 'PORT 100,64,0,10,19,137', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'EPRT to a third host', input: 'EPRT |2|fd00::99|5001|', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  { title: 'EPRT |1| to the server', input: 'EPRT |1|100.64.0.10|5001|', expected: refused(522, REASON.FAMILY_UNSUPPORTED) },
  { title: 'EPRT to 1023', input: 'EPRT |2|fd00::5|1023|', expected: refused(501, REASON.PRIVILEGED_PORT) },
  { title: 'LPRT cut short', input: 'LPRT 6,16,253,0', expected: refused(501, REASON.MALFORMED_ENDPOINT) },
  { title: 'PASV cannot describe IPv6', input: 'PASV', expected: refused(500, REASON.FAMILY_UNSUPPORTED) },
  { title: 'EPSV goes out as PASV', input: 'EPSV', expected: EPSV_AS_PASV },
  { title: 'lower-case epsv goes out as PASV', input: 'epsv', expected: EPSV_AS_PASV },
  { title: 'EPSV 2 goes out as PASV', input: 'EPSV 2', expected: EPSV_AS_PASV },
  { title: 'EPSV ALL is answered by the gateway', input: 'EPSV ALL', expected: { type: 'answer', code: 200, epsvAll: true } },
  { title: 'LPSV is forwarded (228 can carry IPv4)', input: 'LPSV', expected: passiveForward('LPSV') },
  { title: 'AUTH TLS', input: 'AUTH TLS', expected: refused(534, REASON.TLS_REFUSED) },
  { title: 'RETR', input: 'RETR file.txt', expected: forward('RETR') },
];

const SESSIONS = [
  { name: 'IPv4 client, IPv4 server', addrs: V4, cases: V4_COMMANDS },
  { name: 'IPv6 client, IPv6 server', addrs: V6, cases: V6_COMMANDS },
  { name: 'IPv6 client, IPv4 server', addrs: CROSS, cases: CROSS_COMMANDS },
];

describe.each(SESSIONS)('onClientCommand, $name', ({ addrs, cases }) => {
  test.each(cases)('$title: $input', ({ input, expected }) => {
    expect(summarizeClient(decide(addrs, input))).toEqual(expected);
  });

  test('every local answer is one line with a reply code', () => {
    for (const { input } of cases) {
      const d = decide(addrs, input);
      if (d.type === 'answer') expect(d.reply, input).toMatch(/^[2-5]\d\d [^\r\n\0]+$/);
    }
  });

  test('refusals leave the session state alone', () => {
    const t = translator(addrs);
    for (const { input } of cases.filter((c) => c.expected.type === 'answer' && c.expected.refusal)) {
      t.onClientCommand(parseCommand(input));
    }
    expect(t.epsvAll).toBe(false);
  });
});

describe('onClientCommand: exact local replies', () => {
  test.each([
    {
      title: 'bounce',
      input: { addrs: V4, line: 'PORT 198,18,0,99,19,137' },
      expected: '500 PORT refused: address 198.18.0.99 is not your own (198.18.0.5); refused as a bounce (RFC 2577)',
    },
    {
      title: 'privileged port',
      input: { addrs: V4, line: 'EPRT |1|198.18.0.5|21|' },
      expected: '501 EPRT refused: port 21 is privileged (< 1024); refused (RFC 2577)',
    },
    { title: 'malformed', input: { addrs: V4, line: 'LPRT 1,2,3' }, expected: '501 Syntax error in LPRT argument' },
    { title: 'EPRT |2| on IPv4', input: { addrs: V4, line: 'EPRT |2|fd00::5|5001|' }, expected: '522 Network protocol not supported, use (1)' },
    { title: 'EPRT |1| on IPv6', input: { addrs: CROSS, line: 'EPRT |1|198.18.0.5|5001|' }, expected: '522 Network protocol not supported, use (2)' },
    { title: 'PASV on IPv6', input: { addrs: V6, line: 'PASV' }, expected: '500 PASV cannot describe an IPv6 address; use EPSV' },
    { title: 'cross-family EPSV ALL', input: { addrs: CROSS, line: 'EPSV ALL' }, expected: '200 EPSV ALL command successful.' },
    {
      title: 'AUTH TLS',
      input: { addrs: V4, line: 'AUTH TLS' },
      expected: '534 TLS is not available through this FTP gateway; use plain FTP or connect directly',
    },
  ])('$title', ({ input, expected }) => {
    const d = decide(input.addrs, input.line);
    expect(d.type).toBe('answer');
    expect((d as Extract<ClientDecision, { type: 'answer' }>).reply).toBe(expected);
  });
});

// ---- EPSV ALL (RFC 2428 §4) --------------------------------------------------------

describe.each([
  { name: 'IPv4 client, IPv4 server', addrs: V4, epsv: passiveForward('EPSV') },
  { name: 'IPv6 client, IPv6 server', addrs: V6, epsv: passiveForward('EPSV') },
  { name: 'IPv6 client, IPv4 server', addrs: CROSS, epsv: EPSV_AS_PASV },
])('after EPSV ALL, $name', ({ addrs, epsv }) => {
  const afterEpsvAll = (line: string): ClientDecision => {
    const t = translator(addrs);
    t.onClientCommand(parseCommand('EPSV ALL'));
    expect(t.epsvAll).toBe(true);
    return t.onClientCommand(parseCommand(line));
  };
  test.each<CommandCase>([
    { title: 'PORT', input: 'PORT 198,18,0,5,19,137', expected: refused(501, REASON.EPSV_ALL_ACTIVE) },
    { title: 'EPRT to the client', input: `EPRT ${formatEprtArg({ ...addrs.client, port: 5001 })}`, expected: refused(501, REASON.EPSV_ALL_ACTIVE) },
    { title: 'LPRT to the client', input: `LPRT ${formatLprtArg({ ...addrs.client, port: 5001 })}`, expected: refused(501, REASON.EPSV_ALL_ACTIVE) },
    { title: 'malformed PORT', input: 'PORT x', expected: refused(501, REASON.EPSV_ALL_ACTIVE) },
    { title: 'PASV', input: 'PASV', expected: refused(501, REASON.EPSV_ALL_ACTIVE) },
    { title: 'LPSV', input: 'LPSV', expected: refused(501, REASON.EPSV_ALL_ACTIVE) },
    { title: 'EPSV still works', input: 'EPSV', expected: epsv },
    { title: 'USER still forwarded', input: 'USER anonymous', expected: forward('USER') },
    { title: 'AUTH TLS still refused as TLS', input: 'AUTH TLS', expected: refused(534, REASON.TLS_REFUSED) },
  ])('$title: $input', ({ input, expected }) => {
    expect(summarizeClient(afterEpsvAll(input))).toEqual(expected);
  });

  test('the refusal names the verb', () => {
    const d = afterEpsvAll('PASV');
    expect(d).toEqual({
      type: 'answer',
      reply: '501 PASV not allowed after EPSV ALL',
      refusal: { code: REASON.EPSV_ALL_ACTIVE, message: 'PASV after EPSV ALL (RFC 2428 §4)' },
    });
  });
});

// ---- AUTH under tls: 'passthrough' ----------------------------------------------

describe('onClientCommand, tls passthrough', () => {
  const config: TranslatorConfig = { ...RELAY, tls: 'passthrough' };
  test.each<CommandCase>([
    { title: 'AUTH TLS', input: 'AUTH TLS', expected: { type: 'tls-passthrough', sent: { verb: 'AUTH' } } },
    { title: 'AUTH SSL', input: 'AUTH SSL', expected: { type: 'tls-passthrough', sent: { verb: 'AUTH' } } },
    { title: 'auth tls-c', input: 'auth tls-c', expected: { type: 'tls-passthrough', sent: { verb: 'AUTH' } } },
    { title: 'AUTH GSSAPI', input: 'AUTH GSSAPI', expected: forward('AUTH') },
    { title: 'PORT still checked', input: 'PORT 198,18,0,99,19,137', expected: refused(500, REASON.BOUNCE_ADDRESS) },
  ])('$title: $input', ({ input, expected }) => {
    expect(summarizeClient(decide(V4, input, config))).toEqual(expected);
  });
});

// ---- IPv4 client, IPv6 server ----------------------------------------------------

describe('onClientCommand, IPv4 client, IPv6 server', () => {
  test.each<CommandCase>([
    { title: 'PORT to the client', input: 'PORT 198,18,0,5,19,137', expected: active(v4('198.18.0.5', 5001), 'PORT') },
    { title: 'EPRT |2| from an IPv4 client', input: 'EPRT |2|fd00::5|5001|', expected: refused(522, REASON.FAMILY_UNSUPPORTED) },
    { title: 'PASV is forwarded', input: 'PASV', expected: passiveForward('PASV') },
  ])('$title: $input', ({ input, expected }) => {
    expect(summarizeClient(decide(CROSS_V4_CLIENT, input))).toEqual(expected);
  });

  // The EPSV→PASV translation (RFC 6384) is for an IPv6 client and an
  // IPv4-only server only: an IPv6 server speaks EPSV (RFC 2428), and a 227
  // could not describe it.
  test.each<CommandCase>([
    { title: 'EPSV is forwarded as EPSV', input: 'EPSV', expected: passiveForward('EPSV') },
    { title: 'EPSV ALL is forwarded', input: 'EPSV ALL', expected: passiveForward('EPSV', true) },
  ])('$title: $input', ({ input, expected }) => {
    expect(summarizeClient(decide(CROSS_V4_CLIENT, input))).toEqual(expected);
  });
});

// ---- server replies --------------------------------------------------------------

const pasvAsked = (verb: PassiveVerb): SentCommand => ({ verb, passiveAsked: verb, epsvAll: false });
const EPSV_SENT_AS_PASV: SentCommand = { verb: 'PASV', passiveAsked: 'EPSV' };

interface ReplyCase {
  title: string;
  input: { code: number; lines: string[]; sent?: SentCommand };
  expected: ReplySummary;
}

const inPlace = (lineIndex: number, start: number, end: number, delimiter?: string) => ({
  lineIndex,
  start,
  end,
  ...(delimiter ? { delimiter } : {}),
});

const passive = (
  kind: '227' | '228' | '229',
  dial: Endpoint,
  answerAs: '227' | '228' | '229',
  place?: ReturnType<typeof inPlace>,
  refusal?: ReasonCode,
): ReplySummary => ({ type: 'passive', dial, answerAs, kind, ...(place ? { inPlace: place } : {}), ...(refusal ? { refusal } : {}) });

const FOREIGN = REASON.FOREIGN_PASSIVE_ADDRESS;
const SERVER_5001 = v4('100.64.0.10', 5001);
const UNPARSED = (kind: string): ReplySummary => ({ type: 'unparsed', kind });
const FORWARD: ReplySummary = { type: 'forward' };
/** Relay mode: a passive reply the gateway cannot rewrite never reaches the client; it gets 425. */
const UNTRANSLATABLE = (kind: string): ReplySummary => ({ type: 'answer-instead', code: 425, refusal: REASON.UNTRANSLATABLE_PASSIVE_REPLY, kind });
/** Relay mode: a passive reply naming a privileged port is not dialled (RFC 2577); the client gets 425. */
const PRIVILEGED = (kind: string): ReplySummary => ({ type: 'answer-instead', code: 425, refusal: REASON.PRIVILEGED_PORT, kind });

function reply(addrs: SessionAddresses, config: TranslatorConfig, input: ReplyCase['input']): ReplyDecision {
  return translator(addrs, config).onServerReply(input.code, input.lines, input.sent);
}

// Relay mode, client 198.18.0.5, server 100.64.0.10.
const V4_RELAY_REPLIES: ReplyCase[] = [
  {
    title: '227 for the server itself',
    input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19,137).'], sent: pasvAsked('PASV') },
    expected: passive('227', SERVER_5001, '227', inPlace(0, 27, 45)),
  },
  {
    title: 'unsolicited 227',
    input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19,137).'] },
    expected: passive('227', SERVER_5001, '227', inPlace(0, 27, 45)),
  },
  {
    title: '227 for a third host outside',
    input: { code: 227, lines: ['227 Entering Passive Mode (198,18,0,99,19,137).'], sent: pasvAsked('PASV') },
    expected: passive('227', SERVER_5001, '227', inPlace(0, 27, 45), FOREIGN),
  },
  {
    title: '227 for another inside host',
    input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,99,19,137).'], sent: pasvAsked('PASV') },
    expected: passive('227', SERVER_5001, '227', inPlace(0, 27, 45), FOREIGN),
  },
  {
    title: '227 for loopback (SSRF)',
    input: { code: 227, lines: ['227 Entering Passive Mode (127,0,0,1,19,137).'], sent: pasvAsked('PASV') },
    expected: passive('227', SERVER_5001, '227', inPlace(0, 27, 43), FOREIGN),
  },
  {
    title: '227 for 0.0.0.0',
    input: { code: 227, lines: ['227 Entering Passive Mode (0,0,0,0,19,137).'], sent: pasvAsked('PASV') },
    expected: passive('227', SERVER_5001, '227', inPlace(0, 27, 41), FOREIGN),
  },
  {
    title: '227 without parentheses',
    input: { code: 227, lines: ['227 Entering Passive Mode 100,64,0,10,19,137'], sent: pasvAsked('PASV') },
    expected: passive('227', SERVER_5001, '227', inPlace(0, 26, 44)),
  },
  {
    title: '227 =h,h,h,h,p,p',
    input: { code: 227, lines: ['227 =100,64,0,10,19,137'], sent: pasvAsked('PASV') },
    expected: passive('227', SERVER_5001, '227', inPlace(0, 5, 23)),
  },
  {
    title: '227 with spaces after the commas',
    input: { code: 227, lines: ['227 Entering Passive Mode (100, 64, 0, 10, 19, 137)'], sent: pasvAsked('PASV') },
    expected: passive('227', SERVER_5001, '227', inPlace(0, 27, 50)),
  },
  {
    title: 'multi-line 227, endpoint on the 2nd line',
    input: { code: 227, lines: ['227-Entering Passive Mode', '227 (100,64,0,10,19,137)'], sent: pasvAsked('PASV') },
    expected: passive('227', SERVER_5001, '227', inPlace(1, 5, 23)),
  },
  {
    title: 'multi-line 227, endpoint on a 227- line in the middle',
    input: { code: 227, lines: ['227-Here it comes', '227-Entering Passive Mode (100,64,0,10,19,137).', '227 OK'], sent: pasvAsked('PASV') },
    expected: passive('227', SERVER_5001, '227', inPlace(1, 27, 45)),
  },
  {
    title: 'multi-line 227, endpoint on an indented continuation line',
    input: { code: 227, lines: ['227-Here it comes', ' Entering Passive Mode (100,64,0,10,19,137)', '227 OK'], sent: pasvAsked('PASV') },
    expected: passive('227', SERVER_5001, '227', inPlace(1, 24, 42)),
  },
  {
    title: '229 for the server',
    input: { code: 229, lines: ['229 Entering Extended Passive Mode (|||5001|)'], sent: pasvAsked('EPSV') },
    expected: passive('229', SERVER_5001, '229', inPlace(0, 39, 43, '|')),
  },
  {
    title: '229 with ! as delimiter',
    input: { code: 229, lines: ['229 Entering Extended Passive Mode (!!!5001!)'], sent: pasvAsked('EPSV') },
    expected: passive('229', SERVER_5001, '229', inPlace(0, 39, 43, '!')),
  },
  {
    title: '228 for the server',
    input: { code: 228, lines: ['228 Entering Long Passive Mode (4,4,100,64,0,10,2,19,137)'], sent: pasvAsked('LPSV') },
    expected: passive('228', SERVER_5001, '228', inPlace(0, 32, 56)),
  },
  {
    title: '228 for a third host',
    input: { code: 228, lines: ['228 Entering Long Passive Mode (4,4,198,18,0,99,2,19,137)'], sent: pasvAsked('LPSV') },
    expected: passive('228', SERVER_5001, '228', inPlace(0, 32, 56), FOREIGN),
  },
  {
    title: '227 to EPSV is answered as 229',
    input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19,137).'], sent: pasvAsked('EPSV') },
    expected: passive('227', SERVER_5001, '229'),
  },
  {
    title: '227 to LPSV is answered as 228',
    input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19,137).'], sent: pasvAsked('LPSV') },
    expected: passive('227', SERVER_5001, '228'),
  },
  { title: '227 Logout.', input: { code: 227, lines: ['227 Logout.'], sent: { verb: 'QUIT' } }, expected: UNTRANSLATABLE('227') },
  { title: 'multi-line 227 without an endpoint on any line', input: { code: 227, lines: ['227-Entering Passive Mode', '227 (100.64.0.10:5001)'], sent: pasvAsked('PASV') }, expected: UNTRANSLATABLE('227') },
  { title: '227 to port 21 (the server\'s own control port)', input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,0,21)'], sent: pasvAsked('PASV') }, expected: PRIVILEGED('227') },
  { title: '227 to port 1023', input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,3,255)'], sent: pasvAsked('PASV') }, expected: PRIVILEGED('227') },
  { title: '227 to port 1024, the lowest dialled', input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,4,0)'], sent: pasvAsked('PASV') }, expected: passive('227', v4('100.64.0.10', 1024), '227', inPlace(0, 27, 42)) },
  { title: '227 for a third host, port 25: refused, not redirected to the server', input: { code: 227, lines: ['227 Entering Passive Mode (198,18,0,99,0,25)'], sent: pasvAsked('PASV') }, expected: PRIVILEGED('227') },
  { title: '229 to port 22', input: { code: 229, lines: ['229 Entering Extended Passive Mode (|||22|)'], sent: pasvAsked('EPSV') }, expected: PRIVILEGED('229') },
  { title: '228 to port 25', input: { code: 228, lines: ['228 Entering Long Passive Mode (4,4,100,64,0,10,2,0,25)'], sent: pasvAsked('LPSV') }, expected: PRIVILEGED('228') },
  { title: '227 to port 80 asked as EPSV', input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,0,80)'], sent: pasvAsked('EPSV') }, expected: PRIVILEGED('227') },
  { title: '227 to port 0', input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,0,0)'] }, expected: UNTRANSLATABLE('227') },
  { title: '227 with a byte over 255', input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,256,19,137)'] }, expected: UNTRANSLATABLE('227') },
  { title: '227 with five numbers', input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19)'] }, expected: UNTRANSLATABLE('227') },
  { title: '229 to port 70000', input: { code: 229, lines: ['229 Entering Extended Passive Mode (|||70000|)'] }, expected: UNTRANSLATABLE('229') },
  { title: '229 with an address', input: { code: 229, lines: ['229 Entering Extended Passive Mode (|1|100.64.0.10|5001|)'] }, expected: UNTRANSLATABLE('229') },
  { title: '228 without numbers', input: { code: 228, lines: ['228 Entering Long Passive Mode'] }, expected: UNTRANSLATABLE('228') },
  { title: '200 naming an endpoint', input: { code: 200, lines: ['200 PORT 100,64,0,10,19,137 ok'], sent: { verb: 'PORT' } }, expected: FORWARD },
  { title: '150', input: { code: 150, lines: ['150 Opening data connection (100,64,0,10,19,137)'], sent: { verb: 'RETR' } }, expected: FORWARD },
  { title: '226', input: { code: 226, lines: ['226 Transfer complete'], sent: { verb: 'RETR' } }, expected: FORWARD },
  { title: 'greeting', input: { code: 220, lines: ['220 FTP server ready'] }, expected: FORWARD },
  { title: '500 naming an endpoint', input: { code: 500, lines: ['500 Unknown command (100,64,0,10,19,137)'] }, expected: FORWARD },
  { title: '425', input: { code: 425, lines: ["425 Can't open data connection"], sent: { verb: 'LIST' } }, expected: FORWARD },
  { title: 'multi-line 211', input: { code: 211, lines: ['211-Features:', ' EPSV', '211 End'], sent: { verb: 'FEAT' } }, expected: FORWARD },
];

// Relay mode, IPv6 on both sides: client fd00::5, server fd00:64::10.
const V6_RELAY_REPLIES: ReplyCase[] = [
  {
    title: '229 for the server',
    input: { code: 229, lines: ['229 Entering Extended Passive Mode (|||5001|)'], sent: pasvAsked('EPSV') },
    expected: passive('229', v6('fd00:64::10', 5001), '229', inPlace(0, 39, 43, '|')),
  },
  {
    title: '228 for the server',
    input: { code: 228, lines: [`228 Entering Long Passive Mode (${LPRT_FD00_64_10})`], sent: pasvAsked('LPSV') },
    expected: passive('228', v6('fd00:64::10', 5001), '228', inPlace(0, 32, 32 + LPRT_FD00_64_10.length)),
  },
  {
    title: '228 for a third host',
    input: { code: 228, lines: [`228 Entering Long Passive Mode (${LPRT_FD00_99})`], sent: pasvAsked('LPSV') },
    expected: passive('228', v6('fd00:64::10', 5001), '228', inPlace(0, 32, 32 + LPRT_FD00_99.length), FOREIGN),
  },
  {
    title: 'unsolicited 227 names IPv4: dial the server, answer as 229',
    input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19,137).'] },
    expected: passive('227', v6('fd00:64::10', 5001), '229', undefined, FOREIGN),
  },
  { title: '229 Logout', input: { code: 229, lines: ['229 Logout'] }, expected: UNTRANSLATABLE('229') },
  { title: '226', input: { code: 226, lines: ['226 Transfer complete'], sent: { verb: 'RETR' } }, expected: FORWARD },
];

// Relay mode, client fd00::5, server 100.64.0.10.
const CROSS_RELAY_REPLIES: ReplyCase[] = [
  {
    title: '227 to the EPSV sent as PASV: answered as 229',
    input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19,137).'], sent: EPSV_SENT_AS_PASV },
    expected: passive('227', SERVER_5001, '229'),
  },
  {
    title: '227 for a third host, to EPSV',
    input: { code: 227, lines: ['227 Entering Passive Mode (198,18,0,99,19,137).'], sent: EPSV_SENT_AS_PASV },
    expected: passive('227', SERVER_5001, '229', undefined, FOREIGN),
  },
  {
    title: 'multi-line 227 to EPSV',
    input: { code: 227, lines: ['227-Entering Passive Mode', '227 (100,64,0,10,19,137)'], sent: EPSV_SENT_AS_PASV },
    expected: passive('227', SERVER_5001, '229'),
  },
  {
    title: 'unsolicited 227: an IPv6 client cannot use it',
    input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19,137).'] },
    expected: passive('227', SERVER_5001, '229'),
  },
  {
    title: '228 to LPSV',
    input: { code: 228, lines: ['228 Entering Long Passive Mode (4,4,100,64,0,10,2,19,137)'], sent: pasvAsked('LPSV') },
    expected: passive('228', SERVER_5001, '228', inPlace(0, 32, 56)),
  },
  {
    title: '229 from a server that knows EPSV',
    input: { code: 229, lines: ['229 Entering Extended Passive Mode (|||5001|)'], sent: EPSV_SENT_AS_PASV },
    expected: passive('229', SERVER_5001, '229', inPlace(0, 39, 43, '|')),
  },
  { title: '227 Logout.', input: { code: 227, lines: ['227 Logout.'], sent: EPSV_SENT_AS_PASV }, expected: UNTRANSLATABLE('227') },
];

describe.each([
  { name: 'relay, IPv4 client, IPv4 server', addrs: V4, cases: V4_RELAY_REPLIES },
  { name: 'relay, IPv6 client, IPv6 server', addrs: V6, cases: V6_RELAY_REPLIES },
  { name: 'relay, IPv6 client, IPv4 server', addrs: CROSS, cases: CROSS_RELAY_REPLIES },
])('onServerReply, $name', ({ addrs, cases }) => {
  test.each(cases)('$title', ({ input, expected }) => {
    expect(summarizeReply(reply(addrs, RELAY, input))).toEqual(expected);
  });

  test('an in-place span covers exactly the encoded endpoint', () => {
    for (const { input } of cases) {
      const d = reply(addrs, RELAY, input);
      if (d.type !== 'passive' || !d.inPlace) continue;
      const text = input.lines[d.inPlace.lineIndex]!.slice(d.inPlace.start, d.inPlace.end);
      if (d.kind === '229') expect(text, input.lines.join('|')).toMatch(/^\d+$/);
      else expect(text.replace(/\s/g, ''), input.lines.join('|')).toMatch(/^\d{1,3}(,\d{1,3})+$/);
    }
  });
});

describe('onServerReply, relay with serverNetworks', () => {
  test.each<ReplyCase & { networks: string[]; addrs?: SessionAddresses }>([
    {
      title: '227 inside the declared network: dialled as announced',
      networks: ['100.64.0.0/24'],
      input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,99,19,137).'], sent: pasvAsked('PASV') },
      expected: passive('227', v4('100.64.0.99', 5001), '227', inPlace(0, 27, 45)),
    },
    {
      title: '227 just outside the declared network',
      networks: ['100.64.0.0/24'],
      input: { code: 227, lines: ['227 Entering Passive Mode (100,64,1,99,19,137).'], sent: pasvAsked('PASV') },
      expected: passive('227', SERVER_5001, '227', inPlace(0, 27, 45), FOREIGN),
    },
    {
      title: '227 in the second of two networks',
      networks: ['100.64.0.0/24', '198.18.0.0/15'],
      input: { code: 227, lines: ['227 Entering Passive Mode (198,19,7,99,19,137).'], sent: pasvAsked('PASV') },
      expected: passive('227', v4('198.19.7.99', 5001), '227', inPlace(0, 27, 45)),
    },
    {
      title: '227 for loopback is still refused',
      networks: ['100.64.0.0/10'],
      input: { code: 227, lines: ['227 Entering Passive Mode (127,0,0,1,19,137).'], sent: pasvAsked('PASV') },
      expected: passive('227', SERVER_5001, '227', inPlace(0, 27, 43), FOREIGN),
    },
    {
      title: '228 inside an IPv6 network',
      networks: ['fd00:64::/64'],
      addrs: V6,
      input: { code: 228, lines: [`228 Entering Long Passive Mode (${formatLprtArg(v6('fd00:64::99', 5001))})`], sent: pasvAsked('LPSV') },
      expected: passive('228', v6('fd00:64::99', 5001), '228', inPlace(0, 32, 32 + formatLprtArg(v6('fd00:64::99', 5001)).length)),
    },
  ])('$title', ({ networks, addrs, input, expected }) => {
    expect(summarizeReply(reply(addrs ?? V4, relayWith(...networks), input))).toEqual(expected);
  });
});

// Pass mode, client 100.64.0.5 (inside), server 198.18.0.10 (outside, behind its own NAT).
const PASS_REPLIES: ReplyCase[] = [
  {
    title: '227 for a shared (CGN) address',
    input: { code: 227, lines: ['227 Entering Passive Mode (100,64,7,10,19,137).'], sent: pasvAsked('PASV') },
    expected: { type: 'rewrite', lineIndex: 0, text: '227 Entering Passive Mode (198,18,0,10,19,137).', kind: '227' },
  },
  {
    title: '227 for a 10/8 address',
    input: { code: 227, lines: ['227 Entering Passive Mode (10,0,0,10,19,137).'], sent: pasvAsked('PASV') },
    expected: { type: 'rewrite', lineIndex: 0, text: '227 Entering Passive Mode (198,18,0,10,19,137).', kind: '227' },
  },
  {
    title: '227 for a 192.168/16 address',
    input: { code: 227, lines: ['227 Entering Passive Mode (192,168,1,10,19,137).'] },
    expected: { type: 'rewrite', lineIndex: 0, text: '227 Entering Passive Mode (198,18,0,10,19,137).', kind: '227' },
  },
  {
    title: '227 for a 172.16/12 address',
    input: { code: 227, lines: ['227 Entering Passive Mode (172,31,255,1,19,137).'] },
    expected: { type: 'rewrite', lineIndex: 0, text: '227 Entering Passive Mode (198,18,0,10,19,137).', kind: '227' },
  },
  {
    title: '227 for loopback',
    input: { code: 227, lines: ['227 Entering Passive Mode (127,0,0,1,19,137).'] },
    expected: { type: 'rewrite', lineIndex: 0, text: '227 Entering Passive Mode (198,18,0,10,19,137).', kind: '227' },
  },
  {
    title: '227 for 0.0.0.0',
    input: { code: 227, lines: ['227 Entering Passive Mode (0,0,0,0,19,137).'] },
    expected: { type: 'rewrite', lineIndex: 0, text: '227 Entering Passive Mode (198,18,0,10,19,137).', kind: '227' },
  },
  {
    title: '227 =h,h,h,h,p,p keeps its form',
    input: { code: 227, lines: ['227 =100,64,7,10,19,137'] },
    expected: { type: 'rewrite', lineIndex: 0, text: '227 =198,18,0,10,19,137', kind: '227' },
  },
  {
    title: '227 with spaces and zero padding',
    input: { code: 227, lines: ['227 Entering Passive Mode (100, 064, 007, 010, 19, 137). Go'] },
    expected: { type: 'rewrite', lineIndex: 0, text: '227 Entering Passive Mode (198,18,0,10,19,137). Go', kind: '227' },
  },
  {
    title: 'multi-line 227, endpoint on the 2nd line',
    input: { code: 227, lines: ['227-Entering Passive Mode', '227 (100,64,7,10,19,137)'] },
    expected: { type: 'rewrite', lineIndex: 1, text: '227 (198,18,0,10,19,137)', kind: '227' },
  },
  { title: '227 for the server itself', input: { code: 227, lines: ['227 Entering Passive Mode (198,18,0,10,19,137).'] }, expected: FORWARD },
  { title: '227 for another outside address', input: { code: 227, lines: ['227 Entering Passive Mode (198,18,0,99,19,137).'] }, expected: FORWARD },
  { title: '227 for a documentation address', input: { code: 227, lines: ['227 Entering Passive Mode (192,0,2,1,19,137).'] }, expected: FORWARD },
  { title: '229', input: { code: 229, lines: ['229 Entering Extended Passive Mode (|||5001|)'], sent: pasvAsked('EPSV') }, expected: FORWARD },
  { title: '228 for a site-local address', input: { code: 228, lines: ['228 Entering Long Passive Mode (4,4,100,64,7,10,2,19,137)'] }, expected: FORWARD },
  { title: '227 Logout.', input: { code: 227, lines: ['227 Logout.'] }, expected: UNPARSED('227') },
  { title: '200', input: { code: 200, lines: ['200 PORT command successful'] }, expected: FORWARD },
];

describe('onServerReply, pass', () => {
  test.each(PASS_REPLIES)('$title', ({ input, expected }) => {
    expect(summarizeReply(reply(FORWARD_V4, PASS, input))).toEqual(expected);
  });

  test('the rewrite says why', () => {
    const d = reply(FORWARD_V4, PASS, { code: 227, lines: ['227 Entering Passive Mode (100,64,7,10,19,137).'] });
    expect(d).toMatchObject({
      type: 'rewrite',
      reason: 'server announced site-local 100.64.7.10, not its control address 198.18.0.10: server behind NAT',
    });
  });

  test.each<ReplyCase & { addrs: SessionAddresses }>([
    {
      title: 'server on a site-local address announcing itself',
      addrs: { client: ip('100.64.0.5'), server: ip('100.64.0.10') },
      input: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19,137).'] },
      expected: FORWARD,
    },
    {
      title: 'server on a site-local address announcing another',
      addrs: { client: ip('100.64.0.5'), server: ip('100.64.0.10') },
      input: { code: 227, lines: ['227 Entering Passive Mode (10,0,0,10,19,137).'] },
      expected: { type: 'rewrite', lineIndex: 0, text: '227 Entering Passive Mode (100,64,0,10,19,137).', kind: '227' },
    },
    {
      title: 'IPv6 server: a 227 cannot be corrected to its address',
      addrs: V6,
      input: { code: 227, lines: ['227 Entering Passive Mode (100,64,7,10,19,137).'] },
      expected: FORWARD,
    },
  ])('$title', ({ addrs, input, expected }) => {
    expect(summarizeReply(reply(addrs, PASS, input))).toEqual(expected);
  });
});

describe("onServerReply: multi-line and LPSV answers", () => {
  // find227 used to start its scan 4 characters in, past "227 ", even on
  // continuation lines, which carry no code:
  // an endpoint at the start of such a line is cut to five numbers and the
  // reply passes unparsed (relay: the client gets the server's own address).
  test('227 endpoint at the start of a continuation line', () => {
    const input = { code: 227, lines: ['227-Entering Passive Mode', '100,64,0,10,19,137', '227 OK'], sent: pasvAsked('PASV') };
    expect(summarizeReply(reply(V4, RELAY, input))).toEqual(passive('227', SERVER_5001, '227', inPlace(1, 0, 18)));
  });

  // The answer form once checked "IPv6 client and 227" before "client asked
  // LPSV", so an IPv6 client's LPSV answered with 227 gets a 229 back.
  // RFC 1639: LPSV is answered with 228, which carries IPv6; the IPv4 client
  // in the same situation does get a 228 (see the relay IPv4 table).
  test('227 to LPSV from an IPv6 client is answered as 228', () => {
    const input = { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19,137).'], sent: pasvAsked('LPSV') };
    expect(summarizeReply(reply(CROSS, RELAY, input))).toEqual(passive('227', SERVER_5001, '228'));
  });
});

// ---- renderers ---------------------------------------------------------------------

describe('renderActiveCommand', () => {
  const LISTEN4 = v4('100.64.0.1', 40001); // 40001 = 156 * 256 + 65
  const LISTEN6 = v6('fd00:64::1', 40001);
  test.each<{ title: string; input: { verb: ActiveVerb; delimiter: string; listen: Endpoint; clientFamily: Family }; expected: string }>([
    { title: 'PORT, IPv4 both sides', input: { verb: 'PORT', delimiter: '|', listen: LISTEN4, clientFamily: 4 }, expected: 'PORT 100,64,0,1,156,65' },
    { title: 'EPRT, IPv4 both sides', input: { verb: 'EPRT', delimiter: '|', listen: LISTEN4, clientFamily: 4 }, expected: 'EPRT |1|100.64.0.1|40001|' },
    { title: 'EPRT keeps the client delimiter', input: { verb: 'EPRT', delimiter: '!', listen: LISTEN4, clientFamily: 4 }, expected: 'EPRT !1!100.64.0.1!40001!' },
    { title: 'LPRT, IPv4 both sides', input: { verb: 'LPRT', delimiter: '|', listen: LISTEN4, clientFamily: 4 }, expected: 'LPRT 4,4,100,64,0,1,2,156,65' },
    { title: 'EPRT, IPv6 both sides', input: { verb: 'EPRT', delimiter: '|', listen: LISTEN6, clientFamily: 6 }, expected: 'EPRT |2|fd00:64::1|40001|' },
    { title: 'EPRT, IPv6, delimiter kept', input: { verb: 'EPRT', delimiter: '#', listen: LISTEN6, clientFamily: 6 }, expected: 'EPRT #2#fd00:64::1#40001#' },
    {
      title: 'LPRT, IPv6 both sides',
      input: { verb: 'LPRT', delimiter: '|', listen: LISTEN6, clientFamily: 6 },
      expected: 'LPRT 6,16,253,0,0,100,0,0,0,0,0,0,0,0,0,0,0,1,2,156,65',
    },
    { title: 'IPv6 client EPRT to an IPv4 server: PORT', input: { verb: 'EPRT', delimiter: '!', listen: LISTEN4, clientFamily: 6 }, expected: 'PORT 100,64,0,1,156,65' },
    { title: 'IPv6 client LPRT to an IPv4 server: PORT', input: { verb: 'LPRT', delimiter: '|', listen: LISTEN4, clientFamily: 6 }, expected: 'PORT 100,64,0,1,156,65' },
    { title: 'IPv4 client PORT to an IPv6 server: EPRT', input: { verb: 'PORT', delimiter: '|', listen: LISTEN6, clientFamily: 4 }, expected: 'EPRT |2|fd00:64::1|40001|' },
    { title: 'IPv4 client LPRT to an IPv6 server: EPRT', input: { verb: 'LPRT', delimiter: '|', listen: LISTEN6, clientFamily: 4 }, expected: 'EPRT |2|fd00:64::1|40001|' },
    { title: 'IPv4 client EPRT to an IPv6 server: EPRT', input: { verb: 'EPRT', delimiter: '|', listen: LISTEN6, clientFamily: 4 }, expected: 'EPRT |2|fd00:64::1|40001|' },
  ])('$title', ({ input, expected }) => {
    expect(renderActiveCommand(input.verb, input.delimiter, input.listen, input.clientFamily)).toBe(expected);
  });
});

describe('renderPassiveReply', () => {
  const GW4 = v4('198.18.0.1', 40001);
  const GW6 = v6('fd00::1', 40001);
  test.each<{ title: string; input: { addrs: SessionAddresses; reply: ReplyCase['input']; announced: Endpoint }; expected: string[] }>([
    {
      title: '227 in place',
      input: { addrs: V4, reply: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19,137).'], sent: pasvAsked('PASV') }, announced: GW4 },
      expected: ['227 Entering Passive Mode (198,18,0,1,156,65).'],
    },
    {
      title: '227 for a third host in place',
      input: { addrs: V4, reply: { code: 227, lines: ['227 Entering Passive Mode (198,18,0,99,19,137).'], sent: pasvAsked('PASV') }, announced: GW4 },
      expected: ['227 Entering Passive Mode (198,18,0,1,156,65).'],
    },
    {
      title: '227 =form in place, trailing text kept',
      input: { addrs: V4, reply: { code: 227, lines: ['227 =100,64,0,10,19,137 ok'], sent: pasvAsked('PASV') }, announced: GW4 },
      expected: ['227 =198,18,0,1,156,65 ok'],
    },
    {
      title: 'multi-line 227: other lines untouched',
      input: { addrs: V4, reply: { code: 227, lines: ['227-Entering Passive Mode', '227 (100,64,0,10,19,137) ok'], sent: pasvAsked('PASV') }, announced: GW4 },
      expected: ['227-Entering Passive Mode', '227 (198,18,0,1,156,65) ok'],
    },
    {
      title: '229 in place',
      input: { addrs: V4, reply: { code: 229, lines: ['229 Entering Extended Passive Mode (|||5001|)'], sent: pasvAsked('EPSV') }, announced: GW4 },
      expected: ['229 Entering Extended Passive Mode (|||40001|)'],
    },
    {
      title: '229 in place keeps delimiter and text',
      input: { addrs: V4, reply: { code: 229, lines: ['229 EPSV ok (!!!5001!) go'], sent: pasvAsked('EPSV') }, announced: GW4 },
      expected: ['229 EPSV ok (!!!40001!) go'],
    },
    {
      title: '229 in place, IPv6',
      input: { addrs: V6, reply: { code: 229, lines: ['229 Entering Extended Passive Mode (|||5001|)'], sent: pasvAsked('EPSV') }, announced: GW6 },
      expected: ['229 Entering Extended Passive Mode (|||40001|)'],
    },
    {
      title: '228 in place',
      input: { addrs: V4, reply: { code: 228, lines: ['228 Entering Long Passive Mode (4,4,100,64,0,10,2,19,137)'], sent: pasvAsked('LPSV') }, announced: GW4 },
      expected: ['228 Entering Long Passive Mode (4,4,198,18,0,1,2,156,65)'],
    },
    {
      title: '228 in place, IPv6',
      input: { addrs: V6, reply: { code: 228, lines: [`228 Entering Long Passive Mode (${LPRT_FD00_64_10})`], sent: pasvAsked('LPSV') }, announced: GW6 },
      expected: ['228 Entering Long Passive Mode (6,16,253,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,2,156,65)'],
    },
    {
      title: '227 to EPSV replaced by 229',
      input: { addrs: V4, reply: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19,137).'], sent: pasvAsked('EPSV') }, announced: GW4 },
      expected: ['229 Entering Extended Passive Mode (|||40001|)'],
    },
    {
      title: '227 to LPSV replaced by 228',
      input: { addrs: V4, reply: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19,137).'], sent: pasvAsked('LPSV') }, announced: GW4 },
      expected: ['228 Entering Long Passive Mode (4,4,198,18,0,1,2,156,65)'],
    },
    {
      title: 'cross family: 227 replaced by 229',
      input: { addrs: CROSS, reply: { code: 227, lines: ['227 Entering Passive Mode (100,64,0,10,19,137).'], sent: EPSV_SENT_AS_PASV }, announced: GW6 },
      expected: ['229 Entering Extended Passive Mode (|||40001|)'],
    },
    {
      title: 'cross family: multi-line 227 replaced by one 229 line',
      input: { addrs: CROSS, reply: { code: 227, lines: ['227-Entering Passive Mode', '227 (100,64,0,10,19,137)'], sent: EPSV_SENT_AS_PASV }, announced: GW6 },
      expected: ['229 Entering Extended Passive Mode (|||40001|)'],
    },
  ])('$title', ({ input, expected }) => {
    const d = reply(input.addrs, RELAY, input.reply);
    expect(d.type).toBe('passive');
    expect(renderPassiveReply(d as Extract<ReplyDecision, { type: 'passive' }>, input.reply.lines, input.announced)).toEqual(expected);
  });

  test('replacement 227 form', () => {
    const d: Extract<ReplyDecision, { type: 'passive' }> = { type: 'passive', dial: SERVER_5001, answerAs: '227', kind: '229' };
    expect(renderPassiveReply(d, ['229 Entering Extended Passive Mode (|||5001|)'], GW4)).toEqual(['227 Entering Passive Mode (198,18,0,1,156,65).']);
  });
});

// ---- properties: the gateway never dials outside policy ------------------------------

const RUNS = { numRuns: 500 };

const byte = fc.nat(255);
// Lab IPv4: 198.18.0.0/15 outside, 100.64.0.0/10 inside, and loopback.
const labV4 = fc.oneof(
  fc.tuple(fc.integer({ min: 18, max: 19 }), byte, byte).map(([a, b, c]) => `198.${a}.${b}.${c}`),
  fc.tuple(fc.integer({ min: 64, max: 127 }), byte, byte).map(([a, b, c]) => `100.${a}.${b}.${c}`),
  fc.constant('127.0.0.1'),
);
// Lab IPv6: fd00::/8, in canonical form as parseIp gives it.
const labV6 = fc
  .tuple(byte, fc.array(fc.nat(0xffff), { minLength: 7, maxLength: 7 }), fc.boolean())
  .map(([b, groups, sparse]) => [0xfd00 | b, ...(sparse ? groups.map((g, i) => (i % 3 === 0 ? g : 0)) : groups)])
  .map((groups) => parseIp(groups.map((g) => g.toString(16)).join(':'))!.address)
  .filter((a) => a.startsWith('fd'));
const labIp = (family: Family) => (family === 4 ? labV4 : labV6).map((address) => ({ family, address }));
const anyLabIp = fc.oneof(labIp(4), labIp(6));
const sessionArb = fc.record({ client: anyLabIp, server: anyLabIp });
const anyPort = fc.oneof(fc.integer({ min: 1, max: 1023 }), fc.integer({ min: 1024, max: 65535 }));

/** An active command naming an endpoint that is often the client's own. */
const activeCommandArb = sessionArb.chain((addrs) =>
  fc
    .record({
      addr: fc.oneof({ weight: 3, arbitrary: fc.constant(addrs.client) }, { weight: 1, arbitrary: fc.constant(addrs.server) }, { weight: 2, arbitrary: anyLabIp }),
      port: anyPort,
      verb: fc.constantFrom<ActiveVerb>('PORT', 'EPRT', 'LPRT'),
      delimiter: fc.constantFrom('|', '!', '#', '$'),
    })
    .map(({ addr, port, verb, delimiter }) => {
      const e: Endpoint = { ...addr, port };
      const form = verb === 'PORT' && e.family === 6 ? 'EPRT' : verb;
      const arg = form === 'PORT' ? formatPortArg(e) : form === 'EPRT' ? formatEprtArg(e, delimiter) : formatLprtArg(e);
      return { addrs, endpoint: e, line: `${form} ${arg}` };
    }),
);

describe('property: active data connections go back to the client only', () => {
  fcTest.prop([activeCommandArb], RUNS)('active iff the client itself on an unprivileged port', ({ addrs, endpoint, line }) => {
    const d = translator(addrs).onClientCommand(parseCommand(line));
    const allowed = sameAddress(endpoint, addrs.client) && endpoint.port >= 1024;
    expect(d.type === 'active', line).toBe(allowed);
    if (d.type === 'active') {
      expect(sameAddress(d.target, addrs.client)).toBe(true);
      expect(d.target.port).toBeGreaterThanOrEqual(1024);
      expect(d.target).toEqual(endpoint);
    } else {
      expect(d.type).toBe('answer');
    }
  });

  fcTest.prop([sessionArb, fc.constantFrom('PORT', 'EPRT', 'LPRT', 'port', 'eprt'), fc.string({ maxLength: 60 })], RUNS)(
    'garbage arguments never yield a dial outside policy',
    (addrs, verb, arg) => {
      const d = translator(addrs).onClientCommand(parseCommand(`${verb} ${arg}`));
      if (d.type === 'active') {
        expect(sameAddress(d.target, addrs.client)).toBe(true);
        expect(d.target.port).toBeGreaterThanOrEqual(1024);
      } else {
        expect(d.type).toBe('answer');
      }
    },
  );

  fcTest.prop([sessionArb, fc.string({ maxLength: 80 })], RUNS)('any command line gets a decision, without throwing', (addrs, line) => {
    const d = translator(addrs).onClientCommand(parseCommand(line));
    expect(['forward', 'forward-as', 'answer', 'active', 'tls-passthrough']).toContain(d.type);
  });
});

// A CIDR inside the lab ranges, IPv4 or IPv6.
const cidrArb = fc.oneof(
  fc.tuple(labV4, fc.integer({ min: 8, max: 32 })).map(([a, bits]) => mustCidr(`${a}/${bits}`)),
  fc.tuple(labV6, fc.integer({ min: 8, max: 128 })).map(([a, bits]) => mustCidr(`${a}/${bits}`)),
);
const serverV4Arb = fc.record({ client: anyLabIp, server: labIp(4), networks: fc.array(cidrArb, { maxLength: 2 }) });
const text227 = fc.constantFrom(
  (n: string) => `227 Entering Passive Mode (${n}).`,
  (n: string) => `227 Entering Passive Mode ${n}`,
  (n: string) => `227 =${n}`,
  (n: string) => `227 ok (${n}) 1,2,3`,
);

const passive227Arb = serverV4Arb.chain((s) =>
  fc
    .record({
      addr: fc.oneof({ weight: 2, arbitrary: fc.constant(s.server.address) }, { weight: 3, arbitrary: labV4 }),
      port: fc.integer({ min: 1, max: 65535 }),
      render: text227,
      sent: fc.constantFrom<SentCommand | undefined>(undefined, pasvAsked('PASV'), pasvAsked('EPSV'), pasvAsked('LPSV'), EPSV_SENT_AS_PASV),
    })
    .map(({ addr, port, render, sent }) => {
      const announced = v4(addr, port);
      return { ...s, announced, sent, lines: [render(formatPortArg(announced))] };
    }),
);

const allowedDial = (server: SessionAddresses['server'], networks: readonly Cidr[], e: Endpoint): boolean =>
  sameAddress(e, server) || networks.some((n) => n.contains(e));

describe('property: passive data connections go to the server only', () => {
  fcTest.prop([passive227Arb], RUNS)('227: dial is the server or inside serverNetworks', ({ client, server, networks, announced, sent, lines }) => {
    const t = translator({ client, server }, { ...RELAY, serverNetworks: networks });
    const d = t.onServerReply(227, lines, sent);
    if (announced.port < 1024) {
      expect(summarizeReply(d)).toEqual({ type: 'answer-instead', code: 425, refusal: REASON.PRIVILEGED_PORT, kind: '227' });
      return;
    }
    expect(d.type).toBe('passive');
    if (d.type !== 'passive') return;
    expect(allowedDial(server, networks, d.dial)).toBe(true);
    expect(d.dial.port).toBe(announced.port);
    const ok = allowedDial(server, networks, announced);
    expect(d.refusal?.code).toBe(ok ? undefined : REASON.FOREIGN_PASSIVE_ADDRESS);
    if (ok) expect(d.dial).toEqual(announced);
  });

  fcTest.prop([serverV4Arb, fc.constantFrom(227, 228, 229), fc.array(fc.string({ maxLength: 60 }), { minLength: 1, maxLength: 3 })], RUNS)(
    'garbage passive replies never yield a dial outside policy',
    ({ client, server, networks }, code, texts) => {
      const lines = texts.map((t, i) => (i === texts.length - 1 ? `${code} ${t}` : `${code}-${t}`));
      const d = translator({ client, server }, { ...RELAY, serverNetworks: networks }).onServerReply(code, lines, undefined);
      if (d.type === 'passive') expect(allowedDial(server, networks, d.dial)).toBe(true);
      else expect(summarizeReply(d)).toMatchObject({ type: 'answer-instead', code: 425 });
    },
  );

  fcTest.prop([passive227Arb, fc.integer({ min: 1024, max: 65535 })], RUNS)(
    'the rendered reply announces the gateway in the form the client can read',
    ({ client, server, networks, sent, lines, announced: fromServer }, port) => {
      fc.pre(fromServer.port >= 1024);
      const d = translator({ client, server }, { ...RELAY, serverNetworks: networks }).onServerReply(227, lines, sent);
      if (d.type !== 'passive') throw new Error('expected a passive decision');
      const announced: Endpoint = client.family === 4 ? v4('198.18.0.1', port) : v6('fd00::1', port);
      const out = renderPassiveReply(d, lines, announced);
      const last = out.at(-1)!;
      if (d.answerAs === '229') expect(find229(last)?.port).toBe(port);
      else if (d.answerAs === '228') expect(find228(last)?.endpoint).toEqual(announced);
      else expect(find227(out[d.inPlace?.lineIndex ?? 0]!)?.endpoint).toEqual(announced);
      // An IPv6 client is never handed a 227.
      if (client.family === 6) expect(d.answerAs).not.toBe('227');
    },
  );
});
