/**
 * Clients that reset their connection while the gateway still talks to
 * them alone (the explicit proxy's login dialogue, `--balance user`): the
 * session's events must still begin with session-open and end with
 * session-close, or the metrics that count sessions by those two events
 * would keep one "active" session per reset, for ever: anyone could grow
 * the gauge and the map behind it by connecting and resetting.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { GatewayMetrics } from '../../src/gateway/metrics.js';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { startTestForward, startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { Replies, connect } from '../helpers/control-replies.js';
import { tempDir } from '../helpers/tools.js';

const RESETS = 5;

describe('a reset before login', () => {
  let gw: TestGateway | undefined;
  let server: DemoServer | undefined;
  let dir: ReturnType<typeof tempDir> | undefined;
  afterEach(async () => {
    await gw?.close();
    await server?.close();
    dir?.remove();
  });

  const cases: Array<[string, () => Promise<TestGateway>]> = [
    ['forward, explicit proxy login', () => startTestForward({})],
    [
      'reverse --balance user',
      async () => {
        dir = tempDir();
        server = await startDemoServer({ root: dir.path, announceAddress: '127.0.0.1' });
        return startTestReverse(server.address.port, { balance: 'user' });
      },
    ],
  ];
  for (const [title, start] of cases) {
    test(`${title}: every session opens before it closes, and none stays counted as active`, async () => {
      const g = (gw = await start());
      for (let i = 0; i < RESETS; i++) {
        const s = await connect(g.port);
        expect(await new Replies(s).next()).toMatch(/^220/);
        const before = g.log.of('session-close').length;
        const closed = g.log.waitFor('session-close', () => g.log.of('session-close').length > before);
        s.resetAndDestroy();
        await closed;
      }
      const sessions = new Map<string, string[]>();
      for (const e of g.log.events) {
        if (!('session' in e) || typeof e.session !== 'string') continue;
        sessions.set(e.session, [...(sessions.get(e.session) ?? []), e.event]);
      }
      expect(sessions.size).toBe(RESETS);
      for (const events of sessions.values()) {
        expect(events[0]).toBe('session-open');
        expect(events.at(-1)).toBe('session-close');
        expect(events.filter((e) => e === 'session-open')).toHaveLength(1);
      }
      const metrics = new GatewayMetrics(() => undefined);
      for (const e of g.log.events) metrics.sink(e);
      const active = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith('ftp_alg_sessions_active'));
      expect(active).toMatch(/ 0$/);
    });
  }
});
