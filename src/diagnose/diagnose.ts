/**
 * `ftp-alg diagnose CAPTURE [SECOND_CAPTURE] [--json]`: reads one or two
 * captures, finds the FTP control sessions and their data connections, and
 * explains what went wrong on the way through a NAT or ALG. With two
 * captures (one each side of the middlebox) it also lists what the
 * middlebox rewrote and checks its TCP sequence adjustment.
 */
import { readFile } from 'node:fs/promises';
import { findControlSessions, matchDataChannels, type CapturedDataChannel, type DataConnection, type FtpSession } from './ftp.js';
import { sessionFindings } from './findings.js';
import { analysePair, decideClientSide, pairControlSessions, type PairSide } from './pair.js';
import { mergeLegFindings, pairLegs } from './legs.js';
import { CaptureError, readCapture, type Capture } from './pcap.js';
import {
  REPORT_VERSION,
  type CaptureReport,
  type DataChannelReport,
  type DataConnectionReport,
  type DiagnoseReport,
  type Finding,
  type SessionReport,
  type TranscriptLine,
} from './report.js';
import { rolesReason, trackConnections } from './tcp.js';

export { formatDiagnoseReport } from './format.js';
export { CaptureError } from './pcap.js';
export type { DiagnoseReport } from './report.js';

export interface CaptureInput {
  /** Shown in messages and the report. */
  file: string;
  data: Buffer;
}

/** Reads the files (one or two) and analyses them. Throws CaptureError for a file that cannot be read or parsed. */
export async function diagnoseFiles(paths: string[]): Promise<DiagnoseReport> {
  if (paths.length < 1 || paths.length > 2) throw new RangeError(`diagnose takes one or two capture files, got ${paths.length}`);
  const inputs = await Promise.all(
    paths.map(async (file) => {
      try {
        return { file, data: await readFile(file) };
      } catch (err) {
        throw new CaptureError(file, undefined, `cannot read: ${(err as Error).message}`);
      }
    }),
  );
  return diagnoseCaptures(inputs);
}

/** The same, on bytes already in memory. */
export function diagnoseCaptures(inputs: CaptureInput[]): DiagnoseReport {
  const report: DiagnoseReport = { version: REPORT_VERSION, captures: [], sessions: [], pairs: [], findings: [] };
  const sides: PairSide[][] = [];
  inputs.forEach((input, i) => {
    const capture = i + 1;
    const cap = readCapture(input.data, input.file, { allowTruncatedTail: true });
    const connections = trackConnections(cap.segments);
    const sessions = findControlSessions(connections);
    const channels = matchDataChannels(sessions, connections);
    report.captures.push(captureReport(cap, capture, connections.length));
    const mine: PairSide[] = [];
    sessions.forEach((session, n) => {
      const id = `${capture}.${n + 1}`;
      const ch = channels.get(session) ?? [];
      report.sessions.push(sessionReport(session, ch, id, capture));
      report.findings.push(...sessionFindings({ id, capture, session, channels: ch }));
      mine.push({ capture, id, session });
    });
    sides.push(mine);
    for (const legs of pairLegs(mine)) {
      const { report: pair, findings } = analysePair(legs.client, legs.server, legs.side, legs.translation);
      report.pairs.push(pair);
      report.findings = mergeLegFindings(pair, [...report.findings, ...findings]);
    }
  });
  if (sides.length === 2) {
    const pairs = pairControlSessions(sides[0]!, sides[1]!);
    const side = decideClientSide(pairs, [1, 2]);
    for (const [a, b] of pairs) {
      const { report: pair, findings } = analysePair(a, b, side);
      report.pairs.push(pair);
      report.findings.push(...findings);
    }
  }
  report.findings.sort(byCaptureThenPacket);
  return report;
}

const SEVERITY_RANK = { error: 0, warning: 1, info: 2 } as const;

function byCaptureThenPacket(a: Finding, b: Finding): number {
  return a.capture - b.capture || a.packet - b.packet || SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] || a.code.localeCompare(b.code);
}

function captureReport(cap: Capture, capture: number, connections: number): CaptureReport {
  const first = cap.segments[0];
  const last = cap.segments[cap.segments.length - 1];
  return {
    capture,
    file: cap.file,
    format: cap.format,
    linkTypes: cap.linkTypes,
    packets: cap.packets,
    tcpSegments: cap.segments.length,
    tcpConnections: connections,
    ...(first && last ? { start: first.t, end: last.t } : {}),
    notes: cap.notes.map((n) => n.message),
  };
}

function sessionReport(s: FtpSession, channels: CapturedDataChannel[], id: string, capture: number): SessionReport {
  const transcript: TranscriptLine[] = [
    ...s.commands.map((c) => ({ direction: c.direction, packet: c.packet, time: c.t, text: c.text, segments: c.packets.length, offset: c.offset })),
    ...s.replies.map((r) => ({
      direction: 'server->client' as const,
      packet: r.packet,
      time: r.t,
      text: r.text,
      segments: new Set(r.lines.flatMap((l) => l.packets)).size,
      offset: r.lines[0]!.offset,
    })),
  ]
    .sort((a, b) => a.packet - b.packet || a.offset - b.offset)
    .map(({ offset: _offset, ...line }) => line);
  const { conn } = s;
  return {
    id,
    capture,
    client: conn.client,
    server: conn.server,
    detectedBy: s.detectedBy,
    roles: conn.roles,
    rolesReason: rolesReason(conn),
    handshake: conn.state,
    start: { packet: conn.first.packet, time: conn.first.t },
    end: { packet: conn.last.packet, time: conn.last.t },
    ...(s.tls ? { tls: { packet: s.tls.reply.packet, time: s.tls.reply.t } } : {}),
    ...(s.epsvAll ? { epsvAll: { packet: s.epsvAll.packet, time: s.epsvAll.t } } : {}),
    commands: s.commands.length,
    replies: s.replies.length,
    transcript,
    dataConnections: channels.map(channelReport),
    notes: s.notes,
  };
}

function channelReport(ch: CapturedDataChannel): DataChannelReport {
  const a = ch.announcement;
  return {
    mode: a.mode,
    kind: a.kind,
    announced: { packet: a.line.packet, time: a.line.t, line: a.line.text },
    endpoint: a.endpoint,
    expectedPeer: ch.expectedPeer,
    status: ch.status,
    connections: ch.connections.map(connectionReport),
  };
}

function connectionReport(d: DataConnection): DataConnectionReport {
  const c = d.conn;
  const first = c.syn ?? c.first;
  return {
    from: d.from,
    to: d.to,
    state: c.state,
    first: { packet: first.packet, time: first.t },
    syns: c.syn?.count ?? 0,
    bytes: d.bytes,
    matchedBy: d.matchedBy,
    unexpectedPeer: d.unexpectedPeer,
  };
}
