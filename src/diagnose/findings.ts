/**
 * What a control session and its data connections say about the NAT or ALG
 * between the peers: one finding per problem, each with a stable code and an
 * explanation a user can act on.
 */
import { classifyAddress, formatEndpoint, isSiteLocal, sameAddress } from '../protocol/address.js';
import type { Announcement, CapturedDataChannel, FtpSession, ReplyRecord } from './ftp.js';
import type { Finding, FindingCode, Severity } from './report.js';

export interface CapturedSession {
  id: string;
  capture: number;
  session: FtpSession;
  channels: CapturedDataChannel[];
}

function finding(ctx: CapturedSession, code: FindingCode, severity: Severity, at: { packet: number; t: number }, message: string, evidence: string): Finding {
  const { client, server } = ctx.session.conn;
  return { code, severity, capture: ctx.capture, session: { id: ctx.id, client, server }, packet: at.packet, time: at.t, message, evidence };
}

const DATA_SETUP_VERBS = new Set(['PORT', 'EPRT', 'LPRT', 'PASV', 'LPSV']);

export function sessionFindings(ctx: CapturedSession): Finding[] {
  const s = ctx.session;
  const { client, server } = s.conn;
  const out: Finding[] = [];

  for (const a of s.announcements) {
    const ep = formatEndpoint(a.endpoint);
    if ((a.kind === '227' || a.kind === '228') && isSiteLocal(a.endpoint) && !sameAddress(a.endpoint, server)) {
      const failed = ctx.channels.find((c) => c.announcement === a && (c.status === 'unanswered' || c.status === 'refused'));
      const ignored = ctx.channels.find((c) => c.announcement === a && c.connections.some((d) => d.matchedBy === 'port'));
      out.push(
        finding(
          ctx,
          'PASV_PRIVATE_ADDRESS',
          isSiteLocal(server) ? 'warning' : 'error',
          a.line,
          `The server announced ${ep} in its ${a.kind} reply, a ${classifyAddress(a.endpoint)} address, while the client reaches it at ${server.address}: ` +
            `the server is behind a NAT and tells clients its inside address, which a client outside cannot connect to` +
            (failed ? ` (this client's data connection ${failed.status === 'refused' ? 'was refused' : 'got no answer'})` : '') +
            (ignored ? ' (this client ignored the address and used the control address instead, as curl and FileZilla do)' : '') +
            '. Make the server announce its public address (vsftpd pasv_address, ProFTPD MasqueradeAddress, pure-ftpd -P, pyftpdlib -n), ' +
            'put an FTP-aware gateway in front of it (ftp-alg reverse --public-address), or have clients use EPSV, which carries no address.',
          a.line.text,
        ),
      );
    }
    if (a.mode === 'active' && isSiteLocal(a.endpoint) && !sameAddress(a.endpoint, client)) {
      out.push(
        finding(
          ctx,
          'PORT_PRIVATE_ADDRESS',
          'error',
          a.line,
          `The client announced ${ep} in ${a.kind}, a ${classifyAddress(a.endpoint)} address, but its control connection comes from ${client.address}: ` +
            'the client is behind a NAT that did not rewrite the command (no FTP ALG on the path, or one that could not read this line), ' +
            "so the server's data connection to that address cannot reach the client. " +
            "Use passive mode (EPSV/PASV), enable the NAT's FTP helper (Linux: nf_conntrack_ftp with a CT helper rule), or route the client through an FTP-aware gateway (ftp-alg forward).",
          a.line.text,
        ),
      );
    }
    if (a.line.packets.length > 1) out.push(splitFinding(ctx, a));
  }

  for (const ch of ctx.channels) out.push(...channelFindings(ctx, ch));

  if (s.tls) {
    const { command, reply } = s.tls;
    out.push(
      finding(
        ctx,
        'AUTH_TLS_BLINDS_ALG',
        'warning',
        reply,
        `The client switched the control channel to TLS (${command.text}, answered ${reply.code} at packet ${reply.packet}). ` +
          "From here on no NAT helper or ALG can read or rewrite PORT/227, nor open data ports for them: behind a NAT this works only if the server announces " +
          'its public address itself and forwards its passive port range, or the client uses EPSV, or a gateway terminates the TLS. ' +
          'The commands after this point are not in the capture in readable form.',
        `${command.text} → ${reply.text}`,
      ),
    );
  }

  if (s.epsvAll) {
    for (const c of s.commands) {
      if (c.packet <= s.epsvAll.packet || !DATA_SETUP_VERBS.has(c.verb)) continue;
      out.push(
        finding(
          ctx,
          'EPSV_ALL_VIOLATED',
          'warning',
          c,
          `The client sent ${c.verb} after EPSV ALL (packet ${s.epsvAll.packet}). RFC 2428 §4: after EPSV ALL the client may use only EPSV and the server must refuse ` +
            'other data-connection commands; middleboxes rely on it and stop looking for PORT/227, so this command is not rewritten for a NAT' +
            (c.reply ? ` (the server answered ${c.reply.code})` : '') +
            '. Fix the client, or do not send EPSV ALL.',
          c.text,
        ),
      );
    }
  }

  return out;
}

