/**
 * Regression corpus: odd replies real servers send (corpus/README.md), each
 * played through a real reverse gateway by a scripted server, split at every
 * byte boundary. The client must get the reply back with only the endpoint
 * changed, that endpoint must be a gateway listener, and a data connection
 * through it must deliver the server's payload. Replies without an endpoint
 * must arrive byte for byte.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startTestReverse, type TestGateway } from '../helpers/gateway.js';
import { completeReplies, fetchData, GREETING, RawControlClient, ScriptedFtpServer, writeSplit } from './scripted-server.js';

const CORPUS_DIR = fileURLToPath(new URL('./corpus/', import.meta.url));
const PAYLOAD = Buffer.from('corpus payload: \x00\xff\r\n through the gateway\n', 'latin1');

/**
 * Corpus files the gateway mishandles today, with the defect. Their tests
 * assert the correct behaviour and are expected to fail until it is fixed.
 */

const corpus = readdirSync(CORPUS_DIR)
  .filter((f) => f.endsWith('.reply'))
  .sort()
  .map((name) => ({ name, raw: readFileSync(CORPUS_DIR + name) }));

/** The command each reply answers, from its code: what the client sends to provoke it. */
const VERB_FOR_CODE: Record<number, string> = { 227: 'PASV', 228: 'LPSV', 229: 'EPSV', 211: 'FEAT', 215: 'SYST', 200: 'NOOP' };

type Kind = '227' | '228' | '229';
interface Scripted {
  bytes: Buffer;
  /** Where the endpoint sits in `bytes`, when the reply carries one. */
  span?: { start: number; end: number; kind: Kind };
}

/**
 * The corpus reply made live: its endpoint now names the scripted server's
 * data listener on 127.0.0.1 (same notation: zero padding, delimiter), so
 * that the gateway's passive dial really connects.
 */
function liveReply(raw: Buffer, dataPort: number): Scripted {
  const text = raw.toString('latin1');
  const p1 = dataPort >> 8;
  const p2 = dataPort & 0xff;
  const at = (start: number, length: number, replacement: string, kind: Kind): Scripted => {
    const bytes = Buffer.from(text.slice(0, start) + replacement + text.slice(start + length), 'latin1');
    return { bytes, span: { start, end: start + replacement.length, kind } };
  };
  const m228 = /\((4,4,\d{1,3}(?:,\d{1,3}){3},2,\d{1,3},\d{1,3})\)/.exec(text);
  if (m228) return at(m228.index + 1, m228[1]!.length, `4,4,127,0,0,1,2,${p1},${p2}`, '228');
  const m229 = /\(([!-~])\1\1(\d{1,5})\1\)/.exec(text);
  if (m229) return at(m229.index + 4, m229[2]!.length, String(dataPort), '229');
  const m227 = /(?<!\d)\d{1,3}(?:,\d{1,3}){5}(?!\d)/.exec(text);
  if (m227) {
    const padded = m227[0].split(',').every((n) => n.length === 3);
    const nums = [127, 0, 0, 1, p1, p2].map((n) => (padded ? String(n).padStart(3, '0') : String(n)));
    return at(m227.index, m227[0].length, nums.join(','), '227');
  }
  return { bytes: raw };
}

/** Reads an endpoint the gateway wrote in place of the server's: address and port. */
function parseAnnounced(kind: Kind, text: string): { address: string | undefined; port: number } | undefined {
  if (kind === '229') return /^\d{1,5}$/.test(text) ? { address: undefined, port: Number(text) } : undefined;
  const m = kind === '227' ? /^(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})$/.exec(text) : /^4,4,(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),2,(\d{1,3}),(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const n = m.slice(1).map(Number);
  return { address: n.slice(0, 4).join('.'), port: n[4]! * 256 + n[5]! };
}

const show = (b: Buffer): string => JSON.stringify(b.toString('latin1'));

let server: ScriptedFtpServer;
let gw: TestGateway;
const clients: RawControlClient[] = [];

