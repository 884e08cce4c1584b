// Runs the uvu test tiers (unit, fs, system), one process per file, and prints one closing count.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const tiers = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'fs', 'system'];
const tsx = path.join(here, '..', 'node_modules', '.bin', 'tsx');
const totals = { passed: 0, failed: 0, skipped: 0 };
const failedFiles = [];

for (const tier of tiers) {
  const dir = path.join(here, tier);
  if (!fs.existsSync(dir)) continue;
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.test.ts')).sort();
  console.log(`\n#### tier ${tier}: ${files.length} file(s)`);
  for (const f of files) {
    const file = path.join(dir, f);
    console.log(`\n## ${tier}/${f}`);
    const t0 = Date.now();
    const r = spawnSync(tsx, [file], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 256 << 20 });
    process.stdout.write(r.stdout ?? '');
    const total = Number(/Total:\s+(\d+)/.exec(r.stdout ?? '')?.[1] ?? 0);
    const passed = Number(/Passed:\s+(\d+)/.exec(r.stdout ?? '')?.[1] ?? 0);
    const skipped = Number(/Skipped:\s+(\d+)/.exec(r.stdout ?? '')?.[1] ?? 0);
    let failed = total - passed - skipped;
    if (r.status !== 0 && failed === 0) failed = 1; // crashed before uvu could count
    totals.passed += passed;
    totals.failed += failed;
    totals.skipped += skipped;
    if (failed) failedFiles.push(`${tier}/${f}`);
    console.log(`## ${tier}/${f}: ${passed} passed, ${failed} failed, ${skipped} skipped (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
}
if (failedFiles.length) console.log(`\nFailed files: ${failedFiles.join(', ')}`);
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exitCode = totals.failed || totals.passed === 0 ? 1 : 0;
