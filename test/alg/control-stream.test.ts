/**
 * The control stream without sockets: bytes in, actions out. A small driver
 * plays the session's part (data channels open at once, transfers finish at
 * once unless told otherwise) and collects what each peer would receive.
 */
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { ControlStream, MAX_WAITING_LOCAL_REPLIES, type Action, type Direction, type Side, type StreamEvent } from '../../src/alg/control-stream.js';
import type { Endpoint } from '../../src/protocol/address.js';
import { CROSS, PASS, RELAY, V4, V6, v4, v6 } from './fixtures.js';
import type { SessionAddresses, TranslatorConfig } from '../../src/alg/translator.js';

/** What the gateway announces for its listeners in these tests. */
const ACTIVE_LISTEN = v4('100.64.0.1', 40001);
const PASSIVE_ANNOUNCE = v4('198.18.0.1', 50001);

class Driver {
  readonly stream: ControlStream;
  readonly out: Record<Side, Buffer[]> = { client: [], server: [] };
  readonly events: StreamEvent[] = [];
  readonly actions: Action[] = [];
  readonly paused: Record<Side, boolean> = { client: false, server: false };
  readonly ends: Side[] = [];
  closed: Extract<Action, { type: 'close' }> | undefined;
  clock = 0;
  /** Requests not answered yet (when `autoOpen` is off). */
  readonly pendingOpens: number[] = [];
  readonly pendingFinishes: number[] = [];
  /** Output bytes per direction when each rewrite event was reported. */
  readonly rewriteChecks: Array<{ dir: Direction; outputSoFar: number; inputEnd: number; delta: number }> = [];

  constructor(
    addrs: SessionAddresses = V4,
    config: TranslatorConfig = RELAY,
    readonly opts: { autoOpen?: boolean; autoFinish?: boolean; announce?: Record<'active' | 'passive', Endpoint> } = {},
  ) {
    this.stream = new ControlStream('s1', addrs, { translator: config, maxLineBytes: 512, clientLabel: '198.18.0.5:40000', now: () => this.clock });
  }

  client(text: string | Buffer): this {
    return this.run(this.stream.fromClient(typeof text === 'string' ? Buffer.from(text, 'latin1') : text));
  }

  server(text: string | Buffer): this {
    return this.run(this.stream.fromServer(typeof text === 'string' ? Buffer.from(text, 'latin1') : text));
  }

  text(side: Side): string {
    return Buffer.concat(this.out[side]).toString('latin1');
  }

  codes(kind: StreamEvent['event']): StreamEvent[] {
    return this.events.filter((e) => e.event === kind);
  }

  run(actions: Action[]): this {
    for (const a of actions) {
      this.actions.push(a);
      switch (a.type) {
        case 'write':
          this.out[a.to].push(a.bytes);
          break;
        case 'event':
          this.events.push(a.event);
          if (a.event.event === 'rewrite') {
            const dir = a.event.direction;
            const entry = this.stream.ledgers[dir].last!;
            const outputSoFar = Buffer.concat(this.out[dir === 'client->server' ? 'server' : 'client']).length;
            this.rewriteChecks.push({ dir, outputSoFar, inputEnd: entry.offset + entry.before, delta: a.event.delta });
          }
          break;
        case 'open-data':
          if (this.opts.autoOpen === false) this.pendingOpens.push(a.request.id);
          else this.run(this.stream.dataOpened(a.request.id, this.announceFor(a.request.mode)));
          break;
        case 'finish-data':
          if (this.opts.autoFinish === false) this.pendingFinishes.push(a.id);
          else this.run(this.stream.dataFinished(a.id));
          break;
        case 'pause':
          this.paused[a.side] = true;
          break;
        case 'resume':
          this.paused[a.side] = false;
          break;
        case 'end':
          this.ends.push(a.to);
          break;
        case 'close':
          this.closed = a;
          break;
        default:
          break;
      }
    }
    return this;
  }

  announceFor(mode: 'active' | 'passive'): Endpoint {
    return this.opts.announce?.[mode] ?? (mode === 'active' ? ACTIVE_LISTEN : PASSIVE_ANNOUNCE);
  }
}

