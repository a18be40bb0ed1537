/**
 * A small FTP client for the demo's self-check and for probing servers.
 * Not a general-purpose client: it logs in, sets up one data connection in a
 * chosen mode, and transfers or lists. It reuses the protocol core's framer,
 * reply assembler and endpoint codecs. It speaks FTPS (RFC 4217) too:
 * explicit (AUTH TLS after the greeting) or implicit (TLS from the first
 * byte), with PROT P data connections that resume the control connection's
 * TLS session, as vsftpd's require_ssl_reuse demands.
 */
import net, { type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { LineFramer, encodeLine } from '../protocol/framer.js';
import { ReplyAssembler, replyText, type Reply } from '../protocol/reply.js';
import { find227, find229, formatEprtArg, formatPortArg } from '../protocol/endpoint.js';
import { ipOf, type Endpoint } from '../protocol/address.js';

export type DataModeName = 'PASV' | 'EPSV' | 'PORT' | 'EPRT';

export class FtpError extends Error {
  /** Set when the failure came after the data connection had opened. */
  dataConnected = false;

  constructor(
    message: string,
    readonly reply?: { code: number; text: string },
  ) {
    super(message);
  }
}

export interface SimpleReply {
  code: number;
  text: string;
}

/** FTPS: explicit (AUTH TLS after the greeting) or implicit (TLS from the first byte). */
export interface ClientTlsOptions {
  mode: 'explicit' | 'implicit';
  /** Skip certificate verification (probe --insecure). */
  insecure: boolean;
}

/** What the TLS of the control connection turned out to be. */
export interface ControlTlsInfo {
  protocol: string;
  cipher: string;
  /** The certificate was verified (false only with --insecure). */
  verified: boolean;
  /** Why it would not verify, when it was not checked. */
  verifyError?: string;
  subject?: string;
}

export class FtpClient {
  private readonly framer = new LineFramer(8192);
  private readonly assembler = new ReplyAssembler();
  private readonly queue: Reply[] = [];
  private waiter: ((r: Reply | Error) => void) | undefined;
  private failure: Error | undefined;
  private current: Socket;
  private secured: TLSSocket | undefined;
  /** The control connection's latest TLS session: TLS 1.3 tickets come after the handshake. */
  private tlsSession: Buffer | undefined;
  /** PROT P is in force: data connections speak TLS. */
  private protectData = false;
  private readonly onData = (chunk: Buffer) => {
    for (const item of this.framer.push(chunk)) {
      if (item.kind !== 'line') continue;
      const ev = this.assembler.push(item);
      if (ev?.kind === 'reply') this.deliver(ev.reply);
    }
  };
  private readonly onError = (err: Error) => this.gone(err);
  private readonly onClose = () => this.gone();

  private constructor(
    /** The TCP connection; its addresses stay valid under TLS. */
    readonly tcp: Socket,
    readonly timeoutMs: number,
    readonly host: string,
    private readonly tlsOptions: ClientTlsOptions | undefined,
  ) {
    this.current = tcp;
    this.attach(tcp);
  }

  /** The socket the control connection currently speaks on (TLS once secured). */
  get socket(): Socket {
    return this.current;
  }

  get tlsInfo(): ControlTlsInfo | undefined {
    const t = this.secured;
    if (!t) return undefined;
    const cert = t.getPeerCertificate();
    const verifyError = t.authorized ? undefined : t.authorizationError?.toString();
    return {
      protocol: t.getProtocol() ?? '?',
      cipher: t.getCipher().name,
      verified: t.authorized,
      ...(verifyError ? { verifyError } : {}),
      ...(cert?.subject?.CN ? { subject: String(cert.subject.CN) } : {}),
    };
  }

  private attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private detach(socket: Socket): void {
    socket.off('data', this.onData);
    socket.off('error', this.onError);
    socket.off('close', this.onClose);
  }

  private gone(err?: Error): void {
    this.failure ??= err ?? new FtpError('control connection closed');
    this.waiter?.(this.failure);
    this.waiter = undefined;
  }

  static connect(host: string, port: number, timeoutMs = 10_000, tlsOptions?: ClientTlsOptions): Promise<FtpClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new FtpError(`connect to ${host}:${port} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new FtpError(`cannot connect to ${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        const client = new FtpClient(socket, timeoutMs, host, tlsOptions);
        if (tlsOptions?.mode !== 'implicit') return resolve(client);
        client.secure().then(() => resolve(client), (err: Error) => {
          socket.destroy();
          reject(err);
        });
      });
    });
  }

  /**
   * Explicit FTPS after the greeting: AUTH TLS, then the handshake. Does
   * nothing for a plain or implicit client.
   */
  async startTls(): Promise<void> {
    if (this.tlsOptions?.mode !== 'explicit' || this.secured) return;
    await this.expect('AUTH TLS', (c) => c === 234);
    await this.secure();
  }

  /** After login on a TLS connection: PBSZ 0 and PROT P (RFC 4217 §9), so data connections are protected too. */
  async protect(): Promise<void> {
    if (!this.secured) return;
    await this.expect('PBSZ 0', (c) => c === 200);
    await this.expect('PROT P', (c) => c === 200);
    this.protectData = true;
  }

  /** Hands the control connection to TLS; from now on replies arrive decrypted. */
  private secure(): Promise<void> {
    const raw = this.current;
    this.detach(raw);
    const t = tls.connect({ socket: raw, ...this.tlsConnectOptions() });
    t.on('session', (s: Buffer) => (this.tlsSession = s));
    return this.handshake(t, 'control connection').then(() => {
      this.current = t;
      this.secured = t;
      this.attach(t);
    });
  }

  private tlsConnectOptions(): tls.ConnectionOptions {
    return {
      ...(net.isIP(this.host) ? {} : { servername: this.host }),
      rejectUnauthorized: !this.tlsOptions?.insecure,
    };
  }

  private handshake(t: TLSSocket, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        t.off('secureConnect', onSecure);
        t.off('error', onError);
        t.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onSecure = () => done();
      const onError = (err: Error) => {
        const code = (err as NodeJS.ErrnoException).code;
        const hint = !this.tlsOptions?.insecure && /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS_CERT/.test(code ?? '') ? '; --insecure skips verification' : '';
        done(new FtpError(`TLS handshake on the ${what} failed: ${err.message.split('\n')[0]}${code ? ` (${code})` : ''}${hint}`));
      };
      const onClose = () => done(new FtpError(`the ${what} closed during the TLS handshake`));
      const timer = setTimeout(() => {
        t.destroy();
        done(new FtpError(`TLS handshake on the ${what} not completed within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      t.once('secureConnect', onSecure);
      t.once('error', onError);
      t.once('close', onClose);
    });
  }

  /**
   * TLS on a data connection, resuming the control connection's session:
   * vsftpd (require_ssl_reuse=YES) refuses a data connection that does not.
   */
  private async secureData(raw: Socket): Promise<Socket> {
    if (!this.protectData) return raw;
    const session = this.tlsSession ?? this.secured?.getSession();
    const t = tls.connect({ socket: raw, ...this.tlsConnectOptions(), ...(session ? { session } : {}) });
    await this.handshake(t, 'data connection');
    return t;
  }

  private deliver(reply: Reply): void {
    if (reply.code < 200 && !this.wantPreliminary) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(reply);
    } else this.queue.push(reply);
  }

  private wantPreliminary = false;

  /** The next reply (final, or preliminary too when asked). */
  read(preliminary = false): Promise<SimpleReply> {
    this.wantPreliminary = preliminary;
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(simple(queued));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new FtpError(`no reply within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiter = (r) => {
        clearTimeout(timer);
        if (r instanceof Error) reject(r);
        else resolve(simple(r));
      };
    });
  }

  async send(command: string, preliminary = false): Promise<SimpleReply> {
    this.socket.write(encodeLine(command));
    return this.read(preliminary);
  }

  async expect(command: string, ok: (code: number) => boolean): Promise<SimpleReply> {
    const r = await this.send(command);
    if (!ok(r.code)) throw new FtpError(`${command.split(' ')[0]} failed: ${r.code} ${r.text}`, r);
    return r;
  }

  async login(user = 'anonymous', pass = 'ftp-alg@example.org'): Promise<void> {
    const greeting = await this.read();
    if (greeting.code !== 220) throw new FtpError(`greeting: ${greeting.code} ${greeting.text}`, greeting);
    await this.startTls();
    const u = await this.send(`USER ${user}`);
    if (u.code === 331) await this.expect(`PASS ${pass}`, (c) => c === 230 || c === 202);
    else if (u.code !== 230) throw new FtpError(`USER failed: ${u.code} ${u.text}`, u);
    await this.protect();
  }

  /**
   * Opens a data connection in `mode` and runs `command` (RETR, LIST, …) over
   * it; resolves with the bytes received and the replies seen.
   */
  async transfer(
    mode: DataModeName,
    command: string,
    onSetup?: (setup: SimpleReply, endpoint: Endpoint | undefined) => void,
  ): Promise<{ data: Buffer; setup: SimpleReply; announced?: Endpoint; final: SimpleReply }> {
    const local = ipOf(this.tcp.localAddress!);
    const remote = ipOf(this.tcp.remoteAddress!);
    let dataSocket: Promise<Socket>;
    let setup: SimpleReply;
    let announced: Endpoint | undefined;
    let listener: net.Server | undefined;
    if (mode === 'PASV' || mode === 'EPSV') {
      setup = await this.expect(mode, (c) => c === (mode === 'PASV' ? 227 : 229));
      announced = mode === 'PASV' ? find227(setup.text)?.endpoint : (() => {
        const f = find229(setup.text);
        return f ? { ...remote, port: f.port } : undefined;
      })();
      onSetup?.(setup, announced);
      if (!announced) throw new FtpError(`${mode} reply has no endpoint: ${setup.text}`, setup);
      dataSocket = this.dial(announced);
    } else {
      listener = net.createServer();
      await new Promise<void>((r) => listener!.listen(0, local.address, r));
      const port = (listener.address() as net.AddressInfo).port;
      const me = { ...local, port };
      const arg = mode === 'PORT' ? formatPortArg(me) : formatEprtArg(me);
      // Accept before sending PORT: pyftpdlib connects back at PORT time,
      // before it answers "200 Active data connection established".
      dataSocket = this.accept(listener);
      dataSocket.catch(() => undefined);
      try {
        setup = await this.expect(`${mode} ${arg}`, (c) => c === 200);
      } catch (err) {
        listener.close();
        void dataSocket.then((s) => s.destroy(), () => undefined);
        throw err;
      }
      onSetup?.(setup, me);
    }
    // The data connection may fail while we wait for the command's reply.
    dataSocket.catch(() => undefined);
    let connected = false;
    try {
      // Passive: connect before sending the command, as curl and others do,
      // so that an unreachable endpoint shows up as such, not as a timeout.
      if (mode === 'PASV' || mode === 'EPSV') {
        await dataSocket;
        connected = true;
      }
      const first = await this.send(command, true);
      if (first.code >= 300) throw new FtpError(`${command.split(' ')[0]} failed: ${first.code} ${first.text}`, first);
      const raw = await dataSocket;
      connected = true;
      // TLS only once the server has answered: it starts its side of the
      // handshake then (pyftpdlib resets a connection whose ClientHello
      // came before the command), as Python's ftplib does it.
      const sock = await this.secureData(raw);
      const chunks = await this.readAll(sock);
      const final = first.code < 200 ? await this.read() : first;
      if (final.code >= 300) throw new FtpError(`${command.split(' ')[0]} failed: ${final.code} ${final.text}`, final);
      return { data: Buffer.concat(chunks), setup, final, ...(announced ? { announced } : {}) };
    } catch (err) {
      if (err instanceof FtpError) err.dataConnected = connected;
      throw err;
    } finally {
      listener?.close();
      void dataSocket.then((s) => s.destroy(), () => undefined);
    }
  }

  /**
   * The data connection's bytes until the server closes it. A connection that
   * stays silent for the timeout fails: a gateway or server that neither
   * sends nor closes must not hold the probe for minutes.
   */
  private readAll(sock: Socket): Promise<Buffer[]> {
    const chunks: Buffer[] = [];
    return new Promise<Buffer[]>((resolve, reject) => {
      const stalled = () => reject(new FtpError(`data connection stalled: nothing received for ${this.timeoutMs} ms and not closed`));
      let timer = setTimeout(stalled, this.timeoutMs);
      const done = (err?: Error) => {
        clearTimeout(timer);
        sock.destroy();
        if (err) reject(err);
        else resolve(chunks);
      };
      sock.on('data', (c: Buffer) => {
        chunks.push(c);
        clearTimeout(timer);
        timer = setTimeout(stalled, this.timeoutMs);
      });
      sock.once('end', () => done());
      sock.once('error', (err) => done(new FtpError(`data connection failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
      sock.once('close', () => done());
    }).finally(() => sock.destroy());
  }

  private dial(target: Endpoint): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: target.address, port: target.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new FtpError(`data connection to ${target.address}:${target.port} timed out`));
      }, this.timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(new FtpError(`data connection to ${target.address}:${target.port} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      });
    });
  }

  private accept(listener: net.Server): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new FtpError('the server did not connect back')), this.timeoutMs);
      timer.unref(); // nobody may be waiting any more when it fires
      listener.once('connection', (s) => {
        clearTimeout(timer);
        resolve(s);
      });
    });
  }

  async quit(): Promise<void> {
    try {
      await this.send('QUIT');
    } catch {
      // The server may close before answering; the session is over either way.
    }
    this.socket.destroy();
  }

  close(): void {
    this.socket.destroy();
  }
}

function simple(r: Reply): SimpleReply {
  return { code: r.code, text: replyText(r) };
}
