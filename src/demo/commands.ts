/**
 * One handler per FTP command (RFC 959, RFC 2428 for EPSV/EPRT, RFC 3659
 * for SIZE/MDTM/REST STREAM), and the dispatcher that picks one. Handlers
 * reply through the session context and never touch the control socket.
 */
import { parseCommand } from '../protocol/command.js';
import { format227Reply, format229Reply, parseEprtArg, parsePortArg } from '../protocol/endpoint.js';
import { sameAddress, type Endpoint } from '../protocol/address.js';
import type { SessionContext } from './context.js';
import { ActiveConnector, PassiveListener } from './data-channel.js';
import { formatListing, formatListLine, formatMdtm, type FileInfo } from './listing.js';
import { baseName, resolveVirtualPath } from './paths.js';
import { StoreError } from './store.js';
import { runTransfer, type TransferPlan } from './transfer.js';
import { Readable } from 'node:stream';

type Handler = (ctx: SessionContext, arg: string) => void | Promise<void>;

interface CommandSpec {
  run: Handler;
  /** RFC 959 lets a few commands through before login; everything else gets 530. */
  beforeLogin?: boolean;
}

const ANONYMOUS = new Set(['anonymous', 'ftp']);

const FEATURES = ['EPRT', 'EPSV', 'MDTM', 'PASV', 'REST STREAM', 'SIZE', 'UTF8'];

/** Resolves a path argument, replying 501 when there is none or it cannot be a name. */
function pathArg(ctx: SessionContext, arg: string, required = true): string | undefined {
  if (required && arg === '') {
    ctx.reply(501, 'Syntax error in parameters or arguments.');
    return undefined;
  }
  const path = resolveVirtualPath(ctx.state.cwd, arg);
  if (path === undefined) ctx.reply(501, 'Invalid file name.');
  return path;
}

function isRefusal(err: unknown): err is StoreError {
  return err instanceof StoreError;
}

// ---- access -----------------------------------------------------------------

function user(ctx: SessionContext, arg: string): void {
  if (arg === '') return ctx.reply(501, 'Syntax error in parameters or arguments.');
  ctx.state.user = arg;
  ctx.state.loggedIn = false;
  if (ANONYMOUS.has(arg.toLowerCase())) ctx.reply(331, 'Anonymous login ok, send your e-mail address as password.');
  else ctx.reply(331, 'Please specify the password.');
}

function pass(ctx: SessionContext, arg: string): void {
  const { state, settings } = ctx;
  if (state.loggedIn) return ctx.reply(230, 'Already logged in.');
  const name = state.user;
  if (name === undefined) return ctx.reply(503, 'Login with USER first.');
  const ok = ANONYMOUS.has(name.toLowerCase()) || (Object.hasOwn(settings.users, name) && settings.users[name] === arg);
  if (!ok) {
    state.user = undefined;
    return ctx.reply(530, 'Login incorrect.');
  }
  state.loggedIn = true;
  ctx.reply(230, 'Login successful.');
}

function quit(ctx: SessionContext): void {
  ctx.reply(221, 'Goodbye.');
  ctx.quit();
}

// ---- information --------------------------------------------------------------

function feat(ctx: SessionContext): void {
  ctx.replyLines(211, ['Features:', ...FEATURES.map((f) => ` ${f}`), 'End']);
}

function opts(ctx: SessionContext, arg: string): void {
  const a = arg.trim().toUpperCase().replace(/\s+/g, ' ');
  if (a === 'UTF8 ON' || a === 'UTF8' || a === 'UTF-8 ON') return ctx.reply(200, 'Always in UTF8 mode.');
  if (a === '') return ctx.reply(501, 'Syntax error in parameters or arguments.');
  ctx.reply(501, 'Option not understood.');
}

function quotePath(path: string): string {
  // RFC 959 Appendix II: a quote inside the name is doubled.
  return `"${path.replace(/"/g, '""')}"`;
}

function pwd(ctx: SessionContext): void {
  ctx.reply(257, `${quotePath(ctx.state.cwd)} is the current directory.`);
}

async function cwd(ctx: SessionContext, arg: string): Promise<void> {
  const path = pathArg(ctx, arg);
  if (path === undefined) return;
  const info = await ctx.settings.store.stat(path).catch((err: unknown) => (isRefusal(err) ? undefined : Promise.reject(err)));
  if (info?.kind !== 'dir') return ctx.reply(550, 'Failed to change directory.');
  ctx.state.cwd = path;
  ctx.reply(250, 'Directory successfully changed.');
}

