/**
 * Codecs for the endpoints FTP carries inside its control channel:
 * PORT / EPRT / LPRT arguments (client → server) and 227 / 228 / 229 replies
 * (server → client). Pure functions; `undefined` means "does not parse".
 */
import { parseIp, isValidPort, type Endpoint, type Family, type IpAddress } from './address.js';

const BYTE = /^\d{1,3}$/;

function byteValue(s: string): number | undefined {
  const t = s.trim();
  if (!BYTE.test(t)) return undefined;
  const n = Number(t);
  return n <= 255 ? n : undefined;
}

function v4FromBytes(b: number[]): string {
  return b.join('.');
}

function v6FromBytes(b: number[]): string | undefined {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return parseIp(groups.join(':'))?.address;
}

/** The address's bytes in network order: 4 for IPv4, 16 for IPv6 (from RFC 5952 text). */
export function addressBytes(e: IpAddress): number[] {
  if (e.family === 4) return e.address.split('.').map(Number);
  // Expand RFC 5952 text to 16 bytes.
  const [head, tail] = e.address.includes('::') ? e.address.split('::') : [e.address, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const v = parseInt(g || '0', 16);
    return [v >> 8, v & 0xff];
  });
}

// ---- PORT h1,h2,h3,h4,p1,p2 (RFC 959) -------------------------------------

export function parsePortArg(arg: string): Endpoint | undefined {
  const parts = arg.trim().split(',');
  if (parts.length !== 6) return undefined;
  const nums = parts.map(byteValue);
  if (nums.some((n) => n === undefined)) return undefined;
  const n = nums as number[];
  const port = n[4]! * 256 + n[5]!;
  if (!isValidPort(port)) return undefined;
  return { family: 4, address: v4FromBytes(n.slice(0, 4)), port };
}

export function formatPortArg(e: Endpoint): string {
  if (e.family !== 4) throw new Error('PORT carries IPv4 only');
  return [...addressBytes(e), e.port >> 8, e.port & 0xff].join(',');
}

// ---- EPRT |af|addr|port| (RFC 2428) ----------------------------------------

/** RFC 2428 §2: the delimiter is any of ASCII 33–126; '|' is recommended. */
function isDelimiter(ch: string | undefined): ch is string {
  if (ch === undefined || ch.length !== 1) return false;
  const c = ch.charCodeAt(0);
  return c >= 33 && c <= 126;
}

export function parseEprtArg(arg: string): Endpoint | undefined {
  const t = arg.trim();
  const d = t[0];
  if (!isDelimiter(d) || /[0-9]/.test(d)) return undefined;
  const parts = t.split(d);
  if (parts.length !== 5 || parts[0] !== '' || parts[4] !== '') return undefined;
  const [, af, addr, portText] = parts as [string, string, string, string, string];
  const family: Family | undefined = af === '1' ? 4 : af === '2' ? 6 : undefined;
  if (!family || !/^\d{1,5}$/.test(portText)) return undefined;
  // Only the RFC 2428 forms: dotted quad for 1, IPv6 text for 2. parseIp is
  // more forgiving (it trims spaces, strips brackets, folds `::ffff:` under |1|)
  // and a gateway should not relay what the server would have to guess at.
  if (!(family === 4 ? /^[\d.]+$/ : /^[\da-fA-F:.]+$/).test(addr)) return undefined;
  const ip = parseIp(addr);
  const port = Number(portText);
  if (!ip || ip.family !== family || !isValidPort(port)) return undefined;
  // An |2| carrying a v4-mapped address is folded to IPv4 by parseIp; reject
  // the mismatch rather than guess which one the client meant.
  return { ...ip, port };
}

export function formatEprtArg(e: Endpoint, delimiter = '|'): string {
  const d = delimiter;
  return `${d}${e.family === 4 ? 1 : 2}${d}${e.address}${d}${e.port}${d}`;
}

// ---- LPRT af,hal,h...,pal,p... (RFC 1639) -----------------------------------

function parseLongNumbers(nums: number[]): Endpoint | undefined {
  const [af, hal] = nums;
  if (af === 4 && hal === 4 && nums.length === 9 && nums[6] === 2) {
    const port = nums[7]! * 256 + nums[8]!;
    return isValidPort(port) ? { family: 4, address: v4FromBytes(nums.slice(2, 6)), port } : undefined;
  }
  if (af === 6 && hal === 16 && nums.length === 21 && nums[18] === 2) {
    const address = v6FromBytes(nums.slice(2, 18));
    const port = nums[19]! * 256 + nums[20]!;
    if (!address || !isValidPort(port)) return undefined;
    const ip = parseIp(address)!;
    return ip.family === 6 ? { ...ip, port } : undefined;
  }
  return undefined;
}

