/**
 * What each client does in a cell of the interop matrix, and how the result
 * is checked (byte-exact, against the files on disk). Plain downloads and
 * uploads reuse the scenario runner's command lines (scenarios/lib/clients.ts,
 * traces on); the operations it lacks are here: lftp mirror both ways, pget,
 * get -c, an aborted `cat`, wget -m, and ftplib's MLSD, APPE, REST+RETR,
 * TYPE A and abort().
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join, relative } from 'node:path';
import { clientCommand, LFTP_BOUNDED, lftpQuote, type ClientCommand } from '../../scenarios/lib/clients.js';
import { sha256File } from '../../scenarios/lib/files.js';
import type { ClientName, TargetSpec, Transfer } from '../../scenarios/lib/spec.js';
import { SYSTEM_PYTHON } from '../helpers/tools.js';

export type Family = 4 | 6;

/** The files every server serves, under pub/; sizes kept small (the matrix is about protocol, not throughput). */
export const SIZES: Record<string, number> = { 'z0.bin': 0, 'o1.bin': 1, 'k300.bin': 300 << 10 };
/** pub/tree/ (mirrored down) and the local source tree mirrored up: one empty file, one byte, 300 KiB in a subfolder. */
export const TREE: Record<string, string> = { 'z.bin': 'z0.bin', 'a.bin': 'o1.bin', 'sub/b.bin': 'k300.bin' };
export const TEXT = 'line one\nline two\n\nlast line\n';
/**
 * Aborted transfers need one still running when the client gives up: more
 * than loopback socket buffers hold, so that the server is mid-RETR.
 */
export const LARGE = { name: 'm8.bin', size: 8 << 20 };

export interface CellRun {
  /** This run's own folder: HOME, working folder, downloads, logs. */
  dir: string;
  target: TargetSpec;
  family: Family;
  /** The client's own address (curl -P). */
  clientAddress: string;
  /** Where uploads go on the server, relative to its root (exists, writable by anonymous). */
  uploadDir: string;
  /** The server's root on disk (to check uploads). */
  root: string;
  /** The test files on disk (pub/ of the root). */
  pub: string;
  /** A local copy of TREE, the source of mirror -R. */
  localTree: string;
  timeoutS: number;
}

export type Step = ClientCommand;

export interface Op {
  name: string;
  client: ClientName | 'wget';
  families: Family[];
  /** Urgent-data ABOR is what this operation exercises: its trace must show ABOR. */
  aborts?: boolean;
  prepare?(r: CellRun): void;
  steps(r: CellRun): Step[];
  /** undefined when the result is byte-exact, else what differs. */
  check(r: CellRun): Promise<string | undefined>;
}

async function differs(got: string, want: string, what: string): Promise<string | undefined> {
  if (!existsSync(got)) return `${what}: no file ${got}`;
  const [a, b] = await Promise.all([sha256File(got), sha256File(want)]);
  return a === b ? undefined : `${what}: content differs (${statSync(got).size} bytes, want ${statSync(want).size})`;
}

async function firstDifference(pairs: Array<[string, string, string]>): Promise<string | undefined> {
  for (const [got, want, what] of pairs) {
    const d = await differs(got, want, what);
    if (d) return d;
  }
  return undefined;
}

/** Regular files under dir, relative, except wget's .listing files. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name !== '.listing')
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

async function sameTree(got: string, r: CellRun): Promise<string | undefined> {
  const want = Object.keys(TREE).sort();
  const have = filesUnder(got);
  if (have.join() !== want.join()) return `tree: got [${have.join(', ')}], want [${want.join(', ')}]`;
  return firstDifference(want.map((f) => [join(got, f), join(r.pub, TREE[f]!), f]));
}

/** Plain get or put of every test file, one client process per file (scenarios/lib/clients.ts). */
function plain(client: ClientName, mode: string, transfer: Transfer, families: Family[]): Op {
  const names = Object.keys(SIZES);
  return {
    name: `${client} ${mode} ${transfer}`,
    client,
    families,
    steps: (r) =>
      names.map((n) =>
        clientCommand({
          client,
          mode,
          transfer,
          target: r.target,
          remote: transfer === 'get' ? `pub/${n}` : `${r.uploadDir}/${n}`,
          local: transfer === 'get' ? join(r.dir, n) : join(r.pub, n),
          clientAddress: r.clientAddress,
          timeoutS: r.timeoutS,
        }),
      ),
    check: (r) => firstDifference(names.map((n) => [transfer === 'get' ? join(r.dir, n) : join(r.root, r.uploadDir, n), join(r.pub, n), n])),
  };
}

const url = (t: TargetSpec, path = '') => `ftp://${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}/${path}`;

