/**
 * Serves a folder on disk (read/write) under the same virtual paths as the
 * in-memory tree.
 *
 * Containment: virtual paths are already normalised (no `..` survives
 * paths.ts), so joining them to the root cannot climb out lexically. Symbolic
 * links could still point outside, so every operation resolves the real path
 * (or, for a file about to be created, its parent's real path) and refuses
 * anything that is not the root or below it; files are opened with
 * O_NOFOLLOW so that a link swapped in at the last component is not followed.
 * A demo server, not a hardened one: a link swapped into a parent between the
 * check and the open is not caught.
 */
import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { FileInfo } from './listing.js';
import { CHUNK_BYTES, StoreError, type FileStore } from './store.js';

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/** Opens without following a last-component link, and only a regular file. */
async function openPlainFile(real: string, flags: number): Promise<fsp.FileHandle> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(real, flags | constants.O_NOFOLLOW, 0o644);
  } catch (err) {
    throw refusal(err);
  }
  try {
    if (!(await handle.stat()).isFile()) throw new StoreError('NOT_A_FILE');
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}

/** File system errors a client can cause map to refusals; the rest stay local errors. */
function refusal(err: unknown): unknown {
  switch (errnoOf(err)) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new StoreError('NOT_FOUND');
    case 'EISDIR':
      return new StoreError('NOT_A_FILE');
    case 'EACCES':
    case 'EPERM':
    case 'ELOOP':
    case 'EEXIST':
      return new StoreError('NOT_ALLOWED');
    default:
      return err;
  }
}

export class FolderStore implements FileStore {
  private constructor(private readonly rootReal: string) {}

  static async open(root: string): Promise<FolderStore> {
    const real = await fsp.realpath(root);
    const st = await fsp.stat(real);
    if (!st.isDirectory()) throw new Error(`demo root is not a directory: ${root}`);
    return new FolderStore(real);
  }

  private contains(real: string): boolean {
    return real === this.rootReal || real.startsWith(this.rootReal + path.sep);
  }

  private lexical(virtual: string): string {
    return path.join(this.rootReal, ...virtual.split('/').filter((s) => s !== ''));
  }

  /** Real path of an existing entry, inside the root. */
  private async existing(virtual: string): Promise<string> {
    let real: string;
    try {
      real = await fsp.realpath(this.lexical(virtual));
    } catch (err) {
      throw refusal(err);
    }
    if (!this.contains(real)) throw new StoreError('NOT_ALLOWED', 'outside the served folder');
    return real;
  }

  /** Real parent + name for an entry that may not exist yet (the last component is not resolved). */
  private async leaf(virtual: string): Promise<string> {
    if (virtual === '/') throw new StoreError('NOT_A_FILE');
    const parent = await this.existing(path.posix.dirname(virtual));
    return path.join(parent, path.posix.basename(virtual));
  }

  async stat(virtual: string): Promise<FileInfo | undefined> {
    try {
      const real = await this.existing(virtual);
      const st = await fsp.stat(real);
      return {
        name: virtual === '/' ? '/' : path.posix.basename(virtual),
        kind: st.isDirectory() ? 'dir' : 'file',
        size: st.size,
        mtime: st.mtime,
      };
    } catch (err) {
      if (err instanceof StoreError && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  async list(dir: string): Promise<FileInfo[]> {
    const real = await this.existing(dir);
    let names: string[];
    try {
      names = await fsp.readdir(real);
    } catch (err) {
      throw refusal(err);
    }
    const out: FileInfo[] = [];
    for (const name of names.sort()) {
      // A name that cannot be written on one line of a listing is left out.
      if (/[\r\n]/.test(name)) continue;
      try {
        const st = await fsp.stat(path.join(real, name));
        out.push({ name, kind: st.isDirectory() ? 'dir' : 'file', size: st.size, mtime: st.mtime });
      } catch {
        // dangling link or removed meanwhile: not listed
      }
    }
    return out;
  }

  async openRead(virtual: string, offset: number): Promise<Readable> {
    const handle = await openPlainFile(await this.existing(virtual), constants.O_RDONLY);
    return handle.createReadStream({ start: offset, highWaterMark: CHUNK_BYTES });
  }

  async openWrite(virtual: string, append: boolean): Promise<Writable> {
    const flags = constants.O_WRONLY | constants.O_CREAT | (append ? constants.O_APPEND : constants.O_TRUNC);
    const handle = await openPlainFile(await this.leaf(virtual), flags);
    return handle.createWriteStream();
  }

  async remove(virtual: string): Promise<void> {
    const real = await this.leaf(virtual);
    try {
      if ((await fsp.lstat(real)).isDirectory()) throw new StoreError('NOT_A_FILE');
      await fsp.unlink(real);
    } catch (err) {
      throw err instanceof StoreError ? err : refusal(err);
    }
  }

  async makeDir(virtual: string): Promise<void> {
    const real = await this.leaf(virtual);
    try {
      await fsp.mkdir(real, 0o755);
    } catch (err) {
      throw refusal(err);
    }
  }

  async removeDir(virtual: string): Promise<void> {
    if (virtual === '/') throw new StoreError('NOT_ALLOWED');
    const real = await this.leaf(virtual);
    try {
      await fsp.rmdir(real);
    } catch (err) {
      // ENOTEMPTY, and ENOTDIR for a file or a link: refusals like the rest.
      const code = errnoOf(err);
      throw code === 'ENOTEMPTY' || code === 'ENOTDIR' ? new StoreError('NOT_ALLOWED') : refusal(err);
    }
  }
}
