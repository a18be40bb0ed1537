/**
 * A scripted FTP server and a raw client for the fuzz and corpus tests.
 *
 * Both are deliberately dumb and independent of src/protocol: the server
 * splits what it receives on LF itself and records every byte, the client
 * counts replies with its own small splitter. What they check the gateway
 * against must not be the gateway's own parser.
 */
import { keepUrgentInline } from '../../src/gateway/original-dst.js';
import net, { type AddressInfo, type Socket } from 'node:net';

/** A reply the server sends after the `afterCommands`-th command from now, cut in two at `splitAt`. */
export interface ReplyPlan {
  afterCommands: number;
  bytes: Buffer;
  /** 0 or bytes.length: one write; otherwise two writes with a turn of the event loop between. */
  splitAt: number;
}

export interface ScriptedSession {
  socket: Socket;
  /** Every byte received from the gateway, in order. */
  received: Buffer[];
  receivedBytes(): Buffer;
  /** Every byte sent to the gateway, greeting included, in order. */
  sent: Buffer[];
  sentBytes(): Buffer;
}

export const GREETING = '220 ready\r\n';

/** Minimal answers; anything unknown gets 502 so that every command is answered exactly once. */
function defaultAnswer(verb: string): string {
  switch (verb) {
    case 'USER':
      return '331 Password required\r\n';
    case 'PASS':
      return '230 Logged in\r\n';
    case 'NOOP':
      return '200 NOOP ok.\r\n';
    case 'SYST':
      return '215 UNIX Type: L8\r\n';
    case 'TYPE':
      return '200 Type set\r\n';
    case 'QUIT':
      return '221 Bye\r\n';
    default:
      return '502 Not implemented\r\n';
  }
}

/** Two writes with the first handed to the kernel and a turn of the event loop between them. */
export async function writeSplit(socket: Socket, bytes: Buffer, splitAt: number): Promise<void> {
  if (splitAt <= 0 || splitAt >= bytes.length) {
    await new Promise<void>((resolve, reject) => socket.write(bytes, (err) => (err ? reject(err) : resolve())));
    return;
  }
  await new Promise<void>((resolve, reject) => socket.write(bytes.subarray(0, splitAt), (err) => (err ? reject(err) : resolve())));
  await new Promise<void>((resolve) => setImmediate(resolve));
  await new Promise<void>((resolve, reject) => socket.write(bytes.subarray(splitAt), (err) => (err ? reject(err) : resolve())));
}

export class ScriptedFtpServer {
  readonly sessions: ScriptedSession[] = [];
  /** The next scripted reply; consumed when due. */
  plan: ReplyPlan | undefined;
  private commandsSincePlan = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly control: net.Server,
    private readonly data: net.Server,
    readonly payload: Buffer,
  ) {
    control.on('connection', (s) => {
      // As vsftpd does: the urgent byte of an ABOR stays in the stream.
      keepUrgentInline(s);
      this.onControl(s);
    });
    data.on('connection', (s) => {
      this.track(s);
      s.end(payload);
    });
  }

  static async start(payload: Buffer): Promise<ScriptedFtpServer> {
    const control = net.createServer();
    const data = net.createServer();
    await Promise.all([control, data].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
    return new ScriptedFtpServer(control, data, payload);
  }

  get port(): number {
    return (this.control.address() as AddressInfo).port;
  }

  /** A real listener that sends the payload to whoever connects: what scripted passive replies announce. */
  get dataPort(): number {
    return (this.data.address() as AddressInfo).port;
  }

  /** Sets the reply for the `afterCommands`-th command from now. */
  script(plan: ReplyPlan): void {
    this.plan = plan;
    this.commandsSincePlan = 0;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all([this.control, this.data].map((s) => new Promise((r) => s.close(r))));
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => this.sockets.delete(s));
  }

  private onControl(socket: Socket): void {
    this.track(socket);
    socket.setNoDelay(true);
    const session: ScriptedSession = {
      socket,
      received: [],
      receivedBytes: () => Buffer.concat(session.received),
      sent: [],
      sentBytes: () => Buffer.concat(session.sent),
    };
    const send = (bytes: Buffer, splitAt: number) => {
      session.sent.push(bytes);
      return writeSplit(socket, bytes, splitAt);
    };
    this.sessions.push(session);
    let pending = Buffer.alloc(0);
    // Replies go out strictly in command order, split writes included.
    let queue: Promise<void> = send(Buffer.from(GREETING, 'latin1'), 0).catch(() => undefined);
    socket.on('data', (chunk: Buffer) => {
      session.received.push(chunk);
      pending = Buffer.concat([pending, chunk]);
      for (let lf = pending.indexOf(0x0a); lf !== -1; lf = pending.indexOf(0x0a)) {
        const line = pending.subarray(0, lf + 1);
        pending = pending.subarray(lf + 1);
        const answer = this.answerFor(line);
        if (answer) queue = queue.then(() => send(answer.bytes, answer.splitAt)).catch(() => undefined);
      }
    });
  }

  private answerFor(line: Buffer): { bytes: Buffer; splitAt: number } | undefined {
    const plan = this.plan;
    if (plan) {
      this.commandsSincePlan++;
      if (this.commandsSincePlan < plan.afterCommands) return undefined; // its reply is in the scripted bytes
      this.plan = undefined;
      return { bytes: plan.bytes, splitAt: plan.splitAt };
    }
    const verb = /^\s*([A-Za-z]+)/.exec(line.toString('latin1'))?.[1]?.toUpperCase() ?? '';
    return { bytes: Buffer.from(defaultAnswer(verb), 'latin1'), splitAt: 0 };
  }
}

