// fs tier: a warm release copies the previous release's dependencies; sealed releases share identical files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { makeFixture, type Fixture } from '../helpers/kit.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';
import { requiring, rootMissing } from '../helpers/prereq.ts';

let f: Fixture;
const rel = (sha: string, ...p: string[]) => path.join(f.root, 'releases', sha.slice(0, 12), ...p);

test.before(async () => {
  // The build writes into node_modules, as some builds do (caches): proof that each release owns its copy.
  f = await makeFixture({ build: 'npm run build && date +%s%N > node_modules/build-stamp' });
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

test('a release whose lockfile is unchanged copies the dependencies instead of installing', async () => {
  const v1 = await f.repo.head();
  assert.is((await f.run('release', ['main'])).code, 0);
  assert.ok(fs.existsSync(rel(v1, 'node_modules')), 'npm ci made node_modules');
  const stamp1 = fs.readFileSync(rel(v1, 'node_modules', 'build-stamp'), 'utf8');
  fs.writeFileSync(path.join(rel(v1, 'node_modules'), 'marker-from-v1'), 'x'); // root may write a sealed release
  const v2 = await f.repo.commit({ VERSION: '2\n' }, 'v2: code only');
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, new RegExp(`install: skipped, package-lock.json is unchanged from ${v1.slice(0, 12)}: copying its node_modules`));
  assert.not.match(r.stdout, /==> install: npm ci/);
  assert.ok(fs.existsSync(rel(v2, 'node_modules', 'marker-from-v1')), 'the copy came from the previous release');
  assert.is(fs.readFileSync(rel(v1, 'node_modules', 'build-stamp'), 'utf8'), stamp1, "v2's build did not write into v1's dependencies");
  assert.is.not(fs.readFileSync(rel(v2, 'node_modules', 'build-stamp'), 'utf8'), stamp1, "v2's build wrote its own copy");
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

requiring(rootMissing('sealing'))('identical files of sealed releases share one inode; differing ones do not', async () => {
  const before = await f.repo.head();
  const after = await f.repo.commit({ VERSION: '4\n' }, 'v4');
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, /identical files shared with/);
  const prev = fs.readdirSync(path.join(f.root, 'releases')).find((d) => d.startsWith(before.slice(0, 12)) && !d.includes('-r'))!;
  const same = (p: string) => fs.statSync(path.join(f.root, 'releases', prev, p)).ino === fs.statSync(rel(after, p)).ino;
  assert.ok(same('server.js'), 'server.js is shared');
  assert.not.ok(same('VERSION'), 'VERSION differs, so it is not shared');
  const st = fs.statSync(rel(after, 'server.js'));
  assert.is(st.uid, 0);
  assert.is(st.mode & 0o222 & ~0o200, 0, 'a shared file is writable by nobody but root');
});

test.run();
