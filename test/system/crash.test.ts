// system tier: SIGKILL the kit at every step boundary of release, activate, rollback and prune (and in the middle of fetch, install, build and a delete), and cut the power during an activation; after each the app is whole, status tells the truth, and the next release just works.
//
// Each kill lands where it claims. A boundary is named to the kit with the test-only switch
// CUTOVER_TEST_PAUSE (scripts/lib/run/log.ts): the kit prints "[cutover test pause] <point>" there and
// blocks until it is killed, so the SIGKILL to its whole process group (the kit and every command it
// started) cannot come a moment late. The middle of install and build is marked by the app's own
// command (it prints a line, then sleeps); the middle of fetch and of a delete is found by watching
// the host, and checked afterwards. A point that is not reached, or a kill that landed elsewhere,
// fails the test. One host boot serves every point; two apps ("lanes") take turns in parallel.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import fs from 'node:fs';
import path from 'node:path';
import { bootKitHost, expectExit, type KitHost } from '../helpers/hostkit.ts';
import { httpGet } from '../helpers/apps.ts';
import { cleanupTempDirs, tempDir, type AppRepo } from '../helpers/gitrepo.ts';
import { bootKitHostAgain, inHost, runAndKill, startKit, tail, type KillPoint, type KillResult } from '../helpers/crash.ts';
import { PAUSE_MARK } from '../../scripts/lib/run/log.ts';
import { systemTier } from '../helpers/prereq.ts';
import { nodeApp, setUp } from '../helpers/fixtures.ts';

const { it, ready: ROOT } = systemTier(import.meta.url);

// Ports 3700-3799 belong to the reliability tests; this file uses 3701 and 3702.
const t0 = Date.now();
let h: KitHost;
let stateDir: string;

interface Lane {
  app: string;
  port: number;
  root: string;
  repo: AppRepo;
  url: string;
  manifest: string;
  version: number;
}
const lanes: Lane[] = [];

interface Outcome {
  name: string;
  /** Where the kill landed (the pause point, or the place found by watching): the summary counts distinct ones. */
  at: string;
  problems: string[];
}
const outcomes: Outcome[] = [];

// ---------------------------------------------------------------------------------------------
// The app and its state, read from the host

function manifestObject(app: string, port: number, repoUrl: string): Record<string, unknown> {
  return nodeApp(app, repoUrl, port, {
    // A commit holding SLOW_INSTALL or SLOW_BUILD makes that step say so, then take 3 s: the kill comes in that sleep.
    install: 'if [ -f SLOW_INSTALL ]; then echo "the install is running"; sleep 3; fi; echo installed > .installed',
    build: 'if [ -f SLOW_BUILD ]; then echo "the build is running"; sleep 3; fi; node build.js',
    migrate: 'echo migrated',
    shared: ['uploads/'],
    keep: 3,
    // Hooks at every point, so a kill can land in each (they do nothing else).
    hooks: Object.fromEntries(['after_build', 'before_cutover', 'after_cutover', 'after_failure', 'after_rollback'].map((point) => [point, [{ run: 'true' }]])),
  });
}

