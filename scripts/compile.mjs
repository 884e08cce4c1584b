// Compiles the verbs in scripts/ to JavaScript in dist/ for the `cutover` executable (run by `npm run build`, npm's prepare, bootstrap and test/setup.sh); dist/ is never committed.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const kit = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const scripts = path.join(kit, 'scripts');
const dist = path.join(kit, 'dist');
const verbs = fs.readdirSync(scripts).filter((n) => n.endsWith('.ts')).sort();

// dist/ holds only what this script writes: start it afresh so no chunk of an older build lingers.
fs.rmSync(dist, { recursive: true, force: true });
const t0 = performance.now();
await build({
  entryPoints: verbs.map((n) => path.join(scripts, n)),
  outdir: dist,
  bundle: true,
  // One chunk per module group the verbs import lazily: a verb loads only what it runs.
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node18',
  packages: 'external',
  chunkNames: 'chunks/[name]-[hash]',
  logLevel: 'warning',
});
fs.writeFileSync(path.join(dist, 'compiled.json'), JSON.stringify({ at: new Date().toISOString(), verbs: verbs.map((n) => n.replace(/\.ts$/, '')) }) + '\n');
console.log(`cutover: compiled ${verbs.length} verbs into ${path.relative(process.cwd(), dist) || dist} in ${Math.round(performance.now() - t0)} ms.`);
