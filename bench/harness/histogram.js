// A mergeable latency histogram: load-generator processes each fill one and the
// parent adds them up, so percentiles over several processes are exact to the
// bucket width (about 1.6 %) instead of an average of percentiles.
//
// Values are microseconds. Below 64 µs every value has its own bucket; above,
// each power of two is split into 64 buckets.

const SUB_BITS = 6;
const SUB = 1 << SUB_BITS;
const MAX_POW = 40; // 2^40 µs ≈ 12.7 days: beyond any benchmark
export const BUCKETS = SUB * (MAX_POW - SUB_BITS + 2);

/** @param {number} us */
function bucketOf(us) {
  const v = Math.max(0, Math.floor(us));
  if (v < SUB) return v;
  // clz32 is exact below 2^31; log2 may round up just below a power of two, hence the clamps
  const pow = Math.min(MAX_POW, v < 2 ** 31 ? 31 - Math.clz32(v) : Math.floor(Math.log2(v)));
  const shift = pow - SUB_BITS;
  const sub = Math.min(SUB - 1, Math.max(0, Math.floor(v / 2 ** shift) - SUB));
  return SUB * (shift + 1) + sub;
}

/**
 * The middle of a bucket, in µs.
 * @param {number} bucket
 */
function valueOf(bucket) {
  if (bucket < SUB) return bucket;
  const shift = Math.floor(bucket / SUB) - 1;
  const sub = bucket % SUB;
  return (SUB + sub + 0.5) * 2 ** shift;
}

/** @typedef {{ pairs: [bucket: number, count: number][], max: number }} HistogramJSON */

export class Histogram {
  constructor(counts = new Float64Array(BUCKETS)) {
    this.counts = counts;
    this.total = counts.reduce((a, c) => a + c, 0);
    this.max = 0;
  }

  /**
   * Records one value in microseconds.
   * @param {number} us
   */
  record(us) {
    this.counts[bucketOf(us)]++;
    this.total++;
    if (us > this.max) this.max = us;
  }

  /**
   * Adds another histogram (or its toJSON() form) into this one.
   * @param {Histogram | HistogramJSON} other
   */
  add(other) {
    const h = other instanceof Histogram ? other : Histogram.fromJSON(other);
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += h.counts[i];
    this.total += h.total;
    if (h.max > this.max) this.max = h.max;
    return this;
  }

  /** The value (µs) at or below which a fraction q (0..1) of the records lie; NaN when empty. */
  /** @param {number} q */
  quantile(q) {
    if (this.total === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(valueOf(i), this.max);
    }
    return this.max;
  }

  /** A compact, IPC-friendly form: [[bucket, count], ...] of the non-empty buckets. */
  /** @returns {HistogramJSON} */
  toJSON() {
    /** @type {HistogramJSON['pairs']} */
    const pairs = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i] > 0) pairs.push([i, this.counts[i]]);
    return { pairs, max: this.max };
  }

  /** @param {HistogramJSON} json */
  static fromJSON({ pairs, max }) {
    const h = new Histogram();
    for (const [i, c] of pairs) h.counts[i] = c;
    h.total = pairs.reduce((a, [, c]) => a + c, 0);
    h.max = max;
    return h;
  }
}
