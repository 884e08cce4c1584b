// system tier: the manifest's hooks at each lifecycle point, in a real systemd host: what they are told, who runs them, and what each failure does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import { expectExit, SRC, type KitHost } from '../helpers/hostkit.ts';
import { systemTier } from '../helpers/prereq.ts';
import { cleanupTempDirs, type AppRepo } from '../helpers/gitrepo.ts';
import { inHost } from '../helpers/crash.ts';
import { bootNodeApp, nodeApp, releaseCommit } from '../helpers/fixtures.ts';
import { activeInside, historyInside, loopback, out, servingPid, statusJson } from '../helpers/system.ts';
import { httpGet } from '../helpers/apps.ts';

const { it, ready: ROOT } = systemTier(import.meta.url);

// Ports 4800-4899 belong to the hook tests; this file uses 4801.
const APP = 'hooksapp';
const PORT = 4801;
const APP_ROOT = `/usr/local/src/${APP}`;
const LOG_DIR = '/var/lib/hooktest';
const LOG = `${LOG_DIR}/hooks.log`;
const BLOCK = `${LOG_DIR}/block`;
const t0 = Date.now();

let h: KitHost;
let repo: AppRepo;
let url: string;
let manifest: string;

/** A hook that appends one line of what it was told (and who it is, where, what `active` names) to the log. */
const RECORD =
  `printf '%s\\n' "$CUTOVER_HOOK|release=$CUTOVER_RELEASE|commit=$CUTOVER_COMMIT|previous=$CUTOVER_PREVIOUS_RELEASE|previous_commit=$CUTOVER_PREVIOUS_COMMIT` +
  `|via=$CUTOVER_VIA|outcome=$CUTOVER_OUTCOME|user=$(id -un)|cwd=$PWD|active=$(readlink ${APP_ROOT}/active)|greeting=$HOOK_GREETING|app=$CUTOVER_APP|reason=$CUTOVER_REASON" >> ${LOG}`;

type Hook = { run: string; as?: 'app' | 'root'; timeout?: number };
const recordAll = (): Record<string, Hook[]> => ({
  after_build: [{ run: RECORD }],
  before_cutover: [{ run: RECORD }],
  after_cutover: [{ run: RECORD }, { run: RECORD, as: 'root' }],
  after_failure: [{ run: RECORD }],
  after_rollback: [{ run: RECORD }],
});

/** Writes the manifest with these hooks (and any other keys), as an operator edits it between deploys. */
function withHooks(hooks: Record<string, Hook[]>, over: Record<string, unknown> = {}): void {
  manifest = h.manifest(nodeApp(APP, url, PORT, { env: { STARTUP_DELAY_MS: '50', HOOK_GREETING: 'hello' }, hooks, ...over }));
}

type Line = Record<string, string> & { hook: string };
/** The log's lines since the last clearLog, parsed. */
function logLines(): Line[] {
  const file = inHost(h, LOG);
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => {
    const [hook, ...fields] = l.split('|');
    return Object.fromEntries([['hook', hook], ...fields.map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)])]) as Line;
  });
}
const clearLog = () => fs.rmSync(inHost(h, LOG), { force: true });
const active = () => activeInside(h, APP_ROOT);
async function served(): Promise<string> {
  const r = await httpGet(loopback(PORT), { timeoutMs: 10_000 });
  assert.is(r.status, 200, `the app answers: ${r.body}`);
  return JSON.parse(r.body).release;
}

test.before(async () => {
  if (!ROOT) return;
  ({ h, repo, manifest } = await bootNodeApp(APP, PORT));
  url = `${SRC}/${APP}`;
  // Not sticky (unlike /tmp and /var/tmp), so the app's user and root may both append to one log.
  expectExit(await h.host.exec(['install', '-d', '-m', '0777', LOG_DIR]), 0, 'the hook log directory');
});

