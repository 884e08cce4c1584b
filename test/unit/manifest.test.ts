// Unit tests for the manifest: the examples validate, defaults apply, and every bad fixture is refused naming its field and line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  checkManifest,
  cronProblems,
  loadManifest,
  manifestProblems,
  manifestSchema,
  parseManifest,
  relativePathProblems,
  rootProblems,
  userProblems,
  type Manifest,
} from '../../scripts/lib/manifest/manifest.ts';
import { ExitCode, UsageError } from '../../scripts/lib/run/errors.ts';

const kit = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = path.join(kit, 'test', 'fixtures', 'manifests');
const examples = path.join(kit, 'config', 'examples');

interface Expectation {
  field: string;
  line: number;
}

/** The `# expect: <field> line <N>` comments at the top of a fixture. */
function expectations(text: string): Expectation[] {
  const found: Expectation[] = [];
  for (const line of text.split('\n')) {
    const m = /^# expect: (\S+) line (\d+)$/.exec(line);
    if (!m) break;
    found.push({ field: m[1], line: Number(m[2]) });
  }
  return found;
}

/** Runs fn, which must throw a UsageError; returns it. */
function usageErrorOf(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, UsageError);
    return e as UsageError;
  }
  assert.unreachable('expected a UsageError');
  throw new Error('unreachable');
}

function parse(text: string): Manifest {
  return parseManifest(text, 'test.yaml');
}

function problemsOf(text: string) {
  return checkManifest(text, 'test.yaml').problems;
}

const minimal = 'app: shop\nrepo: https://github.com/acme/shop.git\nstart: node build\n';

// ---------------------------------------------------------------------------------------------
// Good manifests

for (const name of readdirSync(examples).filter((f) => f.endsWith('.yaml'))) {
  test(`the example ${name} validates`, async () => {
    const m = await loadManifest(path.join(examples, name));
    assert.is(m.file, path.join(examples, name));
    assert.ok(m.start.length > 0);
  });
}

test('the examples cover SvelteKit and Next.js (preload: the warm-up), Flask and Django (python, socket)', async () => {
  const svelte = await loadManifest(path.join(examples, 'sveltekit.yaml'));
  const next = await loadManifest(path.join(examples, 'nextjs.yaml'));
  const flask = await loadManifest(path.join(examples, 'flask.yaml'));
  const django = await loadManifest(path.join(examples, 'django.yaml'));
  assert.is(svelte.socket, 'preload', "adapter-node's own listen({ fd: 3 }) is adopted after the warm-up");
  assert.is(next.socket, 'preload');
  for (const py of [flask, django]) {
    assert.is(py.runtime, 'python');
    assert.is(py.socket, true);
    assert.match(py.start, /^\.venv\/bin\/python -m gunicorn /);
  }
  assert.equal(svelte.assets, ['build/client/_app/immutable']);
  assert.equal(next.assets, ['.next/static']);
  assert.equal(next.cache, ['.next/cache']);
  assert.equal(next.writable, ['.next/cache/images'], "next/image's cache: the one place next start writes in a sealed release");
  assert.match(svelte.install!, /--include=dev/, 'vite is a devDependency: NODE_ENV=production alone would skip it');
});

// Each config/examples/<name>.yaml deploys examples/<name>-app: its start, build and asset dirs name files of that app.
const exampleApps: Record<string, { dir: string; startFile: string; assetSource: string }> = {
  'sveltekit.yaml': { dir: 'sveltekit-app', startFile: 'svelte.config.js', assetSource: 'src/routes/+page.svelte' },
  'nextjs.yaml': { dir: 'nextjs-app', startFile: 'next.config.js', assetSource: 'app/page.js' },
  'flask.yaml': { dir: 'flask-app', startFile: 'app.py', assetSource: 'build_assets.py' },
  'django.yaml': { dir: 'django-app', startFile: 'mysite/wsgi.py', assetSource: 'mysite/settings.py' },
};
for (const [name, app] of Object.entries(exampleApps)) {
  test(`config/examples/${name} is the manifest of examples/${app.dir}`, async () => {
    const m = await loadManifest(path.join(examples, name));
    const dir = path.join(kit, 'examples', app.dir);
    for (const file of [app.startFile, app.assetSource]) assert.ok(existsSync(path.join(dir, file)), `${app.dir}/${file} exists`);
    const lock = m.runtime === 'node' ? 'package-lock.json' : 'requirements.txt';
    assert.ok(existsSync(path.join(dir, lock)), `${app.dir} commits its ${lock}`);
    if (m.runtime === 'node') {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
      assert.ok(pkg.scripts.build, 'npm run build exists');
      const lockfile = JSON.parse(readFileSync(path.join(dir, 'package-lock.json'), 'utf8'));
      assert.is(lockfile.lockfileVersion, 3, 'written by npm 9 (the test host\'s), which npm ci there accepts');
    }
    assert.ok(m.assets.length > 0, 'it declares its content-hashed assets');
  });
}