/** lftp with its trace on, bounded retries and timeouts, stopping at the first failed command. */
function lftp(r: CellRun, commands: string[]): Step {
  const script = [
    ...LFTP_BOUNDED,
    'set cmd:fail-exit yes',
    // Passive stays passive: lftp would otherwise switch to active after a
    // slow ABOR reply and hide (or add) a failure.
    'set ftp:auto-passive-mode no',
    `open -u ${lftpQuote(`${r.target.user},${r.target.password}`)} ${url(r.target)}`,
    ...commands,
  ].join('; ');
  return { cmd: 'lftp', args: ['-d', '-c', script], exitCodeMeaningful: true };
}

const FTPLIB_OPS = `
import ftplib, json, sys
host, port, user, pw, op, updir, local, out, timeout, large = sys.argv[1:11]
f = ftplib.FTP(timeout=float(timeout))
f.set_debuglevel(2)
f.connect(host, int(port))
f.login(user, pw)
if op == 'mlsd':
    entries = {n: {'type': fa.get('type'), 'size': fa.get('size')} for n, fa in f.mlsd('pub/tree', ['type', 'size'])}
    with open(out, 'w') as o:
        json.dump(entries, o)
elif op == 'appe':
    data = open(local, 'rb').read()
    half = len(data) // 3
    f.storbinary('STOR ' + updir + '/appe.bin', __import__('io').BytesIO(data[:half]))
    f.storbinary('APPE ' + updir + '/appe.bin', __import__('io').BytesIO(data[half:]))
elif op == 'rest':
    with open(out, 'wb') as o:
        f.retrbinary('RETR pub/k300.bin', o.write, rest=1000)
elif op == 'type-a':
    lines = []
    print(f.sendcmd('TYPE A'))
    f.retrlines('RETR pub/text.txt', lines.append)
    with open(out, 'w') as o:
        o.write('\\n'.join(lines) + '\\n')
elif op == 'abort':
    f.voidcmd('TYPE I')
    conn = f.transfercmd('RETR pub/' + large)
    conn.recv(4096)
    # Closed first, as clients do: the server's blocked write fails at once (426).
    conn.close()
    try:
        print('abort() returned', f.abort())
    except ftplib.all_errors as e:
        print('abort() raised', repr(e))
    # The aborted RETR may still owe a reply: read until NOOP's own 200.
    f.putcmd('NOOP')
    for _ in range(4):
        line = f.getmultiline()
        print('after ABOR:', line)
        if line.startswith('200'):
            break
    else:
        sys.exit('no 200 for NOOP after ABOR')
    with open(out, 'wb') as o:
        f.retrbinary('RETR pub/k300.bin', o.write)
f.quit()
`;

function ftplibOp(op: string, check: (r: CellRun, out: string) => Promise<string | undefined>): Op {
  return {
    name: `ftplib ${op}`,
    client: 'ftplib',
    families: [4, 6],
    ...(op === 'abort' ? { aborts: true } : {}),
    steps: (r) => [
      {
        cmd: SYSTEM_PYTHON,
        args: ['-u', '-c', FTPLIB_OPS, r.target.host, String(r.target.port), r.target.user, r.target.password, op, r.uploadDir, join(r.pub, 'k300.bin'), join(r.dir, 'out'), String(Math.min(r.timeoutS, op === 'abort' ? 3 : 5)), LARGE.name],
        exitCodeMeaningful: true,
      },
    ],
    check: (r) => check(r, join(r.dir, 'out')),
  };
}

/** Writes the first `bytes` of src to dst: a partial download for get -c. */
function writePrefix(src: string, dst: string, bytes: number): void {
  const fd = openSync(dst, 'w', 0o644);
  try {
    writeSync(fd, readFileSync(src).subarray(0, bytes));
  } finally {
    closeSync(fd);
  }
}

const BOTH: Family[] = [4, 6];

