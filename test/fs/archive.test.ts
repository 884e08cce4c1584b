// fs tier: build once, release everywhere — `cutover build` in one root, `release --archive` in another, and a corpus of hostile archives each refused with exit 2 and nothing changed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { stringify, parse } from 'yaml';
import { kitDir, makeFixture, runScript, scriptEnv, snapshot, type Fixture, type RunResult } from '../helpers/kit.ts';
import { commandMissing, requiring, rootMissing } from '../helpers/prereq.ts';
import { cleanupTempDirs, tempDir } from '../helpers/gitrepo.ts';

const it = requiring(rootMissing('cutover build runs as root (it builds as the app user and seals)'));
// The .tar.zst case also needs the zstd program: skipped without it, failing under CI=true (test/setup.sh installs it).
const itWithZstd = requiring(rootMissing('cutover build runs as root (it builds as the app user and seals)') ?? commandMissing('zstd', ['--version'], 'apt-get install zstd'));
let builder: Fixture;
let host: Fixture;
let work: string;
let good: string;
let goodSha: string;
let commit: string;
let firstCommit: string;

const sha256Of = (file: string) => spawnSync('sha256sum', [file], { encoding: 'utf8' }).stdout.split(' ')[0];

/** Runs a verb against the host with a manifest changed by `change` (written beside the real one). */
async function withManifest(change: (m: Record<string, unknown>) => void, verb: string, args: string[]): Promise<RunResult> {
  const m = parse(fs.readFileSync(host.manifest, 'utf8')) as Record<string, unknown>;
  change(m);
  const file = path.join(work, `variant-${Date.now()}.yaml`);
  fs.writeFileSync(file, stringify(m));
  return runScript([path.join(kitDir, 'scripts', `${verb}.ts`), ...args, '--manifest', file], scriptEnv());
}

test.before(async () => {
  if (process.getuid?.() !== 0) return;
  builder = await makeFixture();
  host = await makeFixture();
  work = await tempDir('cutover-archives');
  // The two repositories start out the same: the builder's main is the host's (two repos made a second
  // apart would differ by their commit dates, and the test of an id taken by a git build with them).
  await builder.repo.git('fetch', '--quiet', host.repo.dir, 'main');
  await builder.repo.git('reset', '--quiet', '--hard', 'FETCH_HEAD');
  firstCommit = await builder.repo.head();
  // A commit the host has never built from git.
  commit = await builder.repo.commit({ 'CHANGELOG.md': 'v2: built once\n' }, 'v2');
  const r = await host.run('release', ['main']);
  assert.is(r.code, 0, `the host's own first release: ${r.out}`);
});
test.after(cleanupTempDirs);

