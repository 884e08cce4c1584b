// fs tier: the release lifecycle with real git: refs of every kind, rollback from the history, activate, status, dry runs, usage.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { kitDir, makeFixture, runScript, scriptEnv, snapshot, type Fixture } from '../helpers/kit.ts';
import { cleanupTempDirs, type AppRepo } from '../helpers/gitrepo.ts';

let f: Fixture;
const c: string[] = []; // c[1] … the commits, in the order they are released
const id = (n: number) => c[n].slice(0, 12);
const rel = (n: number) => `releases/${id(n)}`;
const t0 = Date.now();

/** Commits, then amends the message until the hash satisfies want (to make names disagree with history order). */
async function commitWhere(repo: AppRepo, changes: Record<string, string | null>, msg: string, want: (sha: string) => boolean): Promise<string> {
  let sha = await repo.commit(changes, msg);
  for (let n = 1; !want(sha); n++) {
    if (n > 200) throw new Error('could not make a commit whose hash satisfies the test');
    await repo.git('commit', '--amend', '--quiet', '--allow-empty', '-m', `${msg} #${n}`);
    sha = await repo.head();
  }
  return sha;
}

/** The root as it is, minus the lock file's mtime (taking the lock rewrites it; that is not a change). */
function state(): Record<string, string> {
  const s = snapshot(f.root);
  if (s['cutover.lock']) s['cutover.lock'] = s['cutover.lock'].replace(/ [\d.]+$/, '');
  return s;
}

const events = (name: string) => f.history().filter((e) => e.event === name);
const last = (name: string) => events(name).at(-1);

test.before(async () => {
  f = await makeFixture({ keep: 10 });
  c[1] = await f.repo.head();
});
test.after(cleanupTempDirs);

test('release by full commit hash', async () => {
  const r = await f.run('release', [c[1]]);
  assert.is(r.code, 0, r.out);
  assert.is(f.active(), rel(1));
  assert.is(fs.readFileSync(path.join(f.root, rel(1), 'REVISION'), 'utf8').trim(), c[1]);
  assert.is(last('build-started').ref, c[1]);
});

test('rollback with no earlier good release exits 1, says so, and changes nothing', async () => {
  const before = state();
  const r = await f.run('rollback');
  assert.is(r.code, 1, r.out);
  assert.match(r.stderr, /no earlier good release to roll back to/);
  assert.match(r.stderr, /status/);
  assert.equal(state(), before);
  assert.is(f.active(), rel(1));
});

test('release by abbreviated hash', async () => {
  c[2] = await f.repo.commit({ VERSION: '2\n' }, 'v2');
  const r = await f.run('release', [c[2].slice(0, 7)]);
  assert.is(r.code, 0, r.out);
  assert.is(f.active(), rel(2));
  assert.is(fs.readFileSync(path.join(f.root, rel(2), 'REVISION'), 'utf8').trim(), c[2]);
  assert.is(JSON.parse(fs.readFileSync(path.join(f.root, 'active', 'dist', 'version.json'), 'utf8')).version, '2');
});

test('release by annotated tag builds the commit, not the tag object', async () => {
  c[3] = await f.repo.commit({ VERSION: '3\n' }, 'v3');
  await f.repo.tag('v3.0.0', 'HEAD', 'version three');
  const tagObject = await f.repo.git('rev-parse', 'v3.0.0');
  assert.is.not(tagObject, c[3], 'the tag is annotated');
  const r = await f.run('release', ['v3.0.0']);
  assert.is(r.code, 0, r.out);
  assert.is(f.active(), rel(3));
  assert.is(fs.readFileSync(path.join(f.root, rel(3), 'REVISION'), 'utf8').trim(), c[3]);
  assert.is(last('build-started').ref, 'v3.0.0');
});

test('release by lightweight tag', async () => {
  // Its id sorts before every earlier one, so a rollback that went by names would not pick it.
  c[4] = await commitWhere(f.repo, { VERSION: '4\n' }, 'v4', (sha) => [1, 2, 3].every((n) => sha.slice(0, 12) < id(n)));
  await f.repo.tag('light4');
  const r = await f.run('release', ['light4']);
  assert.is(r.code, 0, r.out);
  assert.is(f.active(), rel(4));
});

test('release by branch', async () => {
  await f.repo.branch('feature');
  c[5] = await f.repo.commit({ VERSION: '5\n' }, 'v5 on a branch');
  await f.repo.branch('main');
  const r = await f.run('release', ['feature']);
  assert.is(r.code, 0, r.out);
  assert.is(f.active(), rel(5));
  assert.is(fs.readFileSync(path.join(f.root, rel(5), 'REVISION'), 'utf8').trim(), c[5]);
});