/** The file's info; null when it is not a file; undefined when the argument was refused (already answered). */
async function statFile(ctx: SessionContext, arg: string): Promise<FileInfo | null | undefined> {
  const path = pathArg(ctx, arg);
  if (path === undefined) return undefined;
  const info = await ctx.settings.store.stat(path).catch((err: unknown) => (isRefusal(err) ? undefined : Promise.reject(err)));
  return info?.kind === 'file' ? info : null;
}

async function size(ctx: SessionContext, arg: string): Promise<void> {
  const info = await statFile(ctx, arg);
  if (info === null) ctx.reply(550, 'Could not get file size.');
  else if (info) ctx.reply(213, String(info.size));
}

async function mdtm(ctx: SessionContext, arg: string): Promise<void> {
  const info = await statFile(ctx, arg);
  if (info === null) ctx.reply(550, 'Could not get file modification time.');
  else if (info) ctx.reply(213, formatMdtm(info.mtime));
}

// ---- transfer parameters ---------------------------------------------------------

function type(ctx: SessionContext, arg: string): void {
  const a = arg.trim().toUpperCase().replace(/\s+/g, ' ');
  if (a === 'I' || a === 'L 8') {
    ctx.state.type = 'I';
    ctx.reply(200, 'Switching to Binary mode.');
  } else if (a === 'A' || a === 'A N') {
    ctx.state.type = 'A';
    ctx.reply(200, 'Switching to ASCII mode.');
  } else if (a === '') {
    ctx.reply(501, 'Syntax error in parameters or arguments.');
  } else {
    ctx.reply(504, 'Unsupported TYPE.');
  }
}

function onlyValue(value: string, ok: string, bad: string): Handler {
  return (ctx, arg) => {
    const a = arg.trim().toUpperCase();
    if (a === value) ctx.reply(200, ok);
    else if (a === '') ctx.reply(501, 'Syntax error in parameters or arguments.');
    else ctx.reply(504, bad);
  };
}

function rest(ctx: SessionContext, arg: string): void {
  const a = arg.trim();
  const n = Number(a);
  if (!/^\d+$/.test(a) || !Number.isSafeInteger(n)) return ctx.reply(501, 'REST requires a byte offset.');
  ctx.state.restOffset = n;
  ctx.reply(350, `Restart position accepted (${n}).`);
}

// ---- data connection set-up ----------------------------------------------------------

async function openPassive(ctx: SessionContext): Promise<PassiveListener | undefined> {
  try {
    // Same address as the control connection: a multi-homed host answers on
    // the interface the client reached. With strict, only the control peer
    // may connect (vsftpd's pasv_promiscuous=NO).
    const listener = await PassiveListener.open(ctx.local.address, ctx.settings.strict ? ctx.peer : undefined);
    ctx.setDataConnection(listener);
    return listener;
  } catch {
    ctx.setDataConnection(undefined);
    ctx.reply(425, 'Could not open passive port.');
    return undefined;
  }
}

async function pasv(ctx: SessionContext): Promise<void> {
  if (ctx.state.epsvAll) return ctx.reply(503, 'PASV not allowed after EPSV ALL.');
  // 227 carries four IPv4 bytes; an IPv6 client must use EPSV (RFC 2428).
  if (ctx.local.family !== 4) return ctx.reply(500, 'PASV not supported on IPv6, use EPSV.');
  const listener = await openPassive(ctx);
  if (!listener) return;
  const announced = ctx.settings.announce ?? ctx.local;
  ctx.sendLine(format227Reply({ family: 4, address: announced.address, port: listener.port }));
}

async function epsv(ctx: SessionContext, arg: string): Promise<void> {
  const a = arg.trim().toUpperCase();
  if (a === 'ALL') {
    ctx.state.epsvAll = true;
    return ctx.reply(200, 'EPSV ALL ok.');
  }
  const own = ctx.local.family === 4 ? '1' : '2';
  if (a !== '' && a !== own) {
    // RFC 2428 §3: 522 names the protocols this connection can do.
    if (a === '1' || a === '2') return ctx.reply(522, `Network protocol not supported, use (${own}).`);
    return ctx.reply(501, 'Syntax error in parameters or arguments.');
  }
  const listener = await openPassive(ctx);
  if (listener) ctx.sendLine(format229Reply(listener.port));
}

