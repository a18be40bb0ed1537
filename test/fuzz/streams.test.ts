/**
 * Stream fuzzing of the pure core, the way the session drives it: random
 * bytes, cut into random chunks, through LineFramer → parseCommand →
 * ControlTranslator (client side) and LineFramer → ReplyAssembler →
 * ControlTranslator (server side). Adversarial on purpose: NUL, 0xFF, CR
 * without LF, digits and parentheses around endpoints, odd delimiters.
 */
import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { LineFramer, encodeLine, encodeRewrittenLine, stripTelnet, type Framed } from '../../src/protocol/framer.js';
import { parseCommand } from '../../src/protocol/command.js';
import { ReplyAssembler, isFinalCode } from '../../src/protocol/reply.js';
import { mustCidr, sameAddress, type Cidr, type Endpoint, type Family } from '../../src/protocol/address.js';
import {
  find227,
  find228,
  find229,
  formatEprtArg,
  formatLprtArg,
  formatPortArg,
  parseEprtArg,
  parseLprtArg,
  parsePortArg,
} from '../../src/protocol/endpoint.js';
import {
  ControlTranslator,
  renderActiveCommand,
  renderPassiveReply,
  type PassiveVerb,
  type ReplyDecision,
  type SentCommand,
  type SessionAddresses,
  type TranslatorConfig,
} from '../../src/alg/translator.js';
import { CROSS, CROSS_V4_CLIENT, V4, V6, v4, v6 } from '../alg/fixtures.js';

// ~15 properties; these bounds keep the file well under 20 s on a busy 2-core box.
const RUNS = { numRuns: 400 };

// ---- building blocks ----------------------------------------------------------

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Cuts `input` into chunks of the given sizes (cycled); every byte lands in exactly one chunk. */
function chunk(input: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < input.length; i++) {
    const n = sizes.length === 0 ? input.length : sizes[i % sizes.length]!;
    out.push(input.subarray(at, at + n));
    at += n;
  }
  return out;
}
const chunkingArb = fc.array(fc.integer({ min: 1, max: 24 }), { maxLength: 12 });
const capArb = fc.oneof({ weight: 3, arbitrary: fc.constant(4096) }, { weight: 1, arbitrary: fc.integer({ min: 8, max: 120 }) });

function frame(input: Buffer, sizes: number[], cap: number): { items: Framed[]; tail: Buffer | undefined } {
  const framer = new LineFramer(cap);
  const items = chunk(input, sizes).flatMap((c) => framer.push(c));
  return { items, tail: framer.end() };
}

/** Bytes a hostile or broken peer sends: biased to the ones that matter to a line protocol. */
const nastyByte = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
  { weight: 2, arbitrary: fc.constantFrom(0x00, 0xff, 0x0d, 0xf4, 0xf2, 0xf1, 0xfa, 0xf0, 0xfb, 0xe9) },
  { weight: 2, arbitrary: fc.constantFrom(...[...'0123456789,()|!#=. '].map((c) => c.charCodeAt(0))) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
);
/** Latin-1 text of nasty bytes; `lf` allows LF inside (which ends a line early). */
const nastyText = (maxLength: number, lf = false) =>
  fc.array(lf ? fc.oneof({ weight: 12, arbitrary: nastyByte }, { weight: 1, arbitrary: fc.constant(0x0a) }) : nastyByte, { maxLength })
    .map((b) => Buffer.from(b.filter((x) => lf || x !== 0x0a)).toString('latin1'));
const eolArb = fc.constantFrom('\r\n', '\r\n', '\n');

const sessionArb = fc.constantFrom<SessionAddresses>(V4, V6, CROSS, CROSS_V4_CLIENT);
const networksArb = fc.constantFrom<readonly Cidr[]>([], [mustCidr('100.64.0.0/10')], [mustCidr('100.64.1.0/24'), mustCidr('fd00:64::/32')], [mustCidr('198.18.0.0/15')]);
const configArb = fc.record<TranslatorConfig>({
  passive: fc.constant('relay'),
  serverNetworks: networksArb,
  tls: fc.constantFrom('refuse', 'passthrough'),
});
const portArb = fc.oneof(fc.integer({ min: 0, max: 1023 }), fc.integer({ min: 1024, max: 65535 }), fc.constantFrom(65536, 99999));
const NO_CR_LF_NUL = /^[^\r\n\0]*$/;

// ---- (a) client command streams ---------------------------------------------------

