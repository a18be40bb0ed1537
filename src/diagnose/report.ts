/**
 * The JSON shape of `ftp-alg diagnose --json` (and what formatDiagnoseReport
 * prints). Part of the interface: fields are added, never renamed or given
 * another meaning; `version` changes if that ever has to happen.
 *
 * Conventions: `packet` is a 1-based frame number in its capture (what
 * Wireshark shows as frame.number); `time` is seconds since the epoch, as a
 * float, taken from the capture; `capture` is the 1-based position of the
 * file on the command line; endpoints are `{family, address, port}` with
 * canonical address text (IPv4 dotted, IPv6 RFC 5952).
 */
import type { LedgerEntry } from '../alg/ledger.js';
import type { Endpoint } from '../protocol/address.js';

export const REPORT_VERSION = 1;

export interface DiagnoseReport {
  version: typeof REPORT_VERSION;
  captures: CaptureReport[];
  /** Every FTP control session found, capture by capture, in order of first packet. */
  sessions: SessionReport[];
  /** With two captures: control sessions seen on both sides of a middlebox. */
  pairs: PairReport[];
  /** Sorted by capture, then packet. */
  findings: Finding[];
}

export interface CaptureReport {
  capture: number;
  file: string;
  format: 'pcap' | 'pcapng';
  /** e.g. `ethernet`, `linux-sll`, `linux-sll2`, `raw-ip`. */
  linkTypes: string[];
  packets: number;
  tcpSegments: number;
  tcpConnections: number;
  /** Time of the first and last packet with a TCP segment. */
  start?: number;
  end?: number;
  /** What the reader skipped or could not see (fragments, snaplen, truncation). */
  notes: string[];
}

export interface PacketAt {
  packet: number;
  time: number;
}

/** Handshake outcome of a TCP connection, as far as the capture shows. */
export type HandshakeState = 'opened' | 'refused' | 'unanswered' | 'mid-stream';

export type DirectionName = 'client->server' | 'server->client';

export interface SessionReport {
  /** `capture.n`, e.g. `1.2` for the second control session of the first capture. */
  id: string;
  capture: number;
  client: Endpoint;
  server: Endpoint;
  /** `port-21`, or `greeting` (a 220 from the server on another port). */
  detectedBy: 'port-21' | 'greeting';
  /**
   * How client and server were told apart, most reliable first: `syn` (who
   * sent the SYN), `syn-ack` (who answered it), `greeting` (who sent the 220,
   * in a capture that starts after the handshake), `replies` (who sent FTP
   * replies while the other sent commands), `port-guess` (port 21, a
   * privileged port, or the lower port).
   */
  roles: 'syn' | 'syn-ack' | 'greeting' | 'replies' | 'port-guess';
  /** The same in words, naming the packet or line it rests on. */
  rolesReason: string;
  handshake: HandshakeState;
  start: PacketAt;
  end: PacketAt;
  /** Where the control channel became encrypted: the 234 answering AUTH. */
  tls?: PacketAt;
  /** Where the client sent EPSV ALL. */
  epsvAll?: PacketAt;
  commands: number;
  replies: number;
  /** Commands and replies in capture order (PASS/ACCT arguments masked). */
  transcript: TranscriptLine[];
  dataConnections: DataChannelReport[];
  /** Gaps in the capture, over-long lines, unparseable endpoint arguments. */
  notes: string[];
}

export interface TranscriptLine {
  direction: DirectionName;
  packet: number;
  time: number;
  /** One line, or a multi-line reply joined with `\n`; Telnet sequences removed. */
  text: string;
  /** How many TCP segments the bytes of this line first arrived in. */
  segments: number;
}

export type AnnouncementKind = 'PORT' | 'EPRT' | 'LPRT' | '227' | '228' | '229';

export interface DataChannelReport {
  /** active: the server connects to the client (PORT/EPRT/LPRT); passive: the client connects (227/228/229). */
  mode: 'active' | 'passive';
  kind: AnnouncementKind;
  /** The command or reply that announced the endpoint. */
  announced: PacketAt & { line: string };
  /** Where the data connection should go. */
  endpoint: Endpoint;
  /** Who should open it: the client's control address (passive) or the server's (active). */
  expectedPeer: string;
  /**
   * opened: a connection from the expected peer completed its handshake;
   * unexpected-peer: only a connection from another address did;
   * refused / unanswered: every attempt got a RST / no answer;
   * not-seen: no attempt in the capture before the next announcement.
   */
  status: 'opened' | 'unexpected-peer' | 'refused' | 'unanswered' | 'not-seen';
  connections: DataConnectionReport[];
}

export interface DataConnectionReport {
  from: Endpoint;
  to: Endpoint;
  state: HandshakeState;
  /** The first SYN, or the first packet seen when the handshake was not captured. */
  first: PacketAt;
  /** SYNs sent (1 + retransmissions). */
  syns: number;
  bytes: { fromInitiator: number; toInitiator: number };
  /** endpoint: went to the announced address and port; port: to the announced port on the control peer's address (the announced address was ignored). */
  matchedBy: 'endpoint' | 'port';
  unexpectedPeer: boolean;
}

export const FINDING_CODES = [
  'PASV_PRIVATE_ADDRESS',
  'PORT_PRIVATE_ADDRESS',
  'DATA_CONNECT_FAILED',
  'DATA_FROM_UNEXPECTED_PEER',
  'DATA_CONNECTION_NOT_SEEN',
  'COMMAND_SPLIT_ACROSS_SEGMENTS',
  'AUTH_TLS_BLINDS_ALG',
  'EPSV_ALL_VIOLATED',
  'ALG_SEQ_NOT_ADJUSTED',
  'ACTIVE_DATA_FAILED',
  'PASSIVE_DATA_FAILED',
  'DATA_TRANSFER_ABORTED',
] as const;

