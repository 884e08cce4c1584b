// fs tier: a warm release copies the dependencies as the last install left them, and the previous build's cache; sealed releases share identical files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { makeFixture, TEST_USER, type Fixture } from '../helpers/kit.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';
import { requiring, rootMissing } from '../helpers/prereq.ts';

let f: Fixture;
const rel = (sha: string, ...p: string[]) => path.join(f.root, 'releases', sha.slice(0, 12), ...p);

test.before(async () => {
  // The build writes into node_modules, as some builds do (caches), then prunes a dependency, as the
  // SvelteKit recipe's `npm prune --omit=dev` does: the next release must still get it, as installed.
  // It also fills a build cache (.cache/build) and records what it found there from the previous build.
  f = await makeFixture({
    build:
      'test -f node_modules/left-pad-local/index.js && npm run build && date +%s%N > node_modules/build-stamp && rm -rf node_modules/left-pad-local' +
      ' && mkdir -p .cache/build && cat VERSION >> .cache/build/seen && cp .cache/build/seen cache-seen',
    cache: ['.cache/build'],
    // A dir the running app writes in (as Next's image cache lies in its build cache): left out of the copy.
    writable: ['.cache/build/runtime'],
  });
  // A real dependency (a local package, so no registry is needed): npm ci then makes node_modules.
  const vendor = path.join(f.repo.dir, 'vendor', 'left-pad-local');
  fs.mkdirSync(vendor, { recursive: true });
  fs.writeFileSync(path.join(vendor, 'package.json'), JSON.stringify({ name: 'left-pad-local', version: '1.0.0', main: 'index.js' }));
  fs.writeFileSync(path.join(vendor, 'index.js'), 'module.exports = (s, n) => String(s).padStart(n);\n');
  const pkg = JSON.parse(fs.readFileSync(path.join(f.repo.dir, 'package.json'), 'utf8'));
  pkg.dependencies = { 'left-pad-local': 'file:vendor/left-pad-local' };
  fs.writeFileSync(path.join(f.repo.dir, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
  const r = spawnSync('npm', ['install', '--package-lock-only', '--no-audit', '--no-fund'], { cwd: f.repo.dir, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  await f.repo.commit({}, 'depend on a local package');
});
test.after(cleanupTempDirs);

test('a release whose lockfile is unchanged copies the dependencies as installed, not as the build and prune left them', async () => {
  const v1 = await f.repo.head();
  let r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, /==> keep node_modules as installed, for the next release with this package-lock.json/);
  assert.not.ok(fs.existsSync(rel(v1, 'node_modules', 'left-pad-local')), "v1's build pruned it");
  const stamp1 = fs.readFileSync(rel(v1, 'node_modules', 'build-stamp'), 'utf8');
  // v1's app writes in its writable dir (the dir is there although the build did not make it).
  assert.ok(fs.statSync(rel(v1, '.cache', 'build', 'runtime')).isDirectory(), 'the writable dir is created after the build');
  fs.writeFileSync(rel(v1, '.cache', 'build', 'runtime', 'image'), 'written by v1 at run time\n');
  const v2 = await f.repo.commit({ VERSION: '2\n' }, 'v2: code only');
  r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, /install: skipped, package-lock.json and the install command are unchanged: copying node_modules as the last install left it/);
  assert.not.match(r.stdout, /==> install: npm ci/);
  assert.is(fs.readFileSync(rel(v1, 'node_modules', 'build-stamp'), 'utf8'), stamp1, "v2's build did not write into v1's dependencies");
  assert.is.not(fs.readFileSync(rel(v2, 'node_modules', 'build-stamp'), 'utf8'), stamp1, "v2's build wrote its own copy");
  const snapshots = fs.readdirSync(path.join(f.root, 'deps'));
  assert.is(snapshots.length, 1, 'one snapshot');
  assert.ok(fs.lstatSync(path.join(f.root, 'deps', snapshots[0], 'node_modules', 'left-pad-local'), { throwIfNoEntry: false }), 'the snapshot is as installed (npm links a file: dependency)');
  assert.not.ok(fs.existsSync(path.join(f.root, 'deps', snapshots[0], 'node_modules', 'build-stamp')), 'no build output in it');
  if (process.getuid?.() === 0) assert.is(fs.statSync(path.join(f.root, 'deps')).mode & 0o777, 0o700, "the app's user cannot reach the snapshots");
});

test('the build cache of the previous release is copied into the new one before the build, never shared', async () => {
  const v1 = (await f.history()).find((e: any) => e.event === 'build-finished').release as string;
  const v2 = await f.repo.head();
  assert.is(fs.readFileSync(rel(v2, 'cache-seen'), 'utf8'), `${fs.readFileSync(path.join(f.root, 'releases', v1, 'VERSION'), 'utf8')}2\n`, "v2's build found v1's cache");
  assert.is.not(fs.statSync(rel(v2, '.cache', 'build', 'seen')).ino, fs.statSync(path.join(f.root, 'releases', v1, '.cache', 'build', 'seen')).ino, 'a copy');
  assert.match(fs.readFileSync(path.join(f.root, 'releases', v1, '.cache', 'build', 'seen'), 'utf8'), /^[^\n]*\n$/, "v1's cache is as v1's build left it");
  assert.equal(fs.readdirSync(rel(v2, '.cache', 'build', 'runtime')), [], "what v1's app wrote is left out of v2's copy of the cache");
  assert.ok(fs.existsSync(path.join(f.root, 'releases', v1, '.cache', 'build', 'runtime', 'image')), 'and stays in v1');
  if (process.getuid?.() === 0) {
    const uid = Number(spawnSync('id', ['-u', TEST_USER], { encoding: 'utf8' }).stdout.trim());
    assert.is(fs.statSync(rel(v2, '.cache', 'build', 'runtime')).uid, uid, "the writable dir is the app user's");
    assert.is(fs.statSync(rel(v2, '.cache', 'build')).uid, 0, 'the rest of the cache is sealed (root)');
    assert.is(fs.statSync(rel(v2, '.cache', 'build', 'seen')).uid, 0);
  }
});

test('a changed lockfile installs afresh; --rebuild always installs', async () => {
  const lock = JSON.parse(fs.readFileSync(path.join(f.repo.dir, 'package-lock.json'), 'utf8'));
  lock.packages[''].version = '1.0.1';
  lock.version = '1.0.1';
  const pkg = JSON.parse(fs.readFileSync(path.join(f.repo.dir, 'package.json'), 'utf8'));
  pkg.version = '1.0.1';
  await f.repo.commit({ 'package-lock.json': JSON.stringify(lock, null, 2) + '\n', 'package.json': JSON.stringify(pkg, null, 2) + '\n' }, 'lockfile change');
  let r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, /==> install: npm ci/);
  r = await f.run('release', ['main', '--rebuild', '--no-activate']);
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, /==> install: npm ci/);
});

