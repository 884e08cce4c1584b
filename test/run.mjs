// Runs the uvu test tiers (unit, fs, system), one process per file, and prints one closing count.
//
// The counts are uvu's own: its Total is the tests that ran (skipped ones are not in it), Passed
// those of them that passed, so failed = Total − Passed, and Skipped is counted on its own. A file
// that exits non-zero with no failure counted (it crashed, or uvu never printed its count) counts
// as one failure. Every `SKIP:` line a file prints is listed again at the end, per tier.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { uvuCounts } from './helpers/uvu-counts.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const tiers = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'fs', 'system'];
const tsx = path.join(here, '..', 'node_modules', '.bin', 'tsx');
const totals = { passed: 0, failed: 0, skipped: 0 };
const failedFiles = [];
const tierLines = [];
const skips = [];

// The fs and system tiers run the verbs compiled, as the `cutover` executable does (test/helpers/kit.ts,
// verbArgv): compile them from the current source first, so no test runs an older kit.
if (tiers.some((t) => t === 'fs' || t === 'system')) {
  const c = spawnSync(process.execPath, [path.join(here, '..', 'scripts', 'compile.mjs')], { stdio: 'inherit' });
  if (c.status !== 0) {
    console.log('the kit did not compile (node scripts/compile.mjs): no tier ran');
    process.exit(1);
  }
}

for (const tier of tiers) {
  const dir = path.join(here, tier);
  if (!fs.existsSync(dir)) continue;
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.test.ts')).sort();
  const tierCount = { passed: 0, failed: 0, skipped: 0 };
  console.log(`\n#### tier ${tier}: ${files.length} file(s)`);
  for (const f of files) {
    const file = path.join(dir, f);
    console.log(`\n## ${tier}/${f}`);
    const t0 = Date.now();
    const r = spawnSync(tsx, [file], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 256 << 20 });
    const stdout = r.stdout ?? '';
    process.stdout.write(stdout);
    const c = uvuCounts(stdout) ?? { passed: 0, failed: 0, skipped: 0 };
    if (r.status !== 0 && c.failed === 0) {
      c.failed = 1; // crashed before uvu could count, or a hook failed
      console.log(`## ${tier}/${f} exited ${r.status ?? r.signal} without a failed test counted: counted as 1 failed`);
    }
    for (const key of Object.keys(totals)) {
      totals[key] += c[key];
      tierCount[key] += c[key];
    }
    for (const m of stdout.matchAll(/^SKIP: (.*)$/gm)) skips.push(`${tier}/${f}: ${m[1]}`);
    if (c.failed) failedFiles.push(`${tier}/${f}`);
    console.log(`## ${tier}/${f}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  tierLines.push(`tier ${tier}: ${tierCount.passed} passed, ${tierCount.failed} failed, ${tierCount.skipped} skipped${tierCount.passed === 0 && tierCount.skipped > 0 ? '  (THE WHOLE TIER WAS SKIPPED)' : ''}`);
}
if (skips.length) console.log(`\nSkipped (${skips.length}):\n  ${skips.join('\n  ')}`);
if (failedFiles.length) console.log(`\nFailed files: ${failedFiles.join(', ')}`);
console.log(`\n${tierLines.join('\n')}`);
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exitCode = totals.failed || totals.passed === 0 ? 1 : 0;
