/**
 * Made-up FTP sessions as the capture would show them, one per situation the
 * analyser must recognise. Addresses: 100.64.0.0/10 inside a NAT,
 * 198.18.0.0/15 outside, fd00::/8 for IPv6.
 */
import { formatPortArg } from '../../src/protocol/endpoint.js';
import { Trace, TcpConversation, exchange, type Peer } from './pcap-writer.js';

export const CLIENT: Peer = { address: '198.18.1.10', port: 40000 };
export const SERVER: Peer = { address: '198.18.0.21', port: 21 };
export const SERVER_INSIDE = '100.64.0.21';
export const CLIENT_INSIDE = '100.64.1.2';

export const pasv = (address: string, port: number) => `227 Entering Passive Mode (${formatPortArg({ family: 4, address, port })}).`;
export const portCmd = (address: string, port: number) => `PORT ${formatPortArg({ family: 4, address, port })}`;

/** Greeting and login. */
export function login(ctl: TcpConversation): void {
  exchange(ctl, [
    ['s', '220 FTP server ready'],
    ['c', 'USER anonymous'],
    ['s', '331 Password required'],
    ['c', 'PASS secret'],
    ['s', '230 Logged in'],
  ]);
}

export interface Scenario {
  trace: Trace;
  ctl: TcpConversation;
}

export function control(client: Peer = CLIENT, server: Peer = SERVER, trace = new Trace()): Scenario {
  const ctl = new TcpConversation(trace, client, server, { c: 1000, s: 5000 }).handshake();
  login(ctl);
  return { trace, ctl };
}

/** A download over a data connection that `dial` opens. */
export function transfer(s: Scenario, dial: () => void, verb = 'RETR file.txt'): void {
  s.ctl.line('c', verb);
  dial();
  s.ctl.line('s', '150 Opening data connection');
  s.ctl.line('s', '226 Transfer complete');
}

export function dataConnection(trace: Trace, from: Peer, to: Peer, body = 'file contents\n'): TcpConversation {
  const d = new TcpConversation(trace, from, to, { c: 70000, s: 90000 }).handshake();
  d.send('s', body);
  d.close('s');
  return d;
}

export function quit(s: Scenario): Scenario {
  s.ctl.line('c', 'QUIT');
  s.ctl.line('s', '221 Bye');
  s.ctl.close('s');
  return s;
}

// ---- the situations -------------------------------------------------------------

export function cleanPassive(): Scenario {
  const s = control();
  exchange(s.ctl, [
    ['c', 'PASV'],
    ['s', pasv(SERVER.address, 50000)],
  ]);
  transfer(s, () => dataConnection(s.trace, { ...CLIENT, port: 40001 }, { address: SERVER.address, port: 50000 }));
  exchange(s.ctl, [
    ['c', 'EPSV'],
    ['s', '229 Entering Extended Passive Mode (|||50001|)'],
  ]);
  transfer(s, () => dataConnection(s.trace, { ...CLIENT, port: 40002 }, { address: SERVER.address, port: 50001 }), 'LIST');
  return quit(s);
}

export function cleanActive(): Scenario {
  const s = control();
  exchange(s.ctl, [
    ['c', portCmd(CLIENT.address, 40100)],
    ['s', '200 PORT command successful'],
  ]);
  transfer(s, () => dataConnection(s.trace, { address: SERVER.address, port: 20 }, { address: CLIENT.address, port: 40100 }));
  exchange(s.ctl, [
    ['c', `EPRT |1|${CLIENT.address}|40101|`],
    ['s', '200 EPRT command successful'],
  ]);
  transfer(s, () => dataConnection(s.trace, { address: SERVER.address, port: 20 }, { address: CLIENT.address, port: 40101 }));
  return quit(s);
}

export function cleanIpv6(): Scenario {
  const client = { address: 'fd00:1::10', port: 40000 };
  const server = { address: 'fd00::21', port: 21 };
  const s = control(client, server);
  exchange(s.ctl, [
    ['c', 'EPSV'],
    ['s', '229 Entering Extended Passive Mode (|||50002|)'],
  ]);
  transfer(s, () => dataConnection(s.trace, { ...client, port: 40001 }, { address: server.address, port: 50002 }));
  exchange(s.ctl, [
    ['c', `EPRT |2|${client.address}|40102|`],
    ['s', '200 EPRT command successful'],
  ]);
  transfer(s, () => dataConnection(s.trace, { address: server.address, port: 20 }, { address: client.address, port: 40102 }));
  return quit(s);
}

/** Captured at the client: the server, behind a NAT, announces its inside address; the client tries it. */
export function pasvPrivateUnreachable(): Scenario {
  const s = control();
  exchange(s.ctl, [
    ['c', 'PASV'],
    ['s', pasv(SERVER_INSIDE, 50000)],
  ]);
  transfer(s, () => new TcpConversation(s.trace, { ...CLIENT, port: 40001 }, { address: SERVER_INSIDE, port: 50000 }).syn(3));
  return quit(s);
}

/** The same, but the client (like curl) connects to the control address instead. */
export function pasvPrivateIgnored(): Scenario {
  const s = control();
  exchange(s.ctl, [
    ['c', 'PASV'],
    ['s', pasv(SERVER_INSIDE, 50000)],
  ]);
  transfer(s, () => dataConnection(s.trace, { ...CLIENT, port: 40001 }, { address: SERVER.address, port: 50000 }));
  return quit(s);
}

