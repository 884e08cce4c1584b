// system tier: hostile and broken input in a real systemd host: 100+ bad manifests, bad refs and release names, an app repository that tries to write outside its release, and a disk that fills up during a build.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expectExit, KIT, type KitHost } from '../helpers/hostkit.ts';
import { kitDir } from '../helpers/kit.ts';
import { httpGet } from '../helpers/apps.ts';
import { cleanupTempDirs, type AppRepo } from '../helpers/gitrepo.ts';
import { snapshotDiff, snapshotInside } from '../helpers/system.ts';
import { inHost, tail } from '../helpers/crash.ts';
import { assertRefSyntax } from '../../scripts/lib/assemble/git.ts';
import { assertReleaseId } from '../../scripts/lib/manifest/paths.ts';
import type { ExecResult } from '../host/host.ts';
import { systemTier } from '../helpers/prereq.ts';
import { bootNodeApp, nodeApp } from '../helpers/fixtures.ts';

const { it, ready: ROOT } = systemTier(import.meta.url);

// Ports 3700-3799 belong to the reliability tests; this file uses 3704 and 3705.
const APP = 'hostapp';
const PORT = 3704;
const APP_ROOT = `/usr/local/src/${APP}`;
const FULL = 'fullapp';
const FULL_PORT = 3705;
const FULL_ROOT = `/usr/local/src/${FULL}`;
const t0 = Date.now();
const counts: string[] = [];

let h: KitHost;
let repo: AppRepo;
let manifest: string;
let version = 1;

/** What the host must never see change because of refused input. */
const SYSTEM = ['/etc/systemd/system', '/etc/cron.d', '/etc/passwd', '/etc/group', '/etc/shadow', '/usr/local/src'];