/** An endpoint for an active command: usually the client's own, often not. */
const activeEndpointArb = (addrs: SessionAddresses) =>
  fc.record({
    address: fc.constantFrom(addrs.client, addrs.server, { family: 4 as Family, address: '198.18.0.99' }, { family: 6 as Family, address: 'fd00::99' }, { family: 4 as Family, address: '127.0.0.1' }),
    port: fc.integer({ min: 1, max: 65535 }),
  }).map(({ address, port }): Endpoint => ({ ...address, port }));

const commandArgArb = (addrs: SessionAddresses) =>
  fc.oneof(
    // Well-formed, for any of the three verbs.
    fc.tuple(activeEndpointArb(addrs), fc.constantFrom('|', '!', '#', '$', '~', '(')).chain(([e, d]) =>
      fc.constantFrom(e.family === 4 ? formatPortArg(e) : formatEprtArg(e, d), formatEprtArg(e, d), formatLprtArg(e)),
    ),
    // Zero-padded or spaced PORT, v4-mapped EPRT, out-of-range numbers.
    fc.tuple(activeEndpointArb(addrs), fc.boolean()).map(([e, pad]) =>
      e.family === 4 ? formatPortArg(e).split(',').map((n) => (pad ? n.padStart(3, '0') : ` ${n} `)).join(',') : `|2|::ffff:${e.address.includes(':') ? '198.18.0.5' : e.address}|${e.port}|`,
    ),
    fc.tuple(fc.array(fc.integer({ min: 0, max: 999 }), { minLength: 5, maxLength: 22 })).map(([n]) => n.join(',')),
    fc.constantFrom('ALL', 'all', 'TLS', 'SSL', 'TLS-C', 'tls ', '1', '2', '|1|198.18.0.5|0|', '|3|x|1|', '||||', ''),
    // And anything at all.
    nastyText(40),
    nastyText(40, true),
  );

const verbArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('PORT', 'EPRT', 'LPRT', 'PASV', 'EPSV', 'LPSV', 'AUTH') },
  { weight: 2, arbitrary: fc.constantFrom('port', 'Eprt', 'lprt', 'epsv', ' PORT', '\tEPSV', 'USER', 'RETR', 'NOOP', 'ABOR', '\xff\xf4\xff\xf2ABOR') },
  { weight: 1, arbitrary: nastyText(8) },
);

/** A well-formed PORT/EPRT/LPRT, verb and notation matching: the kind that can become `active`. */
const wellFormedActiveArb = (addrs: SessionAddresses) =>
  fc
    .record({
      e: fc.oneof(
        { weight: 3, arbitrary: fc.integer({ min: 1, max: 65535 }).map((port): Endpoint => ({ ...addrs.client, port })) },
        { weight: 1, arbitrary: activeEndpointArb(addrs) },
      ),
      verb: fc.constantFrom('PORT', 'EPRT', 'LPRT'),
      d: fc.constantFrom('|', '!', '#', '$', '~', '('),
      eol: eolArb,
    })
    .map(({ e, verb, d, eol }) => {
      const v = verb === 'PORT' && e.family === 6 ? 'EPRT' : verb;
      return `${v} ${v === 'PORT' ? formatPortArg(e) : v === 'EPRT' ? formatEprtArg(e, d) : formatLprtArg(e)}${eol}`;
    });

const commandStreamArb = sessionArb.chain((addrs) =>
  fc.record({
    addrs: fc.constant(addrs),
    config: configArb,
    lines: fc.array(
      fc.oneof(
        { weight: 4, arbitrary: wellFormedActiveArb(addrs) },
        { weight: 6, arbitrary: fc.tuple(verbArb, fc.constantFrom(' ', ' ', '  ', ''), commandArgArb(addrs), eolArb).map((p) => p.join('')) },
        { weight: 1, arbitrary: fc.tuple(nastyText(60, true), eolArb).map((p) => p.join('')) },
      ),
      { maxLength: 25 },
    ),
    tail: nastyText(10),
    sizes: chunkingArb,
    cap: capArb,
    listenPort: fc.integer({ min: 1024, max: 65535 }),
  }),
);

/** Parses a command the gateway rendered back to the endpoint it names. */
function parseRendered(text: string): Endpoint | undefined {
  const cmd = parseCommand(text);
  if (cmd.verb === 'PORT') return parsePortArg(cmd.arg);
  if (cmd.verb === 'EPRT') return parseEprtArg(cmd.arg);
  if (cmd.verb === 'LPRT') return parseLprtArg(cmd.arg);
  return undefined;
}