test('a start through npm or npx with a socket is refused, naming the form that works', () => {
  const start = (s: string, socket = 'preload') => problemsOf(minimal.replace('start: node build', `start: ${s}`) + `socket: ${socket}\n`);
  const [npx] = start('npx next start --hostname 127.0.0.1');
  assert.is(npx.path, 'start');
  assert.match(npx.message, /npx, which does not pass the socket \(fd 3\)/);
  assert.match(npx.message, /`node node_modules\/next\/dist\/bin\/next start --hostname 127\.0\.0\.1`/);
  assert.match(start('npm start', 'true')[0].message, /through npm.*socket: true.*EADDRINUSE/);
  assert.match(start('NODE_ENV=x exec npm run serve')[0].message, /through npm/);
  assert.match(start('npx vite preview')[0].message, /node node_modules\/\.bin\/vite preview/);
  assert.equal(start('node node_modules/next/dist/bin/next start'), []);
  assert.equal(problemsOf(minimal.replace('start: node build', 'start: npm start')), [], 'without a socket npm start is fine');
});

test('assets and cache are directories inside the release, never under a shared path', () => {
  const dirs = (yaml: string) => problemsOf(minimal + yaml).map((p) => `${p.path}: ${p.message}`);
  assert.equal(dirs('assets: [build/client/_app/immutable, static/]\ncache: [.next/cache]\n'), []);
  const bad = dirs('shared: [uploads/]\nassets: [a//b, uploads/img, -x]\ncache: [../up, /abs]\n');
  assert.is(bad.length, 5, bad.join('\n'));
  assert.match(dirs('cache: [.cutover-assets.json]\n').join(''), /is a file cutover writes in every release/);
  assert.match(bad.join('\n'), /assets\[0\]: must be written plainly/);
  assert.match(bad.join('\n'), /assets\[1\]: overlaps the shared path 'uploads'/);
  assert.match(bad.join('\n'), /cache\[0\]: must be a directory inside the release/);
});