beforeAll(async () => {
  server = await ScriptedFtpServer.start(PAYLOAD);
  gw = await startTestReverse(server.port);
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(async () => {
  await gw?.close();
  await server?.close();
});

async function loggedIn(gateway: TestGateway): Promise<RawControlClient> {
  const c = await RawControlClient.connect(gateway.port);
  clients.push(c);
  expect((await c.readReplies(1)).toString('latin1')).toBe(GREETING);
  await c.write('USER fuzz\r\n');
  expect((await c.readReplies(1)).toString('latin1')).toMatch(/^331 /);
  await c.write('PASS fuzz\r\n');
  expect((await c.readReplies(1)).toString('latin1')).toMatch(/^230 /);
  return c;
}

/** 0 (one write), then every boundary inside the reply. */
const splitPoints = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

test('the corpus is there and every file is a complete set of replies', () => {
  expect(corpus.length).toBeGreaterThanOrEqual(15);
  for (const { name, raw } of corpus) {
    const replies = completeReplies(raw);
    expect(replies.length, name).toBeGreaterThan(0);
    expect(replies.at(-1)!.end, name).toBe(raw.length);
    for (const r of replies) expect(VERB_FOR_CODE[r.code], `${name}: code ${r.code}`).toBeDefined();
  }
});

/**
 * Plays `raw` (made live) through `gateway` once per split point, on one
 * logged-in session, and checks what the client gets.
 */
async function playAtEveryBoundary(gateway: TestGateway, name: string, raw: Buffer): Promise<void> {
  const live = liveReply(raw, server.dataPort);
  const commands = completeReplies(live.bytes).map((r) => VERB_FOR_CODE[r.code]!);
  const c = await loggedIn(gateway);
  for (const splitAt of splitPoints(live.bytes.length)) {
    const where = `${name}, split at ${splitAt}`;
    const listensBefore = gateway.log.of('data-listen').length;
    server.script({ afterCommands: commands.length, bytes: live.bytes, splitAt });
    await c.write(commands.map((v) => `${v}\r\n`).join(''));
    const got = await c.readReplies(commands.length);

    if (!live.span) {
      // A passive reply without an endpoint would show the inside address
      // the gateway cannot rewrite: the client gets 425 instead (issue 12).
      if (completeReplies(live.bytes).some((r) => r.code >= 227 && r.code <= 229)) expect(got.toString('latin1'), where).toMatch(/^425 [^\d\r\n]*\r\n$/);
      else expect(show(got), where).toBe(show(live.bytes));
      expect(gateway.log.of('data-listen').length, where).toBe(listensBefore);
      continue;
    }
    // Every byte outside the endpoint is the server's.
    const { start, end, kind } = live.span;
    const suffix = live.bytes.subarray(end);
    expect(show(got.subarray(0, start)), `${where}: bytes before the endpoint`).toBe(show(live.bytes.subarray(0, start)));
    expect(show(got.subarray(got.length - suffix.length)), `${where}: bytes after the endpoint`).toBe(show(suffix));
    // The endpoint is the gateway's: a passive listener it opened for this reply.
    const endpointText = got.subarray(start, got.length - suffix.length).toString('latin1');
    const announced = parseAnnounced(kind, endpointText);
    expect(announced, `${where}: endpoint ${JSON.stringify(endpointText)}`).toBeDefined();
    const listens = gateway.log.of('data-listen').slice(listensBefore);
    expect(listens, where).toHaveLength(1);
    expect(listens[0]).toMatchObject({ mode: 'passive', address: '127.0.0.1', port: announced!.port });
    if (announced!.address !== undefined) expect(announced!.address, where).toBe('127.0.0.1');
    expect(announced!.port, where).not.toBe(server.dataPort);
    // And it works: the server's payload arrives through it.
    expect(show(await fetchData(announced!.port)), where).toBe(show(PAYLOAD));
  }
}

describe('corpus replies through a real reverse gateway, split at every byte boundary', () => {
  for (const { name, raw } of corpus) {
    test(name, () => playAtEveryBoundary(gw, name, raw));
  }
});

describe('a held multi-line 227 with a line over --max-line', () => {
  test('keeps its byte order and is still rewritten', async () => {
    const small = await startTestReverse(server.port, { 'max-line': 64 });
    try {
      const raw = Buffer.from(`227-Entering Passive Mode\r\n ${'x'.repeat(80)}\r\n227 (198,18,0,5,4,1)\r\n`, 'latin1');
      await playAtEveryBoundary(small, '227 with an overlong continuation line', raw);
    } finally {
      for (const c of clients.splice(0)) c.close();
      await small.close();
    }
  });
});

describe('commands from the client arrive at the server intact and in order', () => {
  const STREAMS: Array<{ title: string; bytes: Buffer }> = [
    { title: 'pipelined NOOP, SYST, NOOP', bytes: Buffer.from('NOOP\r\nSYST\r\nNOOP\r\n', 'latin1') },
    // (A NUL inside a command is refused now: servers disagree on where such a line ends; see test/adversarial/grammar.test.ts.)
    { title: '8-bit names, IAC IAC, bare LF', bytes: Buffer.from('SITE CHMOD 644 caf\xe9 \xff\xff.txt\r\nNOOP\nSTAT a b\r\n', 'latin1') },
    { title: 'Telnet IP and DM before ABOR (RFC 959 §4.1.3)', bytes: Buffer.from('\xff\xf4\xff\xf2ABOR\r\nNOOP\r\n', 'latin1') },
  ];

  for (const { title, bytes } of STREAMS) {
    test(`${title}: in one chunk and split at every byte boundary`, async () => {
      const c = await loggedIn(gw);
      const session = server.sessions.at(-1)!;
      const lines = bytes.toString('latin1').split('\n').length - 1;
      for (const splitAt of splitPoints(bytes.length)) {
        const where = `${title}, split at ${splitAt}`;
        const receivedBefore = session.receivedBytes().length;
        const sentBefore = session.sentBytes().length;
        await writeSplit(c.socket, bytes, splitAt);
        const got = await c.readReplies(lines);
        expect(show(session.receivedBytes().subarray(receivedBefore)), where).toBe(show(bytes));
        expect(show(got), where).toBe(show(session.sentBytes().subarray(sentBefore)));
      }
    });
  }
});