describe('(a) client command streams through framer → parseCommand → onClientCommand', () => {
  fcTest.prop([commandStreamArb], RUNS)(
    'never throws; active only to the client itself on a port ≥ 1024; local replies and rendered commands are single clean lines',
    ({ addrs, config, lines, tail, sizes, cap, listenPort }) => {
      const input = latin1(lines.join('') + tail);
      const t = new ControlTranslator(addrs, config);
      const { items } = frame(input, sizes, cap);
      for (const item of items) {
        if (item.kind !== 'line') continue;
        const d = t.onClientCommand(parseCommand(item.text));
        const where = JSON.stringify(item.text);
        switch (d.type) {
          case 'active': {
            expect(sameAddress(d.target, addrs.client), where).toBe(true);
            expect(d.target.port, where).toBeGreaterThanOrEqual(1024);
            expect(d.target.port, where).toBeLessThanOrEqual(65535);
            // The gateway's own listener faces the server: either family.
            for (const listen of [v4('100.64.0.1', listenPort), v6('fd00:64::1', listenPort)]) {
              const rendered = renderActiveCommand(d.verb, d.delimiter, listen, addrs.client.family);
              expect(rendered, where).toMatch(NO_CR_LF_NUL);
              expect(() => encodeLine(rendered), where).not.toThrow();
              expect(parseRendered(rendered), `${where} → ${rendered}`).toEqual(listen);
            }
            break;
          }
          case 'answer':
            expect(d.reply, where).toMatch(NO_CR_LF_NUL);
            expect(d.reply, where).toMatch(/^[1-5]\d\d /);
            expect(() => encodeLine(d.reply), where).not.toThrow();
            break;
          case 'forward-as':
            expect(d.text, where).toMatch(NO_CR_LF_NUL);
            expect(() => encodeLine(d.text), where).not.toThrow();
            break;
          case 'forward':
          case 'tls-passthrough':
            break;
        }
      }
    },
  );
});

// ---- (b) server reply streams ---------------------------------------------------

const ADDRESS_CHOICES = ['100.64.0.10', '100.64.1.7', '198.18.0.99', '127.0.0.1', '0.0.0.0', '255.255.255.255'];

/** Six numbers the way servers write them: plain, zero-padded (z/OS), spaced. */
const sixNumbersArb = fc
  .record({
    address: fc.oneof({ weight: 2, arbitrary: fc.constant(V4.server.address) }, { weight: 3, arbitrary: fc.constantFrom(...ADDRESS_CHOICES) }),
    port: portArb,
    style: fc.constantFrom('plain', 'padded', 'spaced'),
  })
  .map(({ address, port, style }) => {
    const n = [...address.split('.').map(Number), port >> 8, port & 0xff];
    return style === 'padded' ? n.map((x) => String(x).padStart(3, '0')).join(',') : n.join(style === 'spaced' ? ', ' : ',');
  });
const lpsvNumbersArb = fc
  .record({ family: fc.constantFrom<Family>(4, 6), address: fc.constantFrom(...ADDRESS_CHOICES), port: fc.integer({ min: 1, max: 65535 }) })
  .map(({ family, address, port }) => formatLprtArg(family === 4 ? v4(address, port) : v6(`fd00:64::${address.split('.').at(-1)}`, port)));
const epsvArb = fc
  .record({ d: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), port: portArb, broken: fc.nat(5) })
  .map(({ d, port, broken }) => (broken === 0 ? `(${d}${d}${port}${d})` : `(${d}${d}${d}${port}${d})`));
const aroundArb = fc.oneof(
  fc.constantFrom('Entering Passive Mode ', 'Entering Passive Mode (', '=', '', ' ', 'ok ', 'Entering Extended Passive Mode ', '1,2,3 ', '(', ').', ')', ' 4,5', ' (|||'),
  nastyText(20),
);
const endpointTextArb = fc.oneof(
  fc.tuple(aroundArb, sixNumbersArb, aroundArb).map((p) => p.join('')),
  fc.tuple(aroundArb, lpsvNumbersArb.map((n) => `(${n})`), aroundArb).map((p) => p.join('')),
  fc.tuple(aroundArb, epsvArb, aroundArb).map((p) => p.join('')),
  nastyText(50),
);

const codeArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(227, 228, 229) },
  { weight: 2, arbitrary: fc.constantFrom(200, 211, 150, 226, 421, 500) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 599 }) },
);