/** Captured at the server: the client's NAT did not rewrite PORT; the server dials the inside address. */
export function portPrivate(): Scenario {
  const natted = { address: '198.18.0.1', port: 61000 };
  const s = control(natted);
  exchange(s.ctl, [
    ['c', portCmd(CLIENT_INSIDE, 40100)],
    ['s', '200 PORT command successful'],
  ]);
  s.ctl.line('c', 'RETR file.txt');
  new TcpConversation(s.trace, { address: SERVER.address, port: 20 }, { address: CLIENT_INSIDE, port: 40100 }).syn(2);
  s.ctl.line('s', "425 Can't open data connection");
  return quit(s);
}

export function passiveRefused(): Scenario {
  const s = control();
  exchange(s.ctl, [
    ['c', 'EPSV'],
    ['s', '229 Entering Extended Passive Mode (|||50003|)'],
  ]);
  s.ctl.line('c', 'LIST');
  new TcpConversation(s.trace, { ...CLIENT, port: 40001 }, { address: SERVER.address, port: 50003 }).refused();
  s.ctl.line('s', "425 Can't open data connection");
  return quit(s);
}

/** The passive data connection comes from another address than the control connection. */
export function unexpectedPeer(): Scenario {
  const s = control();
  exchange(s.ctl, [
    ['c', 'PASV'],
    ['s', pasv(SERVER.address, 50004)],
  ]);
  transfer(s, () => dataConnection(s.trace, { address: '198.18.1.99', port: 40001 }, { address: SERVER.address, port: 50004 }));
  return quit(s);
}

/** A PORT command and a 227 reply each written in two segments. */
export function splitLines(): Scenario {
  const s = control();
  s.ctl.line('c', portCmd(CLIENT.address, 40100), { split: [7] });
  s.ctl.line('s', '200 PORT command successful');
  transfer(s, () => dataConnection(s.trace, { address: SERVER.address, port: 20 }, { address: CLIENT.address, port: 40100 }));
  s.ctl.line('c', 'PASV');
  s.ctl.line('s', pasv(SERVER.address, 50005), { split: [30] });
  transfer(s, () => dataConnection(s.trace, { ...CLIENT, port: 40001 }, { address: SERVER.address, port: 50005 }));
  return quit(s);
}

export function authTls(): Scenario {
  const s = control();
  exchange(s.ctl, [
    ['c', 'AUTH TLS'],
    ['s', '234 AUTH TLS successful'],
  ]);
  // A TLS ClientHello and ServerHello: binary, with LF bytes that must not be read as lines.
  s.ctl.send('c', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x0a, 0x0a, 0x50, 0x4f, 0x52, 0x54, 0x20, 0x0d, 0x0a, 0x01, 0x02]));
  s.ctl.send('s', Buffer.from([0x16, 0x03, 0x03, 0x00, 0x0a, 0x32, 0x32, 0x37, 0x20, 0x0a, 0x99]));
  s.ctl.close();
  return s;
}

export function epsvAllViolated(): Scenario {
  const s = control();
  exchange(s.ctl, [
    ['c', 'EPSV ALL'],
    ['s', '200 EPSV ALL ok'],
    ['c', 'PASV'],
    ['s', '227 Entering Passive Mode (198,18,0,21,195,83).'],
  ]);
  transfer(s, () => dataConnection(s.trace, { ...CLIENT, port: 40001 }, { address: SERVER.address, port: 50003 }));
  return quit(s);
}

/** The capture holds only the control connection (a `port 21` filter). */
export function dataNotCaptured(): Scenario {
  const s = control();
  exchange(s.ctl, [
    ['c', 'PASV'],
    ['s', pasv(SERVER.address, 50006)],
  ]);
  transfer(s, () => undefined);
  return quit(s);
}

/** Control port only: PORT with a public address, then 425 to the transfer (nothing let the server in). */
export function active425(): Scenario {
  const s = control();
  exchange(s.ctl, [
    ['c', portCmd(CLIENT.address, 40001)],
    ['s', '200 PORT command successful'],
    ['c', 'RETR file.txt'],
    ['s', "425 Can't open data connection."],
  ]);
  return quit(s);
}

/** pyftpdlib dials at PORT time and answers the PORT with 425; the address is the client's inside one. */
export function activePortTime425(): Scenario {
  const s = control();
  exchange(s.ctl, [
    ['c', portCmd(CLIENT_INSIDE, 40001)],
    ['s', "425 Can't connect to specified address."],
  ]);
  return quit(s);
}

/** Control port only: EPSV, then 425 (the client never reached the passive port). */
export function passive425(): Scenario {
  const s = control();
  exchange(s.ctl, [
    ['c', 'EPSV'],
    ['s', '229 Entering Extended Passive Mode (|||50001|)'],
    ['c', 'LIST'],
    ['s', '425 Can\'t open data connection.'],
  ]);
  return quit(s);
}

/** The data connection opened, then 426. */
export function aborted426(): Scenario {
  const s = control();
  exchange(s.ctl, [
    ['c', 'PASV'],
    ['s', pasv(SERVER.address, 50000)],
    ['c', 'RETR big.iso'],
  ]);
  dataConnection(s.trace, { ...CLIENT, port: 40001 }, { address: SERVER.address, port: 50000 });
  exchange(s.ctl, [
    ['s', '150 Opening data connection'],
    ['s', '426 Connection closed; transfer aborted.'],
  ]);
  return quit(s);
}