test.after(async () => {
  if (h) await h.stop();
  await cleanupTempDirs();
  console.log(`\n  hooks.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

it('a release runs after_build, before_cutover and after_cutover in order, in the release directory, with the facts, as the app user or root', async () => {
  withHooks(recordAll());
  clearLog();
  const v1 = active()!;
  const v1commit = historyInside(h, APP_ROOT).find((e) => e.release === v1)!.commit;
  const { id, r } = await releaseCommit((v, a) => h.kit(v, a, { manifest }), repo, 'v2', { VERSION: '2\n' });
  const lines = logLines();
  assert.equal(lines.map((l) => `${l.hook}:${l.user}`), ['after_build:hooksapp', 'before_cutover:hooksapp', 'after_cutover:hooksapp', 'after_cutover:root'], out(r));
  const commit = historyInside(h, APP_ROOT).find((e) => e.release === id && e.event === 'activated')!.commit;
  for (const l of lines) {
    assert.is(l.release, id);
    assert.is(l.commit, commit);
    assert.is(l.previous, v1);
    assert.is(l.previous_commit, v1commit);
    assert.is(l.cwd, `${APP_ROOT}/releases/${id}`);
    assert.is(l.greeting, 'hello', "the app's environment");
    assert.is(l.app, APP);
    assert.is(l.reason, '');
  }
  assert.equal(lines.map((l) => l.outcome), ['built', 'starting', 'live', 'live']);
  assert.equal(lines.map((l) => l.via), ['release', 'release', 'release', 'release']);
  assert.is(lines[1].active, `releases/${v1}`, 'before_cutover runs while the old release is still active');
  assert.is(lines[2].active, `releases/${id}`, 'after_cutover runs once the new one is');
  assert.match(r.stdout, `==> hook before_cutover: ${RECORD}`);
  assert.match(r.stdout, '==> hook after_cutover (as root): ');
  assert.is(await served(), id);
});

it('a failing before_cutover hook stops the activation: exit 1, nothing changed, the later hooks of the point do not run, after_failure runs; the release stays ready and activates once the hook passes', async () => {
  withHooks({ ...recordAll(), before_cutover: [{ run: `test ! -e ${BLOCK}` }, { run: RECORD }] });
  fs.writeFileSync(inHost(h, BLOCK), '');
  const live = active()!;
  clearLog();
  const { id, r } = await releaseCommit((v, a) => h.kit(v, a, { manifest }), repo, 'v3', { VERSION: '3\n' }, 1);
  assert.match(r.stderr, `The activation of ${id} was stopped by its hooks.before_cutover[0] hook`);
  assert.match(r.stderr, `${live} is still live`);
  assert.match(r.stderr, `activate ${id}`);
  assert.is(active(), live, 'active is unchanged');
  assert.is(await served(), live, 'the old release serves');
  const lines = logLines();
  assert.equal(lines.map((l) => l.hook), ['after_build', 'after_failure']);
  assert.is(lines[1].outcome, 'failed');
  assert.match(lines[1].reason, /^hooks\.before_cutover\[0\] hook: `test ! -e \/var\/lib\/hooktest\/block` failed with exit code 1/);
  const last = historyInside(h, APP_ROOT).at(-1);
  assert.is(last.event, 'activation-stopped');
  assert.is(last.release, id);
  const s = await statusJson(h, manifest);
  assert.is(s.releases.find((x: any) => x.id === id)?.state, 'ready', 'not marked bad: the hook, not the release, said no');
  fs.rmSync(inHost(h, BLOCK));
  clearLog();
  const again = await h.kit('activate', [id], { manifest });
  expectExit(again, 0, 'activate once the hook passes');
  assert.equal(logLines().map((l) => l.hook), ['before_cutover', 'after_cutover', 'after_cutover']);
  assert.is(await served(), id);
});

it('a failing before_cutover hook on a restart in place (activate --restart): the serving process is untouched, nothing is recorded, after_failure runs', async () => {
  withHooks({ before_cutover: [{ run: `test ! -e ${BLOCK}` }], after_failure: [{ run: RECORD }] });
  fs.writeFileSync(inHost(h, BLOCK), '');
  const live = active()!;
  const pid = await servingPid(h, APP);
  const events = historyInside(h, APP_ROOT).length;
  clearLog();
  try {
    const r = await h.kit('activate', [live, '--restart'], { manifest });
    expectExit(r, 1, 'activate --restart with a failing before_cutover hook');
    assert.match(r.stderr, `The activation of ${live} was stopped by its hooks.before_cutover[0] hook`);
    assert.is(await servingPid(h, APP), pid, 'the same process serves');
    assert.is(historyInside(h, APP_ROOT).length, events, 'a restart in place records no stopped activation');
    assert.equal(logLines().map((l) => [l.hook, l.release, l.outcome]), [['after_failure', live, 'failed']]);
    assert.is(await served(), live);
  } finally {
    fs.rmSync(inHost(h, BLOCK), { force: true });
  }
});

it('a before_cutover hook past its time limit is stopped with every process it started, and the activation with it', async () => {
  withHooks({ before_cutover: [{ run: 'sleep 611 & sleep 612', timeout: 2 }], after_failure: [{ run: RECORD }] });
  const live = active()!;
  clearLog();
  const t = Date.now();
  const { id, r } = await releaseCommit((v, a) => h.kit(v, a, { manifest }), repo, 'v4', { VERSION: '4\n' }, 1);
  assert.ok(Date.now() - t < 60_000, 'it gave up at the limit');
  assert.match(r.stderr, /did not finish within its time limit of 2 s \(hooks\.before_cutover\[0\]\.timeout in the manifest\)/);
  const left = await h.host.exec(['pgrep', '-f', 'sleep 61[12]']);
  assert.is(left.stdout.trim(), '', 'no process of the hook remains');
  assert.is(active(), live);
  assert.is(await served(), live);
  assert.equal(logLines().map((l) => [l.hook, l.release]), [['after_failure', id]]);
});

it("an after hook's failure is a warning: after_build and after_cutover fail, the release still goes live, exit 0; the other hooks of the point still run", async () => {
  withHooks({ after_build: [{ run: 'echo build-hook-says-no >&2; exit 3' }], after_cutover: [{ run: 'exit 4' }, { run: RECORD }] });
  clearLog();
  const { id, r } = await releaseCommit((v, a) => h.kit(v, a, { manifest }), repo, 'v5', { VERSION: '5\n' }, 0);
  assert.match(r.stderr, /warning: the hooks\.after_build\[0\] hook failed \(`echo build-hook-says-no >&2; exit 3` failed with exit code 3 after [^)]*\); the release is built and stays ready\./);
  assert.match(r.stderr, /warning: the hooks\.after_cutover\[0\] hook failed \(`exit 4` failed with exit code 4 after [^)]*\); the release is live regardless\./);
  assert.match(out(r), 'build-hook-says-no', "the hook's own output is shown");
  assert.equal(logLines().map((l) => l.hook), ['after_cutover'], 'the second after_cutover hook ran');
  assert.is(active(), `${id}`);
  assert.is(await served(), id);
});

it('a release that fails its health gate runs after_failure with the reason after the old release is back; before_cutover ran, after_cutover did not', async () => {
  withHooks(recordAll(), { preflight: false });
  const live = active()!;
  clearLog();
  const { id, r } = await releaseCommit((v, a) => h.kit(v, a, { manifest }), repo, 'unhealthy', { VERSION: '6\n', BEHAVIOUR: 'unhealthy\n' }, 1);
  const lines = logLines();
  assert.equal(lines.map((l) => l.hook), ['after_build', 'before_cutover', 'after_failure'], out(r));
  const failure = lines[2];
  assert.is(failure.release, id);
  assert.is(failure.previous, live);
  assert.is(failure.outcome, 'failed');
  assert.match(failure.reason, /500/);
  assert.is(failure.active, `releases/${live}`, 'after_failure runs once the old release is active again');
  assert.is(await served(), live);
  assert.is(historyInside(h, APP_ROOT).at(-1).event, 'activation-failed');
});

it('rollback runs before_cutover, after_cutover and after_rollback, told it came from the release it left', async () => {
  withHooks(recordAll());
  const from = active()!;
  clearLog();
  const r = await h.kit('rollback', [], { manifest });
  expectExit(r, 0, 'rollback');
  const to = active()!;
  assert.is.not(to, from);
  const lines = logLines();
  assert.equal(lines.map((l) => l.hook), ['before_cutover', 'after_cutover', 'after_cutover', 'after_rollback'], out(r));
  for (const l of lines) {
    assert.is(l.release, to);
    assert.is(l.previous, from);
    assert.is(l.via, 'rollback');
  }
  assert.is(lines[3].outcome, 'rolled-back');
  assert.is(await served(), to);
});

it('a dry run names the hooks it would run and runs none', async () => {
  withHooks(recordAll());
  clearLog();
  const sha = await repo.commit({ VERSION: '7\n' }, 'v7');
  const r = await h.kit('release', [sha, '--dry-run'], { manifest });
  expectExit(r, 0, 'release --dry-run');
  assert.match(r.stdout, `would run: ${RECORD}`);
  assert.equal(logLines(), []);
});

test.run();