test('status --json: live, rollback target, and each release with state, commit, age and size', async () => {
  const st = await f.status();
  assert.is(st.live, id(5));
  assert.is(st.rollbackTarget, id(4));
  const elapsed = (Date.now() - t0) / 1000 + 2;
  for (const n of [1, 2, 3, 4, 5]) {
    const r = st.releases.find((x: any) => x.id === id(n));
    assert.ok(r, `release ${n} is listed`);
    assert.is(r.state, 'ready');
    assert.is(r.commit, c[n]);
    assert.is(r.live, n === 5);
    assert.is(r.rollbackTarget, n === 4);
    assert.type(r.ageSeconds, 'number');
    assert.ok(r.ageSeconds >= 0 && r.ageSeconds <= elapsed, `age ${r.ageSeconds} s`);
    const du = spawnSync('du', ['-s', '-B1', path.join(f.root, 'releases', id(n))], { encoding: 'utf8' });
    assert.is(r.sizeBytes, Number(du.stdout.split('\t')[0]), 'size is the disk usage of the release');
  }
  const ages = [1, 2, 3, 4, 5].map((n) => st.releases.find((x: any) => x.id === id(n)).ageSeconds);
  assert.ok(ages[0] >= ages[4], 'the first release is the oldest');
  const text = await f.run('status');
  assert.is(text.code, 0);
  assert.match(text.stdout, new RegExp(`live: ${id(5)}`));
  assert.match(text.stdout, new RegExp(`rollback target: ${id(4)}`));
});

test('rollback goes to the last good release before the live one, from the history (not names or mtimes)', async () => {
  // Make the oldest release look newest on disk, and the right target look oldest.
  const now = Date.now() / 1000;
  fs.utimesSync(path.join(f.root, rel(1)), now + 3600, now + 3600);
  fs.utimesSync(path.join(f.root, rel(4)), 1e9, 1e9);
  const r = await f.run('rollback', [], { SUDO_USER: 'alice' });
  assert.is(r.code, 0, r.out);
  assert.is(f.active(), rel(4));
  const act = last('activated');
  assert.is(act.release, id(4));
  assert.is(act.via, 'rollback');
  assert.is(act.previous, id(5));
  assert.is(act.by, 'alice', 'the history records the sudo user');
  const bad = last('marked-bad');
  assert.is(bad.release, id(5));
  assert.is(bad.by, 'alice');
  assert.match(r.stdout, /marked bad and kept for inspection/);
  const st = await f.status();
  const left = st.releases.find((x: any) => x.id === id(5));
  assert.is(left.state, 'bad');
  assert.ok(left.onDisk, 'the left release is kept');
  assert.ok(fs.existsSync(path.join(f.root, rel(5), 'REVISION')));
});

test('rollback --to <release> goes there and marks the left one bad', async () => {
  const r = await f.run('rollback', ['--to', id(2)]);
  assert.is(r.code, 0, r.out);
  assert.is(f.active(), rel(2));
  assert.is(last('activated').release, id(2));
  assert.is(last('activated').previous, id(4));
  assert.is(last('marked-bad').release, id(4));
});

test('rollback --to a bad release is refused: exit 1, nothing changed', async () => {
  const before = state();
  const r = await f.run('rollback', ['--to', id(5)]);
  assert.is(r.code, 1, r.out);
  assert.match(r.stderr, new RegExp(`${id(5)} cannot be activated: it was marked bad`));
  assert.equal(state(), before);
});

test('rollback --to a failed release is refused: exit 1, nothing changed', async () => {
  const broken = await f.repo.commit({ BEHAVIOUR: 'build-fail\n' }, 'broken');
  const b = await f.run('release', [broken, '--no-activate']);
  assert.is(b.code, 1, b.out);
  await f.repo.commit({ BEHAVIOUR: null }, 'unbroken');
  const before = state();
  const r = await f.run('rollback', ['--to', broken.slice(0, 12)]);
  assert.is(r.code, 1, r.out);
  assert.match(r.stderr, /cannot be activated: it failed to build/);
  assert.equal(state(), before);
  assert.is(f.active(), rel(2));
});

test('rollback --to the live release is refused', async () => {
  const before = state();
  const r = await f.run('rollback', ['--to', id(2)]);
  assert.is(r.code, 1, r.out);
  assert.match(r.stderr, /already live/);
  assert.equal(state(), before);
});

test('activate <id> of a ready release makes it live and records who did it', async () => {
  const r = await f.run('activate', [id(3)], { SUDO_USER: 'bob' });
  assert.is(r.code, 0, r.out);
  assert.is(f.active(), rel(3));
  const act = last('activated');
  assert.equal([act.release, act.via, act.previous, act.by], [id(3), 'activate', id(2), 'bob']);
  assert.ok(act.duration_ms >= 0);
});

test('activate of an unknown release exits 2 and changes nothing', async () => {
  const before = state();
  const r = await f.run('activate', ['0123456789ab']);
  assert.is(r.code, 2, r.out);
  assert.match(r.stderr, /no release 0123456789ab/);
  assert.equal(state(), before);
});

