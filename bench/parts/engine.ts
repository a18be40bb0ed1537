/**
 * Part 4: the control-stream engine without sockets. A synthetic but
 * realistic control stream (a full session: greeting, login, FEAT, PWD, CWD,
 * listings and transfers in PASV, EPSV, PORT and EPRT, SIZE/MDTM, NOOP, QUIT,
 * with multi-line 220/211 replies) goes through what a gateway session does
 * with it, using the project's sources (src/protocol, src/alg):
 *
 *   client → server   LineFramer → parseCommand → ControlTranslator.onClientCommand
 *                     → raw bytes, or renderActiveCommand + encodeLine (PORT/EPRT)
 *   server → client   LineFramer → ReplyAssembler → ControlTranslator.onServerReply
 *                     → raw bytes, or renderPassiveReply + encodeRewrittenLine (227/229)
 *
 * Two chunkings: one line per chunk (interactive control traffic, one TCP
 * segment per command or reply) and 16 KiB chunks (pipelined bulk). MB/s
 * counts input bytes of both directions; median of the repetitions.
 */
import { ControlTranslator, renderActiveCommand, renderPassiveReply, type SentCommand, type TranslatorConfig } from '../../src/alg/translator.js';
import type { IpAddress } from '../../src/protocol/address.js';
import { parseCommand } from '../../src/protocol/command.js';
import { LineFramer, encodeLine, encodeRewrittenLine } from '../../src/protocol/framer.js';
import { ReplyAssembler } from '../../src/protocol/reply.js';
import { median } from '../lib/common.js';
import type { BenchContext } from '../lib/context.js';

const CLIENT: IpAddress = { family: 4, address: '100.64.1.2' };
const SERVER: IpAddress = { family: 4, address: '198.18.1.2' };
const GATEWAY_OUT: IpAddress = { family: 4, address: '198.18.1.1' };
const GATEWAY_IN: IpAddress = { family: 4, address: '100.64.1.1' };

type Chunking = 'line' | number;
interface Streams {
  client: Buffer[];
  server: Buffer[];
  bytes: number;
}

export interface ChunkingFigures {
  mbPerS: number;
  linesPerS: number;
  lines: number;
  rewrites: number;
  outBytes: number;
  all: number[];
}

export interface EngineResult {
  streamBytes: number;
  sessions: number;
  reps: number;
  chunkings: Record<string, ChunkingFigures>;
}

/** One session's dialogue, as [direction, line] pairs in the order they travel. */
function sessionDialogue(i: number): ['c' | 's', string][] {
  const p = (n: number) => `${Math.floor(n / 256)},${n % 256}`;
  const port = 40000 + (i % 20000);
  const file = `/pub/data/archive-${String(i % 1000).padStart(4, '0')}.tar.gz`;
  return [
    ['s', '220-Welcome to the example FTP service.'],
    ['s', '220-All transfers are logged. Disconnect now if you do not agree.'],
    ['s', '220 (vsFTPd 3.0.3)'],
    ['c', 'USER anonymous'],
    ['s', '331 Please specify the password.'],
    ['c', 'PASS guest@example.org'],
    ['s', '230 Login successful.'],
    ['c', 'SYST'],
    ['s', '215 UNIX Type: L8'],
    ['c', 'FEAT'],
    ['s', '211-Features:'],
    ['s', ' EPRT'],
    ['s', ' EPSV'],
    ['s', ' MDTM'],
    ['s', ' PASV'],
    ['s', ' REST STREAM'],
    ['s', ' SIZE'],
    ['s', ' TVFS'],
    ['s', ' UTF8'],
    ['s', '211 End'],
    ['c', 'PWD'],
    ['s', '257 "/" is the current directory'],
    ['c', 'TYPE I'],
    ['s', '200 Switching to Binary mode.'],
    ['c', 'CWD /pub/data'],
    ['s', '250 Directory successfully changed.'],
    ['c', 'PASV'],
    ['s', `227 Entering Passive Mode (198,18,1,2,${p(port)}).`],
    ['c', 'LIST -la'],
    ['s', '150 Here comes the directory listing.'],
    ['s', '226 Directory send OK.'],
    ['c', `SIZE ${file}`],
    ['s', '213 1048576'],
    ['c', `MDTM ${file}`],
    ['s', '213 20261125031500'],
    ['c', 'EPSV'],
    ['s', `229 Entering Extended Passive Mode (|||${port + 1}|)`],
    ['c', `RETR ${file}`],
    ['s', `150 Opening BINARY mode data connection for ${file} (1048576 bytes).`],
    ['s', '226 Transfer complete.'],
    ['c', `PORT 100,64,1,2,${p(port + 2)}`],
    ['s', '200 PORT command successful. Consider using PASV.'],
    ['c', `STOR /incoming/upload-${i}.bin`],
    ['s', '150 Ok to send data.'],
    ['s', '226 Transfer complete.'],
    ['c', `EPRT |1|100.64.1.2|${port + 3}|`],
    ['s', '200 EPRT command successful. Consider using EPSV.'],
    ['c', 'NLST'],
    ['s', '150 Here comes the directory listing.'],
    ['s', '226 Directory send OK.'],
    ['c', 'NOOP'],
    ['s', '200 NOOP ok.'],
    ['c', 'QUIT'],
    ['s', '221 Goodbye.'],
  ];
}

