import { describe, expect, it } from 'vitest';
import { formatListDate, formatListLine, formatListing, formatMdtm } from '../../src/demo/listing.js';

const now = new Date(Date.UTC(2024, 5, 15, 12, 0, 0));

describe('formatListLine', () => {
  it.each([
    {
      title: 'recent file shows the time',
      info: { name: 'hello.txt', kind: 'file' as const, size: 12, mtime: new Date(Date.UTC(2024, 0, 1, 0, 0)) },
      expected: '-rw-r--r-- 1 ftp ftp 12 Jan 01 00:00 hello.txt',
    },
    {
      title: 'old file shows the year',
      info: { name: 'old.txt', kind: 'file' as const, size: 0, mtime: new Date(Date.UTC(2020, 11, 31, 23, 59)) },
      expected: '-rw-r--r-- 1 ftp ftp 0 Dec 31  2020 old.txt',
    },
    {
      title: 'directory',
      info: { name: 'pub', kind: 'dir' as const, size: 4096, mtime: new Date(Date.UTC(2024, 5, 1, 9, 5)) },
      expected: 'drwxr-xr-x 2 ftp ftp 4096 Jun 01 09:05 pub',
    },
    {
      title: 'name with spaces',
      info: { name: 'a b', kind: 'file' as const, size: 1, mtime: new Date(Date.UTC(2024, 5, 15, 11, 0)) },
      expected: '-rw-r--r-- 1 ftp ftp 1 Jun 15 11:00 a b',
    },
  ])('$title', ({ info, expected }) => {
    expect(formatListLine(info, now)).toBe(expected);
  });

  it('shows the year for a time stamp in the future', () => {
    expect(formatListDate(new Date(Date.UTC(2025, 0, 2)), now)).toBe('Jan 02  2025');
  });
});

describe('formatListing', () => {
  it('terminates every line with CRLF', () => {
    expect(formatListing(['a', 'b']).toString()).toBe('a\r\nb\r\n');
    expect(formatListing([]).length).toBe(0);
  });
});

describe('formatMdtm', () => {
  it('is UTC YYYYMMDDHHMMSS', () => {
    expect(formatMdtm(new Date(Date.UTC(2024, 1, 3, 4, 5, 6)))).toBe('20240203040506');
  });
});
