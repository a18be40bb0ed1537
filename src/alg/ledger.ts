/**
 * Per-direction record of every rewrite: where in the input stream it
 * happened, how many bytes went in and out, and the running difference
 * between input and output offsets. A middlebox that rewrites inside TCP must
 * shift later sequence numbers by exactly this delta; the gateway reports it
 * in its `rewrite` events and the capture analyser checks others against it.
 */
export interface LedgerEntry {
  /** Offset in the input stream where the rewritten line started. */
  offset: number;
  before: number;
  after: number;
  /** Output offset minus input offset after this entry. */
  delta: number;
}

export class RewriteLedger {
  readonly entries: LedgerEntry[] = [];
  /** The newest entry, kept whether or not the history is. */
  last: LedgerEntry | undefined;
  private inputOffset = 0;
  private cumulative = 0;

  /**
   * `history`: keep every entry (the capture analyser maps offsets through
   * them). A live session keeps none: a client that has thousands of
   * commands refused must not grow a list for as long as it stays.
   */
  constructor(private readonly history = true) {}

  /** Bytes that passed through unchanged. */
  passed(bytes: number): void {
    this.inputOffset += bytes;
  }

  /** A line of `before` input bytes went out as `after` bytes. */
  rewrote(before: number, after: number): LedgerEntry {
    this.cumulative += after - before;
    const entry = { offset: this.inputOffset, before, after, delta: this.cumulative };
    this.inputOffset += before;
    if (this.history) this.entries.push(entry);
    this.last = entry;
    return entry;
  }

  get delta(): number {
    return this.cumulative;
  }

  /** Maps an input stream offset to the output offset. */
  toOutput(inputOffset: number): number {
    let d = 0;
    for (const e of this.entries) {
      if (e.offset + e.before <= inputOffset) d = e.delta;
      else break;
    }
    return inputOffset + d;
  }
}