export function parseLprtArg(arg: string): Endpoint | undefined {
  const nums = arg.trim().split(',').map(byteValue);
  if (nums.some((n) => n === undefined)) return undefined;
  return parseLongNumbers(nums as number[]);
}

export function formatLprtArg(e: Endpoint): string {
  const b = addressBytes(e);
  return [e.family === 4 ? 4 : 6, b.length, ...b, 2, e.port >> 8, e.port & 0xff].join(',');
}

// ---- replies ----------------------------------------------------------------

/** An endpoint found in reply text, with the span of text that encodes it. */
export interface FoundEndpoint {
  endpoint: Endpoint;
  start: number;
  end: number;
}

export interface FoundPort {
  port: number;
  start: number;
  end: number;
  delimiter: string;
}

// The lookarounds keep a longer run of digits (`1192`, `4,1000`) from being
// read as its last or first three digits, which would yield a wrong endpoint
// and a span that splits a number.
/** Where the text after a reply code starts; 0 on a continuation line without one. */
function afterCode(text: string): number {
  return /^\d{3}(?:[ -]|$)/.exec(text)?.[0].length ?? 0;
}

// Exactly six numbers: a seventh on either side (`(1,2,3,4,0,0,5)`) means
// this is not a 227 endpoint, and rewriting six of seven would leave the
// client reading a different one.
const SIX_NUMBERS =
  /(?<!\d\s*,\s*)(?<!\d)(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})(?!\d)(?!\s*,\s*\d)/g;

/**
 * 227: RFC 1123 §4.1.2.6 tells clients to scan the text for the first six
 * numbers rather than rely on the parentheses, and servers took the hint
 * (`227 Entering Passive Mode 10,0,0,1,4,1`, `=10,0,0,1,4,1`, zero-padded
 * octets from mainframes). The search starts after the reply code.
 */
export function find227(text: string): FoundEndpoint | undefined {
  SIX_NUMBERS.lastIndex = afterCode(text);
  for (let m = SIX_NUMBERS.exec(text); m; m = SIX_NUMBERS.exec(text)) {
    const endpoint = parsePortArg(m.slice(1, 7).join(','));
    if (endpoint) return { endpoint, start: m.index, end: m.index + m[0].length };
    SIX_NUMBERS.lastIndex = m.index + 1;
  }
  return undefined;
}

/** 228 (LPSV, RFC 1639): `228 Entering Long Passive Mode (4,4,h1,h2,h3,h4,2,p1,p2)`. */
export function find228(text: string): FoundEndpoint | undefined {
  const re = /\(([\d,\s]+)\)/g;
  re.lastIndex = afterCode(text);
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const endpoint = parseLprtArg(m[1]!.replace(/\s+/g, ''));
    if (endpoint) return { endpoint, start: m.index + 1, end: m.index + 1 + m[1]!.length };
  }
  return undefined;
}

/**
 * 229 (RFC 2428 §3): `229 Entering Extended Passive Mode (|||6446|)`; the
 * delimiter may be any of ASCII 33–126, the network address is left empty.
 * Returns the span of the port digits.
 */
export function find229(text: string): FoundPort | undefined {
  const re = /\(([!-~])\1\1(\d{1,5})\1\)/g;
  re.lastIndex = afterCode(text);
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const delimiter = m[1]!;
    if (/\d/.test(delimiter)) continue;
    const port = Number(m[2]);
    if (!isValidPort(port)) continue;
    const start = m.index + 4;
    return { port, start, end: start + m[2]!.length, delimiter };
  }
  return undefined;
}

export function format227Numbers(e: Endpoint): string {
  return formatPortArg(e);
}

export function format227Reply(e: Endpoint): string {
  return `227 Entering Passive Mode (${formatPortArg(e)}).`;
}

export function format228Reply(e: Endpoint): string {
  return `228 Entering Long Passive Mode (${formatLprtArg(e)})`;
}

export function format229Reply(port: number, delimiter = '|'): string {
  const d = delimiter;
  return `229 Entering Extended Passive Mode (${d}${d}${d}${port}${d})`;
}

/** Replaces text[start, end) — the span a find* function returned. */
export function spliceText(text: string, start: number, end: number, replacement: string): string {
  return text.slice(0, start) + replacement + text.slice(end);
}
