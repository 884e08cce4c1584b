// fs tier: cutover freeze / unfreeze — release, activate and prune (the cron one too) refuse with exit 3 and the reason; rollback still works unless the freeze is hard; status shows it; a killed verb never leaves one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { makeFixture, snapshot, untilOutput, type Fixture } from '../helpers/kit.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';

let f: Fixture;
let v1: string;
let v2: string;

test.before(async () => {
  // The build sleeps when the commit has a SLOW file: a release that can be killed mid-build.
  f = await makeFixture({ build: 'test ! -f SLOW || sleep 300; npm run build' });
  v1 = (await f.repo.head()).slice(0, 12);
  const r1 = await f.run('release', ['main']);
  assert.is(r1.code, 0, r1.out);
  v2 = (await f.repo.commit({ 'CHANGELOG.md': 'v2\n' }, 'v2')).slice(0, 12);
  const r2 = await f.run('release', ['main']);
  assert.is(r2.code, 0, r2.out);
});
test.after(cleanupTempDirs);

test('freeze needs a reason, and says what it stops', async () => {
  const none = await f.run('freeze');
  assert.is(none.code, 2, none.out);
  assert.match(none.stderr, /Say why: --reason/);
  assert.not.ok(fs.existsSync(path.join(f.root, 'freeze.json')), 'no freeze without a reason');
  const r = await f.run('freeze', ['--reason', 'migration running until 18:00']);
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, /is now frozen by \S+ since \S+: migration running until 18:00/);
  assert.match(r.stdout, /rollback still works/);
});

test('while frozen: release, activate and prune (also --cron and --dry-run) refuse with exit 3 and the reason, changing nothing; status shows it', async () => {
  const commit = await f.repo.commit({ 'CHANGELOG.md': 'v3\n' }, 'v3');
  const before = snapshot(f.root);
  const events = f.history().length;
  for (const [verb, args] of [['release', [commit]], ['release', [commit, '--dry-run']], ['activate', [v1]], ['prune', []], ['prune', ['--cron']]] as const) {
    const r = await f.run(verb, [...args]);
    assert.is(r.code, 3, `${verb} ${args.join(' ')}: exit 3\n${r.out}`);
    assert.match(r.stderr, /Deploys of this app are frozen by \S+ since \S+: migration running until 18:00\. \w+ is refused\./, `${verb}: the reason`);
    assert.match(r.stderr, /cutover unfreeze/);
  }
  assert.equal(snapshot(f.root), before, 'nothing under the root changed');
  assert.is(f.history().length, events, 'no history line');
  const st = await f.status();
  assert.is(st.freeze.reason, 'migration running until 18:00');
  assert.is(st.freeze.hard, false);
  const text = await f.run('status');
  assert.match(text.stdout, /FROZEN: frozen by \S+ since \S+: migration running until 18:00/);
});

test('a rollback still works under a freeze; a hard freeze refuses it too', async () => {
  assert.is(f.active(), `releases/${v2}`);
  const r = await f.run('rollback');
  assert.is(r.code, 0, r.out);
  assert.is(f.active(), `releases/${v1}`, 'rolled back during the freeze');
  const hard = await f.run('freeze', ['--reason', 'incident review', '--hard']);
  assert.is(hard.code, 0, hard.out);
  assert.match(hard.stdout, /Replaced the freeze/);
  const refused = await f.run('rollback');
  assert.is(refused.code, 3, refused.out);
  assert.match(refused.stderr, /hard-frozen by \S+ since \S+: incident review\. rollback is refused/);
  assert.is(f.active(), `releases/${v1}`);
});

test('unfreeze lifts it: release works again; unfreeze when not frozen says so', async () => {
  const r = await f.run('unfreeze');
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, /Lifted the freeze \(hard-frozen by/);
  assert.not.ok(fs.existsSync(path.join(f.root, 'freeze.json')));
  const again = await f.run('unfreeze');
  assert.match(again.stdout, /is not frozen: nothing to do/);
  const rel = await f.run('release', ['main']);
  assert.is(rel.code, 0, rel.out);
  assert.is((await f.status()).freeze, null);
});

test('a verb killed with SIGKILL never leaves a freeze behind (a freeze is explicit state, not a lock)', async () => {
  const slow = await f.repo.commit({ 'CHANGELOG.md': 'v5\n', SLOW: '' }, 'v5 slow');
  const child = f.start('release', [slow]);
  const exited = new Promise((r) => child.once('exit', r));
  await untilOutput(child, /==> build: /);
  // The verb that holds the lock (not a wrapper: without a fresh dist/, bin/cutover runs it through tsx).
  const holder = JSON.parse(fs.readFileSync(path.join(f.root, 'cutover.lock'), 'utf8'));
  process.kill(holder.pid, 'SIGKILL');
  await exited;
  assert.not.ok(fs.existsSync(path.join(f.root, 'freeze.json')), 'no freeze file');
  const commit = await f.repo.commit({ SLOW: null }, 'v6');
  const r = await f.run('release', [commit]);
  assert.is(r.code, 0, `the next release is not refused:\n${r.out}`);
});

test.run();
