/**
 * The messages of one channel: a ring of (time, body) pairs, oldest first.
 *
 *   capacity 8 (a power of two), mask 7, head = 6, length = 5
 *
 *     slot:   0     1     2     3     4     5     6     7
 *           [ t4 ][ t5 ][ t6 ][    ][    ][    ][ t2 ][ t3 ]
 *                                                 ^ head (oldest)
 *     logical index i lives in slot (head + i) & mask
 *
 * Storage starts small and doubles up to the channel limit, because most
 * channels hold few messages and a flood of distinct channel ids must stay
 * cheap. Times are strictly increasing, so a cursor is found by binary search.
 */
export class RingBuffer {
  private times: Float64Array;
  private bodies: (string | undefined)[];
  private mask: number;
  private head = 0;
  private count = 0;

  constructor(initialCapacity = 4) {
    const capacity = nextPowerOfTwo(initialCapacity);
    this.times = new Float64Array(capacity);
    this.bodies = new Array<string | undefined>(capacity).fill(undefined);
    this.mask = capacity - 1;
  }

  get length(): number {
    return this.count;
  }

  /** Appends at the newest end, growing the storage when full. */
  push(time: number, body: string): void {
    if (this.count === this.times.length) this.grow();
    const slot = (this.head + this.count) & this.mask;
    this.times[slot] = time;
    this.bodies[slot] = body;
    this.count++;
  }

  /** Removes the oldest message and returns its body; call only when length > 0. */
  shift(): string {
    const slot = this.head;
    const body = this.bodies[slot] as string;
    this.bodies[slot] = undefined;
    this.head = (slot + 1) & this.mask;
    this.count--;
    return body;
  }

  timeAt(index: number): number {
    return this.times[(this.head + index) & this.mask]!;
  }

  bodyAt(index: number): string {
    return this.bodies[(this.head + index) & this.mask] as string;
  }

  /** Index of the first message with time > since, or length when there is none. */
  indexAfter(since: number): number {
    let low = 0;
    let high = this.count;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.timeAt(mid) <= since) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  private grow(): void {
    const capacity = this.times.length * 2;
    const times = new Float64Array(capacity);
    const bodies = new Array<string | undefined>(capacity).fill(undefined);
    for (let i = 0; i < this.count; i++) {
      const slot = (this.head + i) & this.mask;
      times[i] = this.times[slot]!;
      bodies[i] = this.bodies[slot];
    }
    this.times = times;
    this.bodies = bodies;
    this.mask = capacity - 1;
    this.head = 0;
  }
}

function nextPowerOfTwo(n: number): number {
  let capacity = 1;
  while (capacity < n) capacity *= 2;
  return capacity;
}
