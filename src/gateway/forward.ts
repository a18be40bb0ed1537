/**
 * Forward mode: ftp-alg on the gateway of a LAN whose clients go out through
 * a NAT. The server is chosen per session: by the client (explicit proxy,
 * `USER name@host`), or by where the client was going before nftables
 * redirected it to us (transparent).
 */
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import type { Socket } from 'node:net';
import type { ForwardConfig } from '../config.js';
import { LineFramer, encodeLine, type Framed } from '../protocol/framer.js';
import { parseCommand } from '../protocol/command.js';
import { ReplyAssembler, isFinalCode, type Reply } from '../protocol/reply.js';
import { broadcastOf, formatEndpoint, ipOf, parseCidr, parseIp, type Cidr, type Endpoint, type IpAddress } from '../protocol/address.js';
import { LINE_BREAKING_REPLY, preLoginStep, printableReply, untrustedProxyHeader, UNTRUSTED_PROXY_HEADER_REPLY, type PreLoginStep } from '../alg/proxy-login.js';
import { ProxySignatureGate } from '../protocol/proxy-header.js';
import { checkClientAllowed, checkDestination, type DestinationPolicy } from '../alg/policy.js';
import { REASON } from '../codes.js';
import type { EventSink } from './events.js';
import { connectServer, kernelNatFor, sessionLimits, startWithKernelNat, type Gateway } from './server.js';
import { DialRefusal, type DialContext, type ServerDialer } from './session.js';
import { originalDestination } from './original-dst.js';

/**
 * This host's interface addresses and the broadcast address of each IPv4
 * interface network, read at each use: interfaces come and go.
 */
function ownAddresses(): IpAddress[] {
  return Object.values(networkInterfaces())
    .flat()
    .flatMap((i) => {
      const cidr = i?.cidr ? parseCidr(i.cidr) : undefined;
      return [i ? parseIp(i.address) : undefined, cidr ? broadcastOf(cidr) : undefined];
    })
    .filter((ip): ip is IpAddress => ip !== undefined);
}

export async function startForwardGateway(cfg: ForwardConfig, sink: EventSink): Promise<Gateway> {
  const kernelNat = await kernelNatFor(cfg, sink);
  const policy: ForwardPolicy = {
    allowClients: cfg.allowClients,
    destinations: { lanNetworks: cfg.allowClients, allowed: cfg.allowDestinations, ports: cfg.allowDestinationPorts },
    connectTimeoutMs: cfg.connectTimeoutMs,
    loginTimeoutMs: cfg.loginTimeoutMs,
  };
  return startWithKernelNat(kernelNat, {
    mode: 'forward',
    listen: cfg.listen,
    sink,
    dialServer: cfg.transparent ? transparentDialer(policy) : explicitDialer(policy),
    session: {
      translator: { passive: cfg.passive, serverNetworks: [], tls: cfg.tls },
      // Relayed passive data is announced at the address the client reached us on.
      passiveAnnounceAddress: undefined,
      activeListenAddress: cfg.publicAddress?.address,
      activeSourcePort: cfg.activeSourcePort,
      ...sessionLimits(cfg, kernelNat),
      clientSeesServerAddress: cfg.transparent,
    },
    maxSessions: cfg.maxSessions,
    maxSessionsPerClient: cfg.maxSessionsPerClient,
  });
}

interface ForwardPolicy {
  allowClients: readonly Cidr[];
  destinations: DestinationPolicy;
  connectTimeoutMs: number;
  loginTimeoutMs: number;
}

function admitClient(client: Socket, policy: ForwardPolicy): void {
  const refusal = checkClientAllowed(ipOf(client.remoteAddress ?? '0.0.0.0'), policy.allowClients);
  // An outsider gets nothing that helps it probe further: one line, then close.
  if (refusal) throw new DialRefusal(refusal, '421 Not allowed to use this gateway');
}

/** The gateway, its link and the LAN it serves are no destinations (policy.ts: checkDestination). */
function admitDestination(dest: Endpoint, policy: ForwardPolicy, reply: string): void {
  const refusal = checkDestination(dest, policy.destinations, ownAddresses());
  if (refusal) throw new DialRefusal(refusal, reply);
}

function transparentDialer(policy: ForwardPolicy): ServerDialer {
  return async (client) => {
    admitClient(client, policy);
    let dest;
    try {
      dest = originalDestination(client);
    } catch (err) {
      throw new DialRefusal(
        { code: REASON.NOT_REDIRECTED, message: (err as Error).message },
        '421 This is a transparent FTP gateway: connect to an FTP server, not to the gateway',
      );
    }
    const local = ipOf(client.localAddress ?? '0.0.0.0');
    if (dest.address === local.address && dest.port === client.localPort) {
      throw new DialRefusal({ code: REASON.NOT_REDIRECTED, message: 'connection was addressed to the gateway itself' }, '421 This is a transparent FTP gateway: connect to an FTP server, not to the gateway');
    }
    admitDestination(dest, policy, `421 Destination ${formatEndpoint(dest)} is not allowed through this gateway`);
    return { server: await connectServer({ host: dest.address, port: dest.port }, policy.connectTimeoutMs) };
  };
}

