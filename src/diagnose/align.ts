/**
 * Aligns two sequences that should be the same apart from a few changed,
 * missing or extra items: the lines of one control stream before and after a
 * middlebox, or the segments it forwarded. Greedy with a bounded look-ahead,
 * so it stays linear on long sessions; a middlebox changes a line here and
 * there, it does not reorder the stream.
 */
export type AlignOp<T> =
  | { kind: 'same'; a: T; b: T }
  | { kind: 'changed'; a: T; b: T }
  | { kind: 'deleted'; a: T }
  | { kind: 'inserted'; b: T };

export function align<T>(a: readonly T[], b: readonly T[], key: (x: T) => string, window = 64): AlignOp<T>[] {
  const ka = a.map(key);
  const kb = b.map(key);
  const ops: AlignOp<T>[] = [];
  let i = 0;
  let j = 0;
  const emit = (di: number, dj: number) => {
    const paired = Math.min(di, dj);
    for (let k = 0; k < paired; k++) ops.push({ kind: 'changed', a: a[i + k]!, b: b[j + k]! });
    for (let k = paired; k < di; k++) ops.push({ kind: 'deleted', a: a[i + k]! });
    for (let k = paired; k < dj; k++) ops.push({ kind: 'inserted', b: b[j + k]! });
    i += di;
    j += dj;
  };
  while (i < a.length && j < b.length) {
    if (ka[i] === kb[j]) {
      ops.push({ kind: 'same', a: a[i]!, b: b[j]! });
      i++;
      j++;
      continue;
    }
    // The nearest point where both sequences agree again, by total skipped items.
    let found: [number, number] | undefined;
    search: for (let s = 1; s <= 2 * window; s++) {
      for (let di = Math.max(0, s - window); di <= Math.min(s, window); di++) {
        const dj = s - di;
        if (i + di < a.length && j + dj < b.length && ka[i + di] === kb[j + dj]) {
          found = [di, dj];
          break search;
        }
      }
    }
    if (!found) break;
    emit(found[0], found[1]);
  }
  emit(a.length - i, b.length - j);
  return ops;
}
