// fs tier: hostile or mistaken input: bad refs and release ids, repositories that plant files or symlinks where shared
// paths go, and missing or invalid manifests. Each is refused (or defused) and changes nothing it should not.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { kitDir, makeFixture, runScript, scriptEnv, snapshot, type Fixture, type RunResult } from '../helpers/kit.ts';
import { cleanupTempDirs, tempDir } from '../helpers/gitrepo.ts';

let f: Fixture;
let c1: string;
let liveId: string;
const ETC_PROBE = '/etc/app.ini';
const etcProbeExisted = fs.existsSync(ETC_PROBE);

/** Runs a verb with --manifest first, so the test's arguments (even `--`) come last. */
function run(verb: string, args: string[] = [], manifest = f.manifest): Promise<RunResult> {
  return runScript([path.join(kitDir, 'scripts', `${verb}.ts`), '--manifest', manifest, ...args], scriptEnv());
}

/** The deployment as it is: everything under the root but the mirror (a fetch may update it) and the lock's mtime. */
function deployment(): Record<string, string> {
  const s = snapshot(f.root);
  for (const k of Object.keys(s)) if (k === 'repo' || k.startsWith('repo/')) delete s[k];
  if (s['cutover.lock']) s['cutover.lock'] = s['cutover.lock'].replace(/ [\d.]+$/, '');
  return s;
}

const shown = (s: string) => JSON.stringify(s).slice(1, -1);

test.before(async () => {
  f = await makeFixture({ keep: 10, shared: ['.env', 'uploads/', 'conf/app.ini'] });
  c1 = await f.repo.head();
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  liveId = c1.slice(0, 12);
  fs.writeFileSync(path.join(f.root, 'shared', '.env'), 'SECRET=operator\n');
});
test.after(async () => {
  if (!etcProbeExisted) fs.rmSync(ETC_PROBE, { force: true });
  await cleanupTempDirs();
});

test('refs that are options, revision expressions, paths or hold spaces or newlines exit 2, naming the ref, and touch nothing', async () => {
  // More shapes are covered by test/unit/git-ref.test.ts; these go through the real script.
  const refs = ['../x', 'a b', 'a\nb', 'HEAD:VERSION', 'main~1'];
  const before = snapshot(f.dir);
  const results = await Promise.all([...refs.map((ref) => run('release', ['--', ref])), run('release', ['-rf'])]);
  refs.forEach((ref, i) => {
    const r = results[i];
    assert.is(r.code, 2, `${shown(ref)}: ${r.out}`);
    assert.ok(r.stderr.includes(`"${shown(ref)}"`), `the message names ${shown(ref)}: ${r.stderr}`);
  });
  const opt = results.at(-1)!;
  assert.is(opt.code, 2, opt.out);
  assert.match(opt.stderr, /Unknown option '-r'/);
  const dashed = await run('release', ['--', '-rf']);
  assert.is(dashed.code, 2, dashed.out);
  assert.match(dashed.stderr, /"-rf" starts with "-"/);
  assert.equal(snapshot(f.dir), before, 'nothing changed anywhere, not even the mirror or the lock file');
});

test('an unknown branch, tag or hash exits 2 naming it, and the deployment is unchanged', async () => {
  // A commit on a branch that the fetch below brings into the mirror; the next test deletes the branch.
  await f.repo.branch('tmp');
  await f.repo.commit({ VERSION: 'tmp\n' }, 'on a branch about to go');
  await f.repo.branch('main');
  const before = deployment();
  const name = await run('release', ['no-such-branch']);
  assert.is(name.code, 2, name.out);
  assert.match(name.stderr, /No branch or tag named "no-such-branch"/);
  const hash = await run('release', ['abcdef0123']);
  assert.is(hash.code, 2, hash.out);
  assert.match(hash.stderr, /No commit "abcdef0123"/);
  assert.equal(deployment(), before);
  assert.is(f.active(), `releases/${liveId}`);
});

test('a commit on no branch or tag (its branch was deleted) exits 2 naming it', async () => {
  const orphan = await f.repo.git('rev-parse', 'tmp');
  await f.repo.git('branch', '-D', 'tmp');
  const mirror = path.join(f.root, 'repo');
  await $({ quiet: true })`git --git-dir ${mirror} cat-file -e ${orphan + '^{commit}'}`; // the mirror has the object
  const before = deployment();
  for (const ref of [orphan, orphan.slice(0, 9)]) {
    const r = await run('release', [ref]);
    assert.is(r.code, 2, `${ref}: ${r.out}`);
    assert.match(r.stderr, new RegExp(`${orphan.slice(0, 12)} is on no branch or tag`));
  }
  assert.equal(deployment(), before);
  assert.not.ok(fs.existsSync(path.join(f.root, 'releases', orphan.slice(0, 12))));
});

