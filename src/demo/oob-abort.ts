/**
 * Python's ftplib sends ABOR as `sendall(b'ABOR\r\n', MSG_OOB)`: the kernel
 * marks the last byte (the LF) as urgent data and, without SO_OOBINLINE
 * (which Node cannot set), keeps it out of the stream. The server receives
 * `ABOR\r` and no LF, and the client waits for a reply for ever. vsftpd gets
 * away with it by reading urgent data; we give the line its LF back.
 *
 * Only a line that is exactly ABOR (after optional Telnet IP/DM sequences) is
 * repaired, and only when its CR ends a read; an LF that arrives later after
 * all is dropped, so a client that merely split CR and LF across two writes
 * still sends one command.
 */

const MAX_TRACKED = 16;
const ABOR_CR = /^(?:\xff[\xf0-\xfe])*abor\r$/i;
const LF = 0x0a;

export class OobAbortRepair {
  /** Bytes of the current line so far, if it is still short enough to be ABOR. */
  private line: Buffer | undefined = Buffer.alloc(0);
  private dropLf = false;

  push(chunk: Buffer): Buffer {
    let data = chunk;
    if (this.dropLf && data.length > 0) {
      this.dropLf = false;
      if (data[0] === LF) data = data.subarray(1);
    }
    if (data.length === 0) return data;
    const lf = data.lastIndexOf(LF);
    const tail = lf === -1 ? data : data.subarray(lf + 1);
    if (lf !== -1) this.line = Buffer.alloc(0);
    if (this.line !== undefined) {
      this.line = this.line.length + tail.length <= MAX_TRACKED ? Buffer.concat([this.line, tail]) : undefined;
    }
    if (this.line && ABOR_CR.test(this.line.toString('latin1'))) {
      this.line = Buffer.alloc(0);
      this.dropLf = true;
      return Buffer.concat([data, Buffer.from([LF])]);
    }
    return data;
  }
}