function activeId(l: Lane): string | undefined {
  try {
    return fs.readlinkSync(inHost(h, `${l.root}/active`)).replace(/^releases\//, '');
  } catch {
    return undefined;
  }
}

const releaseDir = (l: Lane, id: string) => inHost(h, `${l.root}/releases/${id}`);

/** Why a release directory does not hold a whole build (its REVISION, the app, the install's and the build's output), or undefined. */
function incomplete(l: Lane, id: string): string | undefined {
  const dir = releaseDir(l, id);
  if (!fs.existsSync(dir)) return 'its directory is missing';
  for (const f of ['REVISION', 'server.js', 'package.json', '.installed', 'dist/version.json']) {
    if (!fs.existsSync(path.join(dir, f))) return `its ${f} is missing`;
  }
  return undefined;
}

const revisionOf = (l: Lane, id: string) => fs.readFileSync(path.join(releaseDir(l, id), 'REVISION'), 'utf8').trim();

async function status(l: Lane): Promise<any> {
  const r = await h.kit('status', ['--json'], { manifest: l.manifest });
  expectExit(r, 0, `status --json of ${l.app}`);
  return JSON.parse(r.stdout);
}

/** What the app answers on GET /: the release it runs in and its version, or why it did not answer. */
async function served(l: Lane): Promise<{ release: string; version: string } | string> {
  try {
    const r = await httpGet(`http://127.0.0.1:${l.port}/`, { timeoutMs: 10_000 });
    if (r.status !== 200) return `HTTP ${r.status}`;
    const j = JSON.parse(r.body);
    return { release: j.release, version: String(j.version).trim() };
  } catch (e) {
    return (e as Error).message;
  }
}

const BULK_FILES = 3000;

/** A new commit on main: VERSION n, plus extra files; the test switches (SLOW_*, BIG, bulk/) of earlier commits are dropped. */
async function newCommit(l: Lane, extra: Record<string, string | null> = {}): Promise<string> {
  l.version++;
  return l.repo.commit({ VERSION: `${l.version}\n`, SLOW_INSTALL: null, SLOW_BUILD: null, BIG: null, bulk: null, ...extra }, `v${l.version}`);
}

// ---------------------------------------------------------------------------------------------
// What "safe" means after a kill

interface Expect {
  /** The commit the next release must make live (the one the killed run was about). */
  commit: string;
  /** A release killed during its build: it must show interrupted, or ready if the kill came after its build finished. */
  building?: string;
  /** The release a killed rollback was leaving. */
  leaving?: string;
}

/** The release a killed `release` was building, from its "==> export <sha> into …/releases/<id>" header. */
function buildingIn(out: string): string | undefined {
  return /==> (?:export [0-9a-f]+|unpack the archive) into \S+\/releases\/(\S+)/.exec(out)?.[1];
}

function historyOf(l: Lane): any[] {
  return fs.readFileSync(inHost(h, `${l.root}/history.jsonl`), 'utf8').split('\n').filter(Boolean).flatMap((x) => {
    try {
      return [JSON.parse(x)];
    } catch {
      return []; // a line cut short is skipped by the kit too
    }
  });
}

/**
 * After a kill, "safe" means:
 *  - nothing of the killed run is left running, and the lock is free (flock agrees, status names no holder);
 *  - `active` points at a complete release that the history calls ready;
 *  - the service answers, and status is truthful about it: `live` is what `active` says, and
 *    `serving` is the release that actually answered (they differ only when the kill fell between
 *    the switch and the end of the handover; with both slots running, either may answer, and status
 *    names the second as `alsoServing`);
 *  - an activation cut short after its switch (active is not the history's last activation) is
 *    reported as unfinished, with no rollback target, and a plain `rollback` refuses to guess which
 *    way "back" is (exit 1, nothing changed) instead of undoing the half-done activation;
 *  - no release is "building" (its process is gone): the killed build shows interrupted, or ready
 *    when the kill came after its build was recorded;
 *  - every release status calls ready that is on disk is whole, and so is the rollback target,
 *    which is never the live release;
 *  - once a rollback's activation is recorded, the release it left is bad, never the rollback target.
 */
async function checkAfterKill(l: Lane, kr: Pick<KillResult, 'survivors' | 'stdout'>, expect: Expect): Promise<string[]> {
  const problems: string[] = [];
  if (kr.survivors.length) problems.push(`processes of the killed run still alive: ${kr.survivors.join(', ')}`);
  const flock = await h.host.exec(['flock', '--nonblock', `${l.root}/cutover.lock`, 'true'], { timeoutMs: 20_000 });
  if (flock.code !== 0) problems.push('the lock is still held');
  const live = activeId(l);
  if (!live) problems.push('active points at no release');
  else if (incomplete(l, live)) problems.push(`active points at ${live}, and ${incomplete(l, live)}`);
  const answer = await served(l);
  const s = await status(l);
  if (s.lock !== null) problems.push(`status says the lock is held: ${s.lock}`);
  if (s.live !== (live ?? null)) problems.push(`status says live is ${s.live}, active points at ${live}`);
  const byId = new Map<string, any>(s.releases.map((r: any) => [r.id, r]));
  if (live && byId.get(live)?.state !== 'ready') problems.push(`the live release ${live} is ${byId.get(live)?.state}, not ready`);
  if (typeof answer === 'string') problems.push(`the service does not answer: ${answer}`);
  // A handover cut short leaves two slots answering; status names both (serving, alsoServing).
  else if (answer.release !== s.serving && answer.release !== s.alsoServing) problems.push(`the service answers from ${answer.release}, but status says it serves ${s.serving}${s.alsoServing ? ` and ${s.alsoServing}` : ''}`);
  for (const r of s.releases) {
    if (r.state === 'building') problems.push(`${r.id} is still "building" though no process builds it`);
    if (r.state === 'ready' && r.onDisk && incomplete(l, r.id)) problems.push(`status calls ${r.id} ready, but ${incomplete(l, r.id)}`);
  }
  if (s.rollbackTarget) {
    if (byId.get(s.rollbackTarget)?.state !== 'ready' || incomplete(l, s.rollbackTarget)) {
      problems.push(`the rollback target ${s.rollbackTarget} is not a whole ready release`);
    }
    if (s.rollbackTarget === s.live) problems.push('the rollback target is the live release');
  }
  const events = historyOf(l);
  const recorded = events.filter((e) => e.event === 'activated').at(-1)?.release;
  if (live && live !== recorded) {
    // Cut short between the switch and the record.
    if (s.unfinished !== live) problems.push(`active (${live}) is ahead of the last recorded activation (${recorded}), but status does not call it unfinished`);
    if (s.rollbackTarget !== null) problems.push(`status offers ${s.rollbackTarget} as the rollback target of an unfinished activation`);
    const rb = await h.kit('rollback', [], { manifest: l.manifest });
    if (rb.code !== 1 || !/did not finish/.test(rb.stderr)) problems.push(`a plain rollback of the unfinished activation exited ${rb.code}:\n${tail(rb.stdout + rb.stderr, 6)}`);
    if (activeId(l) !== live) problems.push('that rollback switched anyway');
  } else if (s.unfinished !== null) problems.push(`status calls ${s.unfinished} unfinished, though its activation is recorded`);
  if (expect.building) {
    const want = /^Release \S+ is ready/m.test(kr.stdout) ? 'ready' : 'interrupted';
    const got = byId.get(expect.building)?.state;
    if (got !== want) problems.push(`the killed build ${expect.building} shows ${got ?? 'nothing'}, expected ${want}`);
  }
  if (expect.leaving && recorded !== expect.leaving && events.some((e) => e.event === 'activated' && e.via === 'rollback' && e.previous === expect.leaving)) {
    const left = byId.get(expect.leaving);
    if (left?.state !== 'bad') problems.push(`the rollback's activation is recorded, yet ${expect.leaving}, the release it left, is ${left?.state}, not bad`);
    if (s.rollbackTarget === expect.leaving) problems.push(`status offers ${expect.leaving}, the release the rollback left, as the rollback target`);
  }
  return problems;
}

/** The next release of the same commit succeeds with no manual cleanup, and leaves that commit live, serving and whole. */
async function checkRecovery(l: Lane, expect: Expect): Promise<string[]> {
  const problems: string[] = [];
  let r = await h.kit('release', [expect.commit], { manifest: l.manifest });
  // The app's scheduled prune (cron, 17 3 * * * by default) may hold the lock when the clock passes 03:17:
  // an operator waits for it and tries again, and so does this check.
  for (let i = 0; i < 15 && r.code === 3 && /doing "prune --cron"/.test(r.stderr); i++) {
    await new Promise((done) => setTimeout(done, 2000));
    r = await h.kit('release', [expect.commit], { manifest: l.manifest });
  }
  if (r.code !== 0) return [`the next release of ${expect.commit.slice(0, 12)} exited ${r.code}:\n${tail(r.stdout + r.stderr, 15)}`];
  const live = activeId(l);
  const revision = live && !incomplete(l, live) ? revisionOf(l, live) : '';
  if (revision !== expect.commit) problems.push(`after the next release, active is ${live} (${revision.slice(0, 12) || 'incomplete'}), not the released commit`);
  const answer = await served(l);
  if (typeof answer === 'string') problems.push(`after the next release the service does not answer: ${answer}`);
  else if (answer.release !== live) problems.push(`after the next release the service answers from ${answer.release}, but active is ${live}`);
  const hist = fs.readFileSync(inHost(h, `${l.root}/history.jsonl`), 'utf8').trim().split('\n').map((x) => JSON.parse(x));
  const lastActivation = hist.filter((e) => e.event === 'activated').at(-1);
  if (lastActivation?.release !== live) problems.push(`after the next release the history's last activation is ${lastActivation?.release}, not the live ${live}`);
  for (const id of fs.readdirSync(inHost(h, `${l.root}/releases`))) {
    const started = hist.filter((e) => e.release === id);
    const last = started.at(-1)?.event;
    if (last === 'build-started' || last === 'build-interrupted') problems.push(`the interrupted build ${id} is still on disk after the next release`);
  }
  const units = await h.host.exec(['systemctl', 'list-units', '--all', '--no-legend', '--plain', `cutover-preflight-${l.app}-*`]);
  if (units.stdout.trim()) problems.push(`preflight units left behind:\n${units.stdout.trim()}`);
  return problems;
}

function report(name: string, at: string, problems: string[], ms: number, out?: string): Outcome {
  const o = { name, at, problems };
  outcomes.push(o);
  const detail = problems.length ? `\n      ${problems.join('\n      ')}${out ? `\n      --- the killed run printed:\n${tail(out, 8).replace(/^/gm, '      | ')}` : ''}` : '';
  console.log(`  ${problems.length ? 'UNSAFE' : 'safe  '} ${name} (${(ms / 1000).toFixed(1)} s)${detail}`);
  return o;
}

interface Point extends KillPoint {
  /**
   * The pause point the kit stops at (CUTOVER_TEST_PAUSE, see scripts/lib/run/log.ts): "<step title
   * prefix>:start|end" or "<line prefix>:line". {sha} and {id} stand for the commit the attempt
   * releases and its release id. The kill follows the kit's pause mark.
   */
  pause?: string;
  /** The kill must land inside this step: its header is the last one printed, and it has not printed "done in". */
  within?: string;
}

interface Attempt {
  args: string[];
  expect: Omit<Expect, 'building'>;
  /** Values for {sha} and {id} in the pause point. */
  vars?: { sha?: string; id?: string };
  poll?: KillPoint['poll'];
  /** For a point found by watching the host: why the kill came too late, if it did. */
  late?: (kr: KillResult) => string | undefined;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Where the kill did not land as claimed (never reached, ended first, outside its step, too late), or undefined. */
function missed(point: Point, pause: string | undefined, kr: KillResult, late: string | undefined): string | undefined {
  if (!kr.killed) return kr.timedOut ? 'the kill point was never reached (timed out)' : `the run ended (exit ${kr.code}) before the kill point:\n${tail(kr.stdout + kr.stderr)}`;
  if (pause && !kr.stdoutAtKill.includes(`${PAUSE_MARK} ${pause}\n`)) return `the kit did not stop at ${pause}:\n${tail(kr.stdoutAtKill, 4)}`;
  if (point.within) {
    const last = kr.stdoutAtKill.split('\n').filter((x) => x.startsWith('==> ')).at(-1) ?? '';
    if (!last.startsWith(`==> ${point.within}`) || /\n    (done in|failed after)[^\n]*\n?$/.test(kr.stdoutAtKill)) {
      return `the kill missed the middle of ${point.within}: the run had printed\n${tail(kr.stdoutAtKill, 4)}`;
    }
  }
  return late ? `the kill came too late: ${late}` : undefined;
}

/**
 * One kill point: prepare, run the verb, SIGKILL it at the point, check the state, release the same
 * commit again, check again. A kill that did not land where the point claims fails it.
 */
async function killPoint(l: Lane, verb: string, point: Point, prepare: () => Promise<Attempt>): Promise<Outcome[]> {
  const { args, expect, vars, poll, late: lateFor } = await prepare();
  const pause = point.pause?.replace('{sha}', vars?.sha ?? args[0] ?? '').replace('{id}', vars?.id ?? (args[0] ?? '').slice(0, 12));
  const started = Date.now();
  const when = pause ? new RegExp(`^${escapeRe(`${PAUSE_MARK} ${pause}`)}$`, 'm') : point.when;
  const kr = await runAndKill(h, verb, args, { ...point, when, poll: poll ?? point.poll }, { manifest: l.manifest, env: pause ? { CUTOVER_TEST_PAUSE: pause } : undefined });
  const name = `${l.app}: ${verb}${args.length ? ' ' + args.join(' ') : ''}: ${point.name}`.replace(/\b[0-9a-f]{40}\b/g, (x) => x.slice(0, 12));
  const problems: string[] = [];
  const miss = missed(point, pause, kr, kr.killed ? lateFor?.(kr) : undefined);
  if (miss) problems.push(miss);
  if (kr.killed) {
    const building = verb === 'release' ? buildingIn(kr.stdout) : undefined;
    problems.push(...(await checkAfterKill(l, kr, { ...expect, building })));
    problems.push(...(await checkRecovery(l, expect)));
  }
  const at = `${verb} ${(point.pause ?? point.within ?? point.name).replace(/\{(sha|id)\}/g, '')}`;
  return [report(name, at, problems, Date.now() - started, kr.stdout)];
}

function assertAllSafe(list: Outcome[]): void {
  const bad = list.filter((o) => o.problems.length);
  assert.ok(list.length > 0, 'no kill points ran');
  assert.is(bad.length, 0, `${bad.length} of ${list.length} kill points were not safe:\n${bad.map((o) => `${o.name}:\n    ${o.problems.join('\n    ')}`).join('\n')}`);
}

/** Runs each lane's share of the points (point i goes to lane i mod 2), the lanes side by side. */
async function acrossLanes<P>(points: P[], run: (l: Lane, p: P) => Promise<Outcome[]>): Promise<Outcome[]> {
  const results = await Promise.all(
    lanes.map(async (l, i) => {
      const mine: Outcome[] = [];
      for (const p of points.filter((_, j) => j % lanes.length === i)) mine.push(...(await run(l, p)));
      return mine;
    }),
  );
  return results.flat();
}

const header = (title: string) => new RegExp(`^==> ${title}`, 'm');

// ---------------------------------------------------------------------------------------------

test.before(async () => {
  if (!ROOT) return;
  await setUp(async () => {
    stateDir = await tempDir('cutover-crash-state');
    h = await bootKitHost({ stateDir });
    for (const [app, port] of [['crasha', 3701], ['crashb', 3702]] as const) {
      const made = await h.repo(app);
      const l: Lane = { app, port, root: `/usr/local/src/${app}`, repo: made.repo, url: made.url, manifest: h.manifest(manifestObject(app, port, made.url)), version: 1 };
      lanes.push(l);
    }
    await Promise.all(
      lanes.map(async (l) => {
        expectExit(await h.kit('provision', [], { manifest: l.manifest }), 0, `provision ${l.app}`);
        for (let i = 0; i < 2; i++) {
          const sha = await newCommit(l);
          expectExit(await h.kit('release', [sha], { manifest: l.manifest }), 0, `release v${l.version} of ${l.app}`);
        }
      }),
    );
  });
});

test.after(async () => {
  if (h) await h.stop();
  await cleanupTempDirs();
  const safe = outcomes.filter((o) => o.problems.length === 0).length;
  const places = new Set(outcomes.map((o) => o.at)).size;
  console.log(`\n  crash safety: ${outcomes.length} kill points tried at ${places} distinct places (verb and step), ${safe} safe`);
  console.log(`  crash.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

/** Every boundary of an activation (release, activate and rollback all go through it): preflight, switch, the handover. */
const ACTIVATION_POINTS: Point[] = [
    { name: 'at ==> preflight', pause: 'preflight:start' },
    { name: 'at ==> hook before_cutover (preflight passed, nothing switched)', pause: 'hook before_cutover:start' },
    { name: 'at ==> switch active', pause: 'switch active:start' },
    { name: 'at ==> start (the new slot, beside the old one)', pause: 'start:start' },
    { name: 'at ==> health gate', pause: 'health gate:start' },
    { name: 'after the health gate passed, at ==> stop (the old slot drains)', pause: 'stop:start' },
    { name: 'after the old slot stopped, before the activation is recorded', pause: 'stop:end' },
    { name: 'after the activation is recorded, at ==> hook after_cutover', pause: 'hook after_cutover:start' },
];

it('release: SIGKILL at every step boundary, and in the middle of fetch, install and build', async () => {
  const points: (Point & { extra?: () => Record<string, string | null> })[] = [
    { name: 'at ==> fetch', pause: 'fetch:start' },
    { name: 'in the middle of fetch (a 48 MB commit)', when: header('fetch'), delayMs: 150, within: 'fetch', extra: () => ({ BIG: randomBytes(36 << 20).toString('base64') }) },
    { name: 'after the ref is resolved, before the build is recorded', pause: '{sha} is commit:line' },
    { name: 'at ==> export', pause: 'export:start' },
    { name: 'at ==> link shared paths', pause: 'link shared paths:start' },
    { name: 'at ==> install', pause: 'install:start' },
    { name: 'in the middle of install', when: /^the install is running$/m, within: 'install', extra: () => ({ SLOW_INSTALL: '1\n' }) },
    { name: 'at ==> build', pause: 'build:start' },
    { name: 'in the middle of build', when: /^the build is running$/m, within: 'build', extra: () => ({ SLOW_BUILD: '1\n' }) },
    { name: 'at ==> migrate', pause: 'migrate:start' },
    { name: 'at ==> seal', pause: 'seal:start' },
    { name: 'after the build is recorded ready', pause: 'Release {id} is ready:line' },
    { name: 'at ==> hook after_build', pause: 'hook after_build:start' },
    ...ACTIVATION_POINTS,
    { name: 'after the activation is recorded, at ==> prune', pause: 'prune:start' },
  ];
  const mine = await acrossLanes(points, (l, p) =>
    killPoint(l, 'release', p, async () => {
      const sha = await newCommit(l, p.extra?.());
      return { args: [sha], expect: { commit: sha } };
    }),
  );
  assertAllSafe(mine);
});

/**
 * An archive of a new commit, built by `cutover build` on this same host under a root of its own (so the
 * lane's root has never seen its release id), for `release --archive`.
 */
async function newArchive(l: Lane): Promise<{ sha: string; file: string }> {
  const sha = await newCommit(l);
  const builder = `/etc/cutover/${l.app}-builder.yaml`;
  fs.writeFileSync(inHost(h, builder), stringify({ ...manifestObject(l.app, l.port, l.url), root: `${l.root}-builder` }));
  const file = `/tmp/${l.app}-${sha.slice(0, 12)}.tar.gz`;
  expectExit(await h.kit('build', [sha, '--out', file], { manifest: builder }), 0, `build ${sha.slice(0, 12)} for ${l.app}`);
  return { sha, file };
}

it('release --archive: SIGKILL at every step boundary of a release from an archive (staging and unpack, the move into place, shared links, seal, ready)', async () => {
  const points: Point[] = [
    { name: 'at ==> verify (nothing staged yet)', pause: 'verify:start' },
    { name: 'after verify and the unpack into the staging directory, before the release is recorded', pause: 'verify:end' },
    { name: 'at ==> unpack', pause: 'unpack the archive:start' },
    { name: 'after the unpack, at ==> link shared paths', pause: 'link shared paths:start' },
    { name: 'at ==> seal', pause: 'seal:start' },
    { name: 'after the release from the archive is recorded ready', pause: 'Release {id} is ready:line' },
  ];
  const mine = await acrossLanes(points, (l, p) =>
    killPoint(l, 'release', p, async () => {
      const { sha, file } = await newArchive(l);
      return { args: ['--archive', file], expect: { commit: sha }, vars: { sha, id: sha.slice(0, 12) } };
    }),
  );
  assertAllSafe(mine);
  const staged = lanes.flatMap((l) => fs.readdirSync(inHost(h, `${l.root}/releases`)).filter((n) => n.startsWith('.incoming-')));
  assert.equal(staged, [], 'no staged archive is left behind: a killed run\'s copy and unpacked tree are removed by the next one');
});

/** A ready release that is not live (the rollback target): what activate and rollback go to. */
async function otherReady(l: Lane): Promise<{ id: string; commit: string; live: string }> {
  const s = await status(l);
  assert.ok(s.rollbackTarget, `${l.app} has a rollback target:\n${JSON.stringify(s, null, 2)}`);
  return { id: s.rollbackTarget, commit: revisionOf(l, s.rollbackTarget), live: s.live };
}

it('activate: SIGKILL at every step boundary', async () => {
  // A boundary is a pause point, "<step title prefix>:start|end" or "<line prefix>:line" (scripts/lib/run/log.ts).
  const points: Point[] = [
    ...ACTIVATION_POINTS,
  ];
  const mine = await acrossLanes(points, (l, p) =>
    killPoint(l, 'activate', p, async () => {
      const target = await otherReady(l);
      return { args: [target.id], expect: { commit: target.commit } };
    }),
  );
  assertAllSafe(mine);
});

it('rollback: SIGKILL at every step boundary', async () => {
  const points: Point[] = [
    { name: 'at "Rolling back"', pause: 'Rolling back from:line' },
    ...ACTIVATION_POINTS,
    { name: 'after the activation is recorded, before the release it leaves is marked bad', pause: 'Release {id} (commit:line' },
    { name: 'after the rollback, at ==> hook after_rollback', pause: 'hook after_rollback:start' },
  ];
  const mine = await acrossLanes(points, (l, p) =>
    killPoint(l, 'rollback', p, async () => {
      const target = await otherReady(l);
      return { args: [], vars: { id: target.id }, expect: { commit: target.commit, leaving: target.live } };
    }),
  );
  assertAllSafe(mine);
});

it('prune: SIGKILL at its boundaries, in the middle of deleting a release, and between two deletions', async () => {
  interface PrunePoint extends Point {
    /** For a point found by watching the host: the poll that fires the kill, and how to tell it came too late. */
    watch?: (l: Lane, bulk: string) => Pick<Attempt, 'poll' | 'late'>;
  }
  const removals = (l: Lane) => historyOf(l).filter((e) => e.event === 'removed').length;
  const points: PrunePoint[] = [
    { name: 'at the plan', pause: 'Prune plan:line' },
    { name: 'at the first "delete" line of the plan', pause: '  delete :line' },
    {
      name: `in the middle of deleting a release (${BULK_FILES} files)`,
      watch: (l, bulk) => {
        const dir = path.join(releaseDir(l, bulk), 'bulk');
        const before = fs.statSync(dir).mtimeMs;
        return {
          poll: () => fs.statSync(dir).mtimeMs !== before,
          late: () => (fs.existsSync(releaseDir(l, bulk)) ? undefined : `${bulk} was already deleted`),
        };
      },
    },
    {
      name: 'between two deletions',
      watch: (l) => {
        const before = removals(l);
        return {
          poll: () => removals(l) > before,
          late: (kr) => {
            const planned = (kr.stdout.match(/^ {2}delete /gm) ?? []).length;
            return removals(l) - before >= planned ? 'every deletion was done' : undefined;
          },
        };
      },
    },
    { name: 'at "Deleted"', pause: 'Deleted :line' },
  ];
  const mine = await acrossLanes(points, (l, p) =>
    killPoint(l, 'prune', p, async () => {
      // Two releases that are neither live nor the rollback target, the older one big: prune --keep 1 deletes it first.
      const bulk = Object.fromEntries(Array.from({ length: BULK_FILES }, (_, i) => [`bulk/f${i}`, `${i}\n`]));
      const shaBulk = await newCommit(l, bulk);
      expectExit(await h.kit('release', [shaBulk, '--no-activate'], { manifest: l.manifest }), 0, 'build the bulk release');
      const sha = await newCommit(l);
      expectExit(await h.kit('release', [sha, '--no-activate'], { manifest: l.manifest }), 0, 'build a newer release');
      const bulkId = fs.readdirSync(inHost(h, `${l.root}/releases`)).filter((id) => id.startsWith(shaBulk.slice(0, 12))).sort().at(-1)!;
      return { args: ['--keep', '1'], expect: { commit: revisionOf(l, activeId(l)!) }, ...p.watch?.(l, bulkId) };
    }),
  );
  assertAllSafe(mine);
});

it('power cut: the whole host stops after the switch, and after the new slot started beside the old one, of an activation; it boots again whole', async () => {
  const mine: Outcome[] = [];
  // Each cut lands at a pause point: after the switch (the old slot still serves), and after the new slot started (both run, the gate not yet passed).
  for (const pause of ['switch active:end', 'start:end']) {
    const started = Date.now();
    const l = lanes[0]!;
    const sha = await newCommit(l);
    expectExit(await h.kit('release', [sha, '--no-activate'], { manifest: l.manifest }), 0, 'build the release to activate');
    const id = sha.slice(0, 12);
    const recordedBefore = historyOf(l).filter((e) => e.event === 'activated').length;
    let cut: Promise<void> | undefined;
    const mark = `${PAUSE_MARK} ${pause}\n`;
    const run = startKit(h, 'activate', [id], {
      manifest: l.manifest,
      env: { CUTOVER_TEST_PAUSE: pause },
      onStdout: (all) => {
        if (!cut && all.includes(mark)) cut = h.host.cutPower();
      },
    });
    const r = await run.done;
    const problems: string[] = [];
    if (!cut) problems.push(`the activation ended (exit ${r.code}) before ${pause}:\n${tail(r.stdout + r.stderr)}`);
    else {
      await cut;
      h = await bootKitHostAgain(h, stateDir);
      // Where the cut landed, read from the disk: the switch was made, the activation not recorded.
      if (activeId(l) !== id) problems.push(`the cut at ${pause} should find active at ${id}, found ${activeId(l)}`);
      if (historyOf(l).filter((e) => e.event === 'activated').length !== recordedBefore) problems.push(`the cut at ${pause} came after the activation was recorded`);
      // Enabled units come back at boot by themselves: the socket listens before anyone runs anything.
      const socket = await h.host.exec(['systemctl', 'is-active', `${l.app}.socket`]);
      if (socket.stdout.trim() !== 'active') problems.push(`after the boot ${l.app}.socket is ${socket.stdout.trim()}`);
      problems.push(...(await checkAfterKill(l, { survivors: [], stdout: r.stdout }, { commit: sha })));
      problems.push(...(await checkRecovery(l, { commit: sha })));
    }
    mine.push(report(`${l.app}: power cut at ${pause} of activate ${id}, then a second boot`, `power cut: activate ${pause}`, problems, Date.now() - started, r.stdout));
  }
  assertAllSafe(mine);
});

test.run();
