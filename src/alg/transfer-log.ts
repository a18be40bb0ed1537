/**
 * What a session did, as an operator reads it: who logged in (and who
 * failed to), and one record per data transfer with the file, the user, the
 * direction *as the user sees it* and the final reply.
 *
 * Pure: the session tells it what passed (commands sent, final replies and
 * what they answer, data connections opened and closed) with the time, and
 * it returns the records to emit. It does no I/O and keeps no timers.
 *
 * Why a tracker and not the `data-close` event: `data-close` counts bytes
 * towards the side the gateway *dialled*, so the same RETR is `bytesDown` in
 * passive mode and `bytesUp` in active mode, and it knows neither the user
 * nor the file nor whether the server said 226 or 451.
 *
 * Completion follows basic-ftp's TransferResolver: a transfer is over when
 * both its final reply and its data connection's close have been seen, in
 * either order — even a 226 that arrives before the data connection opened.
 * A transfer refused before any data connection (550, 425) is over at its
 * reply.
 */

export type TransferDirection = 'download' | 'upload' | 'listing';
export type DataMode = 'active' | 'passive';
export type DataPathKind = 'relay' | 'kernel';

/** The `transfer` event's own fields (the session adds session, listener, client). */
export interface TransferRecord {
  user: string | undefined;
  /** RETR, STOR, APPE, STOU, LIST, NLST, MLSD. */
  command: string;
  /** The command's argument as the client sent it ('' for a bare LIST). */
  path: string;
  direction: TransferDirection;
  /** Data bytes moved in `direction`; absent when unknown (see bytesOmitted). */
  bytes?: number;
  /** Why `bytes` is absent: e.g. the kernel data path without conntrack accounting. */
  bytesOmitted?: string;
  durationMs: number;
  /** Absent when no data connection was set up (e.g. 550 before any PASV/PORT). */
  mode?: DataMode;
  dataPath?: DataPathKind;
  /** The final reply code of the transfer command. */
  reply: number;
  /** TYPE in force: xferlog's transfer-type column. */
  type: 'ascii' | 'binary';
}

/** The `login` event's own fields: one per login attempt that got a final answer. */
export interface LoginRecord {
  user: string;
  /** 230 (or 202) when it worked, the failure code (530, 421, …) otherwise. */
  reply: number;
}

export type TrackerRecord = { kind: 'transfer'; record: TransferRecord } | { kind: 'login'; record: LoginRecord };

/** A command as sent to the server: the verb upper-cased, the argument verbatim. */
export interface SentCommandInfo {
  verb: string;
  argument: string;
}

/**
 * A data connection's close as the relay reports it: `bytesUp` flowed
 * towards the peer the gateway dialled, `bytesDown` from it (the
 * `data-close` event's fields). Passive: the gateway dialled the server;
 * active: it dialled the client.
 */
export type DataClose =
  | { bytesUp: number; bytesDown: number }
  /** The kernel data path: bytes never entered the process. */
  | { bytesOmitted: string };

const DIRECTION: Record<string, TransferDirection> = {
  RETR: 'download',
  STOR: 'upload',
  STOU: 'upload',
  APPE: 'upload',
  LIST: 'listing',
  NLST: 'listing',
  MLSD: 'listing',
};

export const TRANSFER_COMMANDS: ReadonlySet<string> = new Set(Object.keys(DIRECTION));

interface DataConnection {
  mode: DataMode;
  dataPath: DataPathKind;
  /** Set once it closed: bytes towards the client and towards the server, or why unknown. */
  closed?: { toClient: number; toServer: number } | { bytesOmitted: string };
}

interface PendingTransfer {
  command: string;
  path: string;
  direction: TransferDirection;
  startedAt: number;
  user: string | undefined;
  type: 'ascii' | 'binary';
  data: DataConnection | undefined;
  reply?: { code: number; at: number };
  dataClosedAt?: number;
}

/** Login as a small state machine (RFC 959 §5.4: USER → 331 → PASS → 332 → ACCT). */
type LoginState = { state: 'none' } | { state: 'user-sent'; user: string } | { state: 'password-asked'; user: string };