test('a branch and a tag of the same name at different commits are ambiguous: exit 2 naming both', async () => {
  await f.repo.git('branch', 'dup', c1);
  const c2 = await f.repo.commit({ VERSION: '2\n' }, 'v2');
  await f.repo.tag('dup', c2, 'a tag named like a branch');
  const before = deployment();
  const r = await run('release', ['dup']);
  assert.is(r.code, 2, r.out);
  assert.match(r.stderr, /"dup" is ambiguous/);
  assert.ok(r.stderr.includes(c1.slice(0, 12)) && r.stderr.includes(c2.slice(0, 12)), r.stderr);
  const dry = await run('release', ['dup', '--dry-run']);
  assert.is(dry.code, 2, `a dry run says the same: ${dry.out}`);
  assert.match(dry.stderr, /"dup" is ambiguous/);
  assert.equal(deployment(), before);
  await f.repo.git('tag', '-d', 'dup');
  await f.repo.git('branch', '-D', 'dup');
});

test('release ids that are not ids exit 2 for activate and rollback --to, and change nothing', async () => {
  const before = snapshot(f.root);
  const ids = ['../x', '-rf', 'abc', `${liveId}/../..`];
  const results = await Promise.all([
    ...ids.map((id) => run('activate', ['--', id])),
    ...ids.map((id) => run('rollback', [`--to=${id}`])),
  ]);
  [...ids, ...ids].forEach((id, i) => {
    const r = results[i];
    assert.is(r.code, 2, `${i < ids.length ? 'activate' : 'rollback --to'} ${shown(id)}: ${r.out}`);
    assert.ok(r.stderr.includes(`"${shown(id)}" is not a release id`), `names ${shown(id)}: ${r.stderr}`);
  });
  assert.equal(snapshot(f.root), before);
});

test('a repository that commits a file where a shared path goes gets the shared one; shared/.env is not overwritten', async () => {
  const sha = await f.repo.commit({ '.env': 'SECRET=from-the-repo\n', 'conf/app.ini': 'from=repo\n' }, 'commits its own .env');
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  const dir = path.join(f.root, 'releases', sha.slice(0, 12));
  assert.is(fs.readlinkSync(path.join(dir, '.env')), path.join(f.root, 'shared', '.env'));
  assert.is(fs.readlinkSync(path.join(dir, 'conf', 'app.ini')), path.join(f.root, 'shared', 'conf', 'app.ini'));
  assert.is(fs.readFileSync(path.join(f.root, 'shared', '.env'), 'utf8'), 'SECRET=operator\n');
  assert.is(fs.readFileSync(path.join(f.root, 'shared', 'conf', 'app.ini'), 'utf8'), '');
  assert.match(r.stdout, /has its own \.env: replaced by the shared one/);
  await f.repo.commit({ '.env': null, conf: null }, 'drop them');
  liveId = sha.slice(0, 12);
});

test('a repository symlink pointing outside the root, where a shared directory goes, writes nothing outside', async () => {
  const outside = await tempDir('cutover-outside');
  fs.writeFileSync(path.join(outside, 'precious'), 'do not touch\n');
  const stat = (p: string) => {
    const s = fs.lstatSync(p);
    return `${s.uid}:${s.gid}:${s.mode.toString(8)}`;
  };
  const before = snapshot(outside);
  const owners = [stat(outside), stat(path.join(outside, 'precious'))];
  fs.symlinkSync(outside, path.join(f.repo.dir, 'uploads'));
  const sha = await f.repo.commit({}, 'uploads is a symlink out of the tree');
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  const dir = path.join(f.root, 'releases', sha.slice(0, 12));
  assert.is(fs.readlinkSync(path.join(dir, 'uploads')), path.join(f.root, 'shared', 'uploads'));
  assert.ok(fs.lstatSync(path.join(f.root, 'shared', 'uploads')).isDirectory(), 'shared/uploads is a real directory');
  assert.equal(snapshot(outside), before);
  assert.equal([stat(outside), stat(path.join(outside, 'precious'))], owners, 'not chowned or chmodded either');
  await f.repo.commit({ uploads: null }, 'drop the symlink');
  liveId = sha.slice(0, 12);
});

