/**
 * Control sessions from reassembled streams: which connections are FTP,
 * command/reply pairing, multi-line and pipelined traffic, gaps, TLS, and
 * which data connection belongs to which announcement.
 */
import { describe, expect, test } from 'vitest';
import { findControlSessions, matchDataChannels, type FtpSession } from '../../src/diagnose/ftp.js';
import { readCapture } from '../../src/diagnose/pcap.js';
import { trackConnections } from '../../src/diagnose/tcp.js';
import { Trace, TcpConversation, exchange, writePcap, type Packet } from './pcap-writer.js';
import * as S from './scenarios.js';

function sessionsOf(packets: Packet[]) {
  const connections = trackConnections(readCapture(writePcap(packets), 't.pcap').segments);
  const sessions = findControlSessions(connections);
  return { sessions, channels: matchDataChannels(sessions, connections) };
}

function only(packets: Packet[]): FtpSession {
  const { sessions } = sessionsOf(packets);
  expect(sessions).toHaveLength(1);
  return sessions[0]!;
}

describe('which connections are FTP control', () => {
  test.each([
    { title: 'port 21', port: 21, greeting: '220 hi', first: 'USER a', expected: 'port-21' },
    { title: '220 greeting on 2121', port: 2121, greeting: '220 ProFTPD Server ready.', first: 'USER a', expected: 'greeting' },
    { title: 'multi-line 220 greeting on 2121', port: 2121, greeting: '220-Welcome\r\n220 ready', first: 'USER a', expected: 'greeting' },
    { title: 'SMTP greeting on 2525', port: 2525, greeting: '220 mail.example ESMTP Postfix', first: 'EHLO me', expected: undefined },
    { title: 'SMTP client on 2526', port: 2526, greeting: '220 mx ready', first: 'HELO me', expected: undefined },
    { title: 'HTTP on 8080', port: 8080, greeting: 'HTTP/1.1 200 OK', first: 'GET / HTTP/1.1', expected: undefined },
  ])('$title', ({ port, greeting, first, expected }) => {
    const trace = new Trace();
    const conv = new TcpConversation(trace, S.CLIENT, { ...S.SERVER, port }).handshake();
    conv.line('s', greeting);
    conv.line('c', first);
    const { sessions } = sessionsOf(trace.packets);
    expect(sessions.map((s) => s.detectedBy)).toEqual(expected ? [expected] : []);
  });
});

describe('commands and replies', () => {
  test('pairing, preliminary replies, pipelining, multi-line replies, bare LF, Telnet IAC', () => {
    const s = S.control();
    s.ctl.send('c', 'SYST\r\nFEAT\r\n'); // pipelined in one segment
    s.ctl.line('s', '215 UNIX Type: L8');
    s.ctl.send('s', '211-Features:\r\n EPSV\r\n', { split: [6] });
    s.ctl.send('s', ' MDTM\r\n211 End\r\n');
    s.ctl.send('c', 'TYPE I\n');
    s.ctl.send('s', '200 Type set to I\n');
    s.ctl.send('c', Buffer.concat([Buffer.from([0xff, 0xf4, 0xff, 0xf2]), Buffer.from('ABOR\r\n')]));
    s.ctl.line('s', '226 Abort successful');
    const session = only(S.quit(s).trace.packets);
    const pairs = session.commands.map((c) => [c.verb, c.reply?.code]);
    expect(pairs).toEqual([
      ['USER', 331],
      ['PASS', 230],
      ['SYST', 215],
      ['FEAT', 211],
      ['TYPE', 200],
      ['ABOR', 226],
      ['QUIT', 221],
    ]);
    const feat = session.replies.find((r) => r.code === 211)!;
    expect(feat.lines.map((l) => l.text)).toEqual(['211-Features:', ' EPSV', ' MDTM', '211 End']);
    expect(feat.lines[0]!.packets).toHaveLength(2);
    expect(session.replies[0]!.command).toBeUndefined(); // the greeting
    const syst = session.commands.find((c) => c.verb === 'SYST')!;
    const featCmd = session.commands.find((c) => c.verb === 'FEAT')!;
    expect(syst.packet).toBe(featCmd.packet);
    expect(featCmd.offset).toBe(syst.offset + syst.length);
  });

  test('a 150 waits for the 226: both belong to RETR', () => {
    const s = S.cleanPassive();
    const session = only(s.trace.packets);
    const retr = session.commands.find((c) => c.verb === 'RETR')!;
    expect(retr.reply?.code).toBe(226);
    expect(session.replies.find((r) => r.code === 150)!.command).toBe(retr);
  });

  test('a gap in the capture: noted, lines after it still read', () => {
    const s = S.control();
    s.ctl.line('c', 'NOOP');
    s.ctl.line('s', '200 ok');
    s.ctl.line('c', 'CWD /somewhere/far', { split: [6] });
    s.ctl.line('s', '250 ok');
    s.ctl.line('c', 'PWD');
    s.ctl.line('s', '257 "/somewhere/far"');
    const packets = S.quit(s).trace.packets;
    const lost = packets.findIndex((p) => p.payload?.toString() === 'CWD /s');
    packets.splice(lost, 1);
    const session = only(packets);
    expect(session.commands.map((c) => c.verb)).toEqual(['USER', 'PASS', 'NOOP', 'PWD', 'QUIT']);
    expect(session.notes).toEqual([expect.stringMatching(/^client->server: 6 bytes missing from the capture at stream offset 35; the line across the gap is lost$/)]);
  });

  test('a line over the framer cap is skipped with a note', () => {
    const s = S.control();
    s.ctl.line('c', `SITE ${'x'.repeat(5000)}`, { split: [1400, 1400, 1400] });
    s.ctl.line('s', '500 too long');
    const session = only(S.quit(s).trace.packets);
    expect(session.commands.map((c) => c.verb)).toEqual(['USER', 'PASS', 'QUIT']);
    expect(session.notes[0]).toMatch(/longer than 4096 bytes; skipped/);
  });

  test('AUTH TLS: nothing after the 234 is read, no notes about the TLS bytes', () => {
    const session = only(S.authTls().trace.packets);
    expect(session.commands.at(-1)!.text).toBe('AUTH TLS');
    expect(session.replies.at(-1)!.code).toBe(234);
    expect(session.tls?.reply.code).toBe(234);
    expect(session.notes).toEqual(['control channel encrypted after AUTH TLS (234 at packet 16); the bytes after it are not read as lines']);
  });

  test('AUTH TLS refused (534): the session stays readable', () => {
    const s = S.control();
    exchange(s.ctl, [
      ['c', 'AUTH TLS'],
      ['s', '534 Not supported'],
      ['c', 'PASV'],
      ['s', S.pasv(S.SERVER.address, 50000)],
    ]);
    const session = only(S.quit(s).trace.packets);
    expect(session.tls).toBeUndefined();
    expect(session.announcements.map((a) => a.kind)).toEqual(['227']);
  });

  test('an endpoint argument that does not parse is a note, not an announcement', () => {
    const s = S.control();
    exchange(s.ctl, [
      ['c', 'PORT 1,2,3'],
      ['s', '501 Syntax error'],
      ['c', 'PASV'],
      ['s', '227 Entering Passive Mode.'],
    ]);
    const session = only(S.quit(s).trace.packets);
    expect(session.announcements).toEqual([]);
    expect(session.notes).toEqual([expect.stringMatching(/^PORT at packet \d+ has an argument that does not parse/), expect.stringMatching(/^227 at packet \d+ carries no endpoint/)]);
  });
});

