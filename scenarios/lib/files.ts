/** Test files, generated once per run, and their checksums. */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';

export interface GeneratedFile {
  path: string;
  size: number;
  sha256: string;
}

/**
 * Random content without generating random bytes for every MiB: one random
 * 1 MiB block, repeated, each copy stamped with its index so that swapped or
 * repeated blocks would still change the checksum.
 */
export function generateFile(path: string, size: number): GeneratedFile {
  const block = randomBytes(Math.min(size, 1 << 20));
  const hash = createHash('sha256');
  const fd = openSync(path, 'w', 0o644);
  try {
    for (let off = 0, i = 0; off < size; off += block.length, i++) {
      const chunk = Buffer.from(block.subarray(0, Math.min(block.length, size - off)));
      if (chunk.length >= 8) chunk.writeBigUInt64BE(BigInt(i), 0);
      hash.update(chunk);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return { path, size, sha256: hash.digest('hex') };
}

/** sha256 of a file, or undefined when it does not exist. */
export function sha256File(path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    const s = createReadStream(path, { highWaterMark: 1 << 20 });
    s.on('data', (d) => hash.update(d));
    s.on('error', () => resolve(undefined));
    s.on('end', () => resolve(hash.digest('hex')));
  });
}
