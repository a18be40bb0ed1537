import { describe, expect, it } from 'vitest';
import { ancestorsOf, resolveVirtualPath } from '../../src/demo/paths.js';

describe('resolveVirtualPath', () => {
  const cases: Array<{ title: string; cwd: string; arg: string; expected: string | undefined }> = [
    { title: 'relative name', cwd: '/pub', arg: 'a.txt', expected: '/pub/a.txt' },
    { title: 'absolute name', cwd: '/pub', arg: '/b/c.txt', expected: '/b/c.txt' },
    { title: 'empty means cwd', cwd: '/pub', arg: '', expected: '/pub' },
    { title: 'dot', cwd: '/pub', arg: '.', expected: '/pub' },
    { title: 'parent', cwd: '/pub/x', arg: '..', expected: '/pub' },
    { title: 'parent above root stays at root', cwd: '/', arg: '../../etc/passwd', expected: '/etc/passwd' },
    { title: 'absolute climb stays at root', cwd: '/pub', arg: '/../../..', expected: '/' },
    { title: 'trailing slash dropped', cwd: '/', arg: 'pub/', expected: '/pub' },
    { title: 'repeated slashes', cwd: '/', arg: '//pub///a', expected: '/pub/a' },
    { title: 'spaces kept', cwd: '/', arg: 'my file.txt', expected: '/my file.txt' },
    { title: 'NUL refused', cwd: '/', arg: 'a\0b', expected: undefined },
    { title: 'CR refused', cwd: '/', arg: 'a\rb', expected: undefined },
  ];
  it.each(cases)('$title', ({ cwd, arg, expected }) => {
    expect(resolveVirtualPath(cwd, arg)).toBe(expected);
  });
});

describe('ancestorsOf', () => {
  it.each([
    { path: '/', expected: [] },
    { path: '/a', expected: ['/'] },
    { path: '/a/b/c', expected: ['/a/b', '/a', '/'] },
  ])('$path', ({ path, expected }) => {
    expect(ancestorsOf(path)).toEqual(expected);
  });
});
