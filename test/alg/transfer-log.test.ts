import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { TransferTracker, xferlogLine, type TrackerRecord, type TransferRecord } from '../../src/alg/transfer-log.js';

const cmd = (verb: string, argument = '') => ({ verb, argument });

function loggedIn(user = 'alice'): TransferTracker {
  const t = new TransferTracker();
  t.commandSent(cmd('USER', user), 0);
  t.finalReply(cmd('USER', user), 331, 1);
  t.commandSent(cmd('PASS', 'secret'), 2);
  t.finalReply(cmd('PASS', 'secret'), 230, 3);
  return t;
}

const transfers = (rs: TrackerRecord[]): TransferRecord[] => rs.flatMap((r) => (r.kind === 'transfer' ? [r.record] : []));

describe('login', () => {
  test.each([
    ['USER/331/PASS/230', [['USER', 331], ['PASS', 230]], [{ user: 'bob', reply: 230 }]],
    ['USER/230 (no password)', [['USER', 230]], [{ user: 'bob', reply: 230 }]],
    ['USER/331/PASS/530: failed login is visible', [['USER', 331], ['PASS', 530]], [{ user: 'bob', reply: 530 }]],
    ['USER/530 at once', [['USER', 530]], [{ user: 'bob', reply: 530 }]],
    ['USER/331/PASS/332/ACCT/230', [['USER', 331], ['PASS', 332], ['ACCT', 230]], [{ user: 'bob', reply: 230 }]],
    ['USER/331/PASS/421', [['USER', 331], ['PASS', 421]], [{ user: 'bob', reply: 421 }]],
  ] as const)('%s', (_title, steps, expected) => {
    const t = new TransferTracker();
    const out: TrackerRecord[] = [];
    t.commandSent(cmd('USER', 'bob'), 0);
    steps.forEach(([verb, code], i) => {
      if (verb !== 'USER') t.commandSent(cmd(verb, 'x'), i);
      out.push(...t.finalReply(cmd(verb, verb === 'USER' ? 'bob' : 'x'), code, i));
    });
    expect(out).toEqual(expected.map((record) => ({ kind: 'login', record })));
  });

  test('a failed login does not become the transfer user; a later good one does', () => {
    const t = new TransferTracker();
    t.commandSent(cmd('USER', 'mallory'), 0);
    t.finalReply(cmd('USER', 'mallory'), 331, 0);
    t.finalReply(cmd('PASS', 'x'), 530, 0);
    t.commandSent(cmd('RETR', 'f'), 1);
    expect(transfers(t.finalReply(cmd('RETR', 'f'), 530, 2))[0]!.user).toBeUndefined();
    t.commandSent(cmd('USER', 'alice'), 3);
    t.finalReply(cmd('USER', 'alice'), 331, 3);
    t.finalReply(cmd('PASS', 'x'), 230, 3);
    t.commandSent(cmd('RETR', 'f'), 4);
    expect(transfers(t.finalReply(cmd('RETR', 'f'), 550, 5))[0]!.user).toBe('alice');
  });

  test('forward explicit: the dialer sent USER; the first reply answers it', () => {
    const t = new TransferTracker();
    t.userSentByDialer('anonymous');
    expect(t.finalReply(undefined, 331, 0)).toEqual([]);
    expect(t.finalReply(cmd('PASS', 'x'), 230, 1)).toEqual([{ kind: 'login', record: { user: 'anonymous', reply: 230 } }]);
  });

  test('replies to other commands do not produce login records', () => {
    const t = loggedIn();
    expect(t.finalReply(cmd('NOOP'), 200, 5)).toEqual([]);
    expect(t.finalReply(undefined, 200, 5)).toEqual([]);
  });
});

/**
 * Direction is the user's: RETR is a download whichever side dialled. The
 * relay counts bytes towards the side it dialled (passive: the server,
 * active: the client); the tracker turns that back into the user's view.
 */
