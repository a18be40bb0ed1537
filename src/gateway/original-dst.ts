/**
 * Socket options Node has no binding for, through koffi calling libc on the
 * socket's file descriptor:
 *
 * - transparent mode: where was this connection going before nftables
 *   redirected it to us? Linux keeps the answer in conntrack and hands it out
 *   through getsockopt(SO_ORIGINAL_DST);
 * - ABOR: clients send one byte of it as TCP urgent data, which Linux drops
 *   from the stream unless the socket has SO_OOBINLINE (vsftpd and pyftpdlib
 *   set it), and a server that aborts on SIGURG (vsftpd with
 *   async_abor_enable) only notices an ABOR that carries urgent data again:
 *   send(MSG_OOB).
 */
import type { Socket } from 'node:net';
import { createRequire } from 'node:module';
import { ipOf, type Endpoint } from '../protocol/address.js';

const SOL_IP = 0;
const SOL_IPV6 = 41;
const SO_ORIGINAL_DST = 80; // also IP6T_SO_ORIGINAL_DST
const SOL_SOCKET = 1;
const SO_OOBINLINE = 10;
const MSG_OOB = 1;

type SockOpt = (fd: number, level: number, name: number, value: Buffer, length: number[]) => number;
interface Libc {
  getsockopt: SockOpt;
  setsockopt: (fd: number, level: number, name: number, value: Buffer, length: number) => number;
  send: (fd: number, data: Buffer, length: number, flags: number) => number;
}

let libc: Libc | undefined;
let loadError: string | undefined;
/** Set by tests to take the path a host without koffi takes. */
let forcedUnavailable: string | undefined;

function load(): Libc | undefined {
  if (forcedUnavailable) {
    loadError = forcedUnavailable;
    return undefined;
  }
  if (libc || loadError) return libc;
  if (process.platform !== 'linux') {
    loadError = 'needs Linux';
    return undefined;
  }
  try {
    // koffi is a CommonJS module with a native part; load it only when needed.
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const lib = koffi.load('libc.so.6');
    libc = {
      getsockopt: lib.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ uint32_t *length)') as unknown as SockOpt,
      setsockopt: lib.func('int setsockopt(int fd, int level, int name, const uint8_t *value, uint32_t length)') as unknown as Libc['setsockopt'],
      send: lib.func('intptr_t send(int fd, const uint8_t *data, size_t length, int flags)') as unknown as Libc['send'],
    };
  } catch (err) {
    loadError = `cannot load libc through koffi: ${(err as Error).message}`;
  }
  return libc;
}

/** For tests: behave as if koffi could not be loaded (reason), or normally again (undefined). */
export function forceNativeUnavailable(reason: string | undefined): void {
  forcedUnavailable = reason;
  if (!reason) loadError = undefined;
}

function fdOf(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return fd === undefined || fd < 0 ? undefined : fd;
}

export type UrgentInline = { inline: true } | { inline: false; reason: string };

/**
 * Keeps TCP urgent data in the normal stream of this socket (SO_OOBINLINE),
 * so that the byte a client sends urgent with ABOR is not lost. When that is
 * impossible the framer repairs the ABOR instead (see abortLine); the result
 * says which of the two paths this socket takes.
 */
export function keepUrgentInline(socket: Socket): UrgentInline {
  const fn = load();
  if (!fn) return { inline: false, reason: `SO_OOBINLINE: ${loadError!}` };
  const fd = fdOf(socket);
  if (fd === undefined) return { inline: false, reason: 'SO_OOBINLINE: socket has no file descriptor' };
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  if (fn.setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, one, one.length) !== 0) {
    return { inline: false, reason: 'SO_OOBINLINE: setsockopt failed' };
  }
  return { inline: true };
}

/** Whether the socket keeps urgent data in line (reads SO_OOBINLINE back); undefined when it cannot tell. */
export function urgentInline(socket: Socket): boolean | undefined {
  const fn = load();
  const fd = fdOf(socket);
  if (!fn || fd === undefined) return undefined;
  const value = Buffer.alloc(4);
  const length = [value.length];
  if (fn.getsockopt(fd, SOL_SOCKET, SO_OOBINLINE, value, length) !== 0) return undefined;
  return value.readInt32LE(0) !== 0;
}

/**
 * Sends `data` with MSG_OOB: its last byte becomes the urgent byte. Only
 * when nothing is queued on the socket, or the bytes would overtake what
 * Node still holds. Returns false when it did not send (the caller then
 * writes the bytes normally): no koffi, a busy socket, or a short send.
 */
export function sendUrgent(socket: Socket, data: Buffer): boolean {
  const fn = load();
  const fd = fdOf(socket);
  if (!fn || fd === undefined || socket.writableLength > 0 || socket.destroyed) return false;
  return fn.send(fd, data, data.length, MSG_OOB) === data.length;
}

export class OriginalDestinationError extends Error {}

/** The destination the client dialled before it was redirected to us. */
export function originalDestination(socket: Socket): Endpoint {
  const fn = load();
  if (!fn) {
    throw new OriginalDestinationError(loadError === 'needs Linux' ? 'transparent mode needs Linux (SO_ORIGINAL_DST)' : `cannot read SO_ORIGINAL_DST: ${loadError!}`);
  }
  const fd = fdOf(socket);
  if (fd === undefined) throw new OriginalDestinationError('socket has no file descriptor');
  const v6 = socket.localAddress?.includes(':') && !socket.localAddress.startsWith('::ffff:');
  const value = Buffer.alloc(v6 ? 28 : 16);
  const length = [value.length];
  const rc = fn.getsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, SO_ORIGINAL_DST, value, length);
  if (rc !== 0) {
    throw new OriginalDestinationError('connection was not redirected (no original destination in conntrack)');
  }
  return decodeSockaddr(value);
}

/** struct sockaddr_in / sockaddr_in6, ports in network order. */
export function decodeSockaddr(b: Buffer): Endpoint {
  const family = b.readUInt16LE(0);
  const port = b.readUInt16BE(2);
  if (family === 2) return { ...ipOf(`${b[4]}.${b[5]}.${b[6]}.${b[7]}`), port };
  if (family === 10) {
    const groups: string[] = [];
    for (let i = 8; i < 24; i += 2) groups.push(b.readUInt16BE(i).toString(16));
    return { ...ipOf(groups.join(':')), port };
  }
  throw new OriginalDestinationError(`unexpected address family ${family}`);
}
