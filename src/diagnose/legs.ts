/**
 * Both legs of one NATed control connection in a single capture, as a
 * firewall or router records them (tcpdump -i any): the client's side before
 * translation and the server's side after it, perhaps one direction of each,
 * often filtered to the control port.
 *
 * Two sessions are legs of one connection when they overlap in time, share
 * the server's endpoint (source NAT) or the client's (destination NAT), and
 * either carry the same commands and replies or have sequence and
 * acknowledgement numbers that belong to one stream (a NAT keeps ISNs).
 */
import { formatEndpoint, isSiteLocal, sameAddress, type Endpoint } from '../protocol/address.js';
import { align } from './align.js';
import type { ClientSideDecision, PairSide } from './pair.js';
import type { Finding, LegTranslation, PairReport } from './report.js';
import type { Connection } from './tcp.js';

export interface LegPair {
  client: PairSide;
  server: PairSide;
  side: ClientSideDecision;
  translation: LegTranslation;
}

const sameEndpoint = (a: Endpoint, b: Endpoint) => a.port === b.port && sameAddress(a, b);

function similarity(a: string[], b: string[]): number | undefined {
  if (a.length < 2 || b.length < 2) return undefined;
  const same = align(a, b, (t) => t).filter((op) => op.kind === 'same').length;
  return same / Math.max(a.length, b.length);
}

/** How alike the visible commands and replies are; undefined when no direction was seen on both legs. */
function tokenMatch(x: PairSide, y: PairSide): number | undefined {
  const scores = [
    similarity(x.session.commands.map((c) => c.verb), y.session.commands.map((c) => c.verb)),
    similarity(x.session.replies.map((r) => String(r.code)), y.session.replies.map((r) => String(r.code))),
  ].filter((s): s is number => s !== undefined);
  return scores.length ? Math.min(...scores) : undefined;
}

const diff32 = (a: number, b: number) => (a - b) | 0;
/**
 * Numbers of one stream on the two legs differ by the middlebox's sequence
 * adjustment (a few bytes per rewrite); two connections' random ISNs fall this
 * close by chance about once in 500,000 pairs.
 */
const NEAR = 1 << 12;

/**
 * Whether some sequence or ACK number of one leg falls within the other
 * leg's numbers for the same stream: a NAT keeps ISNs, so its two legs share
 * them, while two connections' random ISNs are 2^32 apart at random.
 */
export function numbersRelated(x: Connection, y: Connection): boolean {
  const seqs = (c: Connection, fromClient: boolean) => c.segments[fromClient ? 'client->server' : 'server->client'].map((s) => s.seq);
  const acks = (c: Connection, ofClient: boolean) => c.segments[ofClient ? 'server->client' : 'client->server'].filter((s) => s.flags.ack).map((s) => s.ack);
  for (const ofClient of [true, false]) {
    const numbers = [...seqs(x, ofClient), ...acks(x, ofClient)];
    const other = [...seqs(y, ofClient), ...acks(y, ofClient)];
    if (numbers.length === 0 || other.length === 0) continue;
    if (other.some((n) => numbers.some((m) => Math.abs(diff32(n, m)) < NEAR))) return true;
  }
  return false;
}

function overlap(x: Connection, y: Connection): boolean {
  return x.first.t <= y.last.t && y.first.t <= x.last.t;
}

/** A forwarded segment appears on the other leg within this time (one box, one clock). */
const FORWARD_DELAY = 0.05;

/**
 * The share of x's data segments that reappear on y, same direction and
 * same length (±64 for a rewrite), within FORWARD_DELAY: legs of one
 * connection move in lockstep, two sessions that merely look alike do not.
 */
function lockstep(x: Connection, y: Connection): number {
  let n = 0;
  let hit = 0;
  for (const d of ['client->server', 'server->client'] as const) {
    const theirs = y.segments[d].filter((s) => s.payload.length > 0);
    for (const s of x.segments[d]) {
      if (s.payload.length === 0) continue;
      n++;
      if (theirs.some((o) => Math.abs(o.t - s.t) <= FORWARD_DELAY && Math.abs(o.payload.length - s.payload.length) <= 64 && o.payload.subarray(0, 4).equals(s.payload.subarray(0, 4)))) hit++;
    }
  }
  return n === 0 ? 0 : hit / n;
}

/** Which leg is nearer the client: the SYN seen first (one capture, one clock), else the inside address, else the earlier packet. */
function clientLeg(x: PairSide, y: PairSide): { client: PairSide; server: PairSide; side: ClientSideDecision } {
  const [cx, cy] = [x.session.conn, y.session.conn];
  const pick = (client: PairSide, server: PairSide, by: ClientSideDecision['by'], reason: string) => ({
    client,
    server,
    side: { capture: client.capture, session: client.id, by, reason },
  });
  if (cx.syn && cy.syn && cx.syn.t !== cy.syn.t) {
    const [a, b] = cx.syn.t < cy.syn.t ? [x, y] : [y, x];
    return pick(a, b, 'syn-order', `the client's SYN appears first on session ${a.id} (packet ${a.session.conn.syn!.packet}), then translated on ${b.id}`);
  }
  if (isSiteLocal(cx.client) !== isSiteLocal(cy.client)) {
    const [a, b] = isSiteLocal(cx.client) ? [x, y] : [y, x];
    return pick(a, b, 'addresses', `session ${a.id} shows the client's inside (site-local) address ${a.session.conn.client.address}`);
  }
  if (isSiteLocal(cx.server) !== isSiteLocal(cy.server)) {
    const [a, b] = isSiteLocal(cx.server) ? [y, x] : [x, y];
    return pick(a, b, 'addresses', `session ${b.id} shows the server's inside (site-local) address ${b.session.conn.server.address}`);
  }
  const [a, b] = cx.first.t <= cy.first.t ? [x, y] : [y, x];
  return pick(a, b, 'argument-order', `nothing tells; session ${a.id}, seen first, is taken as the client's side`);
}

