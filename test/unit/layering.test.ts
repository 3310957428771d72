/**
 * The shape of src/, kept: every import points down the layers below (or
 * stays inside its own module), and no file imports itself back through
 * others. A new arrow against the layering fails here, naming the import.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';

const SRC = path.resolve(import.meta.dirname, '../../src');

/**
 * Modules from the top down: a module may import only from modules of a
 * lower rank. The client is a separate product (it runs in browsers): it
 * imports nothing of the server, and only the comet CLI imports it.
 */
const RANKS: Record<string, number> = {
  cli: 8,
  'index.ts': 8,
  server: 7,
  http: 6,
  waiters: 5,
  threads: 4,
  engine: 3,
  metrics: 3,
  config: 2,
  protocol: 2,
  auth: 3,
  limits: 3,
  'log.ts': 1,
  'uws.ts': 1,
  client: 1,
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** The module of a file: its folder under src/, or the file itself at the top. */
const moduleOf = (file: string) => path.relative(SRC, file).split(path.sep)[0]!;

/** Relative imports, static and dynamic, type-only ones included, as absolute .ts paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.{1,2}\/[^']+)'/g)) {
    found.push(path.resolve(path.dirname(file), match[1]!.replace(/\.js$/, '.ts')));
  }
  return found;
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((file) => [file, importsOf(file)]));

t.test('every module of src/ has a rank', async (t) => {
  const modules = new Set(files.map(moduleOf));
  for (const module of modules) t.ok(module in RANKS, `${module} is ranked`);
});

t.test('every import points down the layers', async (t) => {
  let checked = 0;
  for (const [file, imports] of graph) {
    for (const target of imports) {
      t.ok(graph.has(target), `${path.relative(SRC, file)} imports an existing file: ${path.relative(SRC, target)}`);
      const from = moduleOf(file);
      const to = moduleOf(target);
      if (from === to) continue;
      checked++;
      const allowed = RANKS[to]! < RANKS[from]! && (to !== 'client' || from === 'cli');
      t.ok(allowed, `${path.relative(SRC, file)} -> ${path.relative(SRC, target)} (${from} ${RANKS[from]} -> ${to} ${RANKS[to]})`);
    }
  }
  t.ok(checked > 50, `cross-module imports were found (${checked})`);
});

t.test('no import cycle between files', async (t) => {
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (file: string, trail: string[]): void => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'open') {
      cycles.push([...trail.slice(trail.indexOf(file)), file].map((f) => path.relative(SRC, f)).join(' -> '));
      return;
    }
    state.set(file, 'open');
    for (const target of graph.get(file) ?? []) visit(target, [...trail, file]);
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file, []);
  t.same(cycles, [], 'no cycles');
});
