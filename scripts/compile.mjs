// Compiles the verbs in scripts/ to JavaScript in dist/ for the `cutover` executable (run by `npm run build`, npm's prepare, bootstrap and test/setup.sh), the manifest's validator as standalone code and the packages bundled in; dist/ is never committed.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { build } from 'esbuild';
import { writeStandaloneSchema } from './compile-schema.mjs';

const kit = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const scripts = path.join(kit, 'scripts');
const dist = path.join(kit, 'dist');
const verbs = fs.readdirSync(scripts).filter((n) => n.endsWith('.ts')).sort();

// dist/ holds only what this script writes: start it afresh so no chunk of an older build lingers.
fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(dist);
const t0 = performance.now();
// The manifest's validator as standalone code, generated from the schema as it is now; the verbs get it
// in place of scripts/lib/manifest/schema.ts, which compiles the schema with ajv at every run.
const schemaModule = path.join(dist, 'manifest-schema.js');
await writeStandaloneSchema(kit, schemaModule);
const manifestSchemaTs = path.join(scripts, 'lib', 'manifest', 'schema.ts');
// yaml's ES module build (what its package offers to everything but Node; the same code) instead of its
// CommonJS one: esbuild keeps only what the kit uses and Node runs no CommonJS wrappers (≈ 25 ms less
// per verb in the test host). The kit sets logLevel 'error', so its one difference (warnings through
// console.warn, not process.emitWarning) never shows.
const yamlEsm = path.join(path.dirname(createRequire(import.meta.url).resolve('yaml/package.json')), 'browser', 'index.js');
const yamlAsEsm = {
  name: 'yaml-esm',
  setup(b) {
    b.onResolve({ filter: /^yaml$/ }, () => ({ path: yamlEsm }));
  },
};
const standaloneSchema = {
  name: 'standalone-manifest-schema',
  setup(b) {
    b.onResolve({ filter: /\/schema\.ts$/ }, (args) => {
      const target = path.resolve(args.resolveDir, args.path);
      return target === manifestSchemaTs ? { path: schemaModule } : undefined;
    });
  },
};
await build({
  entryPoints: verbs.map((n) => path.join(scripts, n)),
  outdir: dist,
  bundle: true,
  // One chunk per module group the verbs import lazily: a verb loads only what it runs.
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node18',
  // The packages (yaml, zx/core, ajv's run-time helpers) are bundled in too: Node loads them as a few
  // ES modules instead of dozens of CommonJS files (status: ≈ 70 ms less). Their CommonJS code calls
  // require() for Node's own modules, which an ES module has to be given.
  banner: { js: "import { createRequire as cutoverCreateRequire } from 'node:module'; const require = cutoverCreateRequire(import.meta.url);" },
  chunkNames: 'chunks/[name]-[hash]',
  logLevel: 'warning',
  plugins: [standaloneSchema, yamlAsEsm],
});
fs.writeFileSync(path.join(dist, 'compiled.json'), JSON.stringify({ at: new Date().toISOString(), verbs: verbs.map((n) => n.replace(/\.ts$/, '')) }) + '\n');
console.log(`cutover: compiled ${verbs.length} verbs into ${path.relative(process.cwd(), dist) || dist} in ${Math.round(performance.now() - t0)} ms.`);