it('build writes one archive with its record first and its sha256 beside it; the build machine keeps a ready release', async () => {
  good = path.join(work, 'fsapp.tar.gz');
  const r = await builder.run('build', ['main', '--out', good, '--json']);
  assert.is(r.code, 0, r.out);
  assert.is(r.stdout.trim().split('\n').length, 1, `stdout holds only the JSON line (the build's own output goes to stderr):\n${r.stdout}`);
  const out = JSON.parse(r.stdout);
  goodSha = sha256Of(good);
  assert.is(out.sha256, goodSha, 'the printed sha256 is the file\'s');
  assert.is(fs.readFileSync(`${good}.sha256`, 'utf8'), `${goodSha}  fsapp.tar.gz\n`, 'sha256sum format beside the file');
  assert.equal([out.app, out.commit, out.release], ['fsapp', commit, commit.slice(0, 12)]);
  assert.match(out.treeDigest, /^[0-9a-f]{64}$/);
  const list = spawnSync('tar', ['-tzf', good], { encoding: 'utf8' }).stdout.split('\n');
  assert.is(list[0], '.cutover-archive.json', 'the record is the first entry');
  assert.ok(list.includes('dist/version.json'), 'the build output is in it');
  assert.not.ok(list.some((p) => p === '.env' || p === 'uploads' || p.startsWith('uploads/')), 'the shared links are not');
  assert.is(builder.history().map((e) => e.event).join(' '), 'build-started build-finished archived', 'built, archived, not activated');
  const archived = builder.history().at(-1);
  assert.equal([archived.release, archived.source?.sha256, archived.source?.treeDigest], [out.release, goodSha, out.treeDigest], 'the archived event names the archive');
  assert.is(builder.active(), undefined, 'nothing went live on the build machine');
  // The build machine's release is that archive's tree: releasing the archive there (a fleet's build host) reuses it.
  const own = await builder.run('release', ['--archive', good, '--no-activate']);
  assert.is(own.code, 0, own.out);
  assert.match(own.out, /of this archive is already built and ready: reusing it/);
  assert.is(builder.active(), undefined, 'still nothing live on the build machine');
  const againFile = path.join(work, 'again.tar.gz');
  const again = await builder.run('build', ['main', '--out', againFile]);
  assert.is(again.code, 0, again.out);
  assert.match(again.out, /already built and ready here: archiving it as it is/);
  // The same release archived again is the same bytes (its build time, not the packing's): a fleet host that took the
  // first archive takes this one as already built, so a rollout re-run after a kill converges.
  assert.is(sha256Of(againFile), goodSha, 'archiving the same release again gives the same bytes');
});

it('release --archive --dry-run: checks the whole archive, says what it would do, changes nothing (no staging left in releases/ or /var/tmp)', async () => {
  const before = snapshot(host.root);
  const r = await host.run('release', ['--archive', good, '--dry-run']);
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /entries, [0-9.]+ MB: checked in /, 'checked, not unpacked');
  assert.match(r.out, /move the unpacked tree/);
  assert.equal(snapshot(host.root), before, 'nothing under the root changed');
  assert.not.ok(fs.readdirSync('/var/tmp').some((n) => n.startsWith('cutover-dry-run-fsapp-')), 'the dry run\'s staging is gone');
});

it('release --archive on another root: verified, unpacked with its own shared links, live; the history and status say where it came from', async () => {
  const before = host.active();
  const r = await host.run('release', ['--archive', good]);
  assert.is(r.code, 0, r.out);
  const id = commit.slice(0, 12);
  assert.is(host.active(), `releases/${id}`);
  assert.is.not(host.active(), before);
  const dir = path.join(host.root, 'releases', id);
  assert.is(fs.readlinkSync(path.join(dir, '.env')), path.join(host.root, 'shared', '.env'), "the host's own shared links");
  assert.ok(fs.existsSync(path.join(dir, 'dist', 'version.json')));
  assert.not.ok(fs.readdirSync(path.join(host.root, 'releases')).some((n) => n.startsWith('.incoming-')), 'the staging directory (the copy, the unpacked tree) is gone');
  // Unpacked sealed (root's, no group or other write), and the files identical to the live release's are that release's files.
  const pkg = fs.statSync(path.join(dir, 'package.json'));
  assert.is(pkg.uid, 0, 'sealed: owned by root');
  assert.is(pkg.mode & 0o022, 0, 'sealed: not writable by group or others');
  assert.is(pkg.ino, fs.statSync(path.join(host.root, before!, 'package.json')).ino, 'an identical file is shared with the release that was live (one inode)');
  assert.match(r.out, /shared with [0-9a-f]{12} \(hard links between sealed releases\)/);
  const started = host.history().find((e) => e.event === 'build-started' && e.release === id);
  assert.is(started.source.kind, 'archive');
  assert.is(started.source.sha256, goodSha);
  const st = await host.status();
  const rel = st.releases.find((x: { id: string }) => x.id === id);
  assert.is(rel.source.kind, 'archive');
  assert.is(rel.source.sha256, goodSha);
  assert.match(rel.source.treeDigest, /^[0-9a-f]{64}$/);
  const twice = await host.run('release', ['--archive', good, '--no-activate']);
  assert.is(twice.code, 0, twice.out);
  assert.match(twice.out, /already built and ready: reusing it/);
});