const GREETING = '220 ready\r\n';

describe('rewrites, one per kind', () => {
  const cases: Array<{ title: string; addrs?: SessionAddresses; config?: TranslatorConfig; client: string; server: string; toServer: string; toClient: string; rewrites?: number }> = [
    {
      title: 'PORT is pointed at the gateway',
      client: 'PORT 198,18,0,5,200,10\r\n',
      server: '200 PORT ok\r\n',
      toServer: 'PORT 100,64,0,1,156,65\r\n',
      toClient: GREETING + '200 PORT ok\r\n',
    },
    {
      title: 'EPRT keeps its delimiter',
      client: 'EPRT !1!198.18.0.5!51210!\r\n',
      server: '200 EPRT ok\r\n',
      toServer: 'EPRT !1!100.64.0.1!40001!\r\n',
      toClient: GREETING + '200 EPRT ok\r\n',
    },
    {
      title: '227 is answered with the public address',
      client: 'PASV\r\n',
      server: '227 Entering Passive Mode (100,64,0,10,100,1).\r\n',
      toServer: 'PASV\r\n',
      toClient: GREETING + '227 Entering Passive Mode (198,18,0,1,195,81).\r\n',
    },
    {
      title: '229 gets the gateway port',
      client: 'EPSV\r\n',
      server: '229 Entering Extended Passive Mode (|||25601|)\r\n',
      toServer: 'EPSV\r\n',
      toClient: GREETING + '229 Entering Extended Passive Mode (|||50001|)\r\n',
    },
    {
      title: 'a multi-line 227 is held whole and rewritten where the endpoint is',
      client: 'PASV\r\n',
      server: '227-Entering Passive Mode\r\n227 (100,64,0,10,100,1)\r\n',
      toServer: 'PASV\r\n',
      toClient: GREETING + '227-Entering Passive Mode\r\n227 (198,18,0,1,195,81)\r\n',
    },
    {
      title: 'an IPv6 client asking EPSV of an IPv4 server: sent as PASV, answered as 229 (RFC 6384)',
      addrs: CROSS,
      client: 'EPSV\r\n',
      server: '227 Entering Passive Mode (100,64,0,10,100,1).\r\n',
      toServer: 'PASV\r\n',
      toClient: GREETING + '229 Entering Extended Passive Mode (|||50001|)\r\n',
      rewrites: 2,
    },
    {
      title: 'EPRT over IPv6',
      addrs: V6,
      client: 'EPRT |2|fd00::5|51210|\r\n',
      server: '200 EPRT ok\r\n',
      toServer: 'EPRT |2|fd00::1|40001|\r\n',
      toClient: GREETING + '200 EPRT ok\r\n',
    },
  ];
  for (const c of cases) {
    test(c.title, () => {
      const announce = { active: c.addrs === V6 ? v6('fd00::1', 40001) : ACTIVE_LISTEN, passive: PASSIVE_ANNOUNCE };
      const d = new Driver(c.addrs ?? V4, c.config ?? RELAY, { announce }).server(GREETING).client(c.client).server(c.server);
      expect(d.text('server')).toBe(c.toServer);
      expect(d.text('client')).toBe(c.toClient);
      expect(d.codes('rewrite')).toHaveLength(c.rewrites ?? 1);
    });
  }
});

