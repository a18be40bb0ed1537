/**
 * What the FTP commands need from a file tree, and the in-memory tree the
 * demo serves by default. The folder-backed store is in folder-store.ts.
 *
 * Paths are normalised virtual paths (see paths.ts): absolute, no `.`/`..`,
 * no trailing slash except the root itself.
 */
import { Readable, Writable } from 'node:stream';
import type { FileInfo } from './listing.js';
import { ancestorsOf, baseName, resolveVirtualPath } from './paths.js';

export type { FileInfo } from './listing.js';

export type StoreErrorCode = 'NOT_FOUND' | 'NOT_A_FILE' | 'NOT_ALLOWED';

/** An expected refusal (maps to a 550/553 reply); anything else is a local error (451). */
export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string = code,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}

export interface FileStore {
  /** undefined when nothing exists at `path`. */
  stat(path: string): Promise<FileInfo | undefined>;
  /** Entries of a directory, sorted by name. */
  list(dir: string): Promise<FileInfo[]>;
  /** A stream of the file's bytes from `offset`; the file is opened before this resolves. */
  openRead(path: string, offset: number): Promise<Readable>;
  /**
   * A sink for a file's new content. The content takes effect when the
   * stream finishes; a destroyed stream (failed upload) leaves the in-memory
   * tree unchanged.
   */
  openWrite(path: string, append: boolean): Promise<Writable>;
  /** Deletes a file (not a directory). */
  remove(path: string): Promise<void>;
  /** Creates a directory whose parent exists. */
  makeDir(path: string): Promise<void>;
  /** Removes an empty directory (not the root). */
  removeDir(path: string): Promise<void>;
}

/** RETR streams in pieces of this size so that back-pressure applies to big files. */
export const CHUNK_BYTES = 64 * 1024;

function* chunksOf(buf: Buffer, offset: number): Generator<Buffer> {
  // subarray is a view: a 64 MiB file is never copied.
  for (let i = offset; i < buf.length; i += CHUNK_BYTES) yield buf.subarray(i, i + CHUNK_BYTES);
}

/**
 * Files live in a Map (exposed so that tests can read what was uploaded);
 * directories exist implicitly as prefixes of file paths, plus the root and
 * those made by MKD. Uploads may go to any path whose ancestors are not
 * files: the parents appear with the file.
 */
export class MemoryStore implements FileStore {
  readonly files = new Map<string, Buffer>();
  private readonly dirs = new Set<string>(['/']);
  private readonly mtimes = new Map<string, Date>();
  private readonly created = new Date();

  constructor(initial: Record<string, Buffer | string> = {}) {
    for (const [name, content] of Object.entries(initial)) {
      const path = resolveVirtualPath('/', name);
      if (path === undefined || path === '/') throw new Error(`invalid file name in demo files: ${JSON.stringify(name)}`);
      this.files.set(path, typeof content === 'string' ? Buffer.from(content, 'utf8') : content);
    }
  }

  private isDir(path: string): boolean {
    if (this.dirs.has(path)) return true;
    const prefix = `${path}/`;
    for (const key of this.files.keys()) if (key.startsWith(prefix)) return true;
    for (const key of this.dirs) if (key.startsWith(prefix)) return true;
    return false;
  }

  private mtimeOf(path: string): Date {
    return this.mtimes.get(path) ?? this.created;
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    const buf = this.files.get(path);
    if (buf) return { name: baseName(path), kind: 'file', size: buf.length, mtime: this.mtimeOf(path) };
    if (this.isDir(path)) return { name: baseName(path) || '/', kind: 'dir', size: 4096, mtime: this.created };
    return undefined;
  }

  async list(dir: string): Promise<FileInfo[]> {
    const prefix = dir === '/' ? '/' : `${dir}/`;
    const entries = new Map<string, FileInfo>();
    const addDir = (rest: string): void => {
      const name = rest.split('/')[0]!;
      if (name !== '' && !entries.has(name)) entries.set(name, { name, kind: 'dir', size: 4096, mtime: this.created });
    };
    for (const [key, buf] of this.files) {
      if (!key.startsWith(prefix)) continue;
      const rest = key.slice(prefix.length);
      if (rest.includes('/')) addDir(rest);
      else entries.set(rest, { name: rest, kind: 'file', size: buf.length, mtime: this.mtimeOf(key) });
    }
    for (const key of this.dirs) if (key.startsWith(prefix)) addDir(key.slice(prefix.length));
    return [...entries.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async openRead(path: string, offset: number): Promise<Readable> {
    const buf = this.files.get(path);
    if (!buf) throw new StoreError(this.isDir(path) ? 'NOT_A_FILE' : 'NOT_FOUND');
    return Readable.from(chunksOf(buf, offset), { objectMode: false });
  }

  async openWrite(path: string, append: boolean): Promise<Writable> {
    if (this.isDir(path)) throw new StoreError('NOT_A_FILE');
    if (ancestorsOf(path).some((p) => this.files.has(p))) throw new StoreError('NOT_ALLOWED', 'a parent is a file');
    const chunks: Buffer[] = [];
    return new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        chunks.push(chunk);
        callback();
      },
      final: (callback) => {
        const previous = append ? this.files.get(path) : undefined;
        this.files.set(path, Buffer.concat(previous ? [previous, ...chunks] : chunks));
        this.mtimes.set(path, new Date());
        callback();
      },
    });
  }

  async remove(path: string): Promise<void> {
    if (this.files.delete(path)) {
      this.mtimes.delete(path);
      return;
    }
    throw new StoreError(this.isDir(path) ? 'NOT_A_FILE' : 'NOT_FOUND');
  }

  async makeDir(path: string): Promise<void> {
    if (this.files.has(path) || this.isDir(path)) throw new StoreError('NOT_ALLOWED', 'exists');
    const parent = ancestorsOf(path)[0];
    if (parent === undefined || !this.isDir(parent)) throw new StoreError('NOT_FOUND');
    this.dirs.add(path);
  }

  async removeDir(path: string): Promise<void> {
    if (path === '/' || !this.isDir(path)) throw new StoreError(this.files.has(path) ? 'NOT_ALLOWED' : 'NOT_FOUND');
    if ((await this.list(path)).length > 0) throw new StoreError('NOT_ALLOWED', 'not empty');
    this.dirs.delete(path);
  }
}