/** The host's root as it is, but the lock's mtime (taking the lock is no change: fs/input.test reads it the same way). */
function state(): Record<string, string> {
  const s = snapshot(host.root);
  if (s['cutover.lock']) s['cutover.lock'] = s['cutover.lock'].replace(/ [\d.]+$/, '');
  return s;
}

/** Every refusal: exit 2, the message, and nothing on the host changed (tree, active, history). */
async function refused(label: string, run: () => Promise<RunResult>, message: RegExp): Promise<void> {
  const before = state();
  const active = host.active();
  const events = host.history().length;
  const r = await run();
  assert.is(r.code, 2, `${label}: exit 2\n${r.out}`);
  assert.match(r.stderr, message, `${label}: the message`);
  assert.equal(state(), before, `${label}: nothing under the root changed`);
  assert.is(host.active(), active, `${label}: active unchanged`);
  assert.is(host.history().length, events, `${label}: no history line`);
}

function craft(kase: string): string {
  const out = path.join(work, `${kase}.tar.gz`);
  const r = spawnSync('python3', [path.join(kitDir, 'test', 'fixtures', 'archives', 'craft.py'), good, kase, out], { encoding: 'utf8' });
  assert.is(r.status, 0, `crafting ${kase}: ${r.stderr}`);
  fs.writeFileSync(`${out}.sha256`, `${sha256Of(out)}  ${path.basename(out)}\n`);
  return out;
}