/** One reply: single line, or multi-line with the endpoint on any line (or none). */
const replyArb = fc
  .record({
    code: codeArb,
    first: endpointTextArb,
    middle: fc.array(fc.oneof(endpointTextArb.map((t) => ` ${t}`), nastyText(30)), { maxLength: 3 }),
    last: endpointTextArb,
    multi: fc.boolean(),
    eol: eolArb,
  })
  .map(({ code, first, middle, last, multi, eol }) =>
    multi ? [`${code}-${first}`, ...middle.filter((m) => !m.startsWith(`${code} `)), `${code} ${last}`].map((l) => l + eol).join('') : `${code} ${first}${eol}`,
  );

const replyStreamArb = sessionArb.chain((addrs) =>
  fc.record({
    addrs: fc.constant(addrs),
    config: configArb,
    replies: fc.array(fc.oneof({ weight: 6, arbitrary: replyArb }, { weight: 1, arbitrary: fc.tuple(nastyText(40, true), eolArb).map((p) => p.join('')) }), {
      maxLength: 12,
    }),
    sent: fc.constantFrom<SentCommand | undefined>(
      undefined,
      ...(['PASV', 'EPSV', 'LPSV'] as PassiveVerb[]).map((verb) => ({ verb, passiveAsked: verb })),
      { verb: 'PASV', passiveAsked: 'EPSV' },
      { verb: 'NOOP' },
    ),
    sizes: chunkingArb,
    cap: capArb,
    announcedPort: fc.integer({ min: 1024, max: 65535 }),
  }),
);

type Passive = Extract<ReplyDecision, { type: 'passive' }>;
interface PassiveCase {
  addrs: SessionAddresses;
  config: TranslatorConfig;
  texts: string[];
  decision: Passive;
  announced: Endpoint;
}

/** Runs a reply stream through the pipeline and hands every passive decision to `check`. */
function eachPassive(s: typeof replyStreamArb extends fc.Arbitrary<infer T> ? T : never, check: (c: PassiveCase) => void): void {
  const t = new ControlTranslator(s.addrs, s.config);
  const assembler = new ReplyAssembler();
  const { items } = frame(latin1(s.replies.join('')), s.sizes, s.cap);
  const announced = s.addrs.client.family === 4 ? v4('198.18.0.1', s.announcedPort) : v6('fd00::1', s.announcedPort);
  for (const item of items) {
    if (item.kind !== 'line') continue;
    const ev = assembler.push(item);
    if (ev?.kind !== 'reply' || !isFinalCode(ev.reply.code)) continue;
    const texts = ev.reply.lines.map((l) => l.text);
    const d = t.onServerReply(ev.reply.code, texts, s.sent);
    if (d.type === 'passive') check({ addrs: s.addrs, config: s.config, texts, decision: d, announced });
    else if (d.type === 'answer-instead') expect(d.reply).toMatch(/^425 [^\d]*$/); // nothing of the server's reply, no number
    else expect(['forward', 'unparsed', 'rewrite']).toContain(d.type);
  }
}

/**
 * What a client reads from a reply: the first endpoint in its text, as
 * FtpClient and Python's ftplib scan it. A 229 names only a port; the client
 * dials it on the address it is connected to, `controlPeer` (the gateway).
 */
function clientReads(answerAs: Passive['answerAs'], text: string, controlPeer: Endpoint): Endpoint | undefined {
  if (answerAs === '227') return find227(text)?.endpoint;
  if (answerAs === '228') return find228(text)?.endpoint;
  const f = find229(text);
  return f ? { ...controlPeer, port: f.port } : undefined;
}

