/**
 * Sinks say which events they use, so that the gateway need not build one
 * per control line for a log that drops it (issue 14: per-transfer cost).
 * Whatever a sink says, every event it does use still reaches it.
 */
import { expect, test } from 'vitest';
import { createEventLog } from '../../src/log.js';
import { wants, type EventSink, type GatewayEvent } from '../../src/gateway/events.js';
import { listenerSink } from '../../src/gateway/run.js';
import { ControlStream, type StreamEvent } from '../../src/alg/control-stream.js';
import { RELAY, V4 } from '../alg/fixtures.js';

test.each(['json', 'pretty'] as const)('a %s log wants control lines only at debug, and follows a change of level', (format) => {
  const lines: string[] = [];
  const log = createEventLog('info', format, (l) => lines.push(l));
  expect(wants(log.sink, 'control')).toBe(false);
  expect(wants(log.sink, 'data-listen')).toBe(false);
  expect(wants(log.sink, 'session-open')).toBe(true);
  log.setLevel('warn');
  expect(wants(log.sink, 'session-open')).toBe(false);
  // Refusals are logged at warn (a handled one at info only).
  expect(wants(log.sink, 'refuse')).toBe(true);
  log.setLevel('error');
  expect(wants(log.sink, 'refuse')).toBe(false);
  expect(wants(log.sink, 'internal-error')).toBe(true);
  log.setLevel('debug');
  expect(wants(log.sink, 'control')).toBe(true);
  log.sink({ event: 'control', session: 's', direction: 'client->server', line: 'NOOP' });
  expect(lines).toHaveLength(1);
});

test('a sink that says nothing wants everything; a listener sink asks the sink behind it', () => {
  const seen: GatewayEvent[] = [];
  const plain: EventSink = (e) => seen.push(e);
  expect(wants(plain, 'control')).toBe(true);
  expect(wants(listenerSink('rev', plain), 'control')).toBe(true);
  const picky: EventSink = (e) => seen.push(e);
  picky.wants = (name) => name !== 'control';
  const named = listenerSink('rev', picky);
  expect(wants(named, 'control')).toBe(false);
  expect(wants(named, 'transfer')).toBe(true);
  named({ event: 'control', session: 's', direction: 'client->server', line: 'NOOP' });
  named({ event: 'warning', message: 'm' });
  expect(seen).toEqual([{ event: 'warning', message: 'm', listener: 'rev' }]);
});

/** The events of one login and one passive listing, with control lines traced or not. */
function sessionEvents(trace: boolean | undefined): StreamEvent[] {
  const events: StreamEvent[] = [];
  const stream = new ControlStream('s1', V4, {
    translator: RELAY,
    maxLineBytes: 512,
    clientLabel: '198.18.0.5:40000',
    now: () => 0,
    ...(trace === undefined ? {} : { traceLines: () => trace }),
  });
  const run = (actions: ReturnType<ControlStream['fromClient']>): void => {
    for (const a of actions) {
      if (a.type === 'event') events.push(a.event);
      else if (a.type === 'open-data') run(stream.dataOpened(a.request.id, { family: 4, address: '198.18.0.1', port: 50001 }));
      else if (a.type === 'finish-data') run(stream.dataFinished(a.id));
    }
  };
  const client = (t: string) => run(stream.fromClient(Buffer.from(t, 'latin1')));
  const server = (t: string) => run(stream.fromServer(Buffer.from(t, 'latin1')));
  server('220 hi\r\n');
  client('USER u\r\n');
  server('331 pw\r\n');
  client('PASS secret\r\n');
  server('230 in\r\n');
  client('PASV\r\n');
  server('227 Entering Passive Mode (100,64,0,2,4,1).\r\n');
  client('LIST\r\n');
  run(stream.dataConnected('passive', 'relay'));
  server('150 here\r\n');
  run(stream.dataClosed({ bytesUp: 0, bytesDown: 10 }));
  server('226 done\r\n');
  return events;
}

test('without anyone reading control lines, the stream builds none, and every other event is the same', () => {
  const traced = sessionEvents(true);
  const quiet = sessionEvents(false);
  expect(traced.filter((e) => e.event === 'control').length).toBeGreaterThan(8);
  expect(quiet.filter((e) => e.event === 'control')).toEqual([]);
  expect(quiet).toEqual(traced.filter((e) => e.event !== 'control'));
  expect(quiet.map((e) => e.event)).toEqual(expect.arrayContaining(['login', 'rewrite', 'transfer']));
  // The password is redacted in what is traced, as before.
  expect(traced.some((e) => e.event === 'control' && e.line.includes('secret'))).toBe(false);
  expect(sessionEvents(undefined)).toEqual(traced);
});