test('writable dirs: inside the release, out of shared paths and asset dirs, never holding a build cache', () => {
  const dirs = (yaml: string) => problemsOf(minimal + yaml).map((p) => `${p.path}: ${p.message}`);
  assert.equal(dirs('cache: [.next/cache]\nassets: [.next/static]\nwritable: [.next/cache/images, tmp/uploads/]\n'), [], 'inside a cache dir is fine (left out of its copy)');
  assert.equal(parse(minimal).writable, [], 'default none');
  const bad = dirs(
    'shared: [public/uploads/]\nassets: [.next/static]\ncache: [.next/cache, build/cache]\n' +
      'writable: [.next/cache, build, .next/static/media, .next, public/uploads/x, a//b, .cutover-assets.json]\n',
  );
  const text = bad.join('\n');
  assert.is(bad.length, 7, text);
  assert.match(text, /writable\[0\]: is the build cache '\.next\/cache', which is copied into the next release's build; .*e\.g\. '\.next\/cache\/images'/);
  assert.match(text, /writable\[1\]: holds the build cache 'build\/cache'/);
  assert.match(text, /writable\[2\]: overlaps the asset dir '\.next\/static', whose files later releases share/);
  assert.match(text, /writable\[3\]: overlaps the asset dir '\.next\/static'/, 'a dir holding an asset dir');
  assert.match(text, /writable\[4\]: overlaps the shared path 'public\/uploads'/);
  assert.match(text, /writable\[5\]: must be written plainly/);
  assert.match(text, /writable\[6\]: .*is a file cutover writes in every release/);
  const outside = dirs('writable: [../up, /abs]\n').join('\n');
  assert.match(outside, /writable\[0\]: must be a directory inside the release/);
  assert.match(outside, /writable\[1\]: must be a directory inside the release/);
});

test('config/app.yaml is the demo app', async () => {
  const m = await loadManifest(path.join(kit, 'config', 'app.yaml'));
  assert.is(m.app, 'demo');
  assert.is(m.root, '/usr/local/src/demo');
  assert.is(m.user, 'demo');
  assert.is(m.runtime, 'node');
  assert.is(m.start, 'node server.js');
  assert.is(m.port, 3000);
  assert.equal(m.health, { path: '/health', timeout: 30 });
});

test('a minimal manifest gets every default', () => {
  const m = parse(minimal);
  assert.equal(m, {
    app: 'shop',
    repo: 'https://github.com/acme/shop.git',
    start: 'node build',
    file: path.resolve('test.yaml'),
    root: '/usr/local/src/shop',
    user: 'shop',
    runtime: 'node',
    env: {},
    shared: [],
    assets: [],
    assets_keep: 2,
    cache: [],
    writable: [],
    port: 3000,
    socket: false,
    health: { path: '/', timeout: 30 },
    timeouts: { install: 1800, build: 1800, migrate: 1800 },
    preflight: true,
    stop_timeout: 30,
    keep: 5,
    prune: { schedule: '17 3 * * *' },
    hooks: {},
  });
});

test('the defaults applied are the ones written in the schema', () => {
  const props = manifestSchema().properties as Record<string, { default?: unknown }>;
  const m = parse(minimal) as unknown as Record<string, unknown>;
  for (const [key, prop] of Object.entries(props)) {
    if ('default' in prop) assert.equal(m[key], prop.default, `default of ${key}`);
  }
});

test('a partial health, prune or timeouts gets the nested defaults', () => {
  const m = parse(minimal + 'health: { command: "true" }\nprune: {}\ntimeouts: { build: 60 }\n');
  assert.equal(m.health, { command: 'true', timeout: 30 });
  assert.equal(m.prune, { schedule: '17 3 * * *' });
  assert.equal(m.timeouts, { install: 1800, build: 60, migrate: 1800 });
});

test('a repository path on the host must be absolute; URLs and host:path are fine', () => {
  for (const repo of ['https://github.com/acme/shop.git', 'ssh://git@git.example.com:2222/acme/shop.git', 'git@github.com:acme/shop.git', '/srv/git/shop.git', 'file:///srv/git/shop.git']) {
    assert.equal(problemsOf(minimal.replace('https://github.com/acme/shop.git', repo)), [], repo);
  }
  for (const repo of ['shop.git', '../git/shop.git', './shop', '~/shop.git']) {
    const p = problemsOf(minimal.replace('https://github.com/acme/shop.git', repo));
    assert.equal(p.map((x) => [x.path, x.line]), [['repo', 2]], repo);
    assert.match(p[0].message, /is a relative path.*write it absolute \(e\.g\. '\/srv\/git\//);
  }
});

test('hooks get their defaults (as app, 60 s) and keep their order', () => {
  const m = parse(minimal + 'hooks:\n  before_cutover:\n    - run: ./bin/check\n    - { run: "curl -fsS https://example.com/drain", as: root, timeout: 5 }\n');
  assert.equal(m.hooks.before_cutover, [
    { run: './bin/check', as: 'app', timeout: 60 },
    { run: 'curl -fsS https://example.com/drain', as: 'root', timeout: 5 },
  ]);
  assert.is(m.hooks.after_cutover, undefined);
});

test('a bad hook is named by its point and index, with what is wrong', () => {
  const unknown = problemsOf(minimal + 'hooks:\n  before_deploy:\n    - run: x\n');
  assert.is(unknown.length, 1);
  assert.is(unknown[0].path, 'hooks.before_deploy');
  assert.match(unknown[0].message, /before_cutover/);
  const noRun = problemsOf(minimal + 'hooks:\n  after_cutover:\n    - as: root\n');
  assert.equal(noRun.map((p) => [p.path, p.line]), [['hooks.after_cutover[0].run', 6]]);
  assert.match(noRun[0].message, /is required/);
  const who = problemsOf(minimal + 'hooks:\n  after_build:\n    - { run: x, as: www-data }\n');
  assert.equal(who.map((p) => p.path), ['hooks.after_build[0].as']);
  assert.match(who[0].message, /'app' or 'root'/);
  const long = problemsOf(minimal + 'hooks:\n  after_rollback:\n    - { run: x, timeout: 7200 }\n');
  assert.match(long[0].message, /at most 3600/);
  const twoLines = problemsOf(minimal + 'hooks:\n  after_failure:\n    - run: "a\\nb"\n');
  assert.match(twoLines[0].message, /one non-empty line/);
});

test("values meant for units and cron may hold '%', '$' and quotes (the renderer escapes them)", () => {
  const m = parseManifest(readFileSync(path.join(fixtures, 'good', 'everything.yaml'), 'utf8'), 'everything.yaml');
  assert.is(m.env.GREETING, '100% "ready" for $USER\'s ${HOME} `x`');
  assert.is(m.env.EMPTY, '');
  assert.is(m.start, "node --max-old-space-size=256 build/index.js --name '%n $PORT'");
  assert.equal(m.health, { command: 'curl -fsS "http://127.0.0.1:$PORT/health?full=1"', timeout: 600 });
  assert.is(m.socket, 'preload');
  assert.is(m.root, '/tmp/cutover-test/shop');
  assert.is(m.user, '_shop');
  assert.is(m.preflight, false);
  assert.is(m.keep, 1);
  assert.equal(m.shared, ['config/secrets.env', 'uploads/', 'storage/logs/', 'storage/sessions/']);
});

test('the good fixtures have no problems', () => {
  for (const name of readdirSync(path.join(fixtures, 'good'))) {
    const file = path.join(fixtures, 'good', name);
    assert.equal(manifestProblems(readFileSync(file, 'utf8'), file), [], name);
  }
});

// ---------------------------------------------------------------------------------------------
// The schema itself

test('every field in the schema has a one-line description, and every object refuses unknown keys', () => {
  const walk = (schema: Record<string, unknown>, where: string): void => {
    const props = schema.properties as Record<string, Record<string, unknown>> | undefined;
    if (schema.type === 'object' && props) assert.is(schema.additionalProperties, false, `${where} allows unknown keys`);
    for (const [key, prop] of Object.entries(props ?? {})) {
      const description = prop.description;
      assert.type(description, 'string', `${where}.${key} has no description`);
      assert.not.match(description as string, /\n/, `${where}.${key} has a multi-line description`);
      walk(prop, `${where}.${key}`);
    }
  };
  walk(manifestSchema(), 'manifest');
});

// ---------------------------------------------------------------------------------------------
// The semantic checks, directly

test('roots: own directories are fine, system directories and odd spellings are not', () => {
  for (const ok of ['/var/lib/shop', '/srv/shop', '/opt/shop', '/usr/local/src/shop', '/home/deploy/shop', '/tmp/x', '/data']) {
    assert.equal(rootProblems(ok), [], ok);
  }
  for (const bad of ['/', '/etc', '/usr', '/var', '/home', '/root', '/tmp', '/usr/local/src', '/etc/shop', '/usr/bin/x',
    '/usr/lib/shop', '/proc/1', '/boot/x', '/root/app', '/var/log/shop', '/srv/../etc', '/srv/./shop', '/srv//shop', '/srv/shop/']) {
    assert.is(rootProblems(bad).length, 1, bad);
  }
});

test('users: root and shared system accounts are refused', () => {
  for (const bad of ['root', 'toor', 'daemon', 'nobody', 'www-data', 'systemd-network']) assert.is(userProblems(bad).length, 1, bad);
  for (const ok of ['shop', 'deploy', '_svc', 'app-1']) assert.equal(userProblems(ok), [], ok);
});

test('shared paths: relative, plain, inside shared/', () => {
  for (const ok of ['.env', 'uploads/', 'storage/app/public/', 'a.b@c+d']) assert.equal(relativePathProblems(ok, true), [], ok);
  for (const bad of ['/etc/', '../x', 'a/../../b', 'a//b', './a', '-rf', 'a/-x']) assert.is(relativePathProblems(bad, true).length, 1, bad);
  assert.is(relativePathProblems('secrets/', false).length, 1);
});

test('cron schedules: the 5 fields with their ranges, names, lists and steps', () => {
  for (const ok of ['17 3 * * *', '*/15 * * * *', '0 0 1 jan,jul sun', '0 9-17/2 * * mon-fri', '59 23 31 12 7', '0 0 * * 0']) {
    assert.equal(cronProblems(ok), [], ok);
  }
  for (const bad of ['60 * * * *', '* 24 * * *', '* * 0 * *', '* * * 13 *', '* * * * 8', '5-1 * * * *', '*/0 * * * *',
    '* * * * funday', '@daily', '* * * *', '* * * * * *', '1,,2 * * * *', '17 3 * * * %']) {
    assert.ok(cronProblems(bad).length > 0, bad);
  }
});

// ---------------------------------------------------------------------------------------------
// The corpus of bad manifests

const badDir = path.join(fixtures, 'bad');
const badFiles = readdirSync(badDir).filter((f) => f.endsWith('.yaml')).sort();

test('the corpus holds at least 40 bad manifests, each saying what it expects', () => {
  assert.ok(badFiles.length >= 40, `only ${badFiles.length} bad manifests`);
  for (const name of badFiles) {
    assert.ok(expectations(readFileSync(path.join(badDir, name), 'utf8')).length > 0, `${name} has no "# expect:" line`);
  }
});

for (const name of badFiles) {
  test(`bad/${name} is refused, naming its field and line`, () => {
    const file = path.join(badDir, name);
    const text = readFileSync(file, 'utf8');
    const e = usageErrorOf(() => parseManifest(text, file));
    assert.is(e.exitCode, ExitCode.usage);
    assert.match(e.hint ?? '', file);
    for (const { field, line } of expectations(text)) {
      const want = `${file}:${line}: ${field}: `;
      assert.ok(e.message.includes(want), `expected "${want}" in:\n${e.message}`);
    }
  });
}

test('loadManifest refuses a bad file the same way', async () => {
  const file = path.join(badDir, 'root-etc.yaml');
  try {
    await loadManifest(file);
    assert.unreachable('root: /etc was accepted');
  } catch (e) {
    assert.instance(e, UsageError);
    assert.is((e as UsageError).exitCode, 2);
    assert.match((e as UsageError).message, `${file}:5: root: is the system directory /etc`);
  }
});

test('a manifest with many mistakes reports every one of them at once, in line order', () => {
  const file = path.join(fixtures, 'many-errors.yaml');
  const text = readFileSync(file, 'utf8');
  const problems = manifestProblems(text, file);
  const expected = expectations(text);
  assert.is(problems.length, expected.length, problems.join('\n'));
  expected.forEach(({ field, line }, i) => assert.ok(problems[i].startsWith(`${file}:${line}: ${field}: `), problems[i]));
  const e = usageErrorOf(() => parseManifest(text, file));
  assert.match(e.message, `has ${expected.length} problems:`);
  for (const p of problems) assert.ok(e.message.includes(p), p);
});

test('an unknown key is named, with the likely meaning', () => {
  const [p] = manifestProblems(minimal + 'helth:\n  path: /\n', 'm.yaml');
  assert.is(p, "m.yaml:4: helth: unknown key 'helth' (did you mean 'health'?).");
  const [q] = manifestProblems(minimal + 'Port: 3000\n', 'm.yaml');
  assert.match(q, "unknown key 'Port' (did you mean 'port'?)");
});

test('a value of the wrong type is reported once, with a way to fix it', () => {
  const problems = manifestProblems(minimal + 'health: /health\nenv: { WORKERS: 4 }\n', 'm.yaml');
  assert.equal(problems, [
    "m.yaml:4: health: must be a mapping, not '/health'.",
    'm.yaml:5: env.WORKERS: must be a string, not 4; quote it: "4".',
  ]);
});

test('socket: preload is for Node apps only', () => {
  assert.equal(manifestProblems(minimal + 'runtime: node\nsocket: preload\n', 'm.yaml'), []);
  assert.match(manifestProblems(minimal + 'runtime: python\nsocket: preload\n', 'm.yaml')[0], 'm.yaml:5: socket:');
});

// ---------------------------------------------------------------------------------------------
// Files that cannot be read

test('a missing manifest file is a usage error that says so', async () => {
  try {
    await loadManifest('/nonexistent/cutover/app.yaml');
    assert.unreachable('a missing file was accepted');
  } catch (e) {
    assert.instance(e, UsageError);
    assert.is((e as UsageError).exitCode, 2);
    assert.match((e as UsageError).message, 'The manifest /nonexistent/cutover/app.yaml does not exist.');
    assert.match((e as UsageError).hint ?? '', '--manifest');
  }
});

test('a directory given as the manifest is a usage error', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cutover-manifest-'));
  try {
    await loadManifest(dir);
    assert.unreachable('a directory was accepted');
  } catch (e) {
    assert.instance(e, UsageError);
    assert.match((e as UsageError).message, 'is a directory');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
