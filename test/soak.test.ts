/**
 * The soak tool (bench/soak.js) as CI runs it: half a minute of mixed load
 * on a real server, every check passing; and a tolerance it cannot meet
 * makes it fail, so that a pass means the checks ran.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { diag, runNode } from './helpers/bench.js';
import { ROOT } from './helpers/server.js';

const SOAK = path.join(ROOT, 'bench', 'soak.js');
const dir = mkdtempSync(path.join(os.tmpdir(), 'comet-soak-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('a short soak: no growth past the tolerances, exactly-once in order, no 5xx, waiting back to 0', async (t) => {
  const json = path.join(dir, 'soak.json');
  const r = await runNode(SOAK, ['--minutes', '0.5', '--warmup', '10', '--sample', '3', '--json', json, '--chart', path.join(dir, 'soak.svg')], {
    timeoutMs: 90_000,
  });
  t.equal(r.code, 0, 'exit 0', diag(r));
  const result = JSON.parse(readFileSync(json, 'utf8'));
  t.equal(result.passed, true, 'passed');
  for (const check of result.checks) t.ok(check.ok, `${check.check}: ${check.value}`);
  t.ok(result.counts.puts > 1000 && result.counts.delivered > 1000, 'it carried real traffic', result.counts);
  t.ok(result.counts.aborted > 100 && result.counts.bad > 100 && result.counts.slow > 0, 'aborted gets, bad requests and slow readers too', result.counts);
  t.match(readFileSync(path.join(dir, 'soak.svg'), 'utf8'), /<svg[^>]*>[\s\S]*<\/svg>/, 'the chart is an SVG');
});

t.test('a tolerance the run cannot meet fails it', async (t) => {
  const r = await runNode(SOAK, ['--minutes', '0.2', '--warmup', '2', '--sample', '2', '--files-growth', '-1000'], { timeoutMs: 60_000 });
  t.equal(r.code, 1, 'exit 1', diag(r));
  t.match(r.stdout, /open files growth after warm-up ≤ -1000 \| -?\d+ \| FAIL/, 'the failed check is reported');
});
