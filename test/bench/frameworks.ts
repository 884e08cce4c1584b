// `npm run bench:frameworks`: the five framework examples' handovers under load (test/system/frameworks.test.ts, run as it is), summed up as one table: load p50/p99/max, steady max, each cut-over window's max against its no-stall limit, failed requests.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');

interface Row {
  load?: string;
  failed?: number;
  window?: { steady: number; max: number; limit: number };
}

/** The test's own lines ("  <fw>: release v2 …; load: …", "  <fw>: cut-over window: …") → one row per framework and cut-over. */
export function summarize(output: string): { rows: Map<string, Row>; lines: string[] } {
  const rows = new Map<string, Row>();
  const row = (key: string) => rows.get(key) ?? (rows.set(key, {}), rows.get(key)!);
  for (const line of output.split('\n')) {
    const load = /^ {2}(\w+): (release v2|rollback) in [0-9.]+ s; load: (\d+) requests in [0-9.]+ s, (\d+) failed[^·]*· (p50 [^·]+)/.exec(line);
    if (load) {
      const r = row(`${load[1]} ${load[2] === 'rollback' ? 'rollback' : 'v2'}`);
      r.load = load[5]!.trim();
      r.failed = Number(load[4]);
    }
    const w = /^ {2}(\w+): (rollback's )?cut-over window: steady max ([0-9.]+) ms, window max ([0-9.]+) ms \(no-stall limit ([0-9.]+) ms/.exec(line);
    if (w) row(`${w[1]} ${w[2] ? 'rollback' : 'v2'}`).window = { steady: Number(w[3]), max: Number(w[4]), limit: Number(w[5]) };
  }
  const lines = ['| app, cut-over | load p50 / p99 / max | steady max | window max | limit | verdict | failed |', '| --- | --- | --- | --- | --- | --- | --- |'];
  for (const [key, r] of rows) {
    const w = r.window;
    lines.push(`| ${key} | ${r.load ?? '—'} | ${w ? `${w.steady} ms` : '—'} | ${w ? `${w.max} ms` : '—'} | ${w ? `${w.limit} ms` : '—'} | ${w ? (w.max <= w.limit ? 'within' : '**OVER**') : 'no window'} | ${r.failed ?? '—'} |`);
  }
  return { rows, lines };
}

async function main(): Promise<void> {
  console.log('bench:frameworks: runs test/system/frameworks.test.ts (as root, in the test host; CUTOVER_FRAMEWORKS=a,b filters), then sums up its cut-over windows.\n');
  let output = '';
  const code = await new Promise<number>((resolve) => {
    const child = spawn(path.join(root, 'node_modules/.bin/tsx'), [path.join(root, 'test/system/frameworks.test.ts')], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      process.stdout.write(d);
    });
    child.on('close', (c) => resolve(c ?? 1));
  });
  const { rows, lines } = summarize(output);
  const table = lines.join('\n');
  console.log(`\nbench:frameworks (${new Date().toISOString()}), every framework's v2 release and rollback under load:\n\n${table}\n`);
  const out = path.join(here, 'results', 'frameworks.md');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `# bench:frameworks, ${new Date().toISOString()}\n\n${table}\n`);
  const over = [...rows.values()].filter((r) => r.window && r.window.max > r.window.limit).length;
  const failed = [...rows.values()].reduce((n, r) => n + (r.failed ?? 0), 0);
  console.log(`${rows.size} cut-overs, ${over} over the no-stall limit, ${failed} failed requests; the test itself exited ${code}. Written to ${path.relative(root, out)}.`);
  process.exitCode = code !== 0 || rows.size === 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) void main();
