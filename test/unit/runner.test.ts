// Tests the runner's arithmetic (test/helpers/uvu-counts.mjs) and the prerequisite gate (test/helpers/prereq.ts) against real uvu runs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { uvuCounts } from '../helpers/uvu-counts.mjs';
import { kitDir } from '../helpers/kit.ts';

const dir = fs.mkdtempSync(path.join(kitDir, 'test', '.runner-'));
const tsx = path.join(kitDir, 'node_modules', '.bin', 'tsx');
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs a uvu file made of `body` with real uvu; returns its stdout and exit code. */
function runUvu(name: string, body: string, env: Record<string, string> = {}): { stdout: string; code: number | null } {
  const file = path.join(dir, `${name}.test.ts`);
  fs.writeFileSync(file, `import { test } from 'uvu';\nimport { requiring } from '../helpers/prereq.ts';\n${body}\ntest.run();\n`);
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'CI'));
  const r = spawnSync(tsx, [file], { encoding: 'utf8', env: { ...clean, ...env }, cwd: os.tmpdir() });
  return { stdout: r.stdout, code: r.status };
}

test('counts come from uvu: 2 passed, 1 failed, 3 skipped (skips never cancel a failure)', () => {
  const r = runUvu(
    'mixed',
    `test('a', () => {});\ntest('b', () => {});\ntest('c', () => { throw new Error('boom'); });\ntest.skip('d');\ntest.skip('e');\ntest.skip('f');`,
  );
  assert.is(r.code, 1);
  assert.equal(uvuCounts(r.stdout), { passed: 2, failed: 1, skipped: 3 });
});

test('colours do not break the count, and no count is undefined (a crash before uvu counted)', () => {
  const r = runUvu('colour', `test('a', () => {});\ntest.skip('b');`, { FORCE_COLOR: '1' });
  assert.match(r.stdout, /\x1b\[/, 'uvu printed colours');
  assert.equal(uvuCounts(r.stdout), { passed: 1, failed: 0, skipped: 1 });
  assert.is(uvuCounts('Error: Cannot find module\n'), undefined);
});

const gated = `const it = requiring('gunicorn is not installed here');\nit('needs gunicorn', () => {});\ntest('plain', () => {});`;

test('a missing prerequisite outside CI: skipped and named, never passed', () => {
  const r = runUvu('skip', gated);
  assert.is(r.code, 0);
  assert.equal(uvuCounts(r.stdout), { passed: 1, failed: 0, skipped: 1 });
  assert.match(r.stdout, /^SKIP: needs gunicorn \(gunicorn is not installed here\)$/m);
});

test('a missing prerequisite under CI=true fails the run, saying what is missing', () => {
  const r = runUvu('ci', gated, { CI: 'true' });
  assert.is(r.code, 1);
  assert.equal(uvuCounts(r.stdout), { passed: 1, failed: 1, skipped: 0 });
  assert.match(r.stdout, /gunicorn is not installed here\. CI=true: a missing prerequisite fails the run/);
});

test('a present prerequisite runs the test itself (a failure in it counts)', () => {
  const r = runUvu('present', `const it = requiring(undefined);\nit('runs', () => { throw new Error('ran'); });`, { CI: 'true' });
  assert.equal(uvuCounts(r.stdout), { passed: 0, failed: 1, skipped: 0 });
  assert.match(r.stdout, /ran/);
});

test.run();
