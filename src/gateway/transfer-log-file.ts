/** `--transfer-log FILE`: the xferlog file, appended to and reopened on SIGHUP. */
import { closeSync, openSync, writeSync } from 'node:fs';
import { xferlogLine } from '../alg/transfer-log.js';
import type { EventSink } from './events.js';

/**
 * A log file ftp-alg appends to and reopens on SIGHUP, so that logrotate
 * can move it away (the classic `postrotate kill -HUP`). Opened before
 * privileges are dropped; a reopen after that needs the file (or its
 * directory) writable by the dropped user.
 */
export class AppendFile {
  private fd: number;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'a', 0o640);
  }

  write(line: string): void {
    writeSync(this.fd, line);
  }

  /** Opens the path again; on failure the old file stays in use and the error is thrown. */
  reopen(): void {
    const fd = openSync(this.path, 'a', 0o640);
    closeSync(this.fd);
    this.fd = fd;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** `--transfer-log FILE`: one xferlog line per `transfer` event. */
export function transferLogSink(file: AppendFile): EventSink {
  return (e) => {
    if (e.event !== 'transfer') return;
    const line = xferlogLine(e, new Date());
    if (line) file.write(`${line}\n`);
  };
}
