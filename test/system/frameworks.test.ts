// System tier: the five real framework apps (SvelteKit, Next.js, Flask, Django, Remix) deployed by their config/examples manifests under load; old pages keep their assets; Django's createsuperuser through cutover exec, then a login.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import type { ExecResult } from '../host/host.ts';
import { httpGet, runLoad, type LoadResult } from '../helpers/apps.ts';
import { describeLoad } from '../helpers/load.ts';
import { cutoverWindow, describeWindow, unitEvents } from '../helpers/timeline.ts';
import { cleanupTempDirs, type AppRepo, type ExampleApp } from '../helpers/gitrepo.ts';
import { bootKitHost, expectExit, type KitHost } from '../helpers/hostkit.ts';
import { kitDir } from '../helpers/kit.ts';
import { activeInside, historyInside, loopback, out, releaseIdOf, slotsInside } from '../helpers/system.ts';
import { systemTier } from '../helpers/prereq.ts';

/** npm's cache for these apps, kept on this machine between runs (the registry is the slow part of a cold install). */
const NPM_CACHE = process.env.CUTOVER_FRAMEWORKS_NPM_CACHE ?? '/var/cache/cutover-frameworks-npm';

interface Framework {
  name: ExampleApp;
  port: number;
  /** The file holding the version, and its text for a version (it changes the lazily loaded asset too). */
  version(v: string): Record<string, string>;
  /** The change that makes a release whose health check answers 500. */
  sick: Record<string, string>;
  /** A built asset file (relative to its asset dir) → the URL the app serves it at. */
  url(assetDir: string, file: string): string;
}

const FRAMEWORKS: Framework[] = [
  {
    name: 'sveltekit',
    port: 4110,
    version: (v) => ({ 'src/lib/version.js': `export const version = '${v}';\n` }),
    sick: { 'src/lib/health.js': 'export const healthy = false;\n' },
    url: (_dir, file) => `/_app/immutable/${file}`,
  },
  {
    name: 'nextjs',
    port: 4120,
    version: (v) => ({ 'lib/version.js': `export const version = '${v}';\n` }),
    sick: { 'lib/health.js': 'export const healthy = false;\n' },
    url: (_dir, file) => `/_next/static/${file}`,
  },
  {
    name: 'flask',
    port: 4130,
    version: (v) => ({
      'version.py': `VERSION = '${v}'\n`,
      'assets/lazy.js': `export function show() {\n  document.getElementById('lazy').textContent = 'Loaded lazily by ${v}.';\n}\n`,
    }),
    sick: { 'health.py': 'HEALTHY = False\n' },
    url: (_dir, file) => `/static/dist/${file}`,
  },
  {
    name: 'django',
    port: 4140,
    version: (v) => ({
      'pages/version.py': `VERSION = '${v}'\n`,
      'static/lazy.js': `export function show() {\n  document.getElementById('lazy').textContent = 'Loaded lazily by ${v}.';\n}\n`,
    }),
    sick: { 'pages/health.py': 'HEALTHY = False\n' },
    url: (_dir, file) => `/static/${file}`,
  },
  {
    name: 'remix',
    port: 4150,
    version: (v) => ({ 'app/lib/version.js': `export const version = '${v}';\n` }),
    sick: { 'app/lib/health.js': 'export const healthy = false;\n' },
    url: (_dir, file) => `/assets/${file}`,
  },
];

let k: KitHost;
/** The Django run's manifest and root, for the exec test that follows it on the same host. */
let django: { manifest: string; root: string; port: number } | undefined;
const say = (line: string) => console.log(`  ${line}`);

/** The example's manifest from config/examples, with the test's repository and port (everything else as written). */
function exampleManifest(fw: Framework, repoUrl: string): { manifest: string; m: any } {
  const m = parse(fs.readFileSync(path.join(kitDir, 'config', 'examples', `${fw.name}.yaml`), 'utf8'));
  m.repo = repoUrl;
  m.port = fw.port;
  return { manifest: k.manifest(m), m };
}

/** npm in the host trusts this machine's CA bundle (its network inspects TLS), as an operator on such a network would set up. */
async function trustCa(): Promise<void> {
  const bundle = [process.env.NODE_EXTRA_CA_CERTS, '/etc/ssl/certs/ca-certificates.crt'].find((f) => f && fs.existsSync(f));
  if (!bundle) return;
  const r = await k.host.sh('set -e; mkdir -p /usr/local/share/ca-extra; cat > /usr/local/share/ca-extra/bundle.pem; echo cafile=/usr/local/share/ca-extra/bundle.pem >> /etc/npmrc', {
    input: fs.readFileSync(bundle, 'utf8'),
  });
  expectExit(r, 0, 'npm cafile');
}

