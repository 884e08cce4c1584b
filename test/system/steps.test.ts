// system tier: a build past its time limit, and SIGTERM to the kit during a build, in a real systemd host: the step's processes go, the lock is freed, the history says why, the live release keeps serving.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import { expectExit, type KitHost } from '../helpers/hostkit.ts';
import { httpGet } from '../helpers/apps.ts';
import type { AppRepo } from '../helpers/gitrepo.ts';
import { inHost, startKit, tail } from '../helpers/crash.ts';
import { STOP_GRACE_MS } from '../../scripts/lib/run/group.ts';
import { appFile, bootNodeApp } from '../helpers/fixtures.ts';

// Ports 4200-4299 belong to the step tests; this file uses 4201.
const { it, ready: ROOT, app: APP, port: PORT, root: APP_ROOT, closeWith } = appFile(import.meta.url, 'stepsapp', 4201);

let h: KitHost;
let repo: AppRepo;
let manifest: string;
let live: string;

// A commit holding SLOW makes the build write its pid and its child's to $HOME/step.pids and wait for a
// sleep of 10 minutes: far past the 3 s time limit, and a build that runs until someone stops it.
const BUILD = 'if [ -f SLOW ]; then echo $$ >> "$HOME/step.pids"; sleep 600 >/dev/null 2>&1 & echo $! >> "$HOME/step.pids"; wait; fi; node build.js';