const activeId = (root = APP_ROOT) => fs.readlinkSync(inHost(h, `${root}/active`)).replace(/^releases\//, '');

async function served(port = PORT): Promise<{ release: string; version: string }> {
  const r = await httpGet(`http://127.0.0.1:${port}/`, { timeoutMs: 10_000 });
  assert.is(r.status, 200, `the app on ${port} answers: ${r.body}`);
  const j = JSON.parse(r.body);
  return { release: j.release, version: String(j.version).trim() };
}

/** Runs fn over items, at most n at a time. */
async function pool<T, R>(items: T[], n: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

const show = (s: string) => JSON.stringify(s);

test.before(async () => {
  if (!ROOT) return;
  ({ h, repo, manifest } = await bootNodeApp(APP, PORT, { env_file: '.env', shared: ['.env', 'uploads/', 'cfg/settings.json'], keep: 5 }));
});

test.after(async () => {
  if (h) await h.stop();
  await cleanupTempDirs();
  if (counts.length) console.log(`\n  ${counts.join('\n  ')}`);
  console.log(`  hostile.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

// ---------------------------------------------------------------------------------------------
// Bad manifests

/** The `# expect: <field> line <N>` lines at the top of a fixture. */
function expectations(text: string): { field: string; line: number }[] {
  const found: { field: string; line: number }[] = [];
  for (const line of text.split('\n')) {
    const m = /^# expect: (\S+) line (\d+)$/.exec(line);
    if (!m) break;
    found.push({ field: m[1]!, line: Number(m[2]) });
  }
  return found;
}

it('every bad manifest of the corpus is refused by provision and by release: exit 2, naming its field and line, and nothing on the host changes', async () => {
  const badDir = path.join(kitDir, 'test', 'fixtures', 'manifests', 'bad');
  const names = fs.readdirSync(badDir).filter((f) => f.endsWith('.yaml')).sort();
  assert.ok(names.length >= 100, `the corpus has ${names.length} manifests`);
  fs.mkdirSync(inHost(h, '/etc/cutover/bad'), { recursive: true });
  for (const n of names) fs.copyFileSync(path.join(badDir, n), inHost(h, `/etc/cutover/bad/${n}`));
  const before = snapshotInside(h, SYSTEM);
  const liveBefore = activeId();
  // One shell inside runs them all, three at a time, through the cutover executable (the compiled verbs, as
  // operators run them: a third of tsx's start-up time); each result lands in /tmp/hostile/<verb>-<name>.{out,code}.
  const script = `
    set -e; rm -rf /tmp/hostile; mkdir /tmp/hostile; cd ${KIT}
    one() {
      n=$(basename "$1" .yaml)
      ${KIT}/bin/cutover provision --manifest "$1" >/tmp/hostile/provision-$n.out 2>&1; echo $? >/tmp/hostile/provision-$n.code
      ${KIT}/bin/cutover release main --manifest "$1" >/tmp/hostile/release-$n.out 2>&1; echo $? >/tmp/hostile/release-$n.code
    }
    export -f one 2>/dev/null || true
    ls /etc/cutover/bad/*.yaml | xargs -P 3 -n 1 bash -c 'one "$1"' bash`;
  const r = await h.host.exec(['bash', '-c', script], { timeoutMs: 900_000 });
  expectExit(r, 0, 'the corpus run');
  const problems: string[] = [];
  let refused = 0;
  for (const n of names) {
    const file = `/etc/cutover/bad/${n}`;
    const want = expectations(fs.readFileSync(path.join(badDir, n), 'utf8'));
    let ok = true;
    for (const verb of ['provision', 'release']) {
      const base = `/tmp/hostile/${verb}-${n.replace(/\.yaml$/, '')}`;
      const code = Number(fs.readFileSync(inHost(h, `${base}.code`), 'utf8'));
      const out = fs.readFileSync(inHost(h, `${base}.out`), 'utf8');
      if (code !== 2) {
        problems.push(`${verb} ${n}: exit ${code}, not 2:\n${tail(out, 5)}`);
        ok = false;
      }
      for (const { field, line } of want) {
        if (!out.includes(`${file}:${line}: ${field}: `)) {
          problems.push(`${verb} ${n}: does not name ${field} at line ${line}:\n${tail(out, 5)}`);
          ok = false;
        }
      }
    }
    if (ok) refused++;
  }
  const diff = snapshotDiff(before, snapshotInside(h, SYSTEM));
  counts.push(`bad manifests: ${refused} of ${names.length} refused by both provision and release (exit 2, field and line named); host changes: ${diff.length}`);
  assert.equal(diff, [], `refused manifests changed the host:\n${diff.join('\n')}`);
  assert.is(activeId(), liveBefore);
  assert.is(problems.length, 0, problems.join('\n'));
});

// ---------------------------------------------------------------------------------------------
// Bad refs and release names

it('bad refs for release, and bad release names for activate and rollback --to: exit 2, named, nothing changed', async () => {
  // A commit that no branch or tag contains any more: fetched once, then its branch is deleted (a force-push away).
  await repo.branch('doomed');
  const orphan = await repo.commit({ VERSION: 'orphan\n' }, 'on a branch that will be deleted');
  await repo.branch('main');
  expectExit(await h.kit('release', ['doomed', '--no-activate', '--dry-run'], { manifest }), 0, 'see the branch');
  const fetched = await h.kit('release', ['doomed', '--no-activate'], { manifest });
  expectExit(fetched, 0, 'build the doomed branch once, so the mirror has its commit');
  await repo.git('branch', '-D', 'doomed');
  const live = activeId();
  const refs = [
    '../x', '-rf', '--upload-pack=touch /tmp/pwned', 'main branch', 'main\nevil', '$(touch /tmp/pwned)', '`touch /tmp/pwned`',
    'main;touch${IFS}/tmp/pwned', 'main|id', 'HEAD:VERSION', 'main~1', 'main@{1}', '/etc/passwd',
    orphan, orphan.slice(0, 12), 'ffffffffffffffffffffffffffffffffffffffff', 'x'.repeat(300),
  ];
  const names = ['../x', '-rf', 'a b', 'a\nb', '$(touch /tmp/pwned)', ';id', '..', `${live}/../x`, live.toUpperCase(), 'ffffffffffff'];
  interface Case { verb: string; args: string[]; what: string }
  const cases: Case[] = [
    ...refs.map((r) => ({ verb: 'release', args: [r], what: r })),
    ...refs.filter((r) => r.startsWith('-')).map((r) => ({ verb: 'release', args: ['--', r], what: r })),
    ...names.map((n) => ({ verb: 'activate', args: ['--', n], what: n })),
    ...names.map((n) => ({ verb: 'rollback', args: [`--to=${n}`], what: n })),
    { verb: 'activate', args: ['-rf'], what: '-rf' },
    { verb: 'rollback', args: ['--to', '-rf'], what: '-rf' },
  ];
  // Those the kit refuses before taking the lock may run side by side; the others take the app's lock, so one at a time.
  const early = (c: Case) => {
    try {
      if (c.verb === 'release') assertRefSyntax(c.args.at(-1)!);
      else assertReleaseId(c.what);
      return c.args[0] === '-rf' || (c.verb === 'rollback' && c.args[0] === '--to');
    } catch {
      return true;
    }
  };
  const snap = () => snapshotInside(h, [...SYSTEM.filter((d) => d !== '/usr/local/src'), APP_ROOT], { exclude: [`${APP_ROOT}/repo`, `${APP_ROOT}/cutover.lock`] });
  const before = snap();
  // The manifest goes first: after `--` everything is a positional.
  const run = (c: Case) => h.host.exec([`${KIT}/bin/cutover`, c.verb, '--manifest', manifest, ...c.args], { timeoutMs: 120_000 });
  const results = new Map<Case, ExecResult>();
  const parallel = cases.filter(early);
  (await pool(parallel, 3, run)).forEach((r, i) => results.set(parallel[i]!, r));
  for (const c of cases.filter((x) => !early(x))) results.set(c, await run(c));
  const problems: string[] = [];
  for (const [c, r] of results) {
    const label = `${c.verb} ${c.args.map(show).join(' ')}`;
    if (r.code !== 2) problems.push(`${label}: exit ${r.code}, not 2\n${tail(r.stdout + r.stderr, 4)}`);
    else if (!/^cutover: /m.test(r.stderr)) problems.push(`${label}: no message\n${r.stderr}`);
    // The message names the offending input (escaped where it must be), unless the option parser refused the argv itself.
    else if (!/Unknown option|argument is ambiguous|Option '--to/.test(r.stderr) && !r.stderr.includes(c.what.slice(0, 12)) && !r.stderr.includes(JSON.stringify(c.what.slice(0, 12)).slice(1, -1))) {
      problems.push(`${label}: the message does not name it:\n${r.stderr}`);
    }
    if (/[\x00-\x08\x0b-\x1f\x7f]/.test(r.stderr.replace(/\x1b\[[0-9;]*m/g, ''))) problems.push(`${label}: raw control characters reach the terminal`);
  }
  const orphanCase = [...results].find(([c]) => c.verb === 'release' && c.args[0] === orphan)![1];
  assert.match(orphanCase.stderr, /on no branch or tag/, 'the hash in no branch is refused as such');
  const pathCase = [...results].find(([c]) => c.args[0] === 'HEAD:VERSION')![1];
  assert.match(pathCase.stderr, /not a plain commit hash, tag or branch name/);
  const diff = snapshotDiff(before, snap());
  const pwned = await h.host.exec(['sh', '-c', 'ls /tmp/pwned /opt/cutover/pwned /root/pwned 2>/dev/null; true']);
  counts.push(`bad refs and release names: ${[...results.values()].filter((r) => r.code === 2).length} of ${results.size} refused with exit 2; host changes: ${diff.length}`);
  assert.is(pwned.stdout.trim(), '', 'no shell ran any of them');
  assert.equal(diff, [], `refused refs changed the host:\n${diff.join('\n')}`);
  assert.is(fs.readFileSync(inHost(h, `${APP_ROOT}/cutover.lock`), 'utf8'), '', 'the lock names nobody');
  assert.is(activeId(), live);
  assert.is((await served()).release, live);
  assert.is(problems.length, 0, problems.join('\n'));
});

// ---------------------------------------------------------------------------------------------
// The app repository as untrusted input

it('an app repository with symlinks out of the release, files named like shared paths and a 50 MB file: nothing outside the release is written', async () => {
  // What the kit must not touch: files it could reach through the repository's symlinks.
  fs.writeFileSync(inHost(h, '/root/sentinel'), 'original\n', { mode: 0o600 });
  fs.writeFileSync(inHost(h, '/root/sentinel2'), 'original\n', { mode: 0o600 });
  fs.writeFileSync(inHost(h, `${APP_ROOT}/shared/.env`), 'SECRET=keep-me\n');
  fs.writeFileSync(inHost(h, `${APP_ROOT}/shared/uploads/photo.jpg`), 'the real photo\n');
  const etcBefore = fs.lstatSync(inHost(h, '/etc'));
  const outside = () =>
    snapshotInside(h, ['/root', '/etc/systemd/system', '/etc/cron.d', '/etc/passwd', '/etc/shadow', `${APP_ROOT}/shared`, `${APP_ROOT}/cache`], {
      exclude: ['/root/.npm', '/root/.cache'],
    });
  const before = outside();
  version++;
  const hostile = await repo.commit(
    {
      VERSION: `${version}\n`,
      // A file named like a shared path, and a directory too: the shared ones must win, untouched.
      '.env': 'SECRET=from-the-repo\n',
      'uploads/photo.jpg': 'overwritten by the repo\n',
      // Real content, so git stores it all: 50 MB.
      BIG: randomBytes(25 << 20).toString('hex'),
    },
    'hostile content',
  );
  // Symlinks the kit would follow if it were careless: its own temp file names, REVISION, out of the release.
  const links: Record<string, string> = {
    '.REVISION.cutover-tmp': '/root/sentinel',
    REVISION: '/root/sentinel2',
    escape: '/etc',
    up: '../../../../..',
    'dist-link': '/root',
  };
  for (const [name, target] of Object.entries(links)) fs.symlinkSync(target, path.join(repo.dir, name));
  await repo.git('add', '--all');
  await repo.git('commit', '--quiet', '-m', 'symlinks out of the release');
  const sha = await repo.head();
  assert.is.not(sha, hostile);
  const r = await h.kit('release', [sha], { manifest });
  expectExit(r, 0, 'release of the hostile repository');
  const id = activeId();
  const dir = inHost(h, `${APP_ROOT}/releases/${id}`);
  assert.is(fs.readFileSync(path.join(dir, 'REVISION'), 'utf8').trim(), sha, 'REVISION is the kit\'s own file, not the repo\'s link');
  assert.ok(fs.lstatSync(path.join(dir, 'REVISION')).isFile());
  assert.is(fs.statSync(path.join(dir, 'BIG')).size, 50 << 20, 'the 50 MB file is in the release');
  assert.is(fs.readlinkSync(path.join(dir, '.env')), `${APP_ROOT}/shared/.env`, 'the repo\'s .env is replaced by the link to the shared one');
  assert.is(fs.readlinkSync(path.join(dir, 'uploads')), `${APP_ROOT}/shared/uploads`);
  assert.match(r.stdout, /the repository has its own \.env: replaced by the shared one/);
  assert.is(fs.readFileSync(inHost(h, `${APP_ROOT}/shared/.env`), 'utf8'), 'SECRET=keep-me\n', 'the shared .env is not overwritten');
  assert.is(fs.readFileSync(inHost(h, `${APP_ROOT}/shared/uploads/photo.jpg`), 'utf8'), 'the real photo\n', 'the shared upload is not overwritten');
  assert.is((await served()).release, id, 'the release runs');
  const diff = snapshotDiff(before, outside());
  const etcAfter = fs.lstatSync(inHost(h, '/etc'));
  assert.equal([etcAfter.uid, etcAfter.mode], [etcBefore.uid, etcBefore.mode], 'chown/chmod -R did not follow escape -> /etc');
  assert.equal(diff, [], `the release wrote outside itself:\n${diff.join('\n')}`);

  // A symlink where a shared path must be linked (cfg -> /root): refused, nothing written through it.
  version++;
  fs.rmSync(path.join(repo.dir, 'cfg'), { recursive: true, force: true });
  fs.symlinkSync('/root', path.join(repo.dir, 'cfg'));
  await repo.git('add', '--all');
  await repo.git('commit', '--quiet', '-m', 'cfg -> /root');
  const bad = await repo.head();
  const before2 = outside();
  const refused = await h.kit('release', [bad], { manifest });
  assert.is(refused.code, 1, `a symlink at a shared path's parent is refused:\n${refused.stdout}\n${refused.stderr}`);
  assert.match(refused.stderr, /symlink at cfg/);
  assert.is(activeId(), id, 'the live release is unchanged');
  assert.not.ok(fs.existsSync(inHost(h, '/root/settings.json')), 'nothing was written through cfg -> /root');
  assert.not.ok(fs.existsSync(inHost(h, `${APP_ROOT}/releases/${bad.slice(0, 12)}`)), 'the refused release was removed');
  assert.equal(snapshotDiff(before2, outside()).filter((d) => !d.startsWith(`${APP_ROOT}/shared/cfg`)), []);

  // Pruning the hostile release deletes the release, never what its symlinks point at.
  for (const f of [...Object.keys(links), 'cfg', '.env', 'uploads', 'BIG']) fs.rmSync(path.join(repo.dir, f), { recursive: true, force: true });
  for (let i = 0; i < 2; i++) {
    version++;
    expectExit(await h.kit('release', [await repo.commit({ VERSION: `${version}\n` }, `v${version}`)], { manifest }), 0, `clean release v${version}`);
  }
  const before3 = outside();
  const pruned = await h.kit('prune', ['--keep', '1'], { manifest });
  expectExit(pruned, 0, 'prune');
  assert.match(pruned.stdout, new RegExp(`delete ${id}`));
  assert.not.ok(fs.existsSync(dir), 'the hostile release is gone');
  assert.equal(snapshotDiff(before3, outside()), [], 'prune followed no symlink out of the release');
  assert.is(fs.readFileSync(inHost(h, '/root/sentinel'), 'utf8'), 'original\n');
  assert.ok(fs.existsSync(inHost(h, '/etc/passwd')));
});

// ---------------------------------------------------------------------------------------------
// Disk full

it('disk full during a build (the app root on a 24 MB tmpfs): the build fails saying so, the live release keeps serving, the partial release is removed', async () => {
  expectExit(await h.host.exec(['mkdir', '-p', FULL_ROOT]), 0, 'mkdir');
  expectExit(await h.host.exec(['mount', '-t', 'tmpfs', '-o', 'size=24m,mode=0755', 'tmpfs', FULL_ROOT]), 0, 'mount a small tmpfs at the app root');
  const made = await h.repo(FULL);
  const m = h.manifest(
    nodeApp(FULL, made.url, FULL_PORT, {
      // A commit holding FILL writes until the disk is full.
      build: 'node build.js && if [ -f FILL ]; then dd if=/dev/zero of=fill bs=1M count=64; fi',
    }),
  );
  expectExit(await h.kit('provision', [], { manifest: m }), 0, 'provision on the small filesystem');
  expectExit(await h.kit('release', ['main'], { manifest: m }), 0, 'release v1');
  const live = activeId(FULL_ROOT);
  const fill = await made.repo.commit({ VERSION: '2\n', FILL: 'yes\n' }, 'fills the disk');
  const r = await h.kit('release', [fill], { manifest: m });
  assert.is(r.code, 1, `the build fails:\n${r.stdout}\n${r.stderr}`);
  const said = r.stdout + r.stderr;
  assert.match(said, /No space left on device/, 'the build\'s own error is shown');
  const message = r.stderr.slice(r.stderr.lastIndexOf('cutover: '));
  assert.match(message, /full|no space/i, `cutover's own message names the problem:\n${message}`);
  assert.is(activeId(FULL_ROOT), live, 'the live release is unchanged');
  assert.is((await served(FULL_PORT)).release, live, 'and keeps serving');
  assert.not.ok(fs.existsSync(inHost(h, `${FULL_ROOT}/releases/${fill.slice(0, 12)}`)), 'the partial release is removed');
  const events = fs.readFileSync(inHost(h, `${FULL_ROOT}/history.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.is(events.filter((e) => e.release === fill.slice(0, 12)).at(-1)?.event, 'build-failed', 'the history says the build failed');
  const df = await h.host.exec(['df', '--output=avail', '-B1', FULL_ROOT]);
  assert.ok(Number(df.stdout.trim().split('\n')[1]) > 8 << 20, `the space is free again:\n${df.stdout}`);
  // Fixed, it releases at once: no manual cleanup.
  const fixed = await made.repo.commit({ VERSION: '3\n', FILL: null }, 'fixed');
  expectExit(await h.kit('release', [fixed], { manifest: m }), 0, 'the next release');
  assert.is((await served(FULL_PORT)).version, '3');
  await h.host.exec(['systemctl', 'stop', `${FULL}.socket`, `${FULL}@a.service`, `${FULL}@b.service`]);
});

test.run();