/** Seeds the app's npm cache (its user's HOME/npm) from this machine's copy, so a run pays the registry once. */
async function seedNpmCache(m: any): Promise<void> {
  const root = m.root ?? `/usr/local/src/${m.app}`;
  const user = m.user ?? m.app;
  expectExit(await k.host.sh(`install -d -o ${user} -g ${user} -m 0750 ${root}/cache ${root}/cache/npm`), 0, 'cache dir');
  if (!fs.existsSync(NPM_CACHE)) return;
  fs.cpSync(NPM_CACHE, path.join(k.host.root, root, 'cache', 'npm'), { recursive: true });
  expectExit(await k.host.sh(`chown -R ${user}:${user} ${root}/cache/npm`), 0, 'chown cache');
}

function saveNpmCache(m: any): void {
  const from = path.join(k.host.root, m.root ?? `/usr/local/src/${m.app}`, 'cache', 'npm');
  if (!fs.existsSync(from)) return;
  fs.mkdirSync(NPM_CACHE, { recursive: true, mode: 0o700 });
  fs.cpSync(from, NPM_CACHE, { recursive: true, force: true });
}

async function kit(verb: string, args: string[], manifest: string): Promise<{ r: ExecResult; ms: number }> {
  const t0 = Date.now();
  const r = await k.kit(verb, args, { manifest, timeoutMs: 900_000 });
  return { r, ms: Date.now() - t0 };
}

/**
 * Runs action under 4 clients (a new connection per request) on the health path, 2 s of steady load
 * first (the window's yardstick); returns the load, each request's sample, what action returned, and when it started
 * (the steady span ends there: the build that follows is not steady).
 */
async function underLoad<T>(url: string, action: () => Promise<T>): Promise<{ load: LoadResult; result: T; actionStart: number }> {
  const stop = new AbortController();
  const loadP = runLoad({ url, workers: 4, durationMs: 600_000, newConnectionPerRequest: true, signal: stop.signal, requestTimeoutMs: 10_000, keepSamples: true });
  await new Promise((r) => setTimeout(r, 2000));
  let result: T;
  const actionStart = Date.now();
  try {
    result = await action();
    await new Promise((r) => setTimeout(r, 700));
  } finally {
    stop.abort();
  }
  return { load: await loadP, result: result!, actionStart };
}

