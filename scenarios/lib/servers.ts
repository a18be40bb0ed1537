/**
 * The FTP servers a scenario can run in its server namespace: vsftpd (its
 * default strict configuration, anonymous read-only), pyftpdlib (anonymous
 * read-write, `-w`) and the project's built-in server (read-write folder).
 * Each serves a root folder holding hard links to the run's generated files
 * and logs every command and reply where the server can.
 */
import { linkSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Lab, Proc } from './lab.js';
import { vsftpdConfigText } from './vsftpd-config.js';
import { vsftpdTlsSettings } from './ftps-lab.js';
import type { ServerKind } from './spec.js';

export const SYSTEM_PYTHON = '/usr/bin/python3';

export interface RunningServer {
  kind: ServerKind;
  root: string;
  /** Files to read for reasons and failing-case tails. */
  logPaths: string[];
  proc: Proc;
}

export interface ServerPlace {
  ns: string;
  address: string;
  port: number;
}

function vsftpdConfig(dir: string, place: ServerPlace, root: string, logPath: string, extra?: Record<string, string>): string {
  const emptyDir = join(dir, 'empty');
  mkdirSync(emptyDir, { recursive: true, mode: 0o755 });
  return vsftpdConfigText({ address: place.address, port: place.port, root, emptyDir, logPath }, extra);
}

/** The built-in server against dist/, as a tiny node script in the server namespace. */
const BUILTIN_SCRIPT = `
const [url, host, port, root] = process.argv.slice(1);
import(url).then(async (m) => {
  const s = await m.startDemoServer({ host, port: Number(port), root });
  console.log('built-in FTP server listening on ' + s.address.host + ':' + s.address.port + ', root ' + root);
}).catch((err) => { console.error(err); process.exit(1); });
`;

/**
 * Starts `kind` on place, serving a fresh root under dir with hard links to
 * files (name → path). Resolves once `ss` shows the listener.
 */
export async function startServer(lab: Lab, kind: ServerKind, place: ServerPlace, dir: string, files: Record<string, string>, repoRoot: string, tlsDir?: string): Promise<RunningServer> {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const root = join(dir, 'root');
  mkdirSync(root, { mode: 0o755 });
  // Hard links: no copy of a 256 MiB file per server; the same filesystem as the run folder.
  for (const [name, path] of Object.entries(files)) linkSync(path, join(root, name));
  const out = join(dir, `${kind}.out`);
  let proc: Proc;
  const logPaths = [out];
  switch (kind) {
    case 'vsftpd':
    case 'vsftpd-tls': {
      const log = join(dir, 'vsftpd.log');
      writeFileSync(log, '');
      const conf = join(dir, 'vsftpd.conf');
      if (kind === 'vsftpd-tls' && !tlsDir) throw new Error('vsftpd-tls needs the scenario\'s certificates');
      writeFileSync(conf, vsftpdConfig(dir, place, root, log, kind === 'vsftpd-tls' && tlsDir ? vsftpdTlsSettings(tlsDir) : undefined), { mode: 0o600 });
      logPaths.unshift(log);
      proc = lab.spawn(place.ns, '/usr/sbin/vsftpd', [conf], out);
      break;
    }
    case 'pyftpdlib':
      // -D logs every command and reply; -w grants anonymous write (uploads).
      proc = lab.spawn(place.ns, SYSTEM_PYTHON, ['-m', 'pyftpdlib', '-i', place.address, '-p', String(place.port), '-d', root, '-w', '-D'], out);
      break;
    case 'builtin': {
      const url = pathToFileURL(join(repoRoot, 'dist/demo/server.js')).href;
      proc = lab.spawn(place.ns, process.execPath, ['-e', BUILTIN_SCRIPT, url, place.address, String(place.port), root], out);
      break;
    }
  }
  await lab.waitListening(place.ns, place.port, kind, proc);
  return { kind, root, logPaths, proc };
}

export function readLog(path: string, from = 0): string {
  try {
    return readFileSync(path).subarray(from).toString('utf8');
  } catch {
    return '';
  }
}
