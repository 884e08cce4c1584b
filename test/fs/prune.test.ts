// fs tier: prune keeps the newest N good releases (by the history), the live one, the rollback target, the newest bad
// one and releases in use; removes failed and interrupted builds; leaves what cutover did not make alone.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { kitDir, makeFixture, scriptEnv, snapshot, untilOutput, type Fixture } from '../helpers/kit.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';

const tsx = path.join(kitDir, 'node_modules', '.bin', 'tsx');
let f: Fixture;
const G: string[] = []; // good releases G[1]..G[6], in build order
let X1: string, X2: string, I: string, F: string; // bad, bad, interrupted, failed
const UNKNOWN = ['0123456789ab', 'hand-made'];
let user: ChildProcess | undefined; // a process whose cwd is inside G[4] (`sleep 30` would end mid-file on a slow machine)
const dir = (id: string) => path.join(f.root, 'releases', id);
const exists = (id: string) => fs.existsSync(dir(id));

async function build(changes: Record<string, string | null>, msg: string, expectCode = 0): Promise<string> {
  const sha = await f.repo.commit(changes, msg);
  const r = await f.run('release', [sha, '--no-activate']);
  assert.is(r.code, expectCode, r.out);
  return sha.slice(0, 12);
}

/** Starts a slow release in its own process group, waits for its build step, and kill -9s the group. */
async function interruptedBuild(): Promise<string> {
  const sha = await f.repo.commit({ SLOW: 'yes\n', VERSION: 'slow\n' }, 'slow');
  const child = spawn(tsx, [path.join(kitDir, 'scripts', 'release.ts'), sha, '--no-activate', '--manifest', f.manifest], {
    env: scriptEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  await untilOutput(child, /==> build: /);
  const closed = new Promise((r) => child.once('close', r));
  process.kill(-child.pid!, 'SIGKILL');
  await closed;
  await f.repo.commit({ SLOW: null }, 'not slow');
  return sha.slice(0, 12);
}

/** The plan lines prune prints: id -> [action, reason]. */
function planOf(out: string): Map<string, [string, string]> {
  const plan = new Map<string, [string, string]>();
  for (const m of out.matchAll(/^ {2}(keep|delete) +(\S+): (.+)$/gm)) plan.set(m[2], [m[1], m[3]]);
  return plan;
}

test.before(async () => {
  f = await makeFixture({ keep: 2, build: 'test ! -f SLOW || sleep 300; npm run build' });
  G[1] = await build({}, 'g1');
  for (let n = 2; n <= 6; n++) G[n] = await build({ VERSION: `${n}\n` }, `g${n}`);
  X1 = await build({ VERSION: 'x1\n', UNHEALTHY: 'yes\n' }, 'x1');
  X2 = await build({ VERSION: 'x2\n' }, 'x2');
  await f.repo.commit({ UNHEALTHY: null }, 'healthy again');
  // G2 live, X1 and X2 fail their gate (bad), then G1 live: the rollback target is G2.
  for (const [id, code] of [[G[2], 0], [X1, 1], [X2, 1], [G[1], 0]] as const) {
    const r = await f.run('activate', [id]);
    assert.is(r.code, code, r.out);
  }
  F = await build({ BEHAVIOUR: 'build-fail\n' }, 'broken', 1);
  await f.repo.commit({ BEHAVIOUR: null }, 'fixed');
  I = await interruptedBuild(); // last: the next release or prune would clean it up
  for (const u of UNKNOWN) {
    fs.mkdirSync(dir(u));
    fs.writeFileSync(path.join(dir(u), 'keep-me'), 'an operator put this here\n');
  }
  // Directory mtimes in the reverse of the build order: nothing may go by them.
  G.slice(1).forEach((id, i) => fs.utimesSync(dir(id), 1e9 + (6 - i) * 86400, 1e9 + (6 - i) * 86400));
  user = spawn('sleep', ['600'], { cwd: path.join(dir(G[4]), 'dist'), stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 100));
});
test.after(async () => {
  user?.kill('SIGKILL');
  await cleanupTempDirs();
});

test('the setup is what the tests think it is', async () => {
  const st = await f.status();
  assert.is(st.live, G[1]);
  assert.is(st.rollbackTarget, G[2]);
  const state = (id: string) => st.releases.find((x: any) => x.id === id)?.state;
  assert.equal([state(X1), state(X2), state(I), state(F)], ['bad', 'bad', 'interrupted', 'failed']);
  assert.ok(exists(I), 'the interrupted build left its directory');
  assert.not.ok(exists(F), 'a failed build removes its directory at once');
});

test('prune --dry-run lists every release with keep or delete and why, and deletes nothing', async () => {
  const before = snapshot(f.root);
  const r = await f.run('prune', ['--dry-run']);
  assert.is(r.code, 0, r.out);
  const plan = planOf(r.stdout);
  const expect: Array<[string, string, RegExp]> = [
    [G[1], 'keep', /live/],
    [G[2], 'keep', /rollback target/],
    [G[3], 'delete', /older than the newest 2 good/],
    [G[4], 'keep', new RegExp(`pid ${user!.pid}\\) still uses it`)],
    [G[5], 'keep', /newest 2 good/],
    [G[6], 'keep', /newest 2 good/],
    [X1, 'delete', /bad and a newer bad/],
    [X2, 'keep', /newest bad release, kept for inspection/],
    [I, 'delete', /interrupted/],
    [UNKNOWN[0], 'keep', /not in the history/],
    [UNKNOWN[1], 'keep', /not in the history/],
  ];
  for (const [id, action, why] of expect) {
    const got = plan.get(id);
    assert.ok(got, `the plan lists ${id}: ${r.stdout}`);
    assert.is(got![0], action, `${id}: ${got![1]}`);
    assert.match(got![1], why, id);
  }
  assert.is(plan.size, expect.length, 'exactly the directories under releases/');
  const wouldRemove = [...r.stdout.matchAll(/would remove \S+\/releases\/(\S+)$/gm)].map((m) => m[1]).sort();
  assert.equal(wouldRemove, [G[3], X1, I].sort());
  assert.match(r.stdout, /nothing was deleted/);
  assert.equal(snapshot(f.root), before);
});

test('prune deletes what the plan says, records it, and cleans up the interrupted build', async () => {
  const r = await f.run('prune');
  assert.is(r.code, 0, r.out);
  for (const id of [G[3], X1, I]) assert.not.ok(exists(id), `${id} is deleted`);
  for (const id of [G[1], G[2], G[4], G[5], G[6], X2, ...UNKNOWN]) assert.ok(exists(id), `${id} is kept`);
  for (const u of UNKNOWN) assert.is(fs.readFileSync(path.join(dir(u), 'keep-me'), 'utf8'), 'an operator put this here\n');
  const h = f.history();
  assert.equal(h.filter((e) => e.event === 'removed').map((e) => e.release).sort(), [G[3], X1].sort());
  assert.ok(h.some((e) => e.event === 'build-interrupted' && e.release === I));
  assert.ok(h.filter((e) => e.event === 'removed').every((e) => e.reason), 'each removal says why');
  assert.is(f.active(), `releases/${G[1]}`);
  const st = await f.status();
  assert.not.ok(st.releases.some((x: any) => x.id === G[3]), 'a pruned release is not listed');
});

test('--keep overrides the manifest; a release in use is still kept', async () => {
  const r = await f.run('prune', ['--keep', '1']);
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, /keep 1 good/);
  assert.not.ok(exists(G[5]), 'G5 is beyond the newest 1');
  assert.ok(exists(G[6]));
  assert.ok(exists(G[4]), 'still in use');
  assert.ok(exists(G[1]) && exists(G[2]), 'live and rollback target');
});

test('--keep 0, abc, -1, 1.5 exit 2 and change nothing', async () => {
  const before = snapshot(f.root);
  const values = ['0', 'abc', '-1', '1.5', ''];
  const results = await Promise.all(values.map((v) => f.run('prune', [`--keep=${v}`])));
  values.forEach((v, i) => {
    assert.is(results[i].code, 2, `--keep=${v}: ${results[i].out}`);
    assert.match(results[i].stderr, new RegExp(`--keep must be .*"${v.replace('.', '\\.')}"`));
  });
  assert.equal(snapshot(f.root), before);
});

test('release prunes automatically after activation', async () => {
  assert.is(user!.exitCode, null, 'the process using G4 was still running until now');
  const gone = new Promise((r) => user!.once('exit', r));
  user!.kill('SIGKILL');
  await gone;
  const g7 = (await f.repo.commit({ VERSION: '7\n' }, 'g7')).slice(0, 12);
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  assert.is(f.active(), `releases/${g7}`);
  assert.match(r.stdout, /==> prune \(keep 2\)/);
  // Live G7, rollback target G1 (live before it), newest 2 good: G7, G6; G4 is no longer in use.
  for (const id of [G[4], G[2]]) assert.not.ok(exists(id), `${id} is pruned`);
  for (const id of [g7, G[6], G[1], X2, ...UNKNOWN]) assert.ok(exists(id), `${id} is kept`);
  const st = await f.status();
  assert.is(st.rollbackTarget, G[1]);
});

test.run();