/** The same-origin asset URLs a page names in src= and href=. */
function pageAssetUrls(html: string): string[] {
  return [...new Set([...html.matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((x) => x[1].replace(/&amp;/g, '&')))];
}

/** The URLs of the asset files a release's own build wrote (its .cutover-assets.json), lazily loaded ones included. */
function builtAssetUrls(fw: Framework, root: string, id: string): string[] {
  const built = JSON.parse(k.read(`${root}/releases/${id}/.cutover-assets.json`)) as { dirs: Record<string, string[]> };
  return Object.entries(built.dirs).flatMap(([dir, files]) => files.map((f) => fw.url(dir, f)));
}

/** The URLs of `urls` that do not answer 200 on the port. */
async function missing(port: number, urls: string[]): Promise<string[]> {
  const bad: string[] = [];
  for (const u of urls) {
    const res = await httpGet(loopback(port, u), { timeoutMs: 10_000 }).catch((e) => ({ status: String(e.code ?? e) }));
    if (res.status !== 200) bad.push(`${u} → ${res.status}`);
  }
  return bad;
}

/** Files under a release's dir, as `find` prints them, only those owned by `owner` when given. */
async function filesIn(dir: string, owner?: string): Promise<string[]> {
  const r = await k.host.sh(`find ${dir} -type f${owner ? ` -user ${owner}` : ''}`);
  expectExit(r, 0, `find in ${dir}`);
  return r.stdout.split('\n').filter(Boolean);
}

/**
 * Next.js's image optimizer in a sealed release (manifest: writable: [.next/cache/images]): answers 200, and
 * the second time from its cache on disk, a file the app's user wrote in this release's writable dir. In a
 * release without that dir the optimizer logs EACCES and answers MISS every time (optimizing again).
 */
async function nextImageCached(port: number, root: string, id: string, user: string): Promise<void> {
  const t0 = Date.now();
  const get = () => httpGet(loopback(port, '/_next/image?url=%2Fgradient.png&w=64&q=75'), { timeoutMs: 30_000, headers: { accept: 'image/webp' } });
  const first = await get();
  assert.is(first.status, 200, `/_next/image answers 200 (${first.body.slice(0, 200)})`);
  assert.is(first.headers['content-type'], 'image/webp');
  // Next writes the cache file after it answers: wait for it (a sealed release without the dir never gets one).
  const release = `${root}/releases/${id}`;
  let cached: string[] = [];
  for (let i = 0; i < 50 && cached.length === 0; i++) {
    cached = await filesIn(`${release}/.next/cache/images`, user);
    if (cached.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(cached.length >= 1, `the optimized image is cached in the release's writable dir, owned by ${user}`);
  // The file shows up when Next opens it, but Next's request batcher answers the same key with the first
  // (MISS) response until its write has finished: on a slow disk that takes a while. So ask again until a
  // HIT, for at most 5 s. A release without the writable dir never gets one (EACCES, MISS every time).
  const answers: string[] = [];
  for (let i = 0; i < 20 && answers.at(-1) !== 'HIT'; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 250));
    const again = await get();
    assert.is(again.status, 200);
    answers.push(String(again.headers['x-nextjs-cache']));
  }
  assert.is(answers.at(-1), 'HIT', `a later request is served from the image cache on disk (answers: ${answers.join(' ')})`);
  const code = await k.host.sh(`stat -c %U ${release}/.next/server ${release}/.next/server/app/page.js ${release}/.next/cache`);
  assert.equal(code.stdout.trim().split('\n'), ['root', 'root', 'root'], 'the rest of the release stays sealed');
  say(`nextjs: /_next/image 200, then ${answers.join(' ')} from ${cached.length} file(s) in .next/cache/images, in ${Date.now() - t0} ms`);
}

/**
 * Next.js's ISR in a sealed release (examples/nextjs-app/app/isr, revalidate 2 s, isrFlushToDisk false): the
 * prerendered page first, then after 2 s a STALE answer that starts a regeneration, then a HIT with a later
 * time, regenerated in memory; and no EACCES in the app's journal (Next would write into .next/server).
 */
async function nextIsrRegenerates(port: number, app: string): Promise<void> {
  const t0 = Date.now();
  const get = async () => {
    const res = await httpGet(loopback(port, '/isr'), { timeoutMs: 30_000 });
    assert.is(res.status, 200, `/isr answers 200 (${res.body.slice(0, 200)})`);
    const at = /<time id="rendered">([^<]+)<\/time>/.exec(res.body)?.[1];
    assert.ok(at, `/isr shows when it was rendered: ${res.body.slice(0, 300)}`);
    return { at: at!, cache: String(res.headers['x-nextjs-cache']) };
  };
  const first = await get();
  await new Promise((r) => setTimeout(r, 2_500));
  const answers = [first];
  for (let i = 0; i < 40 && !(answers.at(-1)!.cache === 'HIT' && answers.at(-1)!.at > first.at); i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 250));
    answers.push(await get());
  }
  const seen = answers.map((a) => `${a.cache} ${a.at}`).join(', ');
  assert.ok(answers.some((a) => a.cache === 'STALE'), `a stale answer started the regeneration: ${seen}`);
  assert.ok(answers.at(-1)!.cache === 'HIT' && answers.at(-1)!.at > first.at, `then the page was regenerated: ${seen}`);
  const journal = await k.host.sh(`journalctl -u '${app}@*.service' --no-pager -o cat`);
  assert.not.match(journal.stdout, 'EACCES', 'Next wrote nothing into the sealed release');
  say(`nextjs: /isr ${answers.map((a) => a.cache).join(' ')}: regenerated in memory, no EACCES, in ${Date.now() - t0} ms`);
}

/** Whether a page shows the version (frameworks put comments between text parts: `example <!-- -->v1`). */
const shows = (html: string, v: string) => html.replace(/<!--[^>]*-->/g, '').includes(`example ${v}`);

async function page(port: number): Promise<string> {
  const res = await httpGet(loopback(port, '/'), { timeoutMs: 10_000 });
  assert.is(res.status, 200, `GET / answers 200 (${res.body.slice(0, 200)})`);
  return res.body;
}

