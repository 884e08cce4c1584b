// System tier: build once, release elsewhere — the Flask example built by `cutover build` on one test host and released from the archive on another under load (gunicorn from the built venv, 0 failed), a sick archive refused by the gate, rollback.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { httpGet, runLoad } from '../helpers/apps.ts';
import { cleanupTempDirs, type AppRepo } from '../helpers/gitrepo.ts';
import { bootKitHost, expectExit, type KitHost } from '../helpers/hostkit.ts';
import { kitDir } from '../helpers/kit.ts';
import { activeInside, hostPath, inside, loopback, out, releaseIdOf, servingPid, statusJson } from '../helpers/system.ts';
import { systemTier } from '../helpers/prereq.ts';

const PORT = 5010;
const ROOT = '/srv/guestbook';
let builder: KitHost;
let host: KitHost;
let repo: AppRepo;
let builderManifest: string;
let hostManifest: string;
const ids: Record<string, string> = {};
const sha: Record<string, string> = {};
const t0 = Date.now();

/** The Flask example's manifest as config/examples has it, with the test's repository and port. */
function manifestFor(k: KitHost, repoUrl: string): string {
  const m = parse(fs.readFileSync(path.join(kitDir, 'config', 'examples', 'flask.yaml'), 'utf8'));
  m.repo = repoUrl;
  m.port = PORT;
  return k.manifest(m);
}

/** Builds a new commit of the example on the build host and copies the archive (and its .sha256) to the release host's /tmp. */
async function buildOn(name: string, changes: Record<string, string>): Promise<string> {
  const commit = await repo.commit(changes, name);
  ids[name] = releaseIdOf(commit);
  const file = `/tmp/guestbook-${name}.tar.gz`;
  const r = await builder.kit('build', [commit, '--out', file, '--json'], { manifest: builderManifest, timeoutMs: 300_000 });
  expectExit(r, 0, `build ${name}`);
  const printed = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  sha[name] = printed.sha256;
  assert.is(printed.release, ids[name]);
  for (const f of [file, `${file}.sha256`]) fs.copyFileSync(hostPath(builder, f), hostPath(host, f));
  return file;
}

const health = async () => (await httpGet(loopback(PORT, '/health'), { timeoutMs: 5000 })).status;
const page = async () => (await httpGet(loopback(PORT, '/'), { timeoutMs: 5000 })).body;

const { it, ready } = systemTier(import.meta.url);
{
  test.before(async () => {
    if (!ready) return;
    // The build host has a network of its own: its provision makes the app's socket unit, on the same port.
    builder = await bootKitHost({ privateNetwork: true });
    host = await bootKitHost();
    let url: string;
    ({ repo, url } = await builder.repo('guestbook', 'flask'));
    builderManifest = manifestFor(builder, url);
    // The release host cannot reach the repository at all (no such path there): an archive needs none.
    hostManifest = manifestFor(host, url);
    for (const [k, m] of [[builder, builderManifest], [host, hostManifest]] as const) {
      expectExit(await k.kit('provision', [], { manifest: m, timeoutMs: 300_000 }), 0, 'provision');
    }
  });
  test.after(async () => {
    await Promise.all([builder?.stop(), host?.stop()]);
    await cleanupTempDirs();
    console.log(`  archive.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });
}

it('a release built on another host goes live from its archive: gunicorn runs from the venv built for this path', async () => {
  const file = await buildOn('v1', { 'version.py': "VERSION = 'v1'\n" });
  assert.not.ok(fs.existsSync(hostPath(host, '/srv/src/guestbook')), 'the release host has no copy of the repository');
  const r = await host.kit('release', ['--archive', file], { manifest: hostManifest, timeoutMs: 300_000 });
  expectExit(r, 0, 'release --archive v1');
  assert.is(activeInside(host, ROOT), ids.v1);
  assert.match(await page(), /v1/);
  const pid = await servingPid(host, 'guestbook');
  const cmdline = (await inside(host, `tr '\\0' ' ' < /proc/${pid}/cmdline`)).trim();
  assert.match(cmdline, /^\.venv\/bin\/python -m gunicorn /, `gunicorn from the release's venv: ${cmdline}`);
  assert.is(await inside(host, `readlink /proc/${pid}/cwd`), `${ROOT}/releases/${ids.v1}`);
  assert.match(host.read(`${ROOT}/releases/${ids.v1}/.venv/pyvenv.cfg`), /home = \/usr\/bin/);
  // The venv's scripts name the path the build ran at, which is this release's path here.
  assert.is(host.read(`${ROOT}/releases/${ids.v1}/.venv/bin/pip`).split('\n')[0], `#!${ROOT}/releases/${ids.v1}/.venv/bin/python3`);
  assert.not.ok(fs.existsSync(hostPath(host, `${ROOT}/repo`)), 'no mirror was fetched');
  const st = await statusJson(host, hostManifest);
  const v1 = st.releases.find((x: { id: string }) => x.id === ids.v1);
  assert.equal([v1.source.kind, v1.source.sha256], ['archive', sha.v1]);
});

it('the next archive goes live under load: 0 failed requests', async () => {
  const file = await buildOn('v2', { 'version.py': "VERSION = 'v2'\n" });
  const stop = new AbortController();
  const load = runLoad({ url: loopback(PORT, '/health'), workers: 6, durationMs: 120_000, signal: stop.signal });
  await new Promise((r) => setTimeout(r, 500));
  const r = await host.kit('release', ['--archive', file], { manifest: hostManifest, timeoutMs: 300_000 });
  await new Promise((r) => setTimeout(r, 700));
  stop.abort();
  const l = await load;
  expectExit(r, 0, 'release --archive v2');
  console.log(`  v2 from its archive under load: ${l.requests} requests, ${l.failed} failed`);
  assert.ok(l.requests > 50, `load ran (${l.requests} requests)`);
  assert.is(l.failed, 0, `no request failed: ${JSON.stringify(l.errors)}`);
  assert.is(activeInside(host, ROOT), ids.v2);
  assert.match(await page(), /v2/);
});

it('a sick archive is refused by the health gate (v2 keeps serving), and rollback goes back to v1', async () => {
  const file = await buildOn('v3', { 'version.py': "VERSION = 'v3'\n", 'health.py': 'HEALTHY = False\n' });
  const r = await host.kit('release', ['--archive', file], { manifest: hostManifest, timeoutMs: 300_000 });
  expectExit(r, 1, 'release --archive of a sick v3');
  assert.match(out(r), /health/i);
  assert.is(activeInside(host, ROOT), ids.v2);
  assert.is(await health(), 200);
  const back = await host.kit('rollback', [], { manifest: hostManifest, timeoutMs: 300_000 });
  expectExit(back, 0, 'rollback');
  assert.is(activeInside(host, ROOT), ids.v1);
  assert.match(await page(), /v1/);
});

test.run();
