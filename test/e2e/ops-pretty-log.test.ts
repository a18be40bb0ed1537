/** --log-format pretty: one line per event, whatever the event carries. */
import { expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { createEventLog } from '../../src/log.js';
import type { GatewayEvent } from '../../src/gateway/events.js';

const capture = (level: 'info' | 'debug' = 'info') => {
  const lines: string[] = [];
  return { log: createEventLog(level, 'pretty', (l) => lines.push(l)), lines };
};

test('a download is a handful of lines, each one event with its listener and session in front', () => {
  const { log, lines } = capture();
  const l = { listener: 'public', session: 'x-1' };
  const events: GatewayEvent[] = [
    { event: 'session-open', client: '127.0.0.1:5000', server: '127.0.0.1:21', ...l },
    { event: 'rewrite', direction: 'server->client', kind: '227', before: '227 Entering Passive Mode (100,64,0,2,4,1).', after: '227 Entering Passive Mode (127,0,0,1,4,1).', reason: 'r', offset: 1, delta: 0, ...l },
    { event: 'data-open', mode: 'passive', from: 'a', to: 'b', ...l },
    { event: 'data-close', mode: 'passive', from: 'a', to: 'b', bytes: 5, bytesUp: 0, bytesDown: 5, durationMs: 1, reason: 'complete', ...l },
    { event: 'control', direction: 'client->server', line: 'RETR f', ...l },
    { event: 'session-close', reason: 'client quit', bytesUp: 1, bytesDown: 2, durationMs: 3, ...l },
  ];
  for (const e of events) log.sink(e);
  // control is debug: not at info.
  expect(lines).toHaveLength(5);
  expect(lines.every((x) => x.endsWith('\n') && x.indexOf('\n') === x.length - 1)).toBe(true);
  expect(lines[1]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}rewrite \[public x-1\] direction=server->client kind=227 before="227 Entering Passive Mode \(100,64,0,2,4,1\)\." /);
  log.setLevel('debug');
  log.sink(events[4]!);
  expect(lines).toHaveLength(6);
});

fcTest.prop([fc.string(), fc.string()])('any text in any field stays on one line', (message, line) => {
  const { log, lines } = capture('debug');
  log.sink({ event: 'warning', message });
  log.sink({ event: 'refuse', kind: 'x', line, code: 'BOUNCE_ADDRESS', message });
  expect(lines).toHaveLength(2);
  for (const x of lines) expect(x.slice(0, -1)).not.toMatch(/[\r\n]/);
});