test('--dry-run of activate, rollback and prune prints the steps and changes nothing', async () => {
  const before = snapshot(f.root);
  const a = await f.run('activate', [id(1), '--dry-run']);
  assert.is(a.code, 0, a.out);
  assert.match(a.stdout, new RegExp(`would point \\S+/active at releases/${id(1)}`));
  assert.match(a.stdout, /would start the new slot and stop the old one/);
  assert.match(a.stdout, new RegExp(`would record "activated" for ${id(1)}`));
  const rb = await f.run('rollback', ['--dry-run']);
  assert.is(rb.code, 0, rb.out);
  assert.match(rb.stdout, new RegExp(`would point \\S+/active at releases/${id(2)}`), 'the target is what was live before');
  assert.match(rb.stdout, new RegExp(`would record "marked-bad" for ${id(3)}`));
  const p = await f.run('prune', ['--dry-run', '--keep', '1']);
  assert.is(p.code, 0, p.out);
  assert.match(p.stdout, /delete +\S+: it is older than the newest 1 good/);
  assert.match(p.stdout, /would remove /);
  assert.match(p.stdout, /nothing was deleted/);
  assert.equal(snapshot(f.root), before);
  assert.is(f.active(), rel(3));
});

test('--dry-run of release prints the build and the cutover for the commit the ref names now, and changes nothing', async () => {
  c[6] = await f.repo.commit({ VERSION: '6\n' }, 'v6');
  const before = snapshot(f.root);
  const r = await f.run('release', ['main', '--dry-run']);
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, new RegExp(`main is commit ${c[6]}`), 'the ref is resolved as a real run would (the mirror is not fetched)');
  assert.match(r.stdout, /would run: git .*fetch/);
  assert.match(r.stdout, new RegExp(`would create directory \\S+/releases/${id(6)}`));
  assert.match(r.stdout, /would run: npm ci/);
  assert.match(r.stdout, /would run: npm run build/);
  assert.match(r.stdout, new RegExp(`would point \\S+/active at releases/${id(6)}`));
  assert.match(r.stdout, new RegExp(`would record "activated" for ${id(6)}`));
  const rb = await f.run('release', [c[3], '--rebuild', '--dry-run']);
  assert.is(rb.code, 0, rb.out);
  assert.match(rb.stdout, new RegExp(`would create directory \\S+/releases/${id(3)}-r2`));
  assert.equal(snapshot(f.root), before);
});

test('--dry-run of release on a fresh host creates nothing, not even the root', async () => {
  const g = await makeFixture();
  const head = await g.repo.head();
  await g.repo.tag('v1', 'HEAD', 'annotated');
  for (const ref of ['main', 'v1']) {
    const r = await g.run('release', [ref, '--dry-run']);
    assert.is(r.code, 0, `${ref}: ${r.out}`);
    assert.match(r.stdout, new RegExp(`${ref} is commit ${head}`));
    assert.match(r.stdout, /would run: git clone --mirror/);
    assert.match(r.stdout, /would run: npm ci/);
    assert.match(r.stdout, /would record "activated"/);
    assert.not.ok(fs.existsSync(g.root), 'the root was not created');
  }
});

const verbs = fs.readdirSync(path.join(kitDir, 'scripts')).filter((n) => n.endsWith('.ts')).map((n) => n.slice(0, -3));

test('--help on every verb exits 0 and prints its usage', async () => {
  assert.ok(['release', 'activate', 'rollback', 'prune', 'status'].every((v) => verbs.includes(v)));
  const results = await Promise.all(verbs.map((v) => runScript([path.join(kitDir, 'scripts', `${v}.ts`), '--help'], scriptEnv())));
  verbs.forEach((v, i) => {
    const r = results[i];
    assert.is(r.code, 0, `${v}: ${r.out}`);
    assert.match(r.stdout, new RegExp(`^Usage: cutover ${v}`), v);
    assert.match(r.stdout, /--manifest FILE/, v);
    assert.match(r.stdout, /Exit codes/, v);
  });
});

test('an unknown option, or a missing or extra argument, exits 2 and says so', async () => {
  const cases: Array<[string, string[], RegExp]> = [
    ...verbs.map((v): [string, string[], RegExp] => [v, ['--frobnicate'], /--frobnicate/]),
    ['release', [], /Say what to release: a git ref, or --archive FILE/],
    ['release', ['main', 'extra'], /takes 0 to 1 argument \(<ref>\), got 2/],
    ['activate', [], /takes 1 argument/],
    ['prune', ['--keep'], /--keep/],
    ['status', ['now'], /takes 0 arguments/],
  ];
  const before = state();
  const results = await Promise.all(cases.map(([v, args]) => f.run(v, args)));
  cases.forEach(([v, args, why], i) => {
    const r = results[i];
    assert.is(r.code, 2, `${v} ${args.join(' ')}: ${r.out}`);
    assert.match(r.stderr, why, `${v} ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /--help/, 'the hint points at --help');
  });
  assert.equal(state(), before);
});

test.run();