function history(): any[] {
  return fs.readFileSync(inHost(h, `${APP_ROOT}/history.jsonl`), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}
const activeId = () => fs.readlinkSync(inHost(h, `${APP_ROOT}/active`)).replace(/^releases\//, '');
const pidsFile = () => inHost(h, `${APP_ROOT}/cache/step.pids`);
const stepPids = () => (fs.existsSync(pidsFile()) ? fs.readFileSync(pidsFile(), 'utf8').trim().split('\n').filter(Boolean) : []);

/** The build's processes still running inside the host (zombies do not count). */
async function survivors(pids: string[]): Promise<string[]> {
  if (pids.length === 0) return [];
  const r = await h.host.exec(['/bin/sh', '-c', 'for p; do s=$(cat /proc/$p/stat 2>/dev/null) || continue; case "${s##*) }" in Z*|X*) ;; *) echo $p;; esac; done', 'sh', ...pids]);
  return r.stdout.trim().split('\n').filter(Boolean);
}

async function servedRelease(): Promise<string> {
  const r = await httpGet(`http://127.0.0.1:${PORT}/`, { timeoutMs: 10_000 });
  assert.is(r.status, 200, `the app answers: ${r.body}`);
  return JSON.parse(r.body).release;
}

async function lockFree(): Promise<boolean> {
  return (await h.host.exec(['flock', '--nonblock', `${APP_ROOT}/cutover.lock`, 'true'])).code === 0;
}

async function status(): Promise<any> {
  const r = await h.kit('status', ['--json'], { manifest });
  expectExit(r, 0, 'status --json');
  return JSON.parse(r.stdout);
}

test.before(async () => {
  if (!ROOT) return;
  ({ h, repo, manifest } = await bootNodeApp(APP, PORT, { build: BUILD, timeouts: { build: 3 } }));
  live = activeId();
});

closeWith(() => h);

it('provision put the cutover command on root\'s PATH: it runs the compiled verbs on the host\'s Node, and says what the script says', async () => {
  const link = await h.host.exec(['readlink', '/usr/local/bin/cutover']);
  assert.is(link.stdout.trim(), '/opt/cutover/bin/cutover');
  const viaPath = await h.host.exec(['/bin/sh', '-c', 'PATH=/usr/local/bin:/usr/bin:/bin; cutover status --json --manifest "$1"', 'sh', manifest]);
  expectExit(viaPath, 0, 'cutover status --json');
  assert.is(viaPath.stderr, '', 'no fallback message: the compiled kit is used');
  const a = JSON.parse(viaPath.stdout);
  const b = await status();
  assert.is(a.live, b.live);
  assert.equal(a.releases.map((r: any) => r.id), b.releases.map((r: any) => r.id));
  const bad = await h.host.exec(['/usr/local/bin/cutover', 'release', '--manifest', manifest]);
  assert.is(bad.code, 2, `a missing <ref> exits 2: ${bad.stderr}`);
  assert.match(bad.stderr, /Say what to release: a git ref, or --archive FILE\./);
});

it('a build that sleeps past its time limit fails the release with exit 1; its processes are gone, the live release still serves, the lock is free', async () => {
  fs.rmSync(pidsFile(), { force: true });
  const sha = await repo.commit({ SLOW: '1\n', VERSION: '2\n' }, 'slow v2');
  const t = Date.now();
  const r = await h.kit('release', [sha], { manifest });
  const took = Date.now() - t;
  assert.is(r.code, 1, `exit 1:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /did not finish within its time limit of 3 s \(timeouts\.build in the manifest\)/);
  assert.ok(took < 3_000 + STOP_GRACE_MS + 10_000, `it gave up at the limit (${took} ms)`);
  const pids = stepPids();
  assert.is(pids.length, 2, 'the build wrote its pids');
  assert.equal(await survivors(pids), [], 'no process of the build remains');
  const last = history().at(-1);
  assert.is(last.event, 'build-failed');
  assert.match(last.reason, /time limit of 3 s/);
  assert.ok(await lockFree(), 'the lock is free');
  assert.is(activeId(), live, 'active is unchanged');
  assert.is(await servedRelease(), live, 'the live release still serves');
  const s = await status();
  assert.is(s.lock, null);
  assert.is(s.releases.find((x: any) => x.id === sha.slice(0, 12))?.state, 'failed');
});

it('SIGTERM to the kit during a build: the build\'s processes are gone within the grace period, the history says interrupted, the lock is free', async () => {
  fs.rmSync(pidsFile(), { force: true });
  fs.writeFileSync(inHost(h, manifest), h.read(manifest).replace(/build: 3$/m, 'build: 600'));
  const sha = await repo.commit({ SLOW: '1\n', VERSION: '3\n' }, 'slow v3');
  const run = startKit(h, 'release', [sha, '--rebuild'], { manifest });
  for (let i = 0; i < 1200 && stepPids().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  assert.is(stepPids().length, 2, `the build started:\n${tail(run.stdout() + run.stderr())}`);
  // The lock names the holder with the flags it was given.
  const s = await status();
  assert.match(s.lock, new RegExp(`doing "release ${sha} --rebuild" since`));
  const holder = JSON.parse(h.read(`${APP_ROOT}/cutover.lock`));
  const t = Date.now();
  expectExit(await h.host.exec(['kill', '-TERM', String(holder.pid)]), 0, 'kill -TERM <the lock holder>');
  const r = await run.done;
  const pids = stepPids();
  let left = await survivors(pids);
  while (left.length > 0 && Date.now() - t < STOP_GRACE_MS) left = await survivors(pids);
  assert.equal(left, [], `no process of the build remains ${STOP_GRACE_MS} ms after the SIGTERM`);
  assert.is(r.code, 1, `the kit exits 1:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /cutover received SIGTERM/);
  const last = history().at(-1);
  assert.is(last.event, 'build-interrupted');
  assert.is(last.reason, 'stopped by SIGTERM');
  assert.ok(await lockFree(), 'the lock is free');
  assert.is(await servedRelease(), live, 'the live release still serves');
  const after = await status();
  assert.is(after.lock, null);
  assert.not.ok(after.releases.some((x: any) => x.id === sha.slice(0, 12)), 'status folds away the stopped build (its directory is gone)');
  assert.ok(after.interruptedGone >= 1, 'and counts it');
  // And the next release goes through with no cleanup by hand.
  const ok = await repo.commit({ SLOW: null, VERSION: '4\n' }, 'v4');
  expectExit(await h.kit('release', [ok], { manifest }), 0, 'the next release');
  assert.is(await servedRelease(), ok.slice(0, 12));
});

test.run();
