// fs tier: which manifest a verb reads (--manifest, then CUTOVER_MANIFEST, then config/app.yaml beside the scripts), and a root that goes through a symlink is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { baseManifest, ensureTestUser, kitDir, runScript, scriptEnv } from '../helpers/kit.ts';
import { cleanupTempDirs, makeAppRepo, tempDir } from '../helpers/gitrepo.ts';
import { requiring, rootMissing } from '../helpers/prereq.ts';

let dir: string;
let manifest: string;
let repoDir: string;
test.before(async () => {
  ensureTestUser();
  dir = fs.realpathSync(await tempDir('cutover-manifest'));
  repoDir = (await makeAppRepo(path.join(dir, 'src'))).dir;
  manifest = path.join(dir, 'app.yaml');
  fs.writeFileSync(manifest, stringify({ ...baseManifest({ root: path.join(dir, 'root'), repo: repoDir }), app: 'fromenv' }));
});
test.after(cleanupTempDirs);

/** `status --json` with exactly these extra arguments and this CUTOVER_MANIFEST (none when undefined). */
async function statusWith(args: string[], envManifest: string | undefined) {
  const env = scriptEnv(envManifest === undefined ? {} : { CUTOVER_MANIFEST: envManifest });
  if (envManifest === undefined) delete env.CUTOVER_MANIFEST;
  return runScript([path.join(kitDir, 'scripts', 'status.ts'), '--json', ...args], env);
}

test('no --manifest and no CUTOVER_MANIFEST: the default manifest, config/app.yaml beside the scripts', async () => {
  const r = await statusWith([], undefined);
  assert.is(r.code, 0, r.out);
  const want = (/^app: (\S+)$/m.exec(fs.readFileSync(path.join(kitDir, 'config', 'app.yaml'), 'utf8')) ?? [])[1];
  assert.ok(want, 'config/app.yaml names an app');
  assert.is(JSON.parse(r.stdout).app, want);
});

test('CUTOVER_MANIFEST names the manifest when --manifest is not given; --manifest wins over it', async () => {
  const r = await statusWith([], manifest);
  assert.is(r.code, 0, r.out);
  assert.equal([JSON.parse(r.stdout).app, JSON.parse(r.stdout).root], ['fromenv', path.join(dir, 'root')]);
  const other = path.join(dir, 'other.yaml');
  fs.writeFileSync(other, stringify({ ...baseManifest({ root: path.join(dir, 'root2'), repo: repoDir }), app: 'fromflag' }));
  const both = await statusWith(['--manifest', other], manifest);
  assert.is(both.code, 0, both.out);
  assert.is(JSON.parse(both.stdout).app, 'fromflag');
});

test('CUTOVER_MANIFEST naming a missing file: exit 2, the file named', async () => {
  const missing = path.join(dir, 'no-such.yaml');
  const r = await statusWith([], missing);
  assert.is(r.code, 2, r.out);
  assert.match(r.stderr, missing);
});

requiring(rootMissing('provision'))('a root that goes through a symlink: provision refuses it (exit 1, both paths named) and creates nothing', async () => {
  const real = path.join(dir, 'real');
  fs.mkdirSync(real);
  fs.symlinkSync(real, path.join(dir, 'link'));
  const root = path.join(dir, 'link', 'app');
  const linked = path.join(dir, 'linked.yaml');
  fs.writeFileSync(linked, stringify({ ...baseManifest({ root, repo: repoDir }), app: 'linked' }));
  for (const args of [['--dry-run'], []]) {
    const r = await runScript([path.join(kitDir, 'scripts', 'provision.ts'), ...args, '--manifest', linked], scriptEnv());
    assert.is(r.code, 1, `provision ${args.join(' ')}: ${r.out}`);
    assert.match(r.stderr, `The root ${root} goes through a symlink (${path.join(dir, 'link')} is really ${real}).`);
    assert.match(r.stderr, 'Set root in the manifest to the real path');
    assert.equal(fs.readdirSync(real), [], 'nothing was created through the link');
    assert.not.ok(fs.existsSync('/etc/systemd/system/linked.service'), 'no unit was written');
  }
});

test.run();
