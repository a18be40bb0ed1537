/**
 * RewriteLedger: where each rewrite happened in the input stream and the
 * running input→output offset difference, as a middlebox shifting TCP
 * sequence numbers would need it.
 */
import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { RewriteLedger, type LedgerEntry } from '../../src/alg/ledger.js';

type Op = { passed: number } | { rewrote: [before: number, after: number] };

function replay(ops: Op[]): RewriteLedger {
  const ledger = new RewriteLedger();
  for (const op of ops) {
    if ('passed' in op) ledger.passed(op.passed);
    else ledger.rewrote(...op.rewrote);
  }
  return ledger;
}

const entry = (offset: number, before: number, after: number, delta: number): LedgerEntry => ({ offset, before, after, delta });

interface LedgerCase {
  title: string;
  input: Op[];
  expected: {
    entries: LedgerEntry[];
    delta: number;
    /** [input offset, output offset] */
    map: Array<[number, number]>;
  };
}

const CASES: LedgerCase[] = [
  {
    title: 'nothing rewritten',
    input: [{ passed: 100 }],
    expected: { entries: [], delta: 0, map: [[0, 0], [50, 50], [100, 100], [1000, 1000]] },
  },
  {
    title: 'one line grows',
    // 10 bytes through, a 20-byte line out as 25 bytes
    input: [{ passed: 10 }, { rewrote: [20, 25] }, { passed: 5 }],
    expected: {
      entries: [entry(10, 20, 25, 5)],
      delta: 5,
      map: [[0, 0], [9, 9], [10, 10], [30, 35], [35, 40]],
    },
  },
  {
    title: 'a grow then a shrink: cumulative delta',
    input: [{ passed: 10 }, { rewrote: [20, 25] }, { passed: 5 }, { rewrote: [30, 28] }, { passed: 40 }],
    expected: {
      entries: [entry(10, 20, 25, 5), entry(35, 30, 28, 3)],
      delta: 3,
      map: [[10, 10], [30, 35], [34, 39], [35, 40], [65, 68], [105, 108]],
    },
  },
  {
    title: 'back-to-back rewrites',
    input: [{ rewrote: [10, 12] }, { rewrote: [10, 15] }, { rewrote: [10, 4] }],
    expected: {
      entries: [entry(0, 10, 12, 2), entry(10, 10, 15, 7), entry(20, 10, 4, 1)],
      delta: 1,
      map: [[0, 0], [10, 12], [20, 27], [30, 31]],
    },
  },
  {
    title: 'an insertion (before 0) at the start',
    input: [{ rewrote: [0, 7] }, { passed: 10 }],
    expected: { entries: [entry(0, 0, 7, 7)], delta: 7, map: [[0, 7], [10, 17]] },
  },
  {
    title: 'an insertion between lines',
    // a local reply goes out between two relayed lines
    input: [{ passed: 10 }, { rewrote: [0, 12] }, { passed: 10 }],
    expected: { entries: [entry(10, 0, 12, 12)], delta: 12, map: [[9, 9], [10, 22], [20, 32]] },
  },
  {
    title: 'a drop (after 0)',
    // a refused command is not forwarded
    input: [{ passed: 5 }, { rewrote: [8, 0] }, { passed: 10 }],
    expected: { entries: [entry(5, 8, 0, -8)], delta: -8, map: [[0, 0], [5, 5], [13, 5], [23, 15]] },
  },
  {
    title: 'a rewrite, an insertion at the same place, a drop',
    input: [{ rewrote: [10, 14] }, { rewrote: [0, 6] }, { passed: 4 }, { rewrote: [8, 0] }, { passed: 2 }],
    expected: {
      entries: [entry(0, 10, 14, 4), entry(10, 0, 6, 10), entry(14, 8, 0, 2)],
      delta: 2,
      map: [[0, 0], [10, 20], [14, 24], [22, 24], [24, 26]],
    },
  },
  {
    title: 'two insertions in a row',
    input: [{ passed: 3 }, { rewrote: [0, 5] }, { rewrote: [0, 6] }, { passed: 3 }],
    expected: { entries: [entry(3, 0, 5, 5), entry(3, 0, 6, 11)], delta: 11, map: [[2, 2], [3, 14], [6, 17]] },
  },
];

describe('RewriteLedger', () => {
  test.each(CASES)('$title', ({ input, expected }) => {
    const ledger = replay(input);
    expect(ledger.entries).toEqual(expected.entries);
    expect(ledger.delta).toBe(expected.delta);
    expect(expected.map.map(([i]) => [i, ledger.toOutput(i)])).toEqual(expected.map);
  });

  test('rewrote returns the entry it records', () => {
    const ledger = new RewriteLedger();
    ledger.passed(4);
    const e = ledger.rewrote(6, 9);
    expect(e).toEqual(entry(4, 6, 9, 3));
    expect(ledger.entries.at(-1)).toBe(e);
  });

  // Model: build the real input and output streams; every byte that passed
  // unchanged must sit at toOutput(its input offset) in the output.
  const opArb = fc.oneof(
    fc.record({ kind: fc.constant<'passed'>('passed'), before: fc.integer({ min: 1, max: 20 }), after: fc.constant(0) }),
    fc.record({ kind: fc.constant<'rewrote'>('rewrote'), before: fc.integer({ min: 0, max: 20 }), after: fc.integer({ min: 0, max: 20 }) }),
  );
  fcTest.prop([fc.array(opArb, { maxLength: 30 })], { numRuns: 300 })('unchanged bytes land where toOutput says', (ops) => {
    const ledger = new RewriteLedger();
    const input: string[] = [];
    const output: string[] = [];
    const unchanged: number[] = [];
    let tag = 0;
    for (const op of ops) {
      if (op.kind === 'passed') {
        for (let i = 0; i < op.before; i++) {
          const b = `p${tag++}`;
          unchanged.push(input.length);
          input.push(b);
          output.push(b);
        }
        ledger.passed(op.before);
      } else {
        for (let i = 0; i < op.before; i++) input.push(`in${tag++}`);
        for (let i = 0; i < op.after; i++) output.push(`out${tag++}`);
        ledger.rewrote(op.before, op.after);
      }
    }
    expect(ledger.delta).toBe(output.length - input.length);
    expect(ledger.toOutput(input.length)).toBe(output.length);
    for (const i of unchanged) expect(output[ledger.toOutput(i)]).toBe(input[i]);
    for (let k = 1; k < ledger.entries.length; k++) {
      const [prev, cur] = [ledger.entries[k - 1]!, ledger.entries[k]!];
      expect(cur.offset).toBeGreaterThanOrEqual(prev.offset + prev.before);
      expect(cur.delta).toBe(prev.delta + cur.after - cur.before);
    }
  });
});
