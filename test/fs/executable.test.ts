// fs tier: the `cutover` executable (bin/cutover, running the verbs compiled to dist/) gives the same output and exit codes as `tsx scripts/<verb>.ts`, its standalone manifest validator agrees with the run-time one, and it falls back to tsx with a clear message when dist/ is missing or stale.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { checkManifest } from '../../scripts/lib/manifest/manifest.ts';
import { manifestValidator, type SchemaValidator } from '../../scripts/lib/manifest/schema.ts';
import { kitDir, makeFixture, runScript, scriptEnv, untilOutput, type Fixture, type RunResult } from '../helpers/kit.ts';
import { cleanupTempDirs, tempDir } from '../helpers/gitrepo.ts';

const VERBS = ['provision', 'release', 'activate', 'rollback', 'prune', 'status'];
const cutover = path.join(kitDir, 'bin', 'cutover');
let f: Fixture;

function exe(args: string[], bin = cutover): RunResult {
  const r = spawnSync(process.execPath, [bin, ...args], { env: scriptEnv(), encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, out: r.stdout + r.stderr };
}
const script = (verb: string, args: string[]) => runScript([path.join(kitDir, 'scripts', `${verb}.ts`), ...args], scriptEnv());
/**
 * Durations and ages differ from run to run; nothing else may. An age is right-aligned ("   9s", "  10s", "   2m"):
 * its padding goes with it, or a release that turns 10 s old between the two runs (a busy machine) differs.
 */
const steady = (s: string) => s.replace(/\.active\.\d+\.tmp/g, '.active.PID.tmp').replace(/\d+(\.\d+)? (ms|s)\b/g, 'T').replace(/ +\d+[smhd] /g, ' AGE ').replace(/"ageSeconds": \d+/g, '"ageSeconds": N');

async function same(verb: string, args: string[], what: string): Promise<RunResult> {
  const a = exe([verb, ...args]);
  const b = await script(verb, args);
  assert.is(a.code, b.code, `${what}: the same exit code\n--- cutover\n${a.out}\n--- tsx\n${b.out}`);
  assert.is(steady(a.stdout), steady(b.stdout), `${what}: the same stdout`);
  assert.is(steady(a.stderr), steady(b.stderr), `${what}: the same stderr`);
  return a;
}

test.before(async () => {
  const built = spawnSync('npm', ['run', '--silent', 'build'], { cwd: kitDir, encoding: 'utf8' });
  assert.is(built.status, 0, `npm run build: ${built.stderr}`);
  f = await makeFixture();
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
});
test.after(cleanupTempDirs);

test('every verb: --help is the same through the executable and the script, and names both forms', async () => {
  for (const verb of VERBS) {
    const r = await same(verb, ['--help'], `${verb} --help`);
    assert.is(r.code, 0);
    assert.match(r.stdout, new RegExp(`^Usage: cutover ${verb}.*\\n   or: npx tsx scripts/${verb}\\.ts`));
  }
});

test('every verb: a bad flag and a missing manifest exit 2 with the same words', async () => {
  for (const verb of VERBS) {
    assert.is((await same(verb, ['--bogus'], `${verb} --bogus`)).code, 2);
    assert.is((await same(verb, ['--manifest', '/nonexistent/app.yaml', ...(verb === 'release' ? ['main'] : verb === 'activate' ? ['0123456789ab'] : [])], `${verb} without its manifest`)).code, 2);
  }
});

test('dry runs and status print the same through the executable and the script', async () => {
  const id = f.active()!.replace(/^releases\//, '');
  const m = ['--manifest', f.manifest];
  await same('release', ['main', '--dry-run', ...m], 'release --dry-run');
  await same('activate', [id, '--dry-run', ...m], 'activate --dry-run');
  await same('rollback', ['--dry-run', ...m], 'rollback --dry-run');
  await same('prune', ['--dry-run', '--keep', '1', ...m], 'prune --dry-run');
  await same('status', m, 'status');
  await same('status', ['--json', ...m], 'status --json');
});

test('cutover alone lists the verbs; an unknown verb exits 2 naming them', () => {
  const help = exe([]);
  assert.is(help.code, 0);
  for (const verb of VERBS) assert.match(help.stdout, new RegExp(`^  ${verb} `, 'm'));
  assert.equal(exe(['--help']).stdout, help.stdout);
  const bad = exe(['deploy']);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /"deploy" is not a verb\.\n  The verbs are provision, release, activate, rollback, prune, status/);
});

/** The manifests both validators must judge alike: the examples, every fixture, and each schema key (and sub-key) given every kind of wrong value. */
function manifestsToCompare(schema: Record<string, unknown>): { name: string; text: string }[] {
  const out: { name: string; text: string }[] = [];
  const files = (dir: string) => fs.readdirSync(dir).filter((n) => n.endsWith('.yaml')).map((n) => path.join(dir, n));
  const fixtures = path.join(kitDir, 'test', 'fixtures', 'manifests');
  for (const file of [path.join(kitDir, 'config', 'app.yaml'), ...files(path.join(kitDir, 'config', 'examples')), ...files(path.join(fixtures, 'good')), ...files(path.join(fixtures, 'bad')), path.join(fixtures, 'many-errors.yaml')]) {
    out.push({ name: path.relative(kitDir, file), text: fs.readFileSync(file, 'utf8') });
  }
  const base = { app: 'shop', repo: 'https://github.com/acme/shop.git', start: 'node build' };
  const wrong: unknown[] = [null, true, -1, 0, 1.5, 100000, '', 'x', '-x', 'a\nb', '/abs', 'npm start', [], ['x', 'x'], [1], {}, { x: 1 }, { path: '/', command: 'true' }];
  const props = schema.properties as Record<string, { properties?: Record<string, unknown> }>;
  for (const [key, sub] of Object.entries(props)) {
    for (const v of wrong) out.push({ name: `${key}: ${JSON.stringify(v)}`, text: stringify({ ...base, [key]: v }) });
    for (const inner of Object.keys(sub.properties ?? {})) {
      for (const v of wrong) out.push({ name: `${key}.${inner}: ${JSON.stringify(v)}`, text: stringify({ ...base, [key]: { [inner]: v } }) });
    }
  }
  for (const key of Object.keys(base)) {
    const { [key]: _, ...without } = base as Record<string, string>;
    out.push({ name: `without ${key}`, text: stringify({ ...without, helth: 1, socket: 'preload', runtime: 'python' }) });
  }
  return out;
}

test('the standalone validator in dist/ and the run-time one agree on every example, every fixture and every kind of wrong value', async () => {
  const standalone = (await import(pathToFileURL(path.join(kitDir, 'dist', 'manifest-schema.js')).href)) as { manifestValidator(): SchemaValidator };
  const compiled = standalone.manifestValidator();
  const runtime = manifestValidator();
  assert.equal(compiled.schema, runtime.schema, 'the same schema');
  const cases = manifestsToCompare(runtime.schema);
  let refused = 0;
  for (const c of cases) {
    const a = checkManifest(c.text, 'm.yaml', compiled);
    const b = checkManifest(c.text, 'm.yaml', runtime);
    assert.equal(a, b, `${c.name}: the same problems and the same completed manifest`);
    if (a.problems.length > 0) refused++;
  }
  assert.ok(cases.length > 300 && refused > 250, `compared ${cases.length} manifests, ${refused} refused: the comparison must cover bad manifests`);
  // ajv's raw errors too (keyword, path, params, data, schema), on a manifest with many problems.
  const many = { app: 'X', repo: ['r'], start: 1, port: 80, health: { path: 'x', command: 'y' }, env: { PORT: '1', '1A': 'b' }, keep: 0, helth: 1 };
  const data = () => structuredClone(many);
  assert.is(compiled.validate(data()), false);
  assert.is(runtime.validate(data()), false);
  assert.ok((runtime.validate.errors ?? []).length >= 8);
  assert.equal(compiled.validate.errors, runtime.validate.errors);
});

test('the compiled verbs never load ajv itself: the validator is generated code, the packages are bundled in', () => {
  const files = [path.join(kitDir, 'dist'), path.join(kitDir, 'dist', 'chunks')].flatMap((d) => fs.readdirSync(d).filter((n) => n.endsWith('.js')).map((n) => path.join(d, n)));
  assert.ok(files.length > 6);
  for (const file of files) {
    const js = fs.readFileSync(file, 'utf8');
    assert.not.match(js, /ajv\/dist\/(compile|core|ajv)/, `${path.relative(kitDir, file)} has ajv's compiler in it`);
    assert.not.match(js, /^import [^;]*from ["'](ajv|yaml|zx)/m, `${path.relative(kitDir, file)} imports a package from node_modules instead of bundling it`);
  }
  // The standalone module is built from the schema file at every build: a key added there is in it.
  const schemaKeys = Object.keys(manifestValidator().schema.properties as object);
  const generated = fs.readFileSync(path.join(kitDir, 'dist', 'manifest-schema.js'), 'utf8');
  for (const key of schemaKeys) assert.ok(generated.includes(JSON.stringify(key)), `the generated validator knows ${key}`);
});

test('a bad manifest: the executable and the script print the same problems (and nothing from yaml itself)', async () => {
  const dir = await tempDir('cutover-bad-manifest');
  const many = path.join(dir, 'bad.yaml');
  fs.copyFileSync(path.join(kitDir, 'test', 'fixtures', 'manifests', 'many-errors.yaml'), many);
  // A list as a key: yaml would warn on its own (process.emitWarning in its Node build, console.warn in the ES build the executable bundles).
  const listKey = path.join(dir, 'list-key.yaml');
  fs.writeFileSync(listKey, 'app: shop\nrepo: https://github.com/acme/shop.git\nstart: node build\n? [a, b]\n: 1\n');
  for (const verb of ['status', 'prune']) {
    const r = await same(verb, ['--manifest', many], `${verb} with a bad manifest`);
    assert.is(r.code, 2);
    assert.match(r.stderr, /problems:\n/);
    const k = await same(verb, ['--manifest', listKey], `${verb} with a list as a key`);
    assert.is(k.code, 2);
    assert.match(k.stderr, /^cutover: The manifest \S+ has 1 problem:\n.*unknown key '\[ a, b \]'/);
    assert.not.match(k.stderr, /Warning|Keys with collection values/);
  }
});

/** A copy of the kit, its node_modules linked: never compiled (no dist/), or with dist/ as it is (`compiled`, times kept). */
async function kitCopy(opts: { compiled?: boolean } = {}): Promise<string> {
  const copy = await tempDir('cutover-kit');
  const dirs = ['bin', 'scripts', 'config', 'templates', ...(opts.compiled ? ['dist'] : [])];
  for (const d of dirs) fs.cpSync(path.join(kitDir, d), path.join(copy, d), { recursive: true, preserveTimestamps: true });
  fs.copyFileSync(path.join(kitDir, 'package.json'), path.join(copy, 'package.json'));
  fs.symlinkSync(path.join(kitDir, 'node_modules'), path.join(copy, 'node_modules'));
  return copy;
}

test('without dist/ (never compiled) the executable says so, how to rebuild, and runs the verb through tsx', async () => {
  const copy = await kitCopy();
  const r = exe(['status', '--help'], path.join(copy, 'bin', 'cutover'));
  assert.is(r.code, 0, r.out);
  assert.match(r.stderr, /the compiled kit \(dist\/\) is missing: running it through tsx instead \(slower\)\. Rebuild it with `npm run build` in /);
  assert.is(r.stdout, (await script('status', ['--help'])).stdout);
  const bad = exe(['status', '--bogus'], path.join(copy, 'bin', 'cutover'));
  assert.is(bad.code, 2, 'the exit code comes through the fallback');
});

test('through tsx the verb runs in the executable\'s own process: it holds the lock itself, and kill -9 of `cutover` leaves nothing running', async () => {
  const copy = await kitCopy();
  const f = await makeFixture({ build: 'test ! -f SLOW || sleep 300; npm run build' });
  const slow = await f.repo.commit({ SLOW: '' }, 'slow');
  const child = spawn(process.execPath, [path.join(copy, 'bin', 'cutover'), 'release', slow, '--manifest', f.manifest], { env: scriptEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((r) => child.once('exit', r));
  await untilOutput(child, /==> build: /);
  const holder = JSON.parse(fs.readFileSync(path.join(f.root, 'cutover.lock'), 'utf8'));
  assert.is(holder.pid, child.pid, 'the process started is the verb that holds the lock (no wrapper around a child)');
  child.kill('SIGKILL');
  await exited;
  const next = await f.repo.commit({ SLOW: null }, 'quick');
  const r = await f.run('release', [next]);
  assert.is(r.code, 0, `the next release takes the lock at once:\n${r.out}`);
});

test('a schema newer than dist/ makes it stale: the executable names the file and runs the verb through tsx', async () => {
  const copy = await kitCopy({ compiled: true });
  const bin = path.join(copy, 'bin', 'cutover');
  const fresh = exe(['status', '--help'], bin);
  assert.is(fresh.stderr, '', `a fresh copy of dist/ is used as it is: ${fresh.stderr}`);
  const later = new Date(Date.now() + 60_000);
  fs.utimesSync(path.join(copy, 'config', 'manifest.schema.json'), later, later);
  const r = exe(['status', '--help'], bin);
  assert.is(r.code, 0, r.out);
  assert.match(r.stderr, /^cutover: the compiled kit \(dist\/\) is older than config\/manifest\.schema\.json: running it through tsx instead \(slower\)\. Rebuild it with `npm run build` in /);
  assert.is(r.stdout, (await script('status', ['--help'])).stdout);
});

test.run();
