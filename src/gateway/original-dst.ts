/**
 * Transparent mode: where was this connection going before nftables
 * redirected it to us? Linux keeps the answer in conntrack and hands it out
 * through getsockopt(SO_ORIGINAL_DST). Node has no binding for it, so koffi
 * calls libc directly on the socket's file descriptor.
 */
import type { Socket } from 'node:net';
import { createRequire } from 'node:module';
import { ipOf, type Endpoint } from '../protocol/address.js';

const SOL_IP = 0;
const SOL_IPV6 = 41;
const SO_ORIGINAL_DST = 80; // also IP6T_SO_ORIGINAL_DST

type GetSockOpt = (fd: number, level: number, name: number, value: Buffer, length: number[]) => number;

let getsockopt: GetSockOpt | undefined;
let loadError: string | undefined;

function load(): GetSockOpt | undefined {
  if (getsockopt || loadError) return getsockopt;
  if (process.platform !== 'linux') {
    loadError = 'transparent mode needs Linux (SO_ORIGINAL_DST)';
    return undefined;
  }
  try {
    // koffi is a CommonJS module with a native part; load it only when needed.
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const libc = koffi.load('libc.so.6');
    getsockopt = libc.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ uint32_t *length)') as unknown as GetSockOpt;
  } catch (err) {
    loadError = `cannot load getsockopt through koffi: ${(err as Error).message}`;
  }
  return getsockopt;
}

export class OriginalDestinationError extends Error {}

/** The destination the client dialled before it was redirected to us. */
export function originalDestination(socket: Socket): Endpoint {
  const fn = load();
  if (!fn) throw new OriginalDestinationError(loadError!);
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd === undefined || fd < 0) throw new OriginalDestinationError('socket has no file descriptor');
  const v6 = socket.localAddress?.includes(':') && !socket.localAddress.startsWith('::ffff:');
  const value = Buffer.alloc(v6 ? 28 : 16);
  const length = [value.length];
  const rc = fn(fd, v6 ? SOL_IPV6 : SOL_IP, SO_ORIGINAL_DST, value, length);
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