export class TransferTracker {
  private user: string | undefined;
  private login: LoginState = { state: 'none' };
  private type: 'ascii' | 'binary' = 'ascii';
  /** The data connection the next transfer command uses (opened after PASV/PORT, maybe before the command). */
  private data: DataConnection | undefined;
  /** Transfers sent and not yet over, oldest first (clients may pipeline). */
  private readonly transfers: PendingTransfer[] = [];

  /** The user as known before any USER passed (forward explicit: the dialer took `USER name@host`). */
  userSentByDialer(user: string): void {
    this.login = { state: 'user-sent', user };
  }

  commandSent(cmd: SentCommandInfo, now: number): TrackerRecord[] {
    const verb = cmd.verb.toUpperCase();
    if (verb === 'USER') this.login = { state: 'user-sent', user: cmd.argument };
    if (verb === 'TYPE') {
      // TYPE A / TYPE A N / TYPE I / TYPE L 8: only A is ascii for xferlog.
      const t = cmd.argument.trim().charAt(0).toUpperCase();
      if (t === 'A') this.type = 'ascii';
      else if (t === 'I' || t === 'L') this.type = 'binary';
    }
    const direction = DIRECTION[verb];
    if (direction) {
      this.transfers.push({
        command: verb,
        path: cmd.argument,
        direction,
        startedAt: now,
        user: this.user,
        type: this.type,
        data: this.data,
      });
      // One data connection serves one transfer (RFC 959 stream mode).
      this.data = undefined;
    }
    return [];
  }

  /**
   * A final reply (2xx-5xx) and the command it answers, as the session's
   * reply order decided; `answering` undefined for a reply to nothing known.
   */
  finalReply(answering: Pick<SentCommandInfo, 'verb'> | undefined, code: number, now: number): TrackerRecord[] {
    const verb = answering?.verb.toUpperCase();
    const out: TrackerRecord[] = [];
    if (verb === 'USER' || verb === 'PASS' || verb === 'ACCT' || (verb === undefined && this.login.state !== 'none')) {
      out.push(...this.onLoginReply(code));
    }
    if (verb && DIRECTION[verb]) {
      const t = this.transfers.find((p) => p.command === verb && !p.reply);
      if (t) {
        t.reply = { code, at: now };
        out.push(...this.settle());
      }
    }
    return out;
  }

  /** A data connection was set up for the next (or the pending) transfer. */
  dataOpened(mode: DataMode, dataPath: DataPathKind): void {
    const conn: DataConnection = { mode, dataPath };
    // Clients usually connect after PASV and before RETR; some servers only
    // connect (active) after the command: then it belongs to the pending one.
    const waiting = this.transfers.find((t) => !t.data && (!t.reply || succeeded(t.reply.code)));
    if (waiting) waiting.data = conn;
    else this.data = conn;
  }

  /** The data connection of the oldest transfer closed. */
  dataClosed(close: DataClose, now: number): TrackerRecord[] {
    const t = this.transfers.find((p) => p.data && !p.data.closed);
    const conn = t?.data ?? this.data;
    if (!conn || conn.closed) return [];
    conn.closed =
      'bytesOmitted' in close
        ? { bytesOmitted: close.bytesOmitted }
        : conn.mode === 'passive'
          ? { toServer: close.bytesUp, toClient: close.bytesDown }
          : { toClient: close.bytesUp, toServer: close.bytesDown };
    if (!t) {
      // Closed before any transfer command used it (abandoned PASV): nothing to log.
      if (conn === this.data) this.data = undefined;
      return [];
    }
    t.dataClosedAt = now;
    return this.settle();
  }

  /**
   * The session ends: transfers still waiting for a reply or a close are
   * logged with what is known, the reply as 0 when none came.
   */
  sessionClosed(now: number): TrackerRecord[] {
    const out = this.transfers.splice(0).map((t) => ({ kind: 'transfer' as const, record: record(t, t.reply?.code ?? 0, now) }));
    this.data = undefined;
    return out;
  }