describe('(b) server reply streams through framer → ReplyAssembler → onServerReply', () => {
  fcTest.prop([replyStreamArb], RUNS)('never throws; every passive dial is the server or inside serverNetworks', (s) => {
    eachPassive(s, ({ addrs, config, decision, texts }) => {
      const allowed = sameAddress(decision.dial, addrs.server) || config.serverNetworks.some((n) => n.contains(decision.dial));
      expect(allowed, JSON.stringify(texts)).toBe(true);
      expect(decision.dial.port).toBeGreaterThanOrEqual(1);
      expect(decision.dial.port).toBeLessThanOrEqual(65535);
      if (addrs.client.family === 6) expect(decision.answerAs).not.toBe('227');
    });
  });

  fcTest.prop([replyStreamArb], RUNS)('an in-place rewrite changes the endpoint spans and nothing else', (s) => {
    eachPassive(s, ({ texts, decision, announced }) => {
      const out = renderPassiveReply(decision, texts, announced);
      const ip = decision.inPlace;
      if (!ip) {
        expect(out).toHaveLength(1);
        expect(out[0]).toMatch(new RegExp(`^${decision.answerAs} `));
        return;
      }
      const spans = [ip, ...(decision.alsoInPlace ?? [])];
      expect(out).toHaveLength(texts.length);
      out.forEach((line, i) => {
        const span = spans.find((x) => x.lineIndex === i);
        if (!span) return expect(line).toBe(texts[i]);
        const before = texts[i]!.slice(0, span.start);
        const after = texts[i]!.slice(span.end);
        expect(line.startsWith(before), JSON.stringify({ line, before })).toBe(true);
        expect(line.endsWith(after), JSON.stringify({ line, after })).toBe(true);
        expect(line.slice(before.length, line.length - after.length)).toMatch(/^[\d,]+$/);
      });
    });
  });

  fcTest.prop([replyStreamArb], RUNS)('the rendered line parses back to the announced endpoint', (s) => {
    eachPassive(s, (c) => {
      const out = renderPassiveReply(c.decision, c.texts, c.announced);
      const line = out[c.decision.inPlace?.lineIndex ?? 0]!;
      expect(clientReads(c.decision.answerAs, line, c.announced), JSON.stringify({ in: c.texts, out })).toEqual(c.announced);
    });
  });

  fcTest.prop([replyStreamArb], RUNS)(
    'the whole rendered reply, scanned as a client scans it, reads as the announced endpoint',
    (s) => {
      eachPassive(s, (c) => {
        const out = renderPassiveReply(c.decision, c.texts, c.announced);
        expect(clientReads(c.decision.answerAs, out.join('\n'), c.announced), JSON.stringify({ in: c.texts, out })).toEqual(c.announced);
      });
    },
  );

  fcTest.prop([replyStreamArb], RUNS)('rendered lines are writable as the gateway writes them', (s) => {
    eachPassive(s, (c) => {
      const out = renderPassiveReply(c.decision, c.texts, c.announced);
      for (const line of out) {
        const write = () => (c.decision.inPlace ? encodeRewrittenLine(line, '\r\n') : encodeLine(line));
        expect(write, JSON.stringify(line)).not.toThrow();
      }
    });
  });
});

describe('(b) regressions found by the fuzzer', () => {
  const sent: SentCommand = { verb: 'PASV', passiveAsked: 'PASV' };
  const announced = v4('198.18.0.1', 40001);
  const render = (lines: string[]) => {
    const d = new ControlTranslator(V4, { passive: 'relay', serverNetworks: [], tls: 'refuse' }).onServerReply(227, lines, sent);
    if (d.type !== 'passive') throw new Error(`expected a passive decision, got ${d.type}`);
    return renderPassiveReply(d, lines, announced);
  };

  test('seven numbers are not a 227 endpoint: answered 425, never half-rewritten', () => {
    // find227 once took `2,3,4,0,0,5` and the rewrite left the `1,` in front.
    const d = new ControlTranslator(V4, { passive: 'relay', serverNetworks: [], tls: 'refuse' }).onServerReply(227, ['227 Entering Passive Mode (1,2,3,4,0,0,5)'], sent);
    expect(d).toMatchObject({ type: 'answer-instead', refusal: { code: 'UNTRANSLATABLE_PASSIVE_REPLY' } });
  });

  test('multi-line 227 with an endpoint on an earlier line: the client must not read the server\'s endpoint', () => {
    // Every line with an endpoint is rewritten: FtpClient (find227 over the
    // joined text) and Python's ftplib read the first.
    const out = render(['227-Entering Passive Mode (100,64,0,10,4,1)', '227 OK (100,64,0,10,4,1)']);
    expect(find227(out.join('\n'))?.endpoint).toEqual(announced);
  });

  test('227 with a NUL in its text: the rewritten line is writable', () => {
    const out = render(['227 Entering Passive Mode\0 (100,64,0,10,4,1)']);
    expect(encodeRewrittenLine(out[0]!, '\r\n').toString('latin1')).toBe('227 Entering Passive Mode\0 (198,18,0,1,156,65)\r\n');
  });

  test('227 with a bare CR in its text: the rewritten line is writable', () => {
    const out = render(['227 Entering Passive Mode\r (100,64,0,10,4,1)']);
    expect(() => encodeRewrittenLine(out[0]!, '\r\n')).not.toThrow();
  });
});

// ---- (c) pass-through reference ------------------------------------------------