const { it, ready } = systemTier(import.meta.url);
{
  test.before(async () => {
    if (!ready) return;
    k = await bootKitHost();
    await trustCa();
  });
  test.after(async () => {
    await k?.stop();
    await cleanupTempDirs();
  });

  // CUTOVER_FRAMEWORKS=sveltekit,flask runs only those (while working on one).
  const only = process.env.CUTOVER_FRAMEWORKS?.split(',');
  for (const fw of FRAMEWORKS.filter((f) => !only || only.includes(f.name))) {
    it(`${fw.name}: provision, v1, v2 under load keeps v1's assets, a sick v3 refused early, rollback under load, prune`, async () => {
      const t0 = Date.now();
      const { repo, url }: { repo: AppRepo; url: string } = await k.repo(fw.name, fw.name);
      const { manifest, m } = exampleManifest(fw, url);
      const root: string = m.root ?? `/usr/local/src/${m.app}`;
      const health: string = m.health.path;
      let r = await k.kit('provision', [], { manifest });
      expectExit(r, 0, 'provision');
      await seedNpmCache(m);

      // v1
      const v1 = await repo.commit(fw.version('v1'), 'v1');
      const rel1 = await kit('release', [v1], manifest);
      expectExit(rel1.r, 0, 'release v1');
      say(`${fw.name}: release v1 in ${(rel1.ms / 1000).toFixed(1)} s`);
      saveNpmCache(m);
      const html1 = await page(fw.port);
      assert.ok(shows(html1, 'v1'), 'the page shows v1');
      const urls1 = [...new Set([...pageAssetUrls(html1), ...builtAssetUrls(fw, root, releaseIdOf(v1))])];
      assert.ok(urls1.length >= 3, `v1 has assets: ${urls1.join(' ')}`);
      assert.equal(await missing(fw.port, urls1), [], 'v1 serves its own assets');
      if (fw.name === 'nextjs') {
        await nextImageCached(fw.port, root, releaseIdOf(v1), m.user ?? m.app);
        await nextIsrRegenerates(fw.port, m.app);
      }

      // v2 under load: 0 failed, and every asset of v1's page still answers
      const v2 = await repo.commit(fw.version('v2'), 'v2');
      const since = Date.now();
      const { load, result: rel2, actionStart } = await underLoad(loopback(fw.port, health), () => kit('release', [v2], manifest));
      expectExit(rel2.r, 0, 'release v2');
      say(`${fw.name}: release v2 in ${(rel2.ms / 1000).toFixed(1)} s; ${describeLoad('load', load)}`);
      say(`${fw.name}: ${describeWindow(cutoverWindow(load.samples!, await unitEvents(k.host, m.app, since), actionStart))}`);
      assert.is(load.failed, 0, `no request failed during release v2: ${JSON.stringify(load.errors)}`);
      assert.ok(load.requests > 50, `the load ran (${load.requests} requests)`);
      const html2 = await page(fw.port);
      assert.ok(shows(html2, 'v2'), 'the page shows v2');
      const own2 = builtAssetUrls(fw, root, releaseIdOf(v2));
      const gone = urls1.filter((u) => !own2.includes(u) && !pageAssetUrls(html2).includes(u));
      assert.ok(gone.length >= 1, `v2's build no longer has some of v1's assets (${gone.length}), so the check below means something`);
      assert.equal(await missing(fw.port, urls1), [], "every asset of v1's page answers 200 from v2");
      say(`${fw.name}: ${urls1.length} asset URLs of v1 answer from v2 (${gone.length} of them carried)`);
      // During the handover v1 still answers some requests: it was given v2's files before it.
      const built2 = JSON.parse(k.read(`${root}/releases/${releaseIdOf(v2)}/.cutover-assets.json`)) as { dirs: Record<string, string[]> };
      const notInV1 = Object.entries(built2.dirs).flatMap(([dir, files]) =>
        files.filter((f) => !fs.existsSync(path.join(k.host.root, root, 'releases', releaseIdOf(v1), dir, f))),
      );
      assert.equal(notInV1, [], "v1 has every asset file v2 built (for the handover's overlap)");
      if (fw.name === 'sveltekit') {
        assert.match(rel2.r.stdout, /install: skipped, package-lock\.json and the install command are unchanged/, 'deps reused');
        assert.match(rel2.r.stdout, /==> build: npm run build && npm prune --omit=dev/, 'and vite was there for the build');
      }
      if (fw.name === 'nextjs') {
        assert.match(rel2.r.stdout, /==> copy the build cache \(\.next\/cache\) from /);
        // v1's running app wrote its image cache; the build cache copied into v2 left it out.
        assert.equal(await filesIn(`${root}/releases/${releaseIdOf(v2)}/.next/cache/images`), [], "v2 starts without v1's image cache");
      }

      // a sick v3: its health check answers 500; refused well before health.timeout, v2 keeps serving
      const v3 = await repo.commit({ ...fw.version('v3'), ...fw.sick }, 'v3: sick');
      const rel3 = await kit('release', [v3], manifest);
      expectExit(rel3.r, 1, 'release of a sick v3');
      assert.match(out(rel3.r), /answered 500, 10 times in a row/);
      assert.ok(shows(await page(fw.port), 'v2'), 'v2 still serves');
      say(`${fw.name}: sick v3 refused in ${(rel3.ms / 1000).toFixed(1)} s (health.timeout ${m.health.timeout} s)`);

      // rollback under load to v1, which then serves v2's assets too
      const urls2 = [...new Set([...pageAssetUrls(html2), ...own2])];
      const rbSince = Date.now();
      const { load: rbLoad, result: rb, actionStart: rbStart } = await underLoad(loopback(fw.port, health), () => kit('rollback', [], manifest));
      expectExit(rb.r, 0, 'rollback');
      say(`${fw.name}: rollback in ${(rb.ms / 1000).toFixed(1)} s; ${describeLoad('load', rbLoad)}`);
      say(`${fw.name}: rollback's ${describeWindow(cutoverWindow(rbLoad.samples!, await unitEvents(k.host, m.app, rbSince), rbStart))}`);
      assert.is(rbLoad.failed, 0, `no request failed during the rollback: ${JSON.stringify(rbLoad.errors)}`);
      assert.is(activeInside(k, root), releaseIdOf(v1));
      assert.ok(shows(await page(fw.port), 'v1'), 'v1 serves');
      assert.equal(await missing(fw.port, urls2), [], "every asset of v2's page answers 200 from v1 after the rollback");

      // prune keeps the live release and the rollback target, deletes the rest
      r = (await kit('prune', ['--keep', '1'], manifest)).r;
      expectExit(r, 0, 'prune');
      const removed = historyInside(k, root).filter((e: any) => e.event === 'removed').map((e: any) => e.release);
      assert.ok(removed.length >= 1, `prune removed something: ${out(r)}`);
      assert.ok(shows(await page(fw.port), 'v1'), 'v1 serves');
      assert.equal((await slotsInside(k, m.app)).map((s) => s.state).sort(), ['active', 'inactive'], 'one slot serves');
      saveNpmCache(m);
      if (fw.name === 'django') django = { manifest, root, port: fw.port };
      say(`${fw.name}: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    });
  }

  if (!only || only.includes('django')) {
    it("django: exec runs manage.py createsuperuser --noinput in the live release (its password from the env file); the live app then authenticates that user", async () => {
      assert.ok(django, 'the Django run above went live');
      const { manifest, root, port } = django;
      const password = 'correct-horse-battery-staple';
      const whoami = (user: string, pass: string) =>
        httpGet(loopback(port, '/whoami'), { headers: { authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` } });
      assert.is((await whoami('admin', password)).status, 401, 'no such user yet');
      expectExit(await k.host.sh(`printf 'DJANGO_SUPERUSER_PASSWORD=${password}\\n' >> ${root}/shared/.env`), 0, 'env file');
      const exec = (args: string[]) => k.kit('exec', ['--manifest', manifest, '--', ...args], { timeoutMs: 120_000 });
      const create = ['.venv/bin/python', 'manage.py', 'createsuperuser', '--noinput', '--username', 'admin', '--email', 'admin@example.org'];
      const r = await exec(create);
      expectExit(r, 0, 'exec createsuperuser');
      assert.match(r.stdout, /Superuser created successfully/);
      const ok = await whoami('admin', password);
      assert.is(ok.status, 200, `the live app authenticates the new user: ${ok.body}`);
      assert.is(ok.body, 'admin (superuser)\n');
      assert.is((await whoami('admin', 'wrong')).status, 401, 'and refuses a wrong password');
      // The same command again fails in Django (the name is taken): exec passes its exit code on.
      const again = await exec(create);
      assert.is(again.code, 1, out(again));
      assert.match(again.stderr, /username is already taken/);
      const runs = historyInside(k, root).filter((e: any) => e.event === 'exec');
      assert.equal(runs.slice(-2).map((e: any) => e.exit), [0, 1], 'both runs are in the history with their exit codes');
      assert.not.match(JSON.stringify(historyInside(k, root)), new RegExp(password), 'the password is in no history line');
    });
  }
}

test.run();