/** The two streams of `sessions` dialogues, each cut into chunks. */
function buildStreams(sessions: number, chunking: Chunking): Streams {
  const c: Buffer[] = [];
  const s: Buffer[] = [];
  for (let i = 0; i < sessions; i++) {
    for (const [dir, text] of sessionDialogue(i)) (dir === 'c' ? c : s).push(Buffer.from(`${text}\r\n`, 'latin1'));
  }
  const cut = (lines: Buffer[]) => {
    if (chunking === 'line') return lines;
    const all = Buffer.concat(lines);
    const out: Buffer[] = [];
    for (let o = 0; o < all.length; o += chunking) out.push(all.subarray(o, o + chunking));
    return out;
  };
  return { client: cut(c), server: cut(s), bytes: c.reduce((n, b) => n + b.length, 0) + s.reduce((n, b) => n + b.length, 0) };
}

export function runEngine(ctx: BenchContext): EngineResult {
  const { flags, log } = ctx;

  const config: TranslatorConfig = { passive: 'relay', serverNetworks: [], tls: 'refuse' };
  let listenPort = 30000;

  /** One pass over both streams; returns output bytes (consumed so nothing is optimised away) and line counts. */
  function pass(streams: Streams): { outBytes: number; lines: number; rewrites: number } {
    const translator = new ControlTranslator({ client: CLIENT, server: SERVER }, config);
    const cf = new LineFramer();
    const sf = new LineFramer();
    const replies = new ReplyAssembler();
    let outBytes = 0;
    let lines = 0;
    let rewrites = 0;
    let sent: SentCommand | undefined;
    for (const chunk of streams.client) {
      for (const item of cf.push(chunk)) {
        if (item.kind !== 'line') {
          outBytes += item.raw.length;
          continue;
        }
        lines++;
        const d = translator.onClientCommand(parseCommand(item.text));
        if (d.type === 'active') {
          listenPort = listenPort >= 60000 ? 30000 : listenPort + 1;
          outBytes += encodeLine(renderActiveCommand(d.verb, d.delimiter, { ...GATEWAY_OUT, port: listenPort }, CLIENT.family)).length;
          rewrites++;
          sent = d.sent;
        } else if (d.type === 'answer') {
          outBytes += encodeLine(d.reply).length;
        } else {
          outBytes += item.raw.length;
          sent = d.sent;
        }
      }
    }
    for (const chunk of streams.server) {
      for (const item of sf.push(chunk)) {
        if (item.kind !== 'line') {
          outBytes += item.raw.length;
          continue;
        }
        lines++;
        const ev = replies.push(item);
        if (!ev) continue;
        if (ev.kind === 'stray') {
          outBytes += item.raw.length;
          continue;
        }
        const { reply } = ev;
        if (reply.code < 200) {
          for (const l of reply.lines) outBytes += l.raw.length;
          continue;
        }
        // The replies arrive in the session's order; which command each answers is known from the code here.
        const asked: SentCommand | undefined = reply.code === 227 ? { verb: 'PASV', passiveAsked: 'PASV' } : reply.code === 229 ? { verb: 'EPSV', passiveAsked: 'EPSV' } : sent;
        const texts = reply.lines.map((l) => l.text);
        const d = translator.onServerReply(reply.code, texts, asked);
        if (d.type === 'passive') {
          listenPort = listenPort >= 60000 ? 30000 : listenPort + 1;
          const out = renderPassiveReply(d, texts, { ...GATEWAY_IN, port: listenPort });
          for (let k = 0; k < out.length; k++) outBytes += encodeRewrittenLine(out[k]!, reply.lines[k]?.eol ?? '\r\n').length;
          rewrites++;
        } else {
          for (const l of reply.lines) outBytes += l.raw.length;
        }
      }
    }
    return { outBytes, lines, rewrites };
  }

  const sessionBytes = buildStreams(1, 'line').bytes;
  const sessions = Math.max(1, Math.round((flags.engineMb * 1e6) / sessionBytes));
  const out: EngineResult = { streamBytes: 0, sessions, reps: flags.engineReps, chunkings: {} };
  log(`control-stream engine: ${sessions} synthetic sessions (${((sessions * sessionBytes) / 1e6).toFixed(1)} MB of control traffic) per pass, ${flags.engineReps} passes per chunking`);
  const chunkings: [string, Chunking][] = [
    ['per line', 'line'],
    ['16 KiB chunks', 16384],
  ];
  for (const [name, chunking] of chunkings) {
    const streams = buildStreams(sessions, chunking);
    out.streamBytes = streams.bytes;
    pass(buildStreams(50, chunking)); // warm-up (JIT)
    const rates: { mbPerS: number; linesPerS: number }[] = [];
    let last = { outBytes: 0, lines: 0, rewrites: 0 };
    for (let r = 0; r < flags.engineReps; r++) {
      const t0 = process.hrtime.bigint();
      last = pass(streams);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      rates.push({ mbPerS: streams.bytes / 1e6 / s, linesPerS: last.lines / s });
    }
    const m = median(rates.map((x) => x.mbPerS));
    const l = median(rates.map((x) => x.linesPerS));
    out.chunkings[name] = { mbPerS: m, linesPerS: l, lines: last.lines, rewrites: last.rewrites, outBytes: last.outBytes, all: rates.map((x) => x.mbPerS) };
    log(`  ${name.padEnd(14)} ${m.toFixed(1)} MB/s, ${(l / 1e6).toFixed(2)} M lines/s (${last.rewrites} rewrites per pass; min ${Math.min(...rates.map((x) => x.mbPerS)).toFixed(1)}, max ${Math.max(...rates.map((x) => x.mbPerS)).toFixed(1)})`);
  }
  // Sanity: every PORT/EPRT/227/229 must have been rewritten (4 per session).
  const expected = sessions * 4;
  for (const [name, c] of Object.entries(out.chunkings)) if (c.rewrites !== expected) ctx.failures.push(`engine ${name}: ${c.rewrites} rewrites, expected ${expected}`);
  return out;
}