requiring(rootMissing('sealing'))('identical files of sealed releases share one inode; differing ones do not, nor those in a writable dir', async () => {
  // The same file in the writable dir of both releases (from the repository): sharing it would let the app's
  // user, who owns that dir, change the other release's copy. Two guards keep it apart: the writable dirs are
  // skipped, and their files are the app user's after the seal while the new release's are still root's.
  const before = await f.repo.commit({ '.cache/build/runtime/seed': 'the same in both\n' }, 'a file in the writable dir');
  expectExit0(await f.run('release', ['main']));
  const after = await f.repo.commit({ VERSION: '4\n' }, 'v4');
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, /identical files shared with/);
  const prev = fs.readdirSync(path.join(f.root, 'releases')).find((d) => d.startsWith(before.slice(0, 12)) && !d.includes('-r'))!;
  const same = (p: string) => fs.statSync(path.join(f.root, 'releases', prev, p)).ino === fs.statSync(rel(after, p)).ino;
  assert.ok(same('server.js'), 'server.js is shared');
  assert.not.ok(same('VERSION'), 'VERSION differs, so it is not shared');
  assert.is(fs.readFileSync(rel(after, '.cache/build/runtime/seed'), 'utf8'), 'the same in both\n');
  assert.not.ok(same('.cache/build/runtime/seed'), 'a file in a writable dir is never shared, even when identical');
  const st = fs.statSync(rel(after, 'server.js'));
  assert.is(st.uid, 0);
  assert.is(st.mode & 0o222 & ~0o200, 0, 'a shared file is writable by nobody but root');
});

function expectExit0(r: { code: number; out: string }): void {
  assert.is(r.code, 0, r.out);
}

test.run();
