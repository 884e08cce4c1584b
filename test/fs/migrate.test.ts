// fs tier: a failing `migrate` runs after install and build, as the app's user, and fails the release before anything goes live.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { makeFixture, TEST_USER, type Fixture } from '../helpers/kit.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';

let f: Fixture;
const trace = () => path.join(f.root, 'shared', 'uploads', 'trace');

test.before(async () => {
  // Each step appends its name and uid to a shared file (writable by the app's user); migrate fails when MIGRATE_FAILS is in the commit.
  f = await makeFixture({
    install: 'echo "install $(id -u)" >> uploads/trace && npm ci --no-audit --no-fund',
    build: 'echo "build $(id -u)" >> uploads/trace && npm run build',
    migrate: 'echo "migrate $(id -u) $(test -f dist/version.json && echo after-the-build)" >> uploads/trace; if [ -f MIGRATE_FAILS ]; then echo "migration 0042 failed" >&2; exit 3; fi',
  });
});
test.after(cleanupTempDirs);

test('a release with a passing migrate: install, build, migrate in that order, as the app user; then live', async () => {
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  const uid = spawnSync('id', ['-u', TEST_USER], { encoding: 'utf8' }).stdout.trim();
  assert.equal(fs.readFileSync(trace(), 'utf8').trim().split('\n'), [`install ${uid}`, `build ${uid}`, `migrate ${uid} after-the-build`]);
  assert.match(r.stdout, /==> build: [^\n]*\n[\s\S]*==> migrate: /);
});

test('a failing migrate: exit 1 naming it, recorded failed, the release removed, the live release and service untouched', async () => {
  const live = f.active();
  const liveTarget = fs.realpathSync(path.join(f.root, 'active'));
  fs.writeFileSync(trace(), '');
  const bad = await f.repo.commit({ MIGRATE_FAILS: '1\n', VERSION: '2\n' }, 'migration fails');
  const r = await f.run('release', ['main']);
  assert.is(r.code, 1, r.out);
  assert.match(r.stderr, /The build of [0-9a-f]{12} failed/);
  assert.match(r.out, 'migration 0042 failed');
  assert.match(r.stderr, 'The live release and the service were not touched');
  assert.not.match(r.stdout, /==> (preflight|switch active|restart|health gate)/, 'nothing after the migrate ran');
  assert.is(f.active(), live, 'active still points at the live release');
  assert.is(fs.realpathSync(path.join(f.root, 'active')), liveTarget);
  assert.not.ok(fs.existsSync(path.join(f.root, 'releases', bad.slice(0, 12))), 'the failed release is removed');
  const rec = (await f.status()).releases.find((x: any) => x.commit === bad);
  assert.is(rec.state, 'failed');
  assert.equal(fs.readFileSync(trace(), 'utf8').trim().split('\n').map((l) => l.split(' ')[0]), ['install', 'build', 'migrate'], 'migrate ran last');
});

test.run();