// ---- replies, counted independently of src/protocol ------------------------------

export interface ReplySpan {
  code: number;
  /** Byte offsets in the buffer, end exclusive (after the LF of the last line). */
  start: number;
  end: number;
}

/**
 * Complete replies at the start of `buf` (RFC 959 §4.2: `ddd text`, or
 * `ddd-` … up to a line starting with `ddd `). Lines outside a reply that
 * carry no code are skipped.
 */
export function completeReplies(buf: Buffer): ReplySpan[] {
  const out: ReplySpan[] = [];
  let open: { code: number; start: number } | undefined;
  let pos = 0;
  for (let lf = buf.indexOf(0x0a, pos); lf !== -1; lf = buf.indexOf(0x0a, pos)) {
    const text = buf.subarray(pos, lf).toString('latin1').replace(/\r$/, '');
    const lineStart = pos;
    pos = lf + 1;
    if (open) {
      if (new RegExp(`^${open.code}(?: |$)`).test(text)) {
        out.push({ code: open.code, start: open.start, end: pos });
        open = undefined;
      }
      continue;
    }
    const m = /^(\d{3})([- ]|$)/.exec(text);
    if (!m) continue;
    if (m[2] === '-') open = { code: Number(m[1]), start: lineStart };
    else out.push({ code: Number(m[1]), start: lineStart, end: pos });
  }
  return out;
}

/** A raw control connection that reads whole replies: bytes as they came, nothing parsed away. */
export class RawControlClient {
  private buf = Buffer.alloc(0);
  private closed: Error | undefined;
  private wake: (() => void) | undefined;

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.wake?.();
    });
    const gone = (err?: Error) => {
      this.closed ??= err ?? new Error('control connection closed');
      this.wake?.();
    };
    socket.on('error', gone);
    socket.on('close', () => gone());
  }

  static connect(port: number): Promise<RawControlClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => resolve(new RawControlClient(s)));
      s.once('error', reject);
    });
  }

  write(bytes: Buffer | string): Promise<void> {
    const b = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
    return new Promise((resolve, reject) => this.socket.write(b, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * The bytes of the next `n` complete replies, exactly as received. Rejects
   * when the connection closes first, or after `deadlineMs` (a guard against
   * hanging, not a synchronisation).
   */
  async readReplies(n: number, deadlineMs = 15_000): Promise<Buffer> {
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      this.wake?.();
    }, deadlineMs);
    try {
      for (;;) {
        const replies = completeReplies(this.buf);
        if (replies.length >= n) {
          const end = replies[n - 1]!.end;
          const out = this.buf.subarray(0, end);
          this.buf = this.buf.subarray(end);
          return out;
        }
        const why = this.closed?.message ?? (timedOut ? `fewer than ${n} replies within ${deadlineMs} ms` : undefined);
        if (why) throw new Error(`${why}; received so far: ${JSON.stringify(this.buf.toString('latin1'))}`);
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      clearTimeout(deadline);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Connects to a data endpoint and resolves with everything it sends up to its FIN. */
export function fetchData(port: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => {
      s.destroy();
      resolve(Buffer.concat(chunks));
    });
    s.once('error', reject);
  });
}