export type FindingCode = (typeof FINDING_CODES)[number];

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  code: FindingCode;
  severity: Severity;
  capture: number;
  session: { id: string; client: Endpoint; server: Endpoint };
  /** The packet that shows the problem, in `capture`. */
  packet: number;
  time: number;
  /** Plain-language explanation and what to do about it. */
  message: string;
  /** The control line involved (or a description of the packet). */
  evidence: string;
}

export interface PairReport {
  /**
   * two-captures: one session from each file (taken on the two sides of the
   * middlebox); one-capture: both legs of one translated connection in the
   * same file (a capture on the firewall or router itself).
   */
  scope: 'two-captures' | 'one-capture';
  /** Session ids, first capture's first (one-capture: in order of first packet). */
  sessions: [string, string];
  /** The session seen nearer the client. */
  clientSession: string;
  /** one-capture: what the middlebox translated, e.g. `client inside 100.64.1.2:40000 ↔ outside 198.18.0.1:61000`. */
  translation?: LegTranslation;
  /**
   * Rewrites told only by the numbers, where the rewritten line itself was not
   * captured (one direction of a leg missing): the receiver's ACKs run ahead
   * of (or behind) the sender's sequence numbers by the length change.
   */
  inferredRewrites: InferredRewrite[];
  /** The capture taken nearer the client. */
  clientSide: number;
  /**
   * Decided once for all pairs of the two captures, by the first that tells:
   * addresses: the client's address is site-local in one capture only, or
   * the server's is (the inside of a NAT); syn-order: the captures share a
   * clock and the client's SYN appears first in the same capture in every
   * pair; handshake-timing: SYN→SYN-ACK is longer and SYN-ACK→ACK shorter
   * near the client, summed over the pairs; argument-order: could not tell,
   * the first file is taken as the client side.
   */
  clientSideBy: 'addresses' | 'syn-order' | 'handshake-timing' | 'argument-order';
  /** The same in words. */
  clientSideReason: string;
  /** forwards-segments: one segment out per segment in, same payloads; re-segments: the payload is cut differently on the two sides. */
  middlebox: 'forwards-segments' | 're-segments';
  /**
   * translated: one TCP connection seen on both sides, its addresses (and
   * perhaps payload) rewritten — a NAT, a kernel FTP helper, a router ALG:
   * sequence numbers must follow its rewrites, and are checked
   * (ALG_SEQ_NOT_ADJUSTED). terminated: two TCP connections, the middlebox
   * accepts one and dials the other — a proxy such as ftp-alg or ftp-proxy:
   * each has its own sequence numbers, nothing to check. Told by the same
   * ISN, the same TCP timestamps or IPv4 identifications on both sides
   * (translated), different ones or a different closing order (terminated).
   */
  middleboxKind: 'translated' | 'terminated';
  /** What the classification rests on, in words. */
  middleboxEvidence: string[];
  rewrites: RewriteReport[];
  /** Per direction, RewriteLedger entries; offsets are in the sender's stream. */
  ledgers: Record<DirectionName, LedgerEntry[]>;
  sequenceCheck: SequenceCheck;
}

export interface LegTranslation {
  /** source: the client's address/port was translated; destination: the server's; or both. */
  kind: 'source' | 'destination' | 'source+destination';
  clientSide: { client: Endpoint; server: Endpoint };
  serverSide: { client: Endpoint; server: Endpoint };
  text: string;
}

export interface InferredRewrite {
  direction: DirectionName;
  /** The line as the sender sent it (the rewritten form was not captured). */
  before: string;
  kind: string;
  beforeAt: { capture: number; packet: number };
  /** The ACK, on the receiver's leg, that shows the length change. */
  ackAt: { capture: number; packet: number };
  /** Bytes added (negative: removed) by the middlebox. */
  lengthChange: number;
}

export interface RewriteReport {
  direction: DirectionName;
  /** The command verb or reply code of the line (`PORT`, `227`), or `line`. */
  kind: string;
  /** Text before and after the middlebox; '' for a line it inserted or removed. */
  before: string;
  after: string;
  /** Where the line is in the sender's side capture and in the receiver's side capture. */
  beforeAt: { capture: number; packet: number };
  afterAt?: { capture: number; packet: number };
  /** Offset of the line in the sender's stream. */
  offset: number;
  beforeBytes: number;
  afterBytes: number;
  /** Cumulative output-minus-input offset after this rewrite. */
  delta: number;
}

export interface SequenceCheck {
  checked: boolean;
  /** segments: forwarded segments compared one by one; ack-inference: only the receiver's ACKs against the sender's numbers (a direction not captured). */
  method?: 'segments' | 'ack-inference';
  /** Why it was not checked. */
  reason?: string;
  /** Segments whose sequence number was compared, and ACKs compared. */
  segments: number;
  acks: number;
  firstMismatch?: SequenceMismatch;
}

export interface SequenceMismatch {
  kind: 'seq' | 'ack';
  /** The direction of the data whose numbers are wrong (for `ack`, the ACKs travel the other way). */
  direction: DirectionName;
  capture: number;
  packet: number;
  time: number;
  /** Stream offsets relative to the ISN. */
  expected: number;
  actual: number;
}
