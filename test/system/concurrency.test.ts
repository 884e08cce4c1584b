// system tier: concurrent operators on one app in a real systemd host: two releases at once, a release and a prune, a rollback during a release, cron's prune during a long build. One wins, the other gives up at once (exit 3) naming who holds the lock and since when, and nothing is corrupted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import { expectExit, type KitHost } from '../helpers/hostkit.ts';
import { httpGet } from '../helpers/apps.ts';
import type { AppRepo } from '../helpers/gitrepo.ts';
import { inHost, startKit, tail, type RunningKit } from '../helpers/crash.ts';
import type { ExecResult } from '../host/host.ts';
import { appFile, bootNodeApp, setUp } from '../helpers/fixtures.ts';

// Ports 3700-3799 belong to the reliability tests; this file uses 3703.
const { it, ready: ROOT, app: APP, port: PORT, root: APP_ROOT, closeWith } = appFile(import.meta.url, 'concapp', 3703);

let h: KitHost;
let repo: AppRepo;
let manifest: string;
let version = 1;

/** The holder as the refused operation names it: user, pid, operation, since. */
const HOLDER = /holds this app's lock: (\S+) \(pid (\d+)\), doing "([^"]+)" since (\S+Z)\./;

async function newCommit(slow: boolean): Promise<string> {
  version++;
  return repo.commit({ VERSION: `${version}\n`, SLOW_BUILD: slow ? '1\n' : null }, `v${version}`);
}

/** Lets the slow builds of every version so far finish. */
function openGates(): void {
  for (let v = 1; v <= version; v++) fs.writeFileSync(inHost(h, `/tmp/go-${v}`), '');
}

function history(): any[] {
  // Every line must parse: a torn or interleaved line would be corruption.
  const text = fs.readFileSync(inHost(h, `${APP_ROOT}/history.jsonl`), 'utf8');
  return text.split('\n').filter(Boolean).map((l, i) => {
    try {
      return JSON.parse(l);
    } catch {
      throw new Error(`history.jsonl line ${i + 1} is not JSON: ${l}`);
    }
  });
}