describe('every byte not rewritten passes unchanged, whatever the chunking', () => {
  const sessions: Array<{ title: string; client: string; server: string }> = [
    { title: 'PORT then RETR', client: 'USER a\r\nPASS b\r\nPORT 198,18,0,5,200,10\r\nRETR f\r\n', server: `${GREETING}331 pw\r\n230 in\r\n200 ok\r\n150 go\r\n226 done\r\n` },
    { title: 'EPRT then LIST', client: 'EPRT |1|198.18.0.5|51210|\r\nLIST\r\n', server: `${GREETING}200 ok\r\n150 go\r\n226 done\r\n` },
    { title: 'PASV then STOR', client: 'PASV\r\nSTOR f\r\n', server: `${GREETING}227 Entering Passive Mode (100,64,0,10,100,1).\r\n150 go\r\n226 done\r\n` },
    { title: 'EPSV then NLST, 8-bit and bare LF', client: 'EPSV\nNLST \xe9t\xe9\r\n', server: `${GREETING}229 Entering Extended Passive Mode (|||25601|)\n150 go\r\n226-done\r\n tail\xff\xff\r\n226 ok\r\n` },
    { title: 'multi-line 227', client: 'PASV\r\nRETR f\r\n', server: `${GREETING}227-Entering Passive Mode\r\n227 (100,64,0,10,100,1)\r\n150 go\r\n226 done\r\n` },
  ];

  /** Plays a session, splitting each side's bytes at `cutsC`/`cutsS`, client bytes first per step. */
  function play(client: Buffer, server: Buffer, cutsC: number[], cutsS: number[]): Driver {
    const d = new Driver();
    const pieces = (b: Buffer, cuts: number[]) => {
      const at = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
      const out: Buffer[] = [];
      let prev = 0;
      for (const c of [...at, b.length]) {
        out.push(b.subarray(prev, c));
        prev = c;
      }
      return out.filter((p) => p.length > 0);
    };
    const c = pieces(client, cutsC);
    const s = pieces(server, cutsS);
    for (let i = 0; i < Math.max(c.length, s.length); i++) {
      if (s[i]) d.server(s[i]!);
      if (c[i]) d.client(c[i]!);
    }
    return d;
  }

  for (const s of sessions) {
    test(s.title, () => {
      const client = Buffer.from(s.client, 'latin1');
      const server = Buffer.from(s.server, 'latin1');
      const whole = play(client, server, [], []);
      fc.assert(
        fc.property(fc.array(fc.nat(), { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 12 }), (cutsC, cutsS) => {
          const split = play(client, server, cutsC, cutsS);
          expect(split.text('server')).toBe(whole.text('server'));
          expect(split.text('client')).toBe(whole.text('client'));
          expect(split.codes('rewrite').map((e) => e.event === 'rewrite' && [e.kind, e.after])).toEqual(
            whole.codes('rewrite').map((e) => e.event === 'rewrite' && [e.kind, e.after]),
          );
          // The ledger invariant, checked where each rewrite is reported and at the end.
          for (const r of split.rewriteChecks) expect(r.outputSoFar).toBe(r.inputEnd + r.delta);
          expect(split.text('server').length).toBe(client.length + split.stream.ledgers['client->server'].delta);
          expect(split.text('client').length).toBe(server.length + split.stream.ledgers['server->client'].delta);
        }),
        { numRuns: 150 },
      );
    });
  }
});

