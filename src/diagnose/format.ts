/**
 * The human-readable form of a DiagnoseReport: one block per capture, one per
 * control session with its data connections, one per pair of captures, then
 * the findings with their codes. Times are relative to the capture's first
 * TCP packet; `#n` is a packet (frame) number.
 */
import { formatEndpoint, type Endpoint } from '../protocol/address.js';
import type { DataChannelReport, DiagnoseReport, Finding, PairReport, SessionReport } from './report.js';

const ep = (e: Endpoint) => formatEndpoint(e);

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function wrap(text: string, indent: string, width = 100): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      out.push(indent + line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) out.push(indent + line);
  return out;
}

/** Notes may quote peer bytes: escape control characters so they cannot drive the terminal. */
function safe(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Control text may hold anything: keep one line per entry, show control bytes escaped. */
function shown(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

export function formatDiagnoseReport(r: DiagnoseReport): string {
  const out: string[] = [];
  const start = new Map(r.captures.map((c) => [c.capture, c.start ?? 0]));
  const at = (capture: number, packet: number, time: number) => `#${packet} +${(time - (start.get(capture) ?? 0)).toFixed(3)}s`;

  for (const c of r.captures) {
    const span = c.start !== undefined && c.end !== undefined ? `, ${(c.end - c.start).toFixed(3)} s` : '';
    out.push(
      `capture ${c.capture}: ${safe(c.file)} (${c.format}, ${c.linkTypes.join('/') || 'no interfaces'}): ${plural(c.packets, 'packet')}, ` +
        `${plural(c.tcpSegments, 'TCP segment')} in ${plural(c.tcpConnections, 'connection')}${span}`,
    );
    for (const n of c.notes) out.push(...wrap(`note: ${safe(n)}`, '  '));
  }
  const sessionsByCapture = r.captures.map((c) => r.sessions.filter((s) => s.capture === c.capture));
  sessionsByCapture.forEach((list, i) => {
    if (list.length === 0) out.push('', `capture ${i + 1}: no FTP control session found (port 21, or a 220 greeting)`);
  });

  for (const s of r.sessions) out.push('', ...sessionBlock(s, at));
  for (const p of r.pairs) out.push('', ...pairBlock(p));

  out.push('');
  if (r.findings.length === 0) {
    out.push('findings: none');
  } else {
    const count = (sev: Finding['severity']) => r.findings.filter((f) => f.severity === sev).length;
    out.push(`findings: ${plural(count('error'), 'error')}, ${plural(count('warning'), 'warning')}, ${count('info')} info`);
    for (const f of r.findings) {
      out.push(`${f.severity.toUpperCase().padEnd(7)} ${f.code}  session ${f.session.id}  ${r.captures.length > 1 ? `capture ${f.capture} ` : ''}${at(f.capture, f.packet, f.time)}`);
      out.push(...wrap(safe(f.message), '        '));
      out.push(`        > ${shown(f.evidence)}`);
    }
  }
  return out.join('\n') + '\n';
}

function sessionBlock(s: SessionReport, at: (capture: number, packet: number, time: number) => string): string[] {
  const out: string[] = [];
  out.push(
    `session ${s.id}  ${ep(s.client)} → ${ep(s.server)}  (${s.handshake}${s.detectedBy === 'greeting' ? ', found by its 220 greeting' : ''}; ` +
      `#${s.start.packet}–#${s.end.packet}; ${plural(s.commands, 'command')}, ${plural(s.replies, 'reply').replace('replys', 'replies')})`,
  );
  if (s.roles !== 'syn') out.push(...wrap(`roles: ${safe(s.rolesReason)}`, '  '));
  if (s.tls) out.push(`  TLS from ${at(s.capture, s.tls.packet, s.tls.time)}: the rest of the control channel is encrypted`);
  if (s.epsvAll) out.push(`  EPSV ALL at ${at(s.capture, s.epsvAll.packet, s.epsvAll.time)}`);
  if (s.dataConnections.length === 0) out.push('  no data connection announced');
  for (const d of s.dataConnections) out.push(...channelLines(d, s.capture, at));
  for (const n of s.notes) out.push(...wrap(`note: ${safe(n)}`, '  '));
  return out;
}

function channelLines(d: DataChannelReport, capture: number, at: (capture: number, packet: number, time: number) => string): string[] {
  const head = `  data ${d.mode.padEnd(7)} ${d.kind.padEnd(4)} → ${ep(d.endpoint)} (${at(capture, d.announced.packet, d.announced.time)}): ${d.status}`;
  const out = [head];
  for (const c of d.connections) {
    const syns = c.syns > 1 ? `, SYN ×${c.syns}` : '';
    const via = c.matchedBy === 'port' ? ', to the control address (announced address ignored)' : '';
    const peer = c.unexpectedPeer ? `, NOT from ${d.expectedPeer}` : '';
    out.push(
      `    ${ep(c.from)} → ${ep(c.to)} ${c.state} at #${c.first.packet}${syns}${via}${peer}; ${c.bytes.fromInitiator} B sent, ${c.bytes.toInitiator} B received`,
    );
  }
  return out;
}

function pairBlock(p: PairReport): string[] {
  const out = [
    `pair ${p.sessions[0]} ⇄ ${p.sessions[1]}: client side is ${p.scope === 'one-capture' ? `session ${p.clientSession}` : `capture ${p.clientSide}`} (by ${p.clientSideBy}); ` +
      (p.middleboxKind === 'translated' ? 'the middlebox translates one TCP connection (NAT/ALG)' : 'the middlebox terminates TCP and opens its own connection (a proxy)'),
    ...wrap(`why: ${p.middleboxEvidence.join('; ')}`, '  '),
  ];
  if (p.translation) out.splice(1, 0, `  translation (${p.translation.kind} NAT): ${p.translation.text}`);
  for (const w of p.inferredRewrites) {
    out.push(
      `  inferred ${w.direction} ${w.kind} (#${w.beforeAt.packet}): ${w.lengthChange >= 0 ? '+' : ''}${w.lengthChange} B, told by the ACK at #${w.ackAt.packet} (the rewritten line is not in the capture)`,
      `    ${shown(w.before)}`,
    );
  }
  if (p.rewrites.length === 0 && p.inferredRewrites.length === 0) out.push('  no line rewritten');
  for (const w of p.rewrites) {
    const size = w.afterBytes - w.beforeBytes;
    const where = `#${w.beforeAt.packet} in capture ${w.beforeAt.capture}${w.afterAt ? ` → #${w.afterAt.packet} in capture ${w.afterAt.capture}` : ''}`;
    out.push(`  rewrite ${w.direction} ${w.kind} at offset ${w.offset} (${where}), ${size >= 0 ? '+' : ''}${size} B, delta ${w.delta}:`);
    out.push(`    ${shown(w.before)}`, `    → ${shown(w.after)}`);
  }
  const c = p.sequenceCheck;
  if (!c.checked) out.push(...wrap(`sequence numbers not checked: ${c.reason ?? ''}`, '  '));
  else if (!c.firstMismatch) out.push(`  sequence numbers: ${plural(c.segments, 'segment')} and ${plural(c.acks, 'ACK')} match the ledger`);
  else {
    const m = c.firstMismatch;
    out.push(
      `  sequence numbers: first mismatch at #${m.packet} in capture ${m.capture}: ${m.kind} for ${m.direction} data is ${m.actual}, expected ${m.expected} (relative to the ISN)`,
    );
  }
  return out;
}