const activeId = () => fs.readlinkSync(inHost(h, `${APP_ROOT}/active`)).replace(/^releases\//, '');
const releasesOnDisk = () => fs.readdirSync(inHost(h, `${APP_ROOT}/releases`)).sort();
const revision = (id: string) => fs.readFileSync(inHost(h, `${APP_ROOT}/releases/${id}/REVISION`), 'utf8').trim();

async function servedRelease(): Promise<string> {
  const r = await httpGet(`http://127.0.0.1:${PORT}/`, { timeoutMs: 10_000 });
  assert.is(r.status, 200, `the app answers: ${r.body}`);
  return JSON.parse(r.body).release;
}

async function status(): Promise<any> {
  const r = await h.kit('status', ['--json'], { manifest });
  expectExit(r, 0, 'status --json');
  return JSON.parse(r.stdout);
}

/** Asserts a refusal: exit 3, naming the holder (the pid of the operation that holds the lock), what it does, and since when. */
function assertRefused(r: ExecResult, what: string, holder: { pid: number; operation: string; after: number }): void {
  assert.is(r.code, 3, `${what} exits 3 while the lock is held:\n${r.stdout}\n${r.stderr}`);
  const m = HOLDER.exec(r.stderr);
  assert.ok(m, `${what} names who holds the lock:\n${r.stderr}`);
  assert.is(m![1], 'root', `${what}: the user`);
  assert.is(Number(m![2]), holder.pid, `${what}: the pid of the holder`);
  assert.is(m![3], holder.operation, `${what}: what the holder does`);
  const since = Date.parse(m![4]!);
  assert.ok(since >= holder.after - 2000 && since <= Date.now() + 2000, `${what}: since ${m![4]} is when the holder took the lock`);
  assert.match(r.stderr, /frees itself when that process ends/);
}

/**
 * Nothing is corrupted: every history line parses, every release directory is one the history knows,
 * `active` points at a whole ready release that answers, status agrees, no release is left "building",
 * and the lock is free.
 */
async function assertWhole(expectLive: string): Promise<void> {
  const events = history();
  const known = new Set(events.map((e) => e.release));
  for (const id of releasesOnDisk()) assert.ok(known.has(id), `releases/${id} is in the history`);
  const live = activeId();
  assert.is(live, expectLive, 'the live release');
  assert.ok(fs.existsSync(inHost(h, `${APP_ROOT}/releases/${live}/dist/version.json`)), 'the live release is whole');
  assert.is(await servedRelease(), live, 'the service answers from the live release');
  const s = await status();
  assert.is(s.live, live);
  assert.is(s.serving, live);
  assert.is(s.lock, null, 'nobody holds the lock');
  assert.is(s.releases.find((r: any) => r.id === live)?.state, 'ready');
  for (const r of s.releases) assert.is.not(r.state, 'building', `${r.id} is not left building`);
  expectExit(await h.host.exec(['flock', '--nonblock', `${APP_ROOT}/cutover.lock`, 'true']), 0, 'the lock is free');
}

/** The pid (inside the host) of the release building a commit, from its build-started event. */
async function builderPid(commit: string): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const e = history().find((x) => x.event === 'build-started' && x.commit === commit);
    if (e) return e.pid;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no build of ${commit} started`);
}

async function waitForStep(run: RunningKit, re: RegExp, what: string): Promise<void> {
  if (!(await run.waitFor(re, 60_000))) throw new Error(`${what} never printed ${re}:\n${tail(run.stdout() + run.stderr())}`);
}

test.before(async () => {
  if (!ROOT) return;
  ({ h, repo, manifest } = await bootNodeApp(APP, PORT, {
    // A commit holding SLOW_BUILD builds until the test opens its gate (/tmp/go-<version>, at most 2 min):
    // a deploy that holds the lock for as long as the test needs, however loaded the machine is.
    build: 'if [ -f SLOW_BUILD ]; then for i in $(seq 1200); do [ -e /tmp/go-$(cat VERSION) ] && break; sleep 0.1; done; fi; node build.js',
    keep: 10,
  }));
  await setUp(async () => {
    expectExit(await h.kit('release', [await newCommit(false)], { manifest }), 0, 'release v2');
  });
});

// A failed test must not leave a gated build waiting for its two minutes.
test.after.each(() => {
  if (h) openGates();
});

closeWith(() => h);

it('two releases of different commits started at the same instant: one builds and goes live, the other exits 3 naming it', async () => {
  const a = await newCommit(true);
  const b = await newCommit(true);
  const before = releasesOnDisk();
  const t = Date.now();
  const runs = [startKit(h, 'release', [a], { manifest }), startKit(h, 'release', [b], { manifest })];
  // The winner builds until the gate opens; the loser gives up at once.
  await Promise.race(runs.map((r) => r.done));
  openGates();
  const [ra, rb] = await Promise.all(runs.map((r) => r.done));
  const results = [{ commit: a, r: ra! }, { commit: b, r: rb! }];
  const winner = results.find((x) => x.r.code === 0);
  const loser = results.find((x) => x.r.code !== 0);
  assert.ok(winner && loser, `exactly one won:\n${results.map((x) => `exit ${x.r.code}\n${tail(x.r.stdout + x.r.stderr, 10)}`).join('\n---\n')}`);
  const pid = history().find((e) => e.event === 'build-started' && e.commit === winner!.commit).pid;
  assertRefused(loser!.r, 'the second release', { pid, operation: `release ${winner!.commit}`, after: t });
  // The loser did nothing: no build of its commit, no directory.
  assert.not.ok(history().some((e) => e.commit === loser!.commit), 'the refused release left no trace in the history');
  const made = releasesOnDisk().filter((id) => !before.includes(id));
  assert.equal(made, [winner!.commit.slice(0, 12)], 'only the winner built a release');
  assert.is(revision(made[0]!), winner!.commit);
  await assertWhole(winner!.commit.slice(0, 12));
  // Run again, the refused one simply goes through.
  expectExit(await h.kit('release', [loser!.commit], { manifest }), 0, 'the refused release, run again');
  await assertWhole(loser!.commit.slice(0, 12));
});

it('a release and a prune started together: the prune is refused while the release holds the lock, or runs first; a prune during the build is refused naming it', async () => {
  const sha = await newCommit(true);
  const live = activeId();
  const t = Date.now();
  let release = startKit(h, 'release', [sha], { manifest });
  const together = await h.kit('prune', ['--keep', '1'], { manifest });
  // Started together, either may take the lock first.
  if (await release.waitFor(/^==> build: /m, 60_000)) {
    // The release won: the prune ran before it took the lock, or was refused naming it.
    if (together.code !== 0) assertRefused(together, 'prune started with the release', { pid: await builderPid(sha), operation: `release ${sha}`, after: t });
  } else {
    // The prune won: the release gave up at once, naming the prune, and did nothing.
    const lost = await release.done;
    expectExit(together, 0, 'the prune that took the lock first');
    assert.is(lost.code, 3, `the release exits 3:\n${lost.stdout}\n${lost.stderr}`);
    const m = HOLDER.exec(lost.stderr);
    assert.ok(m && m[3] === 'prune --keep 1' && Date.parse(m[4]!) >= t - 2000, `the release names the prune and since when:\n${lost.stderr}`);
    assert.not.ok(history().some((e) => e.commit === sha), 'the refused release left no trace');
    release = startKit(h, 'release', [sha], { manifest });
    await waitForStep(release, /^==> build: /m, 'the release, run again');
  }
  const during = await h.kit('prune', ['--keep', '1'], { manifest });
  assertRefused(during, 'prune during the build', { pid: await builderPid(sha), operation: `release ${sha}`, after: t });
  assert.ok(fs.existsSync(inHost(h, `${APP_ROOT}/releases/${live}`)), 'the live release is still there');
  openGates();
  const r = await release.done;
  expectExit(r, 0, 'the release');
  await assertWhole(sha.slice(0, 12));
});

it('a rollback during a release is refused naming the release, and changes nothing; the release completes', async () => {
  const sha = await newCommit(true);
  const live = activeId();
  const target = (await status()).rollbackTarget;
  const t = Date.now();
  const release = startKit(h, 'release', [sha], { manifest });
  await waitForStep(release, /^==> build: /m, 'the release');
  const events = history().length;
  const rollback = await h.kit('rollback', [], { manifest });
  assertRefused(rollback, 'rollback during a release', { pid: await builderPid(sha), operation: `release ${sha}`, after: t });
  assert.is(activeId(), live, 'the refused rollback did not switch');
  assert.is(history().length, events, 'the refused rollback recorded nothing');
  assert.is(await servedRelease(), live, 'the live release still answers');
  openGates();
  expectExit(await release.done, 0, 'the release');
  await assertWhole(sha.slice(0, 12));
  // The rollback, run again now, goes to the release that was live before this release.
  expectExit(await h.kit('rollback', [], { manifest }), 0, 'rollback afterwards');
  await assertWhole(live);
  assert.ok(target, 'there was a rollback target');
  // Back to the newest for the next test.
  expectExit(await h.kit('release', [sha, '--rebuild'], { manifest }), 0, 'release again');
});

it("cron's prune (the real cron line's command) fires during a long build: it says it skipped, exits 0, and the build completes", async () => {
  const cronFile = h.read(`/etc/cron.d/cutover-${APP}`);
  const line = cronFile.split('\n').find((l) => /^[^#\s].*--cron/.test(l));
  assert.ok(line, `the cron file has a prune line:\n${cronFile}`);
  const fields = line!.trim().split(/\s+/);
  assert.is(fields[5], 'root', 'the cron line runs as root');
  const command = fields.slice(6).join(' ');
  const pruneOnly = command.split(' 2>&1 |')[0]!;
  const env = Object.fromEntries(
    cronFile.split('\n').filter((l) => /^[A-Z]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const sha = await newCommit(true);
  const t = Date.now();
  const release = startKit(h, 'release', [sha], { manifest });
  await waitForStep(release, /^==> build: /m, 'the release');
  const pid = await builderPid(sha);
  // As cron runs it: /bin/sh -c, cron's bare environment plus the file's SHELL and PATH, output to the journal.
  const cron = await h.host.exec(['/bin/sh', '-c', command], { env: { ...env, HOME: '/root' }, timeoutMs: 60_000 });
  expectExit(cron, 0, 'the cron line');
  // The prune part alone, for its own exit code and words.
  const prune = await h.host.exec(['/bin/sh', '-c', pruneOnly], { env: { ...env, HOME: '/root' }, timeoutMs: 60_000 });
  expectExit(prune, 0, "cron's prune while a release builds");
  assert.match(prune.stdout, /Prune skipped/);
  const m = HOLDER.exec(prune.stdout);
  assert.ok(m, `it names the holder: ${prune.stdout}`);
  assert.is(Number(m![2]), pid);
  assert.is(m![3], `release ${sha}`);
  assert.ok(Date.parse(m![4]!) >= t - 2000, 'since when');
  let journal = '';
  for (let i = 0; i < 50 && !/Prune skipped/.test(journal); i++) {
    journal = (await h.host.exec(['journalctl', '--no-pager', '-t', 'cutover-prune'])).stdout;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(journal, /Prune skipped: Another cutover operation holds this app's lock/, 'the cron run said so in the journal');
  assert.is(release.stdout().includes('failed after'), false, 'the build was not disturbed');
  openGates();
  const r = await release.done;
  expectExit(r, 0, 'the release');
  assert.match(r.stdout, /==> build: .*\n(.*\n)*?    done in/, 'the build completed');
  await assertWhole(sha.slice(0, 12));
});

test.run();