describe('direction and bytes, both modes', () => {
  const cases = [
    { command: 'RETR', direction: 'download', mode: 'passive', close: { bytesUp: 0, bytesDown: 1000 } },
    { command: 'RETR', direction: 'download', mode: 'active', close: { bytesUp: 1000, bytesDown: 0 } },
    { command: 'STOR', direction: 'upload', mode: 'passive', close: { bytesUp: 1000, bytesDown: 0 } },
    { command: 'STOR', direction: 'upload', mode: 'active', close: { bytesUp: 0, bytesDown: 1000 } },
    { command: 'APPE', direction: 'upload', mode: 'passive', close: { bytesUp: 1000, bytesDown: 0 } },
    { command: 'STOU', direction: 'upload', mode: 'active', close: { bytesUp: 0, bytesDown: 1000 } },
    { command: 'LIST', direction: 'listing', mode: 'passive', close: { bytesUp: 0, bytesDown: 1000 } },
    { command: 'NLST', direction: 'listing', mode: 'active', close: { bytesUp: 1000, bytesDown: 0 } },
    { command: 'MLSD', direction: 'listing', mode: 'passive', close: { bytesUp: 0, bytesDown: 1000 } },
  ] as const;

  test.each(cases)('$command $mode → $direction, 1000 bytes', ({ command, direction, mode, close }) => {
    const t = loggedIn();
    t.commandSent(cmd('TYPE', 'I'), 10);
    t.dataOpened(mode, 'relay');
    t.commandSent(cmd(command, 'dir/file.bin'), 100);
    expect(t.dataClosed(close, 350)).toEqual([]);
    const out = transfers(t.finalReply(cmd(command, 'dir/file.bin'), 226, 400));
    expect(out).toEqual([
      { user: 'alice', command, path: 'dir/file.bin', direction, bytes: 1000, durationMs: 300, mode, dataPath: 'relay', reply: 226, type: 'binary' },
    ]);
  });

  test('the reply may come before the close (TransferResolver order): the record waits for both', () => {
    const t = loggedIn();
    t.dataOpened('passive', 'relay');
    t.commandSent(cmd('RETR', 'a'), 100);
    expect(t.finalReply(cmd('RETR', 'a'), 226, 200)).toEqual([]);
    const out = transfers(t.dataClosed({ bytesUp: 0, bytesDown: 7 }, 250));
    expect(out).toMatchObject([{ bytes: 7, durationMs: 150, reply: 226, type: 'ascii' }]);
  });

  test('active mode: the server connects after the command; the connection belongs to it', () => {
    const t = loggedIn();
    t.commandSent(cmd('RETR', 'a'), 100);
    t.dataOpened('active', 'relay');
    t.dataClosed({ bytesUp: 5, bytesDown: 0 }, 150);
    expect(transfers(t.finalReply(cmd('RETR', 'a'), 226, 160))).toMatchObject([{ mode: 'active', bytes: 5 }]);
  });

  test('active mode: a 226 that comes before the data connection even opened waits for it', () => {
    const t = loggedIn();
    t.commandSent(cmd('RETR', 'small'), 100);
    expect(t.finalReply(cmd('RETR'), 226, 110)).toEqual([]);
    t.dataOpened('active', 'relay');
    expect(transfers(t.dataClosed({ bytesUp: 7, bytesDown: 0 }, 130))).toMatchObject([{ mode: 'active', bytes: 7, durationMs: 30, reply: 226 }]);
  });

  test('a 2xx transfer whose data connection never comes is logged when the session ends', () => {
    const t = loggedIn();
    t.commandSent(cmd('STOR', 'x'), 0);
    expect(t.finalReply(cmd('STOR'), 226, 1)).toEqual([]);
    expect(transfers(t.sessionClosed(9))).toMatchObject([{ command: 'STOR', reply: 226, bytes: 0 }]);
  });

  test('kernel data path: bytes omitted with the reason', () => {
    const t = loggedIn();
    t.dataOpened('passive', 'kernel');
    t.commandSent(cmd('STOR', 'up'), 0);
    t.dataClosed({ bytesOmitted: 'kernel data path: bytes not counted' }, 10);
    const [r] = transfers(t.finalReply(cmd('STOR', 'up'), 226, 20));
    expect(r).toMatchObject({ direction: 'upload', dataPath: 'kernel', bytesOmitted: 'kernel data path: bytes not counted' });
    expect(r).not.toHaveProperty('bytes');
  });

  test('a transfer refused before any data connection ends at its reply, 0 bytes, no mode', () => {
    const t = loggedIn();
    t.commandSent(cmd('RETR', 'missing'), 0);
    const [r] = transfers(t.finalReply(cmd('RETR', 'missing'), 550, 5));
    expect(r).toEqual({ user: 'alice', command: 'RETR', path: 'missing', direction: 'download', bytes: 0, durationMs: 5, reply: 550, type: 'ascii' });
  });

  test('an abandoned PASV whose connection closes unused logs nothing and does not leak into the next transfer', () => {
    const t = loggedIn();
    t.dataOpened('passive', 'relay');
    expect(t.dataClosed({ bytesUp: 0, bytesDown: 0 }, 5)).toEqual([]);
    t.commandSent(cmd('RETR', 'x'), 10);
    expect(transfers(t.finalReply(cmd('RETR', 'x'), 425, 11))[0]).not.toHaveProperty('mode');
  });

  test('TYPE A N is ascii, TYPE L 8 is binary', () => {
    const t = loggedIn();
    t.commandSent(cmd('TYPE', 'L 8'), 0);
    t.commandSent(cmd('LIST'), 0);
    expect(transfers(t.finalReply(cmd('LIST'), 550, 0))[0]!.type).toBe('binary');
    t.commandSent(cmd('TYPE', 'A N'), 0);
    t.commandSent(cmd('LIST'), 0);
    expect(transfers(t.finalReply(cmd('LIST'), 550, 0))[0]!.type).toBe('ascii');
  });

  test('the session ends mid-transfer: logged with what is known, reply 0', () => {
    const t = loggedIn();
    t.dataOpened('passive', 'relay');
    t.commandSent(cmd('RETR', 'big'), 0);
    const [r] = transfers(t.sessionClosed(40));
    expect(r).toMatchObject({ command: 'RETR', reply: 0, durationMs: 40, bytesOmitted: expect.stringMatching(/still open/) });
    expect(t.sessionClosed(50)).toEqual([]);
  });
});

