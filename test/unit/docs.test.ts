/**
 * The README's options table is the option table's (src/config/options.ts): `npm run docs`
 * writes it, and this test fails when someone changed one without the other.
 */
import fs from 'node:fs';
import t from 'tap';
import { OPTIONS } from '../../src/config/options.js';
import { README, optionsTable, withOptionsTable } from '../../scripts/docs.mjs';

const readme = fs.readFileSync(README, 'utf8');

t.test('the README holds the table generated from the option table (else run npm run docs)', async (t) => {
  t.equal(withOptionsTable(readme), readme);
});

t.test('one row per option, with its flag, environment variable and description', async (t) => {
  const rows = optionsTable().split('\n').slice(2);
  t.equal(rows.length, OPTIONS.length);
  OPTIONS.forEach((option, i) => {
    t.ok(rows[i].startsWith(`| \`--${option.flag}\` | \`${option.env}\` | `), option.flag);
    t.ok(rows[i].endsWith(` | ${option.describe} |`), `${option.flag}: description`);
  });
});

t.test('a stale table is rewritten, the rest of the README kept', async (t) => {
  const stale = readme.replace('| `--port` | `COMET_PORT` | 8080 |', '| `--port` | `COMET_PORT` | 80 |');
  t.not(stale, readme, 'the row to spoil exists');
  t.equal(withOptionsTable(stale), readme);
  const dropped = readme.replace(/^\| `--demo` .*\n/m, '');
  t.equal(withOptionsTable(dropped), readme, 'a missing row comes back');
});

t.test('without its markers the README is refused, not appended to', async (t) => {
  t.throws(() => withOptionsTable('# no table here\n'), /markers/);
});
