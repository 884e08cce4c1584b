// fs tier: time limits on install/build/migrate, and stopping the kit (SIGTERM, SIGINT, SIGHUP) during a build: the step's whole process group goes, the build is recorded, the lock is freed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { makeFixture, type Fixture } from '../helpers/kit.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';
import { STOP_GRACE_MS } from '../../scripts/lib/run/group.ts';

// A build that writes its own pid and its child's to $HOME/step.pids, then waits. With IGNORE_TERM in
// the commit, the shell and the sleep it starts both ignore SIGTERM: only the SIGKILL after the grace period ends them.
const BUILD =
  'if [ -f IGNORE_TERM ]; then trap "" TERM; fi; echo $$ >> "$HOME/step.pids"; sleep 120 >/dev/null 2>&1 & echo $! >> "$HOME/step.pids"; [ -f SLOW ] && wait; node build.js';

let f: Fixture;
let live: string;

const pidsFile = () => path.join(f.root, 'cache', 'step.pids');
const stepPids = () => (fs.existsSync(pidsFile()) ? fs.readFileSync(pidsFile(), 'utf8').trim().split('\n').filter(Boolean).map(Number) : []);
const alive = (pid: number) => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\S+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
};
const lockFree = () => spawnSync('flock', ['--nonblock', path.join(f.root, 'cutover.lock'), 'true']).status === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

test.before(async () => {
  f = await makeFixture({ build: BUILD, install: undefined, timeouts: { build: 2 } });
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  live = f.active()!;
  fs.rmSync(pidsFile(), { force: true });
});
test.after(cleanupTempDirs);

test('a build that runs past its time limit is stopped with everything it started: exit 1, recorded as failed, live release untouched', async () => {
  const sha = await f.repo.commit({ SLOW: '1\n', VERSION: '2\n' }, 'slow');
  const t0 = Date.now();
  const r = await f.run('release', [sha]);
  const took = Date.now() - t0;
  assert.is(r.code, 1, r.out);
  assert.match(r.stderr, /did not finish within its time limit of 2 s \(timeouts\.build in the manifest\): cutover stopped it and every process it started/);
  // The build would sleep 120 s: ending well before that means it was stopped (the bound leaves room for a loaded machine).
  assert.ok(took < 2_000 + STOP_GRACE_MS + 30_000, `it gave up at the limit, not after the build's 120 s (${took} ms)`);
  const pids = stepPids();
  assert.is(pids.length, 2, 'the build and its child wrote their pids');
  for (const pid of pids) assert.not.ok(alive(pid), `process ${pid} of the build is gone`);
  const last = f.history().at(-1);
  assert.is(last.event, 'build-failed');
  assert.match(last.reason, /time limit of 2 s/);
  assert.is(f.active(), live, 'the live release is untouched');
  assert.not.ok(fs.existsSync(path.join(f.root, 'releases', sha.slice(0, 12))), 'the failed release was removed');
  assert.ok(lockFree(), 'the lock is free');
});

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  test(`${signal} to the kit during a build stops the build's processes, records it interrupted, frees the lock and exits 1`, async () => {
    fs.rmSync(pidsFile(), { force: true });
    const ignore = signal === 'SIGTERM';
    const sha = await f.repo.commit({ SLOW: '1\n', VERSION: `${signal}\n`, IGNORE_TERM: ignore ? '1\n' : null }, signal);
    fs.writeFileSync(f.manifest, fs.readFileSync(f.manifest, 'utf8').replace(/build: 2$/m, 'build: 600'));
    const child = f.start('release', [sha]);
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const done = new Promise<number>((r) => child.on('close', (c) => r(c ?? -1)));
    await waitFor('the build to start its sleep', () => stepPids().length === 2);
    const holder = JSON.parse(fs.readFileSync(path.join(f.root, 'cutover.lock'), 'utf8'));
    const t0 = Date.now();
    process.kill(holder.pid, signal);
    const code = await done;
    const took = Date.now() - t0;
    assert.is(code, 1, out);
    assert.match(out, new RegExp(`cutover received ${signal}`));
    for (const pid of stepPids()) assert.not.ok(alive(pid), `process ${pid} of the build is gone`);
    // A build that ignores SIGTERM lasts the grace period (and not its 120 s sleep); one that does not goes
    // before the grace period would end.
    if (ignore) assert.ok(took >= STOP_GRACE_MS - 500 && took < STOP_GRACE_MS + 30_000, `SIGKILL after the grace period (${took} ms)`);
    else assert.ok(took < STOP_GRACE_MS - 500, `stopped at once, without waiting out the grace period (${took} ms)`);
    const last = f.history().at(-1);
    assert.is(last.event, 'build-interrupted');
    assert.is(last.reason, `stopped by ${signal}`);
    assert.ok(lockFree(), 'the lock is free');
    assert.is(f.active(), live, 'the live release is untouched');
    const st = await f.status();
    assert.not.ok(st.releases.some((x: any) => x.id === sha.slice(0, 12)), 'status folds away the interrupted build whose directory is gone');
    fs.writeFileSync(f.manifest, fs.readFileSync(f.manifest, 'utf8').replace(/build: 600$/m, 'build: 2'));
  });
}

test.run();
