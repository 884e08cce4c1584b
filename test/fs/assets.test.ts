// fs tier: old pages keep their assets — a release carries, by hard link, the asset files that recently live releases built; rollback too.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { makeFixture, type Fixture } from '../helpers/kit.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';

let f: Fixture;
const sha: Record<string, string> = {};
const dist = (v: string, ...p: string[]) => path.join(f.root, 'releases', sha[v].slice(0, 12), 'dist', ...p);
const appAsset = (v: string) => fs.readdirSync(dist(v)).find((n) => /^app\.[0-9a-f]{12}\.js$/.test(n) && own(v).includes(n))!;
const own = (v: string): string[] => JSON.parse(fs.readFileSync(path.join(f.root, 'releases', sha[v].slice(0, 12), '.cutover-assets.json'), 'utf8')).dirs.dist;
const ino = (p: string) => fs.statSync(p).ino;

async function release(v: string): Promise<string> {
  sha[v] = await f.repo.commit({ VERSION: `${v}\n` }, v);
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  return r.stdout;
}

test.before(async () => {
  f = await makeFixture({ assets: ['dist'], assets_keep: 2, keep: 10 });
});
test.after(cleanupTempDirs);

test('the first release records what its build wrote, and has nothing to carry', async () => {
  const out = await release('v1');
  assert.match(out, /==> keep the assets of recent releases \(dist\)/);
  assert.equal(own('v1').sort(), [appAsset('v1'), 'version.json'].sort());
});

test('v2 carries the files v1 built (same inode), never replacing its own', async () => {
  const out = await release('v2');
  assert.match(out, /2 asset files built under dist/);
  assert.match(out, new RegExp(`1 asset files carried from ${sha.v1.slice(0, 12)}`), out);
  const v1js = appAsset('v1');
  assert.is.not(appAsset('v2'), v1js, 'the build made a new hash');
  assert.is(ino(dist('v2', v1js)), ino(dist('v1', v1js)), "v1's chunk is in v2, hard-linked");
  assert.match(fs.readFileSync(dist('v2', 'version.json'), 'utf8'), /v2/, "v2's own version.json was not replaced by v1's");
  assert.not.ok(own('v2').includes(v1js), 'v2 lists only what it built');
  assert.match(out, new RegExp(`==> share assets for the cutover: ${sha.v2.slice(0, 12)} gets the assets of ${sha.v1.slice(0, 12)}; ${sha.v1.slice(0, 12)} \\(live\\) gets those of ${sha.v2.slice(0, 12)}`));
  assert.is(ino(dist('v1', appAsset('v2'))), ino(dist('v2', appAsset('v2'))), "v1, live until the handover ends, has v2's chunk too");
  assert.not.ok(own('v1').includes(appAsset('v2')), 'and still lists only what it built');
});

test('carried files do not pile up: v4 (keep 2) has v3 and v2 built files, not v1', async () => {
  await release('v3');
  assert.ok(fs.existsSync(dist('v3', appAsset('v1'))), 'v3 carries v1 (live before last)');
  await release('v4');
  for (const v of ['v2', 'v3']) assert.ok(fs.existsSync(dist('v4', appAsset(v))), `v4 has ${v}'s chunk`);
  assert.not.ok(fs.existsSync(dist('v4', appAsset('v1'))), "v1's chunk is not carried on by v3");
  assert.is(fs.readdirSync(dist('v4')).length, 4, 'its own 2 files and 2 carried');
});

test('rollback carries the newer release\'s assets into the older one before it goes live', async () => {
  const v4js = appAsset('v4'); // v3 got it already when v4 went live (the handover); the rollback makes sure
  const r = await f.run('rollback');
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, new RegExp(`==> share assets for the cutover: ${sha.v3.slice(0, 12)} gets the assets of ${sha.v4.slice(0, 12)}, ${sha.v2.slice(0, 12)}`));
  assert.is(ino(dist('v3', v4js)), ino(dist('v4', v4js)), "v4's chunk is served by v3 now");
  assert.match(fs.readFileSync(dist('v3', 'version.json'), 'utf8'), /v3/);
  assert.is(f.active(), `releases/${sha.v3.slice(0, 12)}`);
});

test('a build lends its assets to the live release as soon as it is ready (release --no-activate too): a fleet builds everywhere before any host switches', async () => {
  const live = f.active();
  sha.nb = await f.repo.commit({ VERSION: 'nb\n' }, 'nb');
  const r = await f.run('release', ['main', '--no-activate']);
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, new RegExp(`==> lend its assets to the live release ${sha.v3.slice(0, 12)}`));
  assert.is(f.active(), live, 'nothing switched');
  const nbjs = appAsset('nb');
  assert.is(ino(dist('v3', nbjs)), ino(dist('nb', nbjs)), "the live v3 serves the new build's chunk already");
  assert.match(fs.readFileSync(dist('v3', 'version.json'), 'utf8'), /v3/, "v3's own files are not replaced");
  assert.not.ok(own('v3').includes(nbjs), 'v3 still lists only what it built');
});

test('an asset dir that the build made a symlink is never written through', async () => {
  sha.v5 = await f.repo.commit({ VERSION: 'v5\n', 'package.json': JSON.stringify({ name: 'x', version: '1.0.0', type: 'module', scripts: { build: 'node build.js && mv dist dist-real && ln -s dist-real dist' } }) }, 'v5');
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
  assert.match(r.stdout, /dist in [0-9a-f]{12} is not a plain directory: no assets carried there/);
  const real = path.join(f.root, 'releases', sha.v5.slice(0, 12), 'dist-real');
  assert.is(fs.readdirSync(real).length, 2, 'only what the build wrote');
  assert.equal(own('v5'), [], 'nothing recorded through the symlink');
});

test.run();