const MAX_LOGIN_LINES = 20;

/**
 * Explicit proxy: greet the client ourselves, wait for `USER name@host`,
 * connect there, swallow the server's greeting (the client already had
 * ours) and send `USER name`. From then on the session relays as usual; the
 * server's answer to USER is the first reply the client sees from it.
 */
function explicitDialer(policy: ForwardPolicy): ServerDialer {
  return async (client, ctx) => {
    admitClient(client, policy);
    const login = await readProxyLogin(client, policy.loginTimeoutMs, EXPLICIT_PROXY_LOGIN);
    const { destination, eol, raw, leftover, dropped, said } = login;
    let address: IpAddress;
    try {
      address = parseIp(destination.host) ?? ipOf((await lookup(destination.host)).address);
    } catch (err) {
      throw new DialRefusal(
        { code: REASON.SERVER_UNREACHABLE, message: `cannot resolve ${destination.host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` },
        `421 Cannot resolve ${destination.host}`,
      );
    }
    admitDestination({ ...address, port: destination.port }, policy, `530 Destination ${formatEndpoint({ ...address, port: destination.port })} is not allowed through this gateway`);
    const target = { host: address.address, port: destination.port };
    let server: Socket;
    try {
      server = await connectServer(target, policy.connectTimeoutMs);
    } catch (err) {
      throw new DialRefusal({ code: REASON.SERVER_UNREACHABLE, message: (err as Error).message }, `421 ${(err as Error).message}`);
    }
    try {
      const { greeting, consumed: greetingBytes, leftover: serverLeftover } = await readGreeting(server, policy.connectTimeoutMs);
      if (greeting.code !== 220) {
        const text = greeting.lines.map((l) => l.text).join(' ');
        throw new DialRefusal({ code: REASON.SERVER_UNREACHABLE, message: `server greeted with ${text}` }, `421 ${formatEndpoint({ ...address, port: destination.port })} says: ${text}`);
      }
      const userLine = encodeLine(`USER ${destination.user}`, eol);
      server.write(userLine);
      report(ctx, raw, userLine, destination.host, destination.port, dropped);
      return {
        server,
        user: destination.user,
        clientLeftover: leftover,
        ...(serverLeftover ? { serverLeftover } : {}),
        // What the login dialogue did to each stream, so that the session's
        // rewrite offsets and deltas count from the real start of the streams.
        ledgerSeed: {
          'client->server': [
            [dropped, 0],
            [raw.length, userLine.length],
          ],
          'server->client': [
            [0, said],
            [greetingBytes, 0],
          ],
        },
      };
    } catch (err) {
      server.destroy();
      throw err;
    }
  };
}

function report(ctx: DialContext, before: Buffer, after: Buffer, host: string, port: number, offset: number): void {
  ctx.sink({
    event: 'rewrite',
    session: ctx.session,
    direction: 'client->server',
    kind: 'USER',
    before: before.toString('latin1').replace(/\r?\n$/, ''),
    after: after.toString('latin1').replace(/\r?\n$/, ''),
    reason: `explicit proxy login: destination ${host}:${port}`,
    offset,
    // Commands answered before USER never reached the server.
    delta: after.length - before.length - offset,
  });
}

/** What the gateway says and accepts while it stands in for a server not yet chosen. */
export interface LoginDialogue {
  greeting: string;
  /** What the client must send, for error replies: `USER name@host[:port]`. */
  expects: string;
  step: (verb: string, arg: string) => PreLoginStep;
}

const EXPLICIT_PROXY_LOGIN: LoginDialogue = {
  greeting: '220 ftp-alg FTP proxy: log in with USER name@host[:port]',
  expects: 'USER name@host[:port]',
  step: preLoginStep,
};

export interface ProxyLogin {
  destination: { user: string; host: string; port: number };
  eol: '\r\n' | '\n';
  raw: Buffer;
  leftover: Buffer;
  /** Client bytes before the USER line, answered by us, never forwarded. */
  dropped: number;
  /** Bytes of our own replies to the client. */
  said: number;
}