  private onLoginReply(code: number): TrackerRecord[] {
    if (this.login.state === 'none') return [];
    const user = this.login.user;
    if (code >= 300 && code < 400) {
      // 331 password, 332 account: the attempt goes on.
      this.login = { state: 'password-asked', user };
      return [];
    }
    this.login = { state: 'none' };
    if (code >= 200 && code < 300) this.user = user;
    return [{ kind: 'login', record: { user, reply: code } }];
  }

  /** Emits, oldest first, every transfer that has both its reply and (if it had one) its data close. */
  private settle(): TrackerRecord[] {
    const out: TrackerRecord[] = [];
    for (let i = 0; i < this.transfers.length; ) {
      const t = this.transfers[i]!;
      // A success reply means data moved: its connection may still be on its
      // way (active mode: the gateway dials the client after the server's
      // 150, and a small file's 226 can come first). A failure may have none.
      const dataDone = t.data ? t.data.closed !== undefined : t.reply !== undefined && !succeeded(t.reply.code);
      if (t.reply && dataDone) {
        this.transfers.splice(i, 1);
        out.push({ kind: 'transfer', record: record(t, t.reply.code, Math.max(t.reply.at, t.dataClosedAt ?? 0)) });
      } else i++;
    }
    return out;
  }
}

const succeeded = (code: number) => code >= 200 && code < 300;

function record(t: PendingTransfer, reply: number, endedAt: number): TransferRecord {
  const r: TransferRecord = {
    user: t.user,
    command: t.command,
    path: t.path,
    direction: t.direction,
    durationMs: Math.max(0, endedAt - t.startedAt),
    reply,
    type: t.type,
  };
  if (t.data) {
    r.mode = t.data.mode;
    r.dataPath = t.data.dataPath;
    const closed = t.data.closed;
    if (closed === undefined) r.bytesOmitted = 'data connection still open when the transfer ended';
    else if ('bytesOmitted' in closed) r.bytesOmitted = closed.bytesOmitted;
    else r.bytes = t.direction === 'upload' ? closed.toServer : closed.toClient;
  } else {
    r.bytes = 0;
  }
  return r;
}

/**
 * One line of the classic xferlog format (wu-ftpd, ProFTPD; man 5 xferlog),
 * so that existing log tooling reads it:
 *
 *   current-time transfer-time remote-host file-size filename transfer-type
 *   special-action-flag direction access-mode username service-name
 *   authentication-method authenticated-user-id completion-status
 *
 * Listings are not file transfers and have no line (as in wu-ftpd and
 * ProFTPD); `undefined` for them. Fields are space-separated, so spaces and
 * control characters in names become `_`, as wu-ftpd does.
 */
export function xferlogLine(t: TransferRecord & { client?: string | undefined }, endedAt: Date): string | undefined {
  if (t.direction === 'listing') return undefined;
  const field = (s: string) => s.replace(/[\s\x00-\x1f\x7f]/g, '_') || '_';
  const user = t.user ?? '';
  const anonymous = /^(anonymous|ftp)$/i.test(user);
  return [
    ctime(endedAt),
    Math.max(1, Math.round(t.durationMs / 1000)),
    field(hostOf(t.client ?? '')),
    t.bytes ?? 0,
    field(t.path),
    t.type === 'ascii' ? 'a' : 'b',
    '_',
    t.direction === 'download' ? 'o' : 'i',
    anonymous ? 'a' : 'r',
    field(user),
    'ftp',
    '0',
    '*',
    t.reply >= 200 && t.reply < 300 ? 'c' : 'i',
  ].join(' ');
}

/** `Sat Nov 28 08:40:01 2026`: ctime(3) without the newline, local time as xferlog has it. */
function ctime(d: Date): string {
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getDay()]!;
  const month = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getMonth()]!;
  const two = (n: number) => String(n).padStart(2, '0');
  return `${day} ${month} ${String(d.getDate()).padStart(2, ' ')} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ${d.getFullYear()}`;
}

/** `1.2.3.4:5555` → `1.2.3.4`, `[::1]:5555` → `::1`. */
function hostOf(endpoint: string): string {
  const m = /^\[([^\]]*)\]:\d+$/.exec(endpoint) ?? /^([^:]*):\d+$/.exec(endpoint);
  return m ? m[1]! : endpoint;
}