describe('reply order and transfers', () => {
  test('a refused PORT pipelined behind an owed reply waits its turn', () => {
    const d = new Driver().server(GREETING).client('NOOP\r\nPORT 198,18,0,9,200,10\r\n');
    expect(d.text('client')).toBe(GREETING);
    d.server('200 NOOP ok\r\n');
    expect(d.text('client')).toMatch(/^220 ready\r\n200 NOOP ok\r\n500 PORT refused/);
    expect(d.codes('refuse')).toMatchObject([{ code: 'BOUNCE_ADDRESS' }]);
  });

  test('the completion reply waits until the channel has finished', () => {
    const d = new Driver(V4, RELAY, { autoFinish: false }).server(GREETING).client('PASV\r\nRETR f\r\n');
    d.server('227 Entering Passive Mode (100,64,0,10,100,1).\r\n150 go\r\n226 done\r\n');
    expect(d.text('client')).not.toContain('226');
    expect(d.pendingFinishes).toHaveLength(1);
    const finish = d.actions.find((a): a is Extract<Action, { type: 'finish-data' }> => a.type === 'finish-data')!;
    expect(finish).toMatchObject({ code: 226, awaitData: true, toward: 'client' });
    d.run(d.stream.dataFinished(d.pendingFinishes[0]!));
    expect(d.text('client')).toMatch(/226 done\r\n$/);
  });

  test('a newer PASV releases the unused channel of the older one', () => {
    const d = new Driver().server(GREETING).client('PASV\r\nPASV\r\n');
    d.server('227 Entering Passive Mode (100,64,0,10,100,1).\r\n227 Entering Passive Mode (100,64,0,10,100,2).\r\n');
    const releases = d.actions.filter((a) => a.type === 'release-data');
    expect(releases).toMatchObject([{ id: 1, reason: 'replaced by a new data channel' }]);
  });

  describe('PASV pipelined before PORT: the server uses the PORT, so its channel stays current whichever comes up first', () => {
    const PASV_227 = '227 Entering Passive Mode (100,64,0,10,100,1).\r\n';
    const run = (order: 'active first' | 'passive first' | '227 before the PORT is out, active first') => {
      const d = new Driver(V4, RELAY, { autoOpen: false }).server(GREETING).client('PASV\r\nPORT 198,18,0,5,200,10\r\nRETR f\r\n');
      const active = d.pendingOpens[0]!;
      const open = (id: number, mode: 'active' | 'passive') => d.run(d.stream.dataOpened(id, d.announceFor(mode)));
      if (order === 'active first') {
        open(active, 'active');
        d.server(PASV_227);
        open(d.pendingOpens[1]!, 'passive');
      } else if (order === 'passive first') {
        d.server(PASV_227);
        open(d.pendingOpens[1]!, 'passive');
        open(active, 'active');
      } else {
        d.server(PASV_227);
        open(active, 'active');
        open(d.pendingOpens[1]!, 'passive');
      }
      const passive = d.pendingOpens[1]!;
      d.server('200 PORT ok\r\n150 go\r\n226 done\r\n');
      return { d, active, passive };
    };
    for (const order of ['active first', 'passive first', '227 before the PORT is out, active first'] as const) {
      test(order, () => {
        const { d, active, passive } = run(order);
        expect(d.text('server')).toMatch(/^PASV\r\nPORT 100,64,0,1,156,65\r\nRETR f\r\n$/);
        expect(d.actions.filter((a) => a.type === 'release-data').map((a) => a.id)).toEqual([passive]);
        expect(d.actions.filter((a) => a.type === 'finish-data').map((a) => a.id)).toEqual([active]);
        expect(d.text('client')).toMatch(/226 done\r\n$/);
      });
    }
  });

  test('a passive channel that cannot open: the 425 answers the PASV, before replies to commands pipelined after it', () => {
    const d = new Driver(V4, RELAY, { autoOpen: false }).server(GREETING).client('PASV\r\nNOOP\r\n');
    d.server('227 Entering Passive Mode (100,64,0,10,100,1).\r\n200 NOOP ok\r\n');
    d.run(d.stream.dataFailed(d.pendingOpens[0]!, 'ports-exhausted', 'no free port'));
    expect(d.text('client')).toMatch(/^220 ready\r\n425 [^\n]*\n200 NOOP ok\r\n$/);
  });

  test('a data channel that cannot open gets the client 425 in its turn', () => {
    const d = new Driver(V4, RELAY, { autoOpen: false }).server(GREETING).client('PORT 198,18,0,5,200,10\r\nNOOP\r\n');
    expect(d.text('server')).toBe('');
    d.run(d.stream.dataFailed(d.pendingOpens[0]!, 'ports-exhausted', 'no free port in 40000-40001'));
    expect(d.text('client')).toMatch(/425 Can't open data connection through the gateway \(no free port\)\r\n$/);
    expect(d.text('server')).toBe('NOOP\r\n');
    expect(d.codes('refuse')).toMatchObject([{ code: 'PORTS_EXHAUSTED' }]);
  });
});

describe('passive replies that cannot be translated', () => {
  test('an unparsable 227 that could name an address is answered 425, never relayed', () => {
    const d = new Driver().server(GREETING).client('PASV\r\n').server('227 Entering Passive Mode (100,64,0,10,300,1).\r\n');
    expect(d.text('client')).toBe(`${GREETING}425 Can't open data connection: the server's passive reply could not be translated\r\n`);
    expect(d.codes('refuse')).toMatchObject([{ code: 'UNTRANSLATABLE_PASSIVE_REPLY' }]);
  });

  test('a 227 too long to hold is dropped and answered 425', () => {
    const lines = Array.from({ length: 3000 }, (_, i) => `227-line ${i} 100,64,0,10,100,1`).join('\r\n');
    const d = new Driver().server(GREETING).client('PASV\r\nNOOP\r\n').server(`${lines}\r\n227 end\r\n200 NOOP ok\r\n`);
    expect(d.text('client')).toBe(`${GREETING}425 Can't open data connection: the server's passive reply could not be translated\r\n200 NOOP ok\r\n`);
    expect(d.text('client')).not.toContain('100,64');
  });

  test('a single 227 line over the cap is not relayed in pieces', () => {
    const d = new Driver().server(GREETING).client('PASV\r\n').server(`227 (100,64,0,10,100,1) ${'x'.repeat(2000)}\r\n`);
    expect(d.text('client')).toBe(`${GREETING}425 Can't open data connection: the server's passive reply could not be translated\r\n`);
  });

  test('forward mode (pass) passes a 227 it cannot read as it came: the server is not ours to hide', () => {
    const d = new Driver(V4, PASS).server(GREETING).client('QUIT\r\n').server('227 Logout.\r\n');
    expect(d.text('client')).toBe(`${GREETING}227 Logout.\r\n`);
    expect(d.codes('warning')).toHaveLength(1);
  });

  test('a reply over the cap that is not passive passes through in pieces, never buffered', () => {
    const long = `211-${'y'.repeat(2000)}\r\n211 end\r\n`;
    const d = new Driver().server(GREETING).client('FEAT\r\n').server(long.slice(0, 700));
    expect(d.text('client')).toBe(GREETING + long.slice(0, 700));
    d.server(long.slice(700));
    expect(d.text('client')).toBe(GREETING + long);
  });
});

describe('bounded input: a peer that floods waits unread', () => {
  test('pipelined commands the gateway answers itself stop being read past the cap, and resume', () => {
    const d = new Driver().server(GREETING).client('NOOP\r\n');
    // The server owes the NOOP's reply: every refusal must wait behind it.
    d.client('AUTH TLS\r\n'.repeat(MAX_WAITING_LOCAL_REPLIES + 50));
    expect(d.paused.client).toBe(true);
    expect(d.codes('refuse')).toHaveLength(MAX_WAITING_LOCAL_REPLIES);
    d.server('200 NOOP ok\r\n');
    expect(d.paused.client).toBe(false);
    expect(d.text('client').match(/^534 /gm)).toHaveLength(MAX_WAITING_LOCAL_REPLIES + 50);
  });

  test('a client that does not read stops both directions until it drains', () => {
    const d = new Driver().server(GREETING);
    d.run(d.stream.congestion('client', true));
    d.client('NOOP\r\nNOOP\r\n');
    expect(d.text('server')).toBe('');
    expect(d.paused.client).toBe(true);
    d.run(d.stream.congestion('client', false));
    expect(d.text('server')).toBe('NOOP\r\nNOOP\r\n');
    expect(d.paused.client).toBe(false);
  });

  test('a command line that never ends is dropped, then the session is closed', () => {
    const d = new Driver().server(GREETING);
    d.client('A'.repeat(2000));
    expect(d.codes('refuse')).toMatchObject([{ code: 'LINE_TOO_LONG' }]);
    expect(d.closed).toBeUndefined();
    for (let i = 0; i < 20 && !d.closed; i++) d.client('A'.repeat(1000));
    expect(d.closed).toMatchObject({ reason: 'line far over the limit', lastWords: expect.stringMatching(/^421 /) });
    expect(d.text('server')).toBe('');
  });

  test('a client ignoring the pause is closed past the hard cap', () => {
    const d = new Driver().server(GREETING);
    d.run(d.stream.congestion('server', true));
    for (let i = 0; i < 40 && !d.closed; i++) d.client(Buffer.alloc(32 * 1024, 'NOOP\r\n'));
    expect(d.closed).toMatchObject({ type: 'close', lastWords: expect.stringMatching(/^421 /) });
  });
});

describe('timers and ends', () => {
  test('only complete lines are activity', () => {
    const d = new Driver().server(GREETING);
    const before = d.actions.filter((a) => a.type === 'activity').length;
    d.client('NOO');
    expect(d.actions.filter((a) => a.type === 'activity').length).toBe(before);
    expect(d.stream.partialLine('client')).toBe(true);
    d.client('P\r\n');
    expect(d.actions.filter((a) => a.type === 'activity').length).toBe(before + 1);
    expect(d.stream.partialLine('client')).toBe(false);
  });

  test('the idle timer spares a session while its data moves, not a transfer reply owed with nothing moving', () => {
    const d = new Driver(V4, RELAY, { autoFinish: false }).server(GREETING).client('PASV\r\nRETR f\r\n');
    d.server('227 Entering Passive Mode (100,64,0,10,100,1).\r\n150 go\r\n');
    expect(d.stream.idleTimedOut(1000, true)).toBe('still-busy');
    // A server that never sends its 226 cannot hold the session forever.
    const r = d.stream.idleTimedOut(1000, false);
    expect(r).not.toBe('still-busy');
    d.run(r as Action[]);
    expect(d.closed?.lastWords).toMatch(/^421 Idle timeout/);
  });

  test('with AUTH passed through, encrypted bytes are activity', () => {
    const d = new Driver(V4, { ...RELAY, tls: 'passthrough' }).server(GREETING).client('AUTH TLS\r\n').server('234 go\r\n');
    const before = d.actions.filter((a) => a.type === 'activity').length;
    d.client('\x17\x03\x03 opaque');
    d.server('\x17\x03\x03 opaque');
    expect(d.actions.filter((a) => a.type === 'activity').length).toBe(before + 2);
  });

  test('going blind keeps a side paused while the peer it writes to is congested', () => {
    const d = new Driver(V4, { ...RELAY, tls: 'passthrough' }).server(GREETING).client('AUTH TLS\r\n');
    d.run(d.stream.congestion('server', true));
    d.client('NOOP\r\n');
    expect(d.paused.client).toBe(true);
    d.server('234 go\r\n');
    expect(d.paused.client).toBe(true);
    d.run(d.stream.congestion('server', false));
    expect(d.paused.client).toBe(false);
  });

  test('a client FIN goes on after what it sent before, the unterminated tail included', () => {
    const d = new Driver().server(GREETING).client('NOOP\r\nQUI');
    d.run(d.stream.peerEnded('client'));
    expect(d.text('server')).toBe('NOOP\r\nQUI');
    expect(d.ends).toEqual(['server']);
  });

  test('AUTH passed through: after 234 every byte passes untouched', () => {
    const d = new Driver(V4, { ...RELAY, tls: 'passthrough' }).server(GREETING).client('AUTH TLS\r\n\x16\x03\x01PORT 1,2,3,4,5,6\r\n');
    expect(d.text('server')).toBe('AUTH TLS\r\n');
    d.server('234 go\r\n');
    expect(d.text('server')).toBe('AUTH TLS\r\n\x16\x03\x01PORT 1,2,3,4,5,6\r\n');
    d.server('\x17\x03\x03 227 (100,64,0,10,1,1)\r\n');
    expect(d.text('client')).toBe(`${GREETING}234 go\r\n\x17\x03\x03 227 (100,64,0,10,1,1)\r\n`);
    expect(d.stream.blind).toBe(true);
  });

  test('forward mode (pass) leaves a 227 of the server its own', () => {
    const d = new Driver(V4, PASS).server(GREETING).client('PASV\r\n').server('227 Entering Passive Mode (100,64,0,10,100,1).\r\n');
    expect(d.text('client')).toBe(`${GREETING}227 Entering Passive Mode (100,64,0,10,100,1).\r\n`);
  });
});
