/**
 * Forward-mode and limit flags added for hostile input (issue 12): their
 * defaults, and one error naming the flag for every bad value.
 */
import { describe, expect, test } from 'vitest';
import { ConfigError, forwardFromFlags, parsePortList } from '../../src/config.js';

describe('parsePortList', () => {
  test.each([
    ['21', [{ lo: 21, hi: 21 }]],
    ['21,990', [{ lo: 21, hi: 21 }, { lo: 990, hi: 990 }]],
    [' 2121-2130 , 21 ', [{ lo: 2121, hi: 2130 }, { lo: 21, hi: 21 }]],
    ['1-65535', [{ lo: 1, hi: 65535 }]],
  ])('%j', (text, expected) => {
    expect(parsePortList('--allow-destination-ports', text)).toEqual(expected);
  });

  test.each(['', ',', '0', '65536', '30-20', '21-', 'ftp', '21;25', '1e3', '-5'])('%j is refused with the flag named', (text) => {
    expect(() => parsePortList('--allow-destination-ports', text)).toThrow(ConfigError);
    expect(() => parsePortList('--allow-destination-ports', text)).toThrow(/^--allow-destination-ports: /);
  });
});

describe('forwardFromFlags', () => {
  test('destination ports default to 21 only', () => {
    expect(forwardFromFlags({ listen: '127.0.0.1:0' }).allowDestinationPorts).toEqual([{ lo: 21, hi: 21 }]);
  });
});
