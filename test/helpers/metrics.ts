/** A small parser for the Prometheus text exposition format. */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export class Metrics {
  readonly samples: Sample[];
  /** `# TYPE` declarations: metric name -> type. */
  readonly types: Map<string, string>;

  constructor(readonly text: string) {
    this.samples = [];
    this.types = new Map();
    for (const line of text.split('\n')) {
      const l = line.trim();
      if (l === '') continue;
      if (l.startsWith('#')) {
        const m = /^#\s*TYPE\s+(\S+)\s+(\S+)/.exec(l);
        if (m) this.types.set(m[1]!, m[2]!);
        continue;
      }
      const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/.exec(l);
      if (!m) continue;
      const labels: Record<string, string> = {};
      const re = /([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g;
      for (let lm = re.exec(m[2] ?? ''); lm; lm = re.exec(m[2] ?? '')) labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, '$1');
      const raw = m[3]!;
      const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
      this.samples.push({ name: m[1]!, labels, value });
    }
  }

  /** Samples of `name` whose labels include every pair of `labels`. */
  series(name: string, labels: Record<string, string> = {}): Sample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  }

  has(name: string, labels: Record<string, string> = {}): boolean {
    return this.series(name, labels).length > 0;
  }

  /** Sum of matching samples; 0 when none matches (use `has` to tell them apart). */
  value(name: string, labels: Record<string, string> = {}): number {
    return this.series(name, labels).reduce((a, s) => a + s.value, 0);
  }
}