const PLAIN_VERBS = ['USER', 'PASS', 'ACCT', 'CWD', 'CDUP', 'RETR', 'STOR', 'APPE', 'LIST', 'NLST', 'MLSD', 'MLST', 'SIZE', 'MDTM', 'TYPE', 'MODE', 'STRU', 'REST', 'RNFR', 'RNTO', 'DELE', 'MKD', 'RMD', 'PWD', 'ABOR', 'QUIT', 'NOOP', 'SYST', 'FEAT', 'OPTS', 'SITE', 'HELP', 'STAT'];
const REWRITABLE_VERBS = new Set(['PORT', 'EPRT', 'LPRT', 'PASV', 'EPSV', 'LPSV', 'AUTH']);

const plainCommandStreamArb = fc.array(
  fc.tuple(fc.constantFrom(...PLAIN_VERBS, ...PLAIN_VERBS.map((v) => v.toLowerCase())), nastyText(50), eolArb).map(([v, a, eol]) => `${v} ${a}${eol}`),
  { maxLength: 25 },
);

/** Replies that are not 227/228/229, and garbage lines that cannot start one. */
const plainReplyStreamArb = fc.array(
  fc.oneof(
    fc
      .record({ code: fc.integer({ min: 100, max: 599 }).filter((c) => c < 227 || c > 229), texts: fc.array(fc.oneof(endpointTextArb, nastyText(30)), { minLength: 1, maxLength: 4 }), eol: eolArb })
      .map(({ code, texts, eol }) =>
        texts.length === 1 ? `${code} ${texts[0]}${eol}` : [`${code}-${texts[0]}`, ...texts.slice(1, -1).map((t) => ` ${t}`), `${code} ${texts.at(-1)}`].map((l) => l + eol).join(''),
      ),
    fc.tuple(nastyText(40), eolArb).map(([t, eol]) => `x${t}${eol}`),
  ),
  { maxLength: 15 },
);

describe('(c) streams without rewritable lines pass through byte for byte, whatever the chunking', () => {
  fcTest.prop([sessionArb, configArb, plainCommandStreamArb, nastyText(12), chunkingArb, capArb], RUNS)(
    'client side: framed raw bytes concatenate to the input, and every command is forwarded',
    (addrs, config, lines, tail, sizes, cap) => {
      const input = latin1(lines.join('') + tail);
      const { items, tail: rest } = frame(input, sizes, cap);
      expect(Buffer.concat([...items.map((i) => i.raw), rest ?? Buffer.alloc(0)]).equals(input)).toBe(true);
      const t = new ControlTranslator(addrs, config);
      for (const item of items) {
        if (item.kind !== 'line') continue;
        const cmd = parseCommand(item.text);
        fc.pre(!REWRITABLE_VERBS.has(cmd.verb)); // Telnet stripping could in theory spell one out
        expect(t.onClientCommand(cmd).type, JSON.stringify(item.text)).toBe('forward');
      }
    },
  );

  fcTest.prop([sessionArb, configArb, plainReplyStreamArb, nastyText(12), chunkingArb, capArb], RUNS)(
    'server side: framed raw bytes concatenate to the input, and every reply is forwarded',
    (addrs, config, replies, tail, sizes, cap) => {
      const input = latin1(replies.join('') + tail);
      const { items, tail: rest } = frame(input, sizes, cap);
      expect(Buffer.concat([...items.map((i) => i.raw), rest ?? Buffer.alloc(0)]).equals(input)).toBe(true);
      const t = new ControlTranslator(addrs, config);
      const assembler = new ReplyAssembler();
      for (const item of items) {
        if (item.kind !== 'line') continue;
        const ev = assembler.push(item);
        if (ev?.kind !== 'reply') continue;
        const d = t.onServerReply(ev.reply.code, ev.reply.lines.map((l) => l.text), { verb: 'PASV', passiveAsked: 'PASV' });
        expect(d.type, JSON.stringify(ev.reply.lines.map((l) => l.text))).toBe('forward');
      }
    },
  );

  fcTest.prop([fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 300 }), chunkingArb, capArb], RUNS)(
    'any bytes at all: the framer loses, adds and reorders nothing',
    (bytes, sizes, cap) => {
      const input = Buffer.from(bytes);
      const { items, tail } = frame(input, sizes, cap);
      expect(Buffer.concat([...items.map((i) => i.raw), tail ?? Buffer.alloc(0)]).equals(input)).toBe(true);
      for (const i of items) if (i.kind === 'line') expect(i.text).toBe(stripTelnet(i.raw.subarray(0, i.raw.length - i.eol.length)));
    },
  );
});
