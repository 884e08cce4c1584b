// fs tier: release, reuse, rebuild, failed builds and the health gate, with real git and npm in a temp root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { makeFixture, snapshot, TEST_USER, type Fixture } from '../helpers/kit.ts';
import { requiring, rootMissing } from '../helpers/prereq.ts';
import { cleanupTempDirs, exampleAppDir } from '../helpers/gitrepo.ts';

const withRoot = requiring(rootMissing('building as another user and sealing'));
let f: Fixture;
let v1: string;

test.before(async () => {
  // The build records the uid and gid it ran as, and the install the uid it ran as: what "ran as the app user" is checked against.
  f = await makeFixture({ install: 'npm ci --no-audit --no-fund && id -u > .install-uid', build: 'npm run build && id -u > .build-uid && id -g > .build-gid' });
  v1 = await f.repo.head();
});
test.after(cleanupTempDirs);

test('release builds the commit in its own directory and makes it live', async () => {
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  const id = v1.slice(0, 12);
  assert.is(f.active(), `releases/${id}`, 'active is a relative link to the release');
  const dir = path.join(f.root, 'releases', id);
  assert.is(fs.readFileSync(path.join(dir, 'REVISION'), 'utf8').trim(), v1);
  assert.ok(fs.existsSync(path.join(dir, 'dist', 'version.json')), 'the build ran');
  assert.is(fs.readlinkSync(path.join(dir, '.env')), path.join(f.root, 'shared', '.env'));
  assert.is(fs.readlinkSync(path.join(dir, 'uploads')), path.join(f.root, 'shared', 'uploads'));
  assert.ok(fs.statSync(path.join(f.root, 'repo')).isDirectory(), 'a bare mirror is kept');
  assert.match(r.stdout, /==> install: npm ci/);
  assert.match(r.stdout, /==> build: npm run build[\s\S]*done in/);
  const events = f.history().map((e) => e.event);
  assert.equal(events, ['build-started', 'build-finished', 'activated']);
  const st = await f.status();
  assert.is(st.live, id);
  assert.is(st.releases[0].state, 'ready');
  assert.is(st.releases[0].commit, v1);
});

withRoot('the install and the build ran as the unprivileged user, and the ready release is sealed', () => {
  const id = v1.slice(0, 12);
  const dir = path.join(f.root, 'releases', id);
  const user = spawnSync('id', ['-u', TEST_USER], { encoding: 'utf8' }).stdout.trim();
  const group = spawnSync('id', ['-g', TEST_USER], { encoding: 'utf8' }).stdout.trim();
  assert.match(user, /^[1-9]\d*$/, `${TEST_USER} has a uid that is not root's`);
  assert.is(fs.readFileSync(path.join(dir, '.install-uid'), 'utf8').trim(), user, `the install ran as ${TEST_USER}`);
  assert.is(fs.readFileSync(path.join(dir, '.build-uid'), 'utf8').trim(), user, `the build ran as ${TEST_USER}`);
  assert.is(fs.readFileSync(path.join(dir, '.build-gid'), 'utf8').trim(), group, `the build ran with ${TEST_USER}'s group`);
  const st = fs.statSync(path.join(dir, 'dist', 'version.json'));
  assert.is(st.uid, 0, 'sealed: owned by root');
  assert.is(st.mode & 0o022, 0, 'sealed: not writable by group or others');
  const cache = fs.statSync(path.join(f.root, 'cache'));
  assert.is.not(cache.uid, 0, 'the build cache belongs to the app user');
});

test('re-releasing a commit that has a ready release reuses it without rebuilding', async () => {
  const before = f.history();
  const r = await f.run('release', [v1.slice(0, 7)]);
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, /already built and ready: reusing it/);
  assert.match(r.stdout, /already live; nothing to do/);
  assert.is(f.history().filter((e) => e.event === 'build-started').length, 1);
  assert.equal(f.history(), before, '"nothing to do" writes nothing to the history');
});

test('--rebuild --no-activate builds afresh under a new id and leaves the live release alone', async () => {
  const live = f.active();
  const r = await f.run('release', ['main', '--rebuild', '--no-activate']);
  assert.is(r.code, 0, r.out);
  assert.is(f.active(), live);
  const rebuilt = `${v1.slice(0, 12)}-r2`;
  assert.ok(fs.existsSync(path.join(f.root, 'releases', rebuilt)));
  const st = await f.status();
  assert.is(st.releases.find((x: any) => x.id === rebuilt).state, 'ready');
});

test('a failed build exits 1, is recorded as failed, is removed, and the live release is untouched', async () => {
  const live = f.active();
  const bad = await f.repo.commit({ 'build.js': 'console.error("syntax oops"); process.exit(3);\n' }, 'broken build');
  const r = await f.run('release', ['main']);
  assert.is(r.code, 1, r.out);
  assert.match(r.stderr, /The build of [0-9a-f]{12} failed/);
  assert.match(r.stderr, /live release and the service were not touched/);
  assert.is(f.active(), live);
  assert.not.ok(fs.existsSync(path.join(f.root, 'releases', bad.slice(0, 12))), 'the partial release is removed');
  const st = await f.status();
  const rec = st.releases.find((x: any) => x.commit === bad);
  assert.is(rec.state, 'failed');
  const again = await f.run('activate', [bad.slice(0, 12)]);
  assert.is(again.code, 1, 'a failed release can never be activated');
  assert.match(again.stderr, /cannot be activated: it failed to build/);
  await f.repo.commit({ 'build.js': fs.readFileSync(path.join(exampleAppDir('node'), 'build.js'), 'utf8') }, 'fix the build');
});

test('a release that fails its health gate is switched back, marked bad and kept for inspection', async () => {
  const live = f.active();
  const sick = await f.repo.commit({ UNHEALTHY: 'yes\n', VERSION: '3\n' }, 'unhealthy');
  const r = await f.run('release', ['main']);
  assert.is(r.code, 1, r.out);
  assert.match(r.stderr, /failed its health gate/);
  assert.match(r.stderr, /Switched back to/);
  assert.is(f.active(), live, 'active points at the previous release again');
  const st = await f.status();
  const rec = st.releases.find((x: any) => x.commit === sick);
  assert.is(rec.state, 'bad');
  assert.ok(rec.onDisk, 'kept for inspection');
  const ev = f.history().filter((e) => e.event === 'activation-failed');
  assert.is(ev.length, 1);
  assert.is(`releases/${ev[0].previous}`, live);
});

test('a failed release changed nothing outside its own history entries', async () => {
  const before = snapshot(path.join(f.root, 'shared'));
  const r = await f.run('release', ['main']);
  assert.is(r.code, 1, 'the same unhealthy commit is rebuilt and refused again');
  assert.equal(snapshot(path.join(f.root, 'shared')), before);
});

test.run();