async function setActive(ctx: SessionContext, verb: string, target: Endpoint): Promise<void> {
  // Anti-bounce (RFC 2577 §3): with strict, data connections go to the
  // client's own address only; vsftpd's wording, since clients know it.
  if (ctx.settings.strict && !sameAddress(target, ctx.peer)) {
    ctx.setDataConnection(undefined);
    return ctx.reply(500, 'Illegal PORT command.');
  }
  const connector = new ActiveConnector(target, ctx.local);
  ctx.setDataConnection(connector);
  if (!ctx.settings.connectAtPort) return ctx.reply(200, `${verb} command successful. Consider using PASV.`);
  // pyftpdlib's behaviour and words: the connection is made before the transfer command.
  try {
    await connector.dialNow(ctx.settings.dataTimeoutMs, new AbortController().signal);
    ctx.reply(200, 'Active data connection established.');
  } catch {
    ctx.setDataConnection(undefined);
    ctx.reply(425, "Can't connect to specified address.");
  }
}

function port(ctx: SessionContext, arg: string): void | Promise<void> {
  if (ctx.state.epsvAll) return ctx.reply(503, 'PORT not allowed after EPSV ALL.');
  const target = parsePortArg(arg);
  if (!target) return ctx.reply(501, 'Syntax error in PORT arguments.');
  return setActive(ctx, 'PORT', target);
}

function eprt(ctx: SessionContext, arg: string): void | Promise<void> {
  if (ctx.state.epsvAll) return ctx.reply(503, 'EPRT not allowed after EPSV ALL.');
  const target = parseEprtArg(arg);
  if (!target) {
    const t = arg.trim();
    const af = t.length > 0 ? t.split(t[0]!)[1] : undefined;
    // RFC 2428 §2: an unknown protocol gets 522 with the ones we know.
    if (af !== undefined && af !== '1' && af !== '2' && /^\d+$/.test(af)) return ctx.reply(522, 'Network protocol not supported, use (1,2).');
    return ctx.reply(501, 'Syntax error in EPRT arguments.');
  }
  return setActive(ctx, 'EPRT', target);
}

// ---- transfers -------------------------------------------------------------------

function takeRest(ctx: SessionContext): number {
  const n = ctx.state.restOffset;
  ctx.state.restOffset = 0;
  return n;
}

function retr(ctx: SessionContext, arg: string): Promise<void> {
  const offset = takeRest(ctx);
  return runTransfer(ctx, async (): Promise<TransferPlan | undefined> => {
    const path = pathArg(ctx, arg);
    if (path === undefined) return undefined;
    const { store } = ctx.settings;
    try {
      const info = await store.stat(path);
      if (info?.kind !== 'file') return void ctx.reply(550, 'Failed to open file.');
      if (offset > info.size) return void ctx.reply(554, 'Invalid REST parameter.');
      const source = await store.openRead(path, offset);
      const mode = ctx.state.type === 'I' ? 'BINARY' : 'ASCII';
      return {
        direction: 'send',
        opening: `Opening ${mode} mode data connection for ${baseName(path)} (${info.size - offset} bytes).`,
        done: 'Transfer complete.',
        source,
      };
    } catch (err) {
      if (isRefusal(err)) return void ctx.reply(550, 'Failed to open file.');
      throw err;
    }
  });
}

function store(append: boolean): Handler {
  return (ctx, arg) => {
    const offset = takeRest(ctx);
    return runTransfer(ctx, async (): Promise<TransferPlan | undefined> => {
      const path = pathArg(ctx, arg);
      if (path === undefined) return undefined;
      // Resumed uploads go through APPE (what curl and lftp send).
      if (offset > 0 && !append) return void ctx.reply(554, 'REST with STOR is not supported, use APPE.');
      try {
        const sink = await ctx.settings.store.openWrite(path, append);
        return { direction: 'receive', opening: 'Ok to send data.', done: 'Transfer complete.', sink };
      } catch (err) {
        if (isRefusal(err)) return void ctx.reply(553, 'Could not create file.');
        throw err;
      }
    });
  };
}

/** `LIST -la dir`: clients pass ls options; they are accepted and ignored. */
function listTarget(arg: string): string {
  return arg.replace(/^\s*(?:-[A-Za-z0-9]+\s*)+/, '').trim();
}

function listing(namesOnly: boolean): Handler {
  return (ctx, arg) => {
    takeRest(ctx);
    return runTransfer(ctx, async (): Promise<TransferPlan | undefined> => {
      const path = pathArg(ctx, listTarget(arg), false);
      if (path === undefined) return undefined;
      const { store } = ctx.settings;
      try {
        const info = await store.stat(path);
        if (!info) return void ctx.reply(550, 'No such file or directory.');
        const entries = info.kind === 'dir' ? await store.list(path) : [info];
        const now = new Date();
        const lines = entries.map((e) => (namesOnly ? e.name : formatListLine(e, now)));
        return {
          direction: 'send',
          opening: 'Here comes the directory listing.',
          done: 'Directory send OK.',
          source: Readable.from([formatListing(lines)], { objectMode: false }),
        };
      } catch (err) {
        if (isRefusal(err)) return void ctx.reply(550, 'No such file or directory.');
        throw err;
      }
    });
  };
}