describe('data connections', () => {
  test('each data connection goes to the announcement before it', () => {
    const s = S.control();
    exchange(s.ctl, [
      ['c', 'PASV'],
      ['s', S.pasv(S.SERVER.address, 50000)],
      ['c', 'PASV'],
      ['s', S.pasv(S.SERVER.address, 50000)],
    ]);
    S.transfer(s, () => S.dataConnection(s.trace, { ...S.CLIENT, port: 40001 }, { address: S.SERVER.address, port: 50000 }));
    const { sessions, channels } = sessionsOf(S.quit(s).trace.packets);
    const list = channels.get(sessions[0]!)!;
    expect(list.map((c) => c.status)).toEqual(['not-seen', 'opened']);
    expect(list[0]!.transferFollowed).toBeUndefined();
    expect(list[1]!.transferFollowed?.verb).toBe('RETR');
  });

  test('a retried data connection from a new port counts as one channel', () => {
    const s = S.control();
    exchange(s.ctl, [
      ['c', 'EPSV'],
      ['s', '229 Entering Extended Passive Mode (|||50000|)'],
    ]);
    S.transfer(s, () => {
      new TcpConversation(s.trace, { ...S.CLIENT, port: 40001 }, { address: S.SERVER.address, port: 50000 }).syn(2);
      S.dataConnection(s.trace, { ...S.CLIENT, port: 40002 }, { address: S.SERVER.address, port: 50000 });
    });
    const { sessions, channels } = sessionsOf(S.quit(s).trace.packets);
    const [ch] = channels.get(sessions[0]!)!;
    expect(ch!.status).toBe('opened');
    expect(ch!.connections.map((d) => d.conn.state)).toEqual(['unanswered', 'opened']);
  });

  test('a data connection whose handshake was not captured still matches', () => {
    const s = S.control();
    exchange(s.ctl, [
      ['c', 'PASV'],
      ['s', S.pasv(S.SERVER.address, 50000)],
    ]);
    let skipFrom = 0;
    S.transfer(s, () => {
      skipFrom = s.trace.packets.length;
      S.dataConnection(s.trace, { ...S.CLIENT, port: 40001 }, { address: S.SERVER.address, port: 50000 });
    });
    const packets = S.quit(s).trace.packets;
    packets.splice(skipFrom, 3); // SYN, SYN-ACK, ACK
    const { sessions, channels } = sessionsOf(packets);
    const [ch] = channels.get(sessions[0]!)!;
    expect(ch!.status).toBe('opened');
    expect(ch!.connections[0]!.conn.state).toBe('mid-stream');
    expect(ch!.connections[0]!.bytes.toInitiator).toBe('file contents\n'.length);
  });

  test('two control sessions in one capture keep their own data connections', () => {
    const trace = new Trace();
    const a = S.control(S.CLIENT, S.SERVER, trace);
    const b = S.control({ address: '198.18.1.11', port: 40000 }, S.SERVER, trace);
    exchange(a.ctl, [
      ['c', 'PASV'],
      ['s', S.pasv(S.SERVER.address, 50000)],
    ]);
    exchange(b.ctl, [
      ['c', 'PASV'],
      ['s', S.pasv(S.SERVER.address, 50001)],
    ]);
    S.dataConnection(trace, { address: '198.18.1.11', port: 40001 }, { address: S.SERVER.address, port: 50001 });
    S.dataConnection(trace, { ...S.CLIENT, port: 40001 }, { address: S.SERVER.address, port: 50000 });
    const { sessions, channels } = sessionsOf(trace.packets);
    expect(sessions).toHaveLength(2);
    expect(sessions.map((s) => channels.get(s)![0]!.connections[0]!.from.address)).toEqual([S.CLIENT.address, '198.18.1.11']);
  });
});