test('a repository symlink dir (conf -> /etc) under a shared path (conf/app.ini) fails the build clearly; nothing is written under /etc', async () => {
  const etcBefore = fs.existsSync(ETC_PROBE);
  fs.symlinkSync('/etc', path.join(f.repo.dir, 'conf'));
  const sha = await f.repo.commit({}, 'conf is a symlink to /etc');
  const r = await f.run('release', ['main']);
  assert.is(r.code, 1, r.out);
  assert.match(r.stderr, /The repository has a symlink at conf, where the shared path conf\/app\.ini must be linked/);
  assert.match(r.stderr, /live release and the service were not touched/);
  assert.is(fs.existsSync(ETC_PROBE), etcBefore, `${ETC_PROBE} was not created`);
  assert.is(f.active(), `releases/${liveId}`);
  assert.not.ok(fs.existsSync(path.join(f.root, 'releases', sha.slice(0, 12))), 'the failed release is removed');
  assert.is(f.history().filter((e) => e.release === sha.slice(0, 12)).at(-1).event, 'build-failed');
  await f.repo.commit({ conf: null }, 'drop the symlink');
});

test('a writable dir is handed to the app user after the seal; a repository symlink in its place fails the build and chowns nothing outside', async () => {
  const w = await makeFixture({ writable: ['tmp/cache'] });
  let r = await w.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  const live = w.active()!;
  const made = path.join(w.root, live, 'tmp', 'cache');
  assert.ok(fs.lstatSync(made).isDirectory(), 'created after the build');
  if (process.getuid?.() === 0) {
    assert.is.not(fs.statSync(made).uid, 0, "owned by the app's user");
    assert.is(fs.statSync(path.join(w.root, live, 'tmp')).uid, 0, 'its parent stays sealed');
  }
  const outside = await tempDir('cutover-outside');
  fs.writeFileSync(path.join(outside, 'precious'), 'do not touch\n');
  const owners = () => [outside, path.join(outside, 'precious')].map((p) => `${fs.statSync(p).uid}:${fs.statSync(p).mode.toString(8)}`);
  const before = owners();
  fs.rmSync(path.join(w.repo.dir, 'tmp'), { recursive: true, force: true });
  fs.symlinkSync(outside, path.join(w.repo.dir, 'tmp'));
  const sha = await w.repo.commit({}, 'tmp is a symlink out of the tree');
  r = await w.run('release', ['main']);
  assert.is(r.code, 1, r.out);
  assert.match(r.stderr, /The release has a symlink at tmp, where the writable directory tmp\/cache must be/);
  assert.match(r.stderr, /live release and the service were not touched/);
  assert.equal(owners(), before, 'nothing outside was chowned');
  assert.equal(fs.readdirSync(outside), ['precious'], 'nor created');
  assert.is(w.active(), live);
  assert.not.ok(fs.existsSync(path.join(w.root, 'releases', sha.slice(0, 12))), 'the failed release is removed');
});

test('a missing or invalid manifest exits 2 (release, prune, status), and the root is not created', async () => {
  const dir = await tempDir('cutover-badmanifest');
  const missing = path.join(dir, 'nope.yaml');
  const invalid = path.join(dir, 'invalid.yaml');
  const root = path.join(dir, 'root');
  fs.writeFileSync(invalid, `app: shop\nrepo: ${f.repo.dir}\nroot: ${root}\nstart: node server.js\nkep: 3\nport: lots\n`);
  const verbs: Array<[string, string[]]> = [['release', ['main']], ['prune', []], ['status', []]];
  const results = await Promise.all(verbs.flatMap(([v, a]) => [run(v, a, missing), run(v, a, invalid)]));
  results.forEach((r, i) => {
    const [v] = verbs[Math.floor(i / 2)];
    assert.is(r.code, 2, `${v} with a ${i % 2 ? 'invalid' : 'missing'} manifest: ${r.out}`);
    if (i % 2 === 0) assert.ok(r.stderr.includes(missing), `${v}: the message names the file: ${r.stderr}`);
    else {
      assert.match(r.stderr, /:5: kep\b/, `${v}: names the unknown key, with its line`);
      assert.match(r.stderr, /:6: port\b/, `${v}: and the bad value, all at once`);
    }
  });
  assert.equal(fs.readdirSync(dir).sort(), ['invalid.yaml'], 'nothing was created');
});

test.run();