/** The login dialogue before there is a server: only USER moves it on. */
export function readProxyLogin(client: Socket, timeoutMs: number, dialogue: LoginDialogue): Promise<ProxyLogin> {
  return new Promise((resolve, reject) => {
    const framer = new LineFramer(1024);
    let lines = 0;
    let dropped = 0;
    let said = 0;
    const say = (text: string) => {
      const line = encodeLine(printableReply(text));
      said += line.length;
      if (!client.destroyed) client.write(line);
    };
    const done = (err: Error | undefined, value?: ProxyLogin) => {
      clearTimeout(timer);
      client.off('data', onData);
      client.off('end', onEnd);
      client.off('close', onEnd);
      client.pause();
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(
      () =>
        done(
          new DialRefusal(
            { code: REASON.LOGIN_REQUIRED, message: `no ${dialogue.expects} within ${timeoutMs} ms` },
            `421 Login timeout: log in with ${dialogue.expects}`,
          ),
        ),
      timeoutMs,
    );
    const onEnd = () => done(new DialRefusal({ code: REASON.LOGIN_REQUIRED, message: 'client left before logging in' }, undefined));
    // A socket handler is no place for an exception: it would end the
    // process. Whatever goes wrong fails this one login, and the session
    // closes with its 421.
    // A trusted balancer's header was read before; anyone else's is refused as by the control stream.
    const gate = new ProxySignatureGate();
    const onData = (chunk: Buffer) => {
      try {
        const start = gate.feed(chunk);
        if (start.kind === 'wait') return;
        if (start.kind === 'header') {
          return done(new DialRefusal(untrustedProxyHeader(start.version, `${client.remoteAddress}:${client.remotePort}`), UNTRUSTED_PROXY_HEADER_REPLY));
        }
        onLines(framer.push(start.bytes));
      } catch (err) {
        done(err as Error);
      }
    };
    const onLines = (items: Framed[]) => {
      for (let i = 0; i < items.length; i++) {
        const item = items[i]!;
        dropped += item.raw.length;
        if (item.kind === 'overflow') {
          if (!item.done) continue;
          say('500 Command line too long');
        }
        if (++lines > MAX_LOGIN_LINES) {
          return done(new DialRefusal({ code: REASON.LOGIN_REQUIRED, message: `${MAX_LOGIN_LINES} commands without a usable ${dialogue.expects}` }, '421 Too many commands before login'));
        }
        if (item.kind === 'overflow') continue;
        const { verb, arg, malformed } = parseCommand(item.text);
        // The grammar takes a NUL or bare CR out of verb and argument and says so: refused here as after login.
        const step: PreLoginStep = malformed ? { type: 'reply', reply: LINE_BREAKING_REPLY } : dialogue.step(verb, arg);
        if (step.type === 'reply') {
          say(step.reply);
          continue;
        }
        if (step.type === 'quit') {
          say(step.reply);
          return done(new DialRefusal({ code: REASON.LOGIN_REQUIRED, message: 'client quit before logging in' }, undefined));
        }
        const rest = Buffer.concat([...items.slice(i + 1).map((x) => x.raw), framer.end() ?? Buffer.alloc(0)]);
        dropped -= item.raw.length; // the USER line itself is rewritten, not dropped
        return done(undefined, { destination: step.destination, eol: item.eol, raw: item.raw, leftover: rest, dropped, said });
      }
    };
    client.on('data', onData);
    client.once('end', onEnd);
    client.once('close', onEnd);
    say(dialogue.greeting);
    client.resume();
  });
}

/** Reads the server's greeting (120 then 220, possibly multi-line). */
export function readGreeting(server: Socket, timeoutMs: number): Promise<{ greeting: Reply; consumed: number; leftover?: Buffer }> {
  return new Promise((resolve, reject) => {
    let consumed = 0;
    const framer = new LineFramer(4096);
    const replies = new ReplyAssembler(200);
    const done = (err: Error | undefined, value?: { greeting: Reply; consumed: number; leftover?: Buffer }) => {
      clearTimeout(timer);
      server.off('data', onData);
      server.off('error', onError);
      server.off('end', onEnd);
      server.pause();
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(() => done(new Error(`no greeting from the server within ${timeoutMs} ms`)), timeoutMs);
    const onError = (err: Error) => done(new Error(`server connection failed: ${err.message}`));
    const onEnd = () => done(new Error('server closed the connection before greeting'));
    const onData = (chunk: Buffer) => {
      const items = framer.push(chunk);
      for (let i = 0; i < items.length; i++) {
        const item = items[i]!;
        consumed += item.raw.length;
        if (item.kind !== 'line') continue;
        const ev = replies.push(item);
        if (ev?.kind === 'reply' && isFinalCode(ev.reply.code)) {
          const rest = Buffer.concat([...items.slice(i + 1).map((x) => x.raw), framer.end() ?? Buffer.alloc(0)]);
          return done(undefined, { greeting: ev.reply, consumed, ...(rest.length ? { leftover: rest } : {}) });
        }
      }
    };
    server.on('data', onData);
    server.once('error', onError);
    server.once('end', onEnd);
  });
}

/** The nftables ruleset transparent mode needs, for `--print-nft`. */
export function nftRuleset(lanInterface: string, port: number, kernelTable?: string): string {
  const kernel = kernelTable
    ? `# --data-path kernel: ftp-alg creates and deletes "table inet ${kernelTable}" itself
# (data connection mappings). Your forward filter must accept the connections
# it maps, e.g.  ct status dnat accept
`
    : '';
  return `# ftp-alg transparent mode: redirect LAN FTP control connections to the gateway.
# Load with: nft -f THIS_FILE   (keep your existing masquerade rule for the WAN side)
${kernel}table inet ftp_alg {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "${lanInterface}" tcp dport 21 redirect to :${port}
  }
}
`;
}
