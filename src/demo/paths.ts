/**
 * Client path names → normalised absolute paths in the server's virtual tree.
 * Pure: both the in-memory tree and the folder store see only these paths,
 * so `..` can never climb above `/` whatever the store does underneath.
 */
import { posix } from 'node:path';

/**
 * Resolves `arg` against `cwd` (itself normalised). `..` above the root stays
 * at the root, the way a chrooted server behaves. Returns undefined for names
 * containing NUL, CR or LF: no file system accepts the first, and the others
 * could not be written back in a reply line or a LIST entry.
 */
export function resolveVirtualPath(cwd: string, arg: string): string | undefined {
  if (/[\0\r\n]/.test(arg)) return undefined;
  const joined = arg.startsWith('/') ? arg : posix.join(cwd, arg);
  const normalised = posix.normalize(joined.startsWith('/') ? joined : `/${joined}`);
  return normalised.length > 1 && normalised.endsWith('/') ? normalised.slice(0, -1) : normalised;
}

/** The parent directories of a normalised path, nearest first ('/a/b/c' → '/a/b', '/a', '/'). */
export function ancestorsOf(path: string): string[] {
  const out: string[] = [];
  for (let p = posix.dirname(path); ; p = posix.dirname(p)) {
    if (p === path) break;
    out.push(p);
    if (p === '/') break;
  }
  return out;
}

export function baseName(path: string): string {
  return posix.basename(path);
}