function splitFinding(ctx: CapturedSession, a: Announcement): Finding {
  const what = a.mode === 'active' ? `${a.kind} command` : `${a.kind} reply`;
  return finding(
    ctx,
    'COMMAND_SPLIT_ACROSS_SEGMENTS',
    'warning',
    a.line,
    `The ${what} arrived in ${a.line.packets.length} TCP segments (packets ${a.line.packets.join(', ')}). ` +
      'Kernel ALGs (Linux nf_conntrack_ftp, most routers) look at one segment at a time and leave a line they cannot see whole unrewritten, ' +
      'so behind a NAT the data connection goes to the wrong address. Senders split lines when they write a command in pieces with Nagle off, ' +
      'or when the path MSS is small. A proxy-style gateway (ftp-alg) reassembles lines and is not affected.',
    a.line.text,
  );
}

function channelFindings(ctx: CapturedSession, ch: CapturedDataChannel): Finding[] {
  const a = ch.announcement;
  const out: Finding[] = [];
  const ep = formatEndpoint(a.endpoint);
  const passive = a.mode === 'passive';
  const who = passive ? 'client' : 'server';
  if (ch.status === 'refused' || ch.status === 'unanswered') {
    const last = ch.connections[ch.connections.length - 1]!;
    const at = ch.status === 'refused' && last.conn.rst ? last.conn.rst : last.conn.syn ?? last.conn.first;
    const attempts = ch.connections.length;
    const tries = attempts > 1 ? ` (${attempts} attempts)` : last.conn.syn && last.conn.syn.count > 1 ? ` (SYN sent ${last.conn.syn.count} times)` : '';
    const outcome = ch.status === 'refused' ? 'was refused (RST)' : 'got no answer';
    const why =
      ch.status === 'refused'
        ? 'nothing listens there, e.g. the listener gave up waiting, or a NAT forwarded the port to a host that has no listener'
        : passive
          ? "the address is not reachable from the client (a private address behind the server's NAT) or a firewall drops the passive port range"
          : "the client is behind a NAT or firewall that does not forward this port (no FTP ALG opened it), or the client's own firewall drops it";
    out.push(
      finding(
        ctx,
        'DATA_CONNECT_FAILED',
        'error',
        at,
        `The ${who}'s data connection to ${ep} (announced in ${a.kind} at packet ${a.line.packet}) ${outcome}${tries}: ${why}.` +
          (passive ? '' : ' Passive mode (EPSV/PASV) avoids connections towards the client.'),
        a.line.text,
      ),
    );
  }
  for (const d of ch.connections) {
    if (!d.unexpectedPeer) continue;
    out.push(
      finding(
        ctx,
        'DATA_FROM_UNEXPECTED_PEER',
        'warning',
        d.conn.syn ?? d.conn.first,
        `The data connection to ${ep} came from ${formatEndpoint(d.from)}, not from ${ch.expectedPeer}, the ${who}'s control address. ` +
          (passive
            ? "The client's data connection leaves through another address than its control connection (a NAT pool without paired address mapping, or a multi-homed client); servers that check the peer (vsftpd, pure-ftpd) refuse it."
            : 'The connection towards the client does not come from the address the client talks to (a NAT or gateway that does not source it from the control address); clients that check the peer refuse it, and it may be a bounce attempt.'),
        a.line.text,
      ),
    );
  }
  const failed = failureReply(ch);
  if (failed && ch.status !== 'refused' && ch.status !== 'unanswered') {
    out.push(replyFinding(ctx, ch, failed));
  } else if (ch.status === 'not-seen' && ch.transferFollowed) {
    const t = ch.transferFollowed;
    const reply = t.reply ? ` The server answered ${t.reply.code} to ${t.verb}${t.reply.code === 425 ? ': it could not open (or did not get) the data connection' : ''}.` : '';
    out.push(
      finding(
        ctx,
        'DATA_CONNECTION_NOT_SEEN',
        'info',
        t,
        `No TCP connection to ${ep} (announced in ${a.kind} at packet ${a.line.packet}) appears in the capture, although ${t.verb} followed.${reply} ` +
          'Either the capture is filtered to the control port (capture all of TCP, or add the data ports), or the connection went elsewhere or never got to this capture point.',
        a.line.text,
      ),
    );
  }
  return out;
}