export const OPS: Op[] = [
  plain('curl', 'pasv', 'get', [4]),
  plain('curl', 'epsv', 'get', BOTH),
  plain('curl', 'port', 'get', [4]),
  plain('curl', 'eprt', 'get', BOTH),
  plain('curl', 'epsv', 'put', BOTH),
  plain('lftp', 'default', 'get', BOTH),
  plain('lftp', 'active', 'get', BOTH),
  plain('lftp', 'default', 'put', BOTH),
  {
    name: 'lftp mirror',
    client: 'lftp',
    families: BOTH,
    steps: (r) => [lftp(r, [`mirror pub/tree ${lftpQuote(join(r.dir, 'tree'))}`])],
    check: (r) => sameTree(join(r.dir, 'tree'), r),
  },
  {
    name: 'lftp mirror -R',
    client: 'lftp',
    families: BOTH,
    steps: (r) => [lftp(r, [`mirror -R --no-perms ${lftpQuote(r.localTree)} ${lftpQuote(`${r.uploadDir}/tree`)}`])],
    check: (r) => sameTree(join(r.root, r.uploadDir, 'tree'), r),
  },
  {
    // Three connections with REST, each stopped at the end of its range (by
    // ABOR or by closing, as lftp sees fit: not asserted). The rate limit keeps
    // all three running (unlimited, the first one may fetch the whole file on
    // loopback before the others start).
    name: 'lftp pget',
    client: 'lftp',
    families: BOTH,
    steps: (r) => [lftp(r, ['set net:limit-rate 4M', `pget -n 3 pub/${LARGE.name} -o ${lftpQuote(join(r.dir, LARGE.name))}`])],
    check: (r) => differs(join(r.dir, LARGE.name), join(r.pub, LARGE.name), LARGE.name),
  },
  {
    name: 'lftp get -c',
    client: 'lftp',
    families: BOTH,
    prepare: (r) => writePrefix(join(r.pub, 'k300.bin'), join(r.dir, 'k300.bin'), 100 << 10),
    steps: (r) => [lftp(r, [`get -c pub/k300.bin -o ${lftpQuote(join(r.dir, 'k300.bin'))}`])],
    check: (r) => differs(join(r.dir, 'k300.bin'), join(r.pub, 'k300.bin'), 'k300.bin resumed'),
  },
  {
    // `cat | head`: head exits, lftp aborts the RETR, then the session must still work.
    name: 'lftp cat|head',
    client: 'lftp',
    families: BOTH,
    aborts: true,
    steps: (r) => [lftp(r, [`cat pub/${LARGE.name} | head -c 1000 > /dev/null`, `get pub/o1.bin -o ${lftpQuote(join(r.dir, 'o1.bin'))}`])],
    check: (r) => differs(join(r.dir, 'o1.bin'), join(r.pub, 'o1.bin'), 'o1.bin after the abort'),
  },
  plain('tnftp', 'passive', 'get', BOTH),
  plain('tnftp', 'active', 'get', BOTH),
  plain('tnftp', 'passive', 'put', BOTH),
  // ncftp 3.2.6 has no IPv6.
  plain('ncftp', 'passive', 'get', [4]),
  plain('ncftp', 'active', 'get', [4]),
  plain('ncftp', 'passive', 'put', [4]),
  {
    name: 'wget -m',
    client: 'wget',
    families: BOTH,
    steps: (r) => [
      {
        cmd: 'wget',
        args: ['-d', '-m', '-nH', '--cut-dirs=2', '-P', join(r.dir, 'tree'), '--tries=1', `--timeout=${Math.min(r.timeoutS, 8)}`, `--ftp-user=${r.target.user}`, `--ftp-password=${r.target.password}`, url(r.target, 'pub/tree/')],
        exitCodeMeaningful: true,
      },
    ],
    check: (r) => sameTree(join(r.dir, 'tree'), r),
  },
  plain('ftplib', 'passive', 'get', BOTH),
  plain('ftplib', 'pasv-strict', 'get', [4]),
  plain('ftplib', 'active', 'get', BOTH),
  plain('ftplib', 'passive', 'put', BOTH),
  ftplibOp('mlsd', async (_r, out) => {
    if (!existsSync(out)) return 'no MLSD result';
    const e = JSON.parse(readFileSync(out, 'utf8')) as Record<string, { type?: string; size?: string }>;
    const got = Object.entries(e)
      .filter(([, f]) => f.type === 'file' || f.type === 'dir')
      .map(([n, f]) => `${n}:${f.type}:${f.type === 'file' ? f.size : ''}`)
      .sort()
      .join(' ');
    const want = 'a.bin:file:1 sub:dir: z.bin:file:0';
    return got === want ? undefined : `MLSD pub/tree: got ${got}, want ${want}`;
  }),
  ftplibOp('appe', (r) => differs(join(r.root, r.uploadDir, 'appe.bin'), join(r.pub, 'k300.bin'), 'STOR + APPE')),
  ftplibOp('rest', async (r, out) => {
    if (!existsSync(out)) return 'no file';
    return readFileSync(out).equals(readFileSync(join(r.pub, 'k300.bin')).subarray(1000)) ? undefined : `REST 1000 + RETR: ${statSync(out).size} bytes, not the file's tail`;
  }),
  ftplibOp('type-a', async (_r, out) => {
    if (!existsSync(out)) return 'no file';
    const got = readFileSync(out, 'utf8');
    return got === TEXT ? undefined : `TYPE A lines differ: ${JSON.stringify(got)}`;
  }),
  ftplibOp('abort', (r, out) => differs(out, join(r.pub, 'k300.bin'), 'RETR after ABOR')),
];