/**
 * Whatever the order of the two completion inputs and however many
 * transfers run in a row, each transfer is logged exactly once, in order,
 * with its own bytes.
 */
fcTest.prop([fc.array(fc.tuple(fc.constantFrom('RETR', 'STOR', 'LIST'), fc.nat(1e6), fc.boolean(), fc.constantFrom('active', 'passive')), { maxLength: 20 })])(
  'every transfer is logged once, in order, with its bytes, whichever completion comes first',
  (steps) => {
    const t = loggedIn();
    const out: TransferRecord[] = [];
    steps.forEach(([verb, bytes, replyFirst, mode], i) => {
      const toDialled = (verb === 'STOR') === (mode === 'passive');
      const close = toDialled ? { bytesUp: bytes, bytesDown: 0 } : { bytesUp: 0, bytesDown: bytes };
      t.dataOpened(mode, 'relay');
      t.commandSent(cmd(verb, `f${i}`), i * 10);
      if (replyFirst) {
        out.push(...transfers(t.finalReply(cmd(verb, `f${i}`), 226, i * 10 + 1)));
        out.push(...transfers(t.dataClosed(close, i * 10 + 2)));
      } else {
        out.push(...transfers(t.dataClosed(close, i * 10 + 1)));
        out.push(...transfers(t.finalReply(cmd(verb, `f${i}`), 226, i * 10 + 2)));
      }
    });
    expect(out.map((r) => [r.path, r.bytes, r.mode])).toEqual(steps.map(([, bytes, , mode], i) => [`f${i}`, bytes, mode]));
  },
);

describe('xferlog line (man 5 xferlog)', () => {
  const at = new Date(2026, 10, 28, 8, 5, 9);
  const base: TransferRecord & { client: string } = {
    user: 'alice', command: 'RETR', path: '/pub/my file.bin', direction: 'download', bytes: 1048576, durationMs: 2400,
    mode: 'passive', dataPath: 'relay', reply: 226, type: 'binary', client: '[2001:db8::7]:50123',
  };
  test.each([
    ['a download', {}, 'Sat Nov 28 08:05:09 2026 2 2001:db8::7 1048576 /pub/my_file.bin b _ o r alice ftp 0 * c'],
    ['an upload in ascii that failed', { command: 'STOR', direction: 'upload', type: 'ascii', reply: 451, client: '198.18.0.9:2000' }, 'Sat Nov 28 08:05:09 2026 2 198.18.0.9 1048576 /pub/my_file.bin a _ i r alice ftp 0 * i'],
    ['anonymous, a sub-second transfer (1 s, as wu-ftpd rounds up to at least 1)', { user: 'anonymous', durationMs: 3 }, 'Sat Nov 28 08:05:09 2026 1 2001:db8::7 1048576 /pub/my_file.bin b _ o a anonymous ftp 0 * c'],
    ['kernel path, bytes unknown', { bytes: undefined, bytesOmitted: 'kernel' }, 'Sat Nov 28 08:05:09 2026 2 2001:db8::7 0 /pub/my_file.bin b _ o r alice ftp 0 * c'],
    ['control characters and an empty user', { path: 'a\tb\x7fc', user: undefined }, 'Sat Nov 28 08:05:09 2026 2 2001:db8::7 1048576 a_b_c b _ o r _ ftp 0 * c'],
  ] as const)('%s', (_title, change, line) => {
    expect(xferlogLine({ ...base, ...change } as TransferRecord & { client: string }, at)).toBe(line);
  });

  test('a listing has no xferlog line (as in wu-ftpd and ProFTPD)', () => {
    expect(xferlogLine({ ...base, command: 'LIST', direction: 'listing' }, at)).toBeUndefined();
  });

  test('every line has the 18 space-separated fields of the format', () => {
    fc.assert(
      fc.property(fc.string(), fc.option(fc.string(), { nil: undefined }), (path, user) => {
        const line = xferlogLine({ ...base, path, user }, at)!;
        expect(line.split(' ')).toHaveLength(18);
      }),
    );
  });
});

test('trackerEvents: records become login/transfer events of the session', async () => {
  const { trackerEvents } = await import('../../src/gateway/events.js');
  const t = new TransferTracker();
  t.commandSent(cmd('USER', 'bob'), 0);
  expect(trackerEvents(t.finalReply(cmd('USER'), 530, 1), 's-1', '127.0.0.1:5')).toEqual([{ event: 'login', session: 's-1', client: '127.0.0.1:5', user: 'bob', reply: 530 }]);
});