/**
 * A 425 or 426 that answers the data set-up or the transfer after it: proof
 * that the data connection failed, even when the capture (filtered to the
 * control port, or taken elsewhere) does not show it. pyftpdlib dials at
 * PORT time and answers the PORT itself with 425.
 */
function failureReply(ch: CapturedDataChannel): ReplyRecord | undefined {
  const a = ch.announcement;
  const candidates = [a.mode === 'active' ? a.command?.reply : undefined, ch.transferFollowed?.reply];
  return candidates.find((r) => r !== undefined && (r.code === 425 || r.code === 426));
}

function replyFinding(ctx: CapturedSession, ch: CapturedDataChannel, reply: ReplyRecord): Finding {
  const a = ch.announcement;
  const { client, server } = ctx.session.conn;
  const ep = formatEndpoint(a.endpoint);
  const answered = `The server answered "${reply.text.split('\n')[0]}" (packet ${reply.packet}) to ${reply.command?.verb ?? 'the transfer'} after ${a.kind} ${ep} (packet ${a.line.packet})`;
  if (reply.code === 426) {
    return finding(
      ctx,
      'DATA_TRANSFER_ABORTED',
      'error',
      reply,
      `${answered}: the data connection opened but was cut before the transfer completed. ` +
        'Something between the peers closed or reset it (a firewall or NAT idle timeout, a middlebox that lost its state), or one peer aborted. ' +
        "Look for a RST on the data connection in a capture of all TCP; raise the middlebox's TCP idle timeout, or make sure it keeps state for FTP data connections.",
      a.line.text,
    );
  }
  if (a.mode === 'active') {
    const inside = isSiteLocal(a.endpoint) && !sameAddress(a.endpoint, client);
    return finding(
      ctx,
      'ACTIVE_DATA_FAILED',
      'error',
      reply,
      `${answered}: the server (${server.address}) could not connect to the client at ${ep}. ` +
        (inside
          ? `${a.endpoint.address} is the client's inside address (its control connection comes from ${client.address}): the client's NAT did not rewrite ${a.kind}. `
          : `A NAT or firewall in front of the client (${client.address}) does not let the connection to port ${a.endpoint.port} in: no FTP ALG opened it, or the client's own firewall drops it. `) +
        "Use passive mode (EPSV/PASV), or enable the FTP helper on the client's NAT (Linux: nf_conntrack_ftp with a CT helper rule), or route the client through ftp-alg forward.",
      a.line.text,
    );
  }
  const inside = isSiteLocal(a.endpoint) && !sameAddress(a.endpoint, server);
  return finding(
    ctx,
    'PASSIVE_DATA_FAILED',
    'error',
    reply,
    `${answered}: the client (${client.address}) did not reach the server's listener at ${ep}. ` +
      (inside
        ? `${a.endpoint.address} is the server's inside address (the client reaches it at ${server.address}): make the server announce its public address (vsftpd pasv_address, pyftpdlib -n) or put ftp-alg reverse in front of it.`
        : `Forward the server's passive port range (here port ${a.endpoint.port}) through its NAT or firewall to ${a.kind === '229' ? 'the server' : a.endpoint.address}, or put ftp-alg reverse in front of the server.`),
    a.line.text,
  );
}
