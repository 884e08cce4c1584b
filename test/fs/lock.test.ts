// fs tier: one lock per app: who holds it is named, cron prune steps aside, and kill -9 of the holder frees it at once.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { kitDir, makeFixture, scriptEnv, snapshot, untilOutput, type Fixture } from '../helpers/kit.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';

const tsx = path.join(kitDir, 'node_modules', '.bin', 'tsx');
let f: Fixture;
let c1: string;
let slow2: string;
const children: ChildProcess[] = [];

/** Starts `release ref` in its own process group (so the whole tsx tree can be killed) and waits until its build step runs. */
async function startSlowRelease(ref: string, user: string): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(tsx, [path.join(kitDir, 'scripts', 'release.ts'), ref, '--manifest', f.manifest], {
    env: scriptEnv({ SUDO_USER: user }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  children.push(child);
  return { child, out: await untilOutput(child, /==> build: /) };
}

/** kill -9 of the whole process group, then wait until the holder is really gone. */
async function killGroup(child: ChildProcess): Promise<void> {
  const closed = new Promise((r) => child.once('close', r));
  process.kill(-child.pid!, 'SIGKILL');
  await closed;
}

/** Processes (other than zombies) whose working directory is inside dir. */
function processesIn(dir: string): number[] {
  const real = fs.realpathSync(path.dirname(dir));
  const want = path.join(real, path.basename(dir));
  return fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).filter((pid) => {
    try {
      const cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
      return cwd === want || cwd.startsWith(want + '/');
    } catch {
      return false;
    }
  });
}

const startedOf = (commit: string) => f.history().find((e) => e.event === 'build-started' && e.commit === commit);

test.before(async () => {
  // The build sleeps when the commit has a SLOW file: a deploy that holds the lock for a while.
  f = await makeFixture({ keep: 10, build: 'test ! -f SLOW || sleep 300; npm run build' });
  c1 = await f.repo.head();
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
});
test.after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) process.kill(-c.pid!, 'SIGKILL');
  await cleanupTempDirs();
});

test('while a release runs, prune, activate, rollback and a second release exit 3 naming the holder; cron prune steps aside', async () => {
  const slow = (slow2 = await f.repo.commit({ SLOW: 'yes\n', VERSION: '2\n' }, 'slow v2'));
  const t0 = Date.now();
  const holder = await startSlowRelease(slow, 'carol');
  const started = startedOf(slow);
  assert.ok(started, 'the slow build is in the history');
  const pid = started.pid;
  const before = snapshot(f.root);
  const [prune, activate, rollback, release, cron, status] = await Promise.all([
    f.run('prune'),
    f.run('activate', [c1.slice(0, 12)]),
    f.run('rollback'),
    f.run('release', ['main']),
    f.run('prune', ['--cron']),
    f.status(),
  ]);
  for (const [name, r] of Object.entries({ prune, activate, rollback, release })) {
    assert.is(r.code, 3, `${name}: ${r.out}`);
    const m = /holds this app's lock: (\S+) \(pid (\d+)\), doing "([^"]+)" since (\S+Z)\./.exec(r.stderr);
    assert.ok(m, `${name} names the holder: ${r.stderr}`);
    assert.is(m![1], 'carol', `${name}: the user`);
    assert.is(Number(m![2]), pid, `${name}: the pid of the build`);
    assert.is(m![3], `release ${slow}`, `${name}: the operation`);
    const since = Date.parse(m![4]);
    assert.ok(since >= t0 - 1000 && since <= Date.now(), `${name}: since ${m![4]}`);
    assert.match(r.stderr, /frees itself when that process ends/);
  }
  assert.is(cron.code, 0, cron.out);
  assert.match(cron.stdout, /Prune skipped/);
  assert.match(cron.stdout, new RegExp(`carol \\(pid ${pid}\\)`));
  assert.match(status.lock, new RegExp(`carol \\(pid ${pid}\\), doing "release ${slow}"`));
  assert.is(status.releases.find((x: any) => x.commit === slow).state, 'building');
  assert.equal(snapshot(f.root), before, 'the refused operations changed nothing');
  assert.is(f.active(), `releases/${c1.slice(0, 12)}`);
  assert.is(holder.child.exitCode, null, 'the holder is still running');
});

test('kill -9 of the holder frees the lock at once; its build shows as interrupted and the next release cleans it up', async () => {
  const id = slow2.slice(0, 12);
  const dir = path.join(f.root, 'releases', id);
  const holder = children.at(-1)!;
  assert.ok(fs.existsSync(dir), 'the interrupted build left its directory');
  await killGroup(holder);
  // The build step runs in a group of its own, whose watcher kills it once the kit's end of a pipe closes:
  // at once, but on a busy machine the watcher must first be scheduled (a leftover was seen right after).
  for (const until = Date.now() + 5000; processesIn(dir).length > 0 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 50));
  assert.equal(processesIn(dir), [], 'nothing of the killed build runs on (within 5 s)');
  const st = await f.status();
  assert.is(st.lock, null, 'nobody holds the lock');
  const rec = st.releases.find((x: any) => x.id === id);
  assert.is(rec.state, 'interrupted');
  assert.match(rec.reason, /stopped part-way/);
  const act = await f.run('activate', [id]);
  assert.is(act.code, 1, `an interrupted release can never be activated: ${act.out}`);
  assert.match(act.stderr, /interrupted part-way/);
  const c3 = await f.repo.commit({ SLOW: null, VERSION: '3\n' }, 'v3');
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, `no manual cleanup is needed: ${r.out}`);
  assert.match(r.stdout, new RegExp(`Cleaning up ${id}: its build was interrupted`));
  assert.not.ok(fs.existsSync(dir), 'the interrupted build is removed');
  const ev = f.history().filter((e) => e.release === id).map((e) => e.event);
  assert.equal(ev, ['build-started', 'build-interrupted']);
  assert.is(f.active(), `releases/${c3.slice(0, 12)}`);
  // Cleaned up (recorded, its directory gone): status folds it away and counts it.
  const after = await f.status();
  assert.not.ok(after.releases.some((x: any) => x.id === id), 'status no longer lists the cleaned-up build');
  assert.ok(after.interruptedGone >= 1, 'status counts it');
  assert.match((await f.run('status')).stdout, /interrupted builds? already cleaned up from disk, not listed/);
});

test('prune also cleans up a killed build, and records it', async () => {
  const slow = await f.repo.commit({ SLOW: 'yes\n', VERSION: '4\n' }, 'slow v4');
  const id = slow.slice(0, 12);
  const { child } = await startSlowRelease('main', 'dave');
  await killGroup(child);
  assert.ok(fs.existsSync(path.join(f.root, 'releases', id)));
  const r = await f.run('prune');
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, new RegExp(`Cleaning up ${id}: its build was interrupted`));
  assert.not.ok(fs.existsSync(path.join(f.root, 'releases', id)));
  assert.ok(f.history().some((e) => e.event === 'build-interrupted' && e.release === id));
  // Recorded once: a second prune has nothing more to say about it.
  const again = await f.run('prune');
  assert.is(again.code, 0, again.out);
  assert.not.match(again.stdout, /Cleaning up/);
  assert.is(f.history().filter((e) => e.event === 'build-interrupted' && e.release === id).length, 1);
});

test('after an operation ends the lock file names nobody', async () => {
  const st = await f.status();
  assert.is(st.lock, null);
  assert.is(fs.readFileSync(path.join(f.root, 'cutover.lock'), 'utf8'), '');
});

test.run();