async function dele(ctx: SessionContext, arg: string): Promise<void> {
  const path = pathArg(ctx, arg);
  if (path === undefined) return;
  try {
    await ctx.settings.store.remove(path);
    ctx.reply(250, 'Delete operation successful.');
  } catch (err) {
    if (isRefusal(err)) return ctx.reply(550, 'Delete operation failed.');
    throw err;
  }
}

async function mkd(ctx: SessionContext, arg: string): Promise<void> {
  const path = pathArg(ctx, arg);
  if (path === undefined) return;
  try {
    await ctx.settings.store.makeDir(path);
    ctx.reply(257, `${quotePath(path)} created.`);
  } catch (err) {
    if (isRefusal(err)) return ctx.reply(550, 'Create directory operation failed.');
    throw err;
  }
}

async function rmd(ctx: SessionContext, arg: string): Promise<void> {
  const path = pathArg(ctx, arg);
  if (path === undefined) return;
  try {
    await ctx.settings.store.removeDir(path);
    ctx.reply(250, 'Remove directory operation successful.');
  } catch (err) {
    if (isRefusal(err)) return ctx.reply(550, 'Remove directory operation failed.');
    throw err;
  }
}

function abor(ctx: SessionContext): void {
  // Reached in order only: an ABOR that interrupts a transfer is moved to the
  // front of the queue by the session, after the transfer has replied 426.
  if (ctx.state.abortedTransfer) {
    ctx.state.abortedTransfer = false;
    return ctx.reply(226, 'ABOR successful.');
  }
  ctx.setDataConnection(undefined);
  ctx.reply(225, 'No transfer to ABOR.');
}

// ---- dispatch ----------------------------------------------------------------------

const cwdTo =
  (target: string): Handler =>
  (ctx) =>
    cwd(ctx, target);

export const COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
  ['USER', { run: user, beforeLogin: true }],
  ['PASS', { run: pass, beforeLogin: true }],
  ['QUIT', { run: quit, beforeLogin: true }],
  ['FEAT', { run: feat, beforeLogin: true }],
  ['SYST', { run: (ctx) => ctx.reply(215, 'UNIX Type: L8'), beforeLogin: true }],
  ['OPTS', { run: opts }],
  ['NOOP', { run: (ctx) => ctx.reply(200, 'NOOP ok.') }],
  ['PWD', { run: pwd }],
  ['XPWD', { run: pwd }],
  ['CWD', { run: cwd }],
  ['XCWD', { run: cwd }],
  ['CDUP', { run: cwdTo('..') }],
  ['XCUP', { run: cwdTo('..') }],
  ['TYPE', { run: type }],
  ['MODE', { run: onlyValue('S', 'Mode set to S.', 'Bad MODE command.') }],
  ['STRU', { run: onlyValue('F', 'Structure set to F.', 'Bad STRU command.') }],
  ['SIZE', { run: size }],
  ['MDTM', { run: mdtm }],
  ['REST', { run: rest }],
  ['PASV', { run: pasv }],
  ['EPSV', { run: epsv }],
  ['PORT', { run: port }],
  ['EPRT', { run: eprt }],
  ['RETR', { run: retr }],
  ['STOR', { run: store(false) }],
  ['APPE', { run: store(true) }],
  ['LIST', { run: listing(false) }],
  ['NLST', { run: listing(true) }],
  ['DELE', { run: dele }],
  ['MKD', { run: mkd }],
  ['XMKD', { run: mkd }],
  ['RMD', { run: rmd }],
  ['XRMD', { run: rmd }],
  ['ABOR', { run: abor }],
]);

/** Runs one command line (already decoded to text). Never rejects. */
export async function dispatch(ctx: SessionContext, text: string): Promise<void> {
  const { verb, arg } = parseCommand(text);
  try {
    if (verb === '') return ctx.reply(500, 'Syntax error, command unrecognized.');
    const spec = COMMANDS.get(verb);
    // The verb is not echoed: it comes from the peer and may hold anything.
    if (!spec) return ctx.reply(502, 'Command not implemented.');
    if (!spec.beforeLogin && !ctx.state.loggedIn) return ctx.reply(530, 'Please login with USER and PASS.');
    await spec.run(ctx, arg);
  } catch {
    ctx.reply(451, 'Local error in processing.');
  }
}