function translationOf(client: Connection, server: Connection): LegTranslation {
  const sourceNat = !sameEndpoint(client.client, server.client);
  const destinationNat = !sameEndpoint(client.server, server.server);
  const kind = sourceNat && destinationNat ? 'source+destination' : sourceNat ? 'source' : 'destination';
  const parts: string[] = [];
  if (sourceNat) parts.push(`client inside ${formatEndpoint(client.client)} ↔ outside ${formatEndpoint(server.client)}`);
  if (destinationNat) parts.push(`server public ${formatEndpoint(client.server)} ↔ inside ${formatEndpoint(server.server)}`);
  return {
    kind,
    clientSide: { client: client.client, server: client.server },
    serverSide: { client: server.client, server: server.server },
    text: parts.join('; '),
  };
}

/** Legs of one translated connection among the sessions of one capture, best matches first, each session in one pair at most. */
export function pairLegs(sessions: readonly PairSide[]): LegPair[] {
  const cands: Array<{ i: number; j: number; score: number }> = [];
  sessions.forEach((x, i) => {
    sessions.forEach((y, j) => {
      if (j <= i) return;
      const [cx, cy] = [x.session.conn, y.session.conn];
      const sharedServer = sameEndpoint(cx.server, cy.server);
      const sharedClient = sameEndpoint(cx.client, cy.client);
      if (sharedServer && sharedClient) return;
      if (!overlap(cx, cy)) return;
      const tokens = tokenMatch(x, y);
      const related = numbersRelated(cx, cy);
      const shared = sharedServer || sharedClient;
      // Without a shared endpoint (double NAT) only the numbers can tell; with
      // one, alike sessions must also move in lockstep (a NAT that randomises ISNs).
      if (!(related || (shared && tokens !== undefined && tokens >= 0.8 && lockstep(cx, cy) >= 0.8))) return;
      if (tokens !== undefined && tokens < 0.5) return;
      const near = Math.abs(cx.first.t - cy.first.t);
      cands.push({ i, j, score: (related ? 2 : 0) + (tokens ?? 0) + (shared ? 1 : 0) - near * 1e-3 });
    });
  });
  cands.sort((p, q) => q.score - p.score);
  const used = new Set<number>();
  const out: LegPair[] = [];
  for (const c of cands) {
    if (used.has(c.i) || used.has(c.j)) continue;
    used.add(c.i);
    used.add(c.j);
    const { client, server, side } = clientLeg(sessions[c.i]!, sessions[c.j]!);
    out.push({ client, server, side, translation: translationOf(client.session.conn, server.session.conn) });
  }
  return out.sort((p, q) => p.client.session.conn.first.packet - q.client.session.conn.first.packet);
}

/**
 * Both legs of one connection answer the same 425 after PORT/EPRT: one
 * finding, on the server's leg, that says where on the box the connection was
 * lost — the capture shows whether the box's ALG rewrote the command.
 */
export function mergeLegFindings(pair: PairReport, findings: Finding[]): Finding[] {
  if (pair.scope !== 'one-capture' || !pair.translation) return findings;
  const [clientId, serverId] = pair.clientSession === pair.sessions[0] ? pair.sessions : [pair.sessions[1], pair.sessions[0]];
  const onLeg = (id: string) => findings.find((f) => f.code === 'ACTIVE_DATA_FAILED' && f.session.id === id);
  const inside = onLeg(clientId);
  const outside = onLeg(serverId);
  if (!inside || !outside) return findings;
  const rewrite = pair.rewrites.find((w) => w.direction === 'client->server' && (w.kind === 'PORT' || w.kind === 'EPRT' || w.kind === 'LPRT'));
  const where = rewrite
    ? `The box's FTP ALG rewrote "${rewrite.before}" into "${rewrite.after}", so it expected the server's data connection, yet the server answered 425: ` +
      "the connection to the box's outside address did not get through the box to the client. Its forward rules drop it: accept the connections the helper expects " +
      '(nftables: ct state related accept; iptables: -m conntrack --ctstate RELATED -j ACCEPT) before any drop, or use passive mode.'
    : `The box forwarded ${outside.evidence} unchanged: it has no FTP ALG for this connection, so nothing lets the server's data connection in. ` +
      'Enable the FTP helper on the box (Linux: nf_conntrack_ftp with a CT helper rule), route the client through ftp-alg forward, or use passive mode.';
  const merged: Finding = {
    ...outside,
    message: `${/^The server answered "[^"]*" \(packet \d+\)/.exec(outside.message)?.[0] ?? 'The server answered 425'}, and both legs of this NATed control connection are in the capture (${pair.translation.text}). ${where}`,
  };
  return findings.filter((f) => f !== inside && f !== outside).concat(merged);
}