const corpus: [string, RegExp][] = [
  ['other-app', /archive of otherapp, not of fsapp/],
  ['runtime-major', /built with node v99\.1\.0, and this host runs node/],
  ['arch', /built for \w+, and this host is/],
  ['libc-newer', /native code built against glibc 99\.0, newer than this host's/],
  ['absolute', /"\/tmp\/cutover-evil" is an absolute path or climbs out/],
  ['dotdot', /"\.\.\/cutover-evil" is an absolute path or climbs out/],
  ['dotdot-inner', /"dist\/\.\.\/\.\.\/cutover-evil" is an absolute path or climbs out/],
  ['symlink-out', /"evil-link" is a symlink to "\/etc\/shadow", outside the release/],
  ['symlink-up', /"dist\/evil-link" is a symlink to "\.\.\/\.\.\/\.\.\/\.\.\/etc", outside the release/],
  ['through-symlink', /"inner\/evil" lies below the symlink "inner" the archive made earlier/],
  ['hardlink-out', /"evil-hard" is a hard link to "\/etc\/passwd"/],
  ['hardlink-unknown', /"evil-hard" is a hard link to "no\/such\/file", which is not a file earlier/],
  ['device', /"evil-dev" is a character device/],
  ['fifo', /"evil-fifo" is a fifo/],
  ['setuid', /"evil-suid" is setuid or setgid \(mode 4755\)/],
  ['world-writable', /"evil-ww" is writable by every user \(mode 0666\)/],
  ['empty', /it is empty/],
  ['no-record', /its first entry is "[^"]+", not the record/],
];

for (const [kase, message] of corpus) {
  it(`refused: ${kase}`, async () => {
    const file = craft(kase);
    await refused(kase, () => host.run('release', ['--archive', file]), message);
  });
}

it('refused: a sha256 that does not match, and no sha256 at all', async () => {
  await refused('wrong sha256', () => host.run('release', ['--archive', good, '--sha256', '0'.repeat(64)]), /its sha256 is [0-9a-f]{64}, not 0{64}/);
  const bare = path.join(work, 'bare.tar.gz');
  fs.copyFileSync(good, bare);
  await refused('no sha256', () => host.run('release', ['--archive', bare]), /No sha256 for .*bare\.tar\.gz: neither --sha256 nor .*bare\.tar\.gz\.sha256/);
});

it('refused: a truncated stream and a corrupt one (their sha256 files match them: the stream itself is checked)', async () => {
  const bytes = fs.readFileSync(good);
  const cut = path.join(work, 'cut.tar.gz');
  fs.writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
  fs.writeFileSync(`${cut}.sha256`, `${sha256Of(cut)}  cut.tar.gz\n`);
  await refused('truncated', () => host.run('release', ['--archive', cut]), /not a whole, readable tar\.gz stream .*truncated or corrupt/);
  const bad = path.join(work, 'corrupt.tar.gz');
  const flipped = Buffer.from(bytes);
  for (let i = 200; i < 260; i++) flipped[i] ^= 0xff;
  fs.writeFileSync(bad, flipped);
  fs.writeFileSync(`${bad}.sha256`, `${sha256Of(bad)}  corrupt.tar.gz\n`);
  await refused('corrupt', () => host.run('release', ['--archive', bad]), /not a whole, readable tar\.gz stream|not a clean tar stream/);
});

it('refused: more entries or bytes than the manifest allows (a decompression bomb is cut short)', async () => {
  // The good archive's record, then 2 MiB of zeros (a few KB compressed) or 500 empty files.
  const bomb = (name: string, kind: 'bytes' | 'entries') => {
    const out = path.join(work, name);
    const r = spawnSync('python3', ['-c', `
import io, sys, tarfile, gzip
src = tarfile.open(sys.argv[1], 'r:gz'); first = src.getmembers()[0]; rec = src.extractfile(first).read()
with open(sys.argv[2], 'wb') as raw, gzip.GzipFile(fileobj=raw, mode='wb') as gz, tarfile.open(fileobj=gz, mode='w') as t:
    t.addfile(first, io.BytesIO(rec))
    if sys.argv[3] == 'bytes':
        z = tarfile.TarInfo('zeros'); z.size = 2 << 20; t.addfile(z, io.BytesIO(bytes(z.size)))
    else:
        for i in range(500): t.addfile(tarfile.TarInfo(f'f{i}'), io.BytesIO(b''))
`, good, out, kind], { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    fs.writeFileSync(`${out}.sha256`, `${sha256Of(out)}  ${name}\n`);
    return out;
  };
  const many = bomb('many.tar.gz', 'entries');
  await refused('entries', () => withManifest((m) => (m.archive = { max_entries: 100 }), 'release', ['--archive', many]), /more than 100 entries \(the limit: archive\.max_entries/);
  const big = bomb('big.tar.gz', 'bytes');
  await refused('bytes', () => withManifest((m) => (m.archive = { max_bytes: 1 << 20 }), 'release', ['--archive', big]), /unpacks to more than 1048576 bytes/);
});

it('signatures: required by allowed_signers — unsigned refused, signed by another key refused, signed by a listed key accepted', async () => {
  const key = path.join(work, 'signer');
  const other = path.join(work, 'stranger');
  for (const k of [key, other]) assert.is(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', path.basename(k), '-f', k]).status, 0);
  const signers = path.join(work, 'allowed_signers');
  fs.writeFileSync(signers, `release-bot ${fs.readFileSync(`${key}.pub`, 'utf8').trim()}\n`);
  const signed = (m: Record<string, unknown>) => (m.archive = { allowed_signers: signers });
  const copy = (name: string) => {
    const f = path.join(work, name);
    fs.copyFileSync(good, f);
    fs.writeFileSync(`${f}.sha256`, `${goodSha}  ${name}\n`);
    return f;
  };
  const unsigned = copy('unsigned.tar.gz');
  await refused('unsigned', () => withManifest(signed, 'release', ['--archive', unsigned]), /it is not signed \(no .*unsigned\.tar\.gz\.sig\), and the manifest requires a signature/);
  const strange = copy('strange.tar.gz');
  assert.is(spawnSync('ssh-keygen', ['-Y', 'sign', '-f', other, '-n', 'cutover-archive', strange]).status, 0);
  await refused('bad signature', () => withManifest(signed, 'release', ['--archive', strange]), /its signature .*strange\.tar\.gz\.sig is not a valid signature of this archive by a key in/);
  const wrongNs = copy('wrongns.tar.gz');
  assert.is(spawnSync('ssh-keygen', ['-Y', 'sign', '-f', key, '-n', 'file', wrongNs]).status, 0);
  await refused('signed for another purpose', () => withManifest(signed, 'release', ['--archive', wrongNs]), /is not a valid signature of this archive/);
  const ok = copy('ok.tar.gz');
  assert.is(spawnSync('ssh-keygen', ['-Y', 'sign', '-f', key, '-n', 'cutover-archive', ok]).status, 0);
  const r = await withManifest(signed, 'release', ['--archive', ok, '--no-activate']);
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /, signed by release-bot; sha256 /, 'the signer is named');
  assert.match(r.out, /already built and ready: reusing it/);
});

it('refused: an archive of a commit this host already built from git (an archive unpacks only at its own path), and build --out inside the root', async () => {
  const same = path.join(work, 'same-commit.tar.gz');
  const b = await builder.run('build', [firstCommit, '--out', same]);
  assert.is(b.code, 0, b.out);
  await refused('id taken', () => host.run('release', ['--archive', same]), /Release [0-9a-f]{12} already exists on this host \(ready, built here from git\), and an archive unpacks only at the path it was built for/);
  const inside = await builder.run('build', ['main', '--out', path.join(builder.root, 'x.tar.gz')]);
  assert.is(inside.code, 2, inside.out);
  assert.match(inside.stderr, /--out \S+ is inside the app's root/);
  assert.not.ok(fs.existsSync(path.join(builder.root, 'x.tar.gz')));
});

it("refused: build on a machine without the app's user names provision as the fix, and makes nothing", async () => {
  const root = path.join(work, 'unprovisioned-root');
  const out = path.join(work, 'never.tar.gz');
  const r = await withManifest((m) => Object.assign(m, { user: 'cutover-nosuchuser', root }), 'build', ['main', '--out', out]);
  assert.is(r.code, 2, r.out);
  assert.match(r.stderr, /The app's user cutover-nosuchuser does not exist on this machine/);
  assert.match(r.stderr, /cutover provision --manifest/);
  assert.not.ok(fs.existsSync(root), 'no app root was made');
  assert.not.ok(fs.existsSync(out));
});

itWithZstd('a .tar.zst archive: build compresses it with zstd, the host tells it by its first bytes and releases it', async () => {
  const v3 = await builder.repo.commit({ 'CHANGELOG.md': 'v3: zstd\n' }, 'v3');
  const file = path.join(work, 'fsapp-v3.tar.zst');
  const b = await builder.run('build', [v3, '--out', file]);
  assert.is(b.code, 0, b.out);
  assert.equal([...fs.readFileSync(file).subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd], "zstd's magic");
  assert.is(spawnSync('tar', ['-I', 'zstd', '-tf', file], { encoding: 'utf8' }).stdout.split('\n')[0], '.cutover-archive.json', 'the record is the first entry');
  const r = await host.run('release', ['--archive', file]);
  assert.is(r.code, 0, r.out);
  assert.is(host.active(), `releases/${v3.slice(0, 12)}`);
  assert.is(fs.readFileSync(path.join(host.root, 'releases', v3.slice(0, 12), 'CHANGELOG.md'), 'utf8'), 'v3: zstd\n');
  const again = path.join(work, 'fsapp-v3-again.tar.zst');
  assert.is((await builder.run('build', [v3, '--out', again])).code, 0);
  assert.is(sha256Of(again), sha256Of(file), 'archiving the same release again gives the same bytes with zstd too');
});

test.run();
