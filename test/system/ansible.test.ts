// System tier: three test hosts on private networks, released with the real ansible-playbook (ansible/): built once by default, under load, a failed build, a failed gate, a killed run, random build ids, an archive CI built.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { getJson } from '../helpers/apps.ts';
import { bootFleet, HOOK_LOG, kitProcesses, type Fleet, type FleetHost, type PlayResult } from '../helpers/fleet.ts';
import { cleanupTempDirs, tempDir } from '../helpers/gitrepo.ts';
import { describeLoad, loadDuring, versionSequence, type VersionSample } from '../helpers/load.ts';
import { commandMissing, requiring, systemTierMissing } from '../helpers/prereq.ts';

const missing = systemTierMissing() ?? commandMissing('ansible-playbook', ['--version'], 'apt-get install ansible; test/setup.sh does');
const it = requiring(missing, test);
const APP = 'fleet';
/** Inside each host: markers that the app's build (from v2 on) and its server (from v4 on) read, so one host of three can fail. */
const MARKERS = '/etc/cutover-test';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let f: Fleet;
const ids: Record<string, string> = {};
const timings: string[] = [];
const t0 = Date.now();

/**
 * The app's build from v2 on: fails where MARKERS/fail-build exists (so one host of three can fail), then the
 * example's own build, then, as Next.js does, it names its asset with a random build id: two builds of one commit
 * serve different asset URLs. The page (GET /) links the asset; the server serves only its own build's asset.
 */
const TEST_BUILD = `// Test build: a host-dependent failure (${MARKERS}/fail-build), the example's build, its asset renamed with a random build id.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
if (existsSync('${MARKERS}/fail-build')) {
  console.error('build failed on purpose on this host (${MARKERS}/fail-build)');
  process.exit(1);
}
await import('./build-example.js');
const dist = new URL('./dist/', import.meta.url);
const info = JSON.parse(readFileSync(new URL('version.json', dist), 'utf8'));
const asset = \`app.\${randomBytes(8).toString('hex')}.js\`;
renameSync(new URL(info.asset, dist), new URL(asset, dist));
writeFileSync(new URL('version.json', dist), JSON.stringify({ ...info, asset }) + '\\n');
console.log(\`build id: \${asset}\`);
`;
/** The asset name TEST_BUILD gives. */
const RANDOM_ASSET = /^app\.[0-9a-f]{16}\.js$/;

/** The example server, made to read the unhealthy marker at start (a host-dependent failure of one shared build). */
function serverReadingMarker(server: string): string {
  const from = "parseBehaviour(readAppFile('BEHAVIOUR'))";
  if (!server.includes(from)) throw new Error('the example server no longer reads BEHAVIOUR as this test expects');
  return `import { existsSync } from 'node:fs';\n${server.replace(from,
    `parseBehaviour((readAppFile('BEHAVIOUR') ?? '') + (existsSync('${MARKERS}/unhealthy') ? ' unhealthy' : ''))`)}`;
}

function show(r: PlayResult): string {
  return `exit ${r.code} after ${(r.ms / 1000).toFixed(1)} s\n--- stdout (last 6000)\n${r.stdout.slice(-6000)}\n--- stderr\n${r.stderr.slice(-3000)}`;
}

async function play(label: string, playbook: string, vars: Record<string, unknown>, opts: Parameters<Fleet['play']>[2] = {}): Promise<PlayResult> {
  const r = await f.play(playbook, vars, opts);
  timings.push(`${label}: ${(r.ms / 1000).toFixed(1)} s (exit ${r.code})`);
  console.log(`\n  ${label}: ansible-playbook ${playbook} exit ${r.code} in ${(r.ms / 1000).toFixed(1)} s`);
  return r;
}

/** The summary lines the rollout prints (its debug task's msg list). */
function summary(r: PlayResult): string {
  const at = r.stdout.lastIndexOf('Summarise the rollout');
  return at < 0 ? '(no summary printed)' : r.stdout.slice(at, r.stdout.indexOf('PLAY RECAP', at));
}

async function versions(): Promise<string[]> {
  return Promise.all(f.hosts.map(async (h) => String((await getJson<{ version: string }>(`${h.url}/`)).version)));
}

async function lives(): Promise<(string | null)[]> {
  return Promise.all(f.hosts.map(async (h) => (await h.status()).live));
}

function marker(h: FleetHost, name: string, present: boolean): void {
  const file = path.join(h.host.root, MARKERS, name);
  if (present) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '');
  } else fs.rmSync(file, { force: true });
}

/** GET / of a host: the page, which links the build's asset. */
async function page(h: FleetHost): Promise<{ version: string; asset: string }> {
  return getJson<{ version: string; asset: string }>(`${h.url}/`);
}

/** The HTTP status of a GET. */
async function statusOf(url: string): Promise<number> {
  return (await fetch(url)).status;
}

function hookLog(h: FleetHost): string[] {
  const file = path.join(h.host.root, HOOK_LOG);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : [];
}

/**
 * One cut-over from `from` to `to` as the samples saw it: they start on `from` and end on `to`, and show
 * nothing else. During the kit's handover both releases answer for a moment (one listening socket, two
 * processes), so the samples may alternate inside that window: it is measured and printed, and must be short.
 */
function switchedOnce(name: string, samples: VersionSample[], from: string, to: string): void {
  const seq = versionSequence(samples);
  assert.ok(seq[0] === from && seq.at(-1) === to && seq.every((v) => v === from || v === to), `${name}: ${from} then ${to}, nothing else: ${seq}`);
  const firstNew = samples.find((x) => x.version === to)!.t;
  const lastOld = samples.filter((x) => x.version === from).at(-1)!.t;
  const overlap = Math.max(0, lastOld - firstNew);
  console.log(`  ${name}: both versions answered for ${overlap} ms (${seq.length - 1} changes seen by the sampler)`);
  assert.ok(overlap < 20_000, `${name}: both versions answered for ${overlap} ms`);
}

async function commitVersion(v: string, extra: Record<string, string | null> = {}): Promise<string> {
  return f.repo.commit({ VERSION: `${v}\n`, ...extra }, `v${v}`);
}

test.before(async () => {
  if (missing) return;
  const booted = Date.now();
  f = await bootFleet({
    count: 3,
    app: APP,
    manifest: (repo) => ({
      app: APP,
      repo,
      runtime: 'node',
      build: 'node build.js',
      start: 'node server.js',
      port: 3000, // the same port on every host: each has its own network namespace
      socket: true,
      env: { STARTUP_DELAY_MS: '300' },
      health: { path: '/health', timeout: 8 },
      stop_timeout: 5,
      assets: ['dist'],
    }),
  });
  timings.push(`boot 3 hosts: ${((Date.now() - booted) / 1000).toFixed(1)} s`);
  const v1 = await f.repo.head();
  const r = await play('site.yml v1 (kit, provision, first release)', 'site.yml', { cutover_ref: v1 });
  if (r.code !== 0) {
    // uvu does not print a before hook's error: print the run's output, then fail every test.
    console.error(`the first site.yml run failed: ${show(r)}`);
    throw new Error('the first site.yml run failed (its output is above)');
  }
  ids.v1 = (await f.hosts[0]!.status()).live!;
});

test.after(async () => {
  if (f) await f.stop();
  await cleanupTempDirs();
  console.log(`\n  timings (${((Date.now() - t0) / 1000).toFixed(0)} s in all):\n    ${timings.join('\n    ')}`);
});

it('a good release under load on three hosts, built once: 0 failed requests, all serve v2 with the same asset URLs, a second run changes nothing', async () => {
  assert.equal(await versions(), ['1', '1', '1'], 'every host serves v1 after the first run');
  const example = fs.readFileSync(path.join(f.repo.dir, 'build.js'), 'utf8');
  const v2 = await commitVersion('2', { 'build-example.js': example, 'build.js': TEST_BUILD });
  let rollout: Promise<PlayResult> | undefined;
  const action = () => (rollout ??= play('rollout.yml v2 under load', 'rollout.yml', { cutover_ref: v2 }));
  // Paced (a request every ≈ 10 ms per worker, on a new connection): requests arrive all through every handover
  // without the load generator taking this 2-core machine's CPU from the rollout it measures.
  const loads = await Promise.all(f.hosts.map((h) => loadDuring(h.url, action, { workers: 2, paceMs: 10, leadMs: 500, tailMs: 700, maxMs: 300_000 })));
  const r = await rollout!;
  assert.equal(r.code, 0, show(r));
  loads.forEach((l, i) => console.log(`  ${describeLoad(f.hosts[i]!.name, l.load, l.samples)}`));
  const live = await lives();
  ids.v2 = live[0]!;
  loads.forEach((l, i) => {
    assert.ok(l.load.requests > 50, `${f.hosts[i]!.name}: the load ran (${l.load.requests} requests)`);
    assert.equal(l.load.failed, 0, `${f.hosts[i]!.name}: ${describeLoad('load', l.load)}`);
    switchedOnce(f.hosts[i]!.name, l.samples, '1', '2');
  });
  assert.equal(await versions(), ['2', '2', '2']);
  assert.ok(ids.v2 !== ids.v1 && live.every((l) => l === ids.v2), `one release everywhere: ${live}`);
  // Each host was drained on v1 and put back on v2, one host at a time (the batches: 1, then 50 % = 1 of 3).
  for (const h of f.hosts) assert.equal(hookLog(h).slice(-2), [`drain releases/${ids.v1}`, `undrain releases/${ids.v2}`], h.name);
  assert.match(summary(r), /host1: built \S+; switched from /);
  assert.match(summary(r), /\(one release everywhere\)/, show(r));
  // Built once (the default): host1 built it from git and archived it, host2 and host3 released that archive: one
  // sha256 and one tree digest everywhere.
  const sources = (await Promise.all(f.hosts.map((h) => h.status()))).map((st) => st.releases.find((x) => x.id === ids.v2)?.source);
  assert.equal(sources.map((x) => x?.kind), ['git', 'archive', 'archive'], `host1 built, the others received: ${JSON.stringify(sources)}`);
  assert.ok(sources.every((x) => x?.sha256 && x.sha256 === sources[0]!.sha256 && x.treeDigest && x.treeDigest === sources[0]!.treeDigest),
    `one archive everywhere: ${JSON.stringify(sources)}`);
  // Its build names the asset with a random id, yet every host serves the same asset URLs (one build), and behind a
  // load balancer every asset of a page from host1 answers 200 from host2 and host3.
  const pages = await Promise.all(f.hosts.map(page));
  assert.match(path.basename(pages[0]!.asset), RANDOM_ASSET, `the build named its asset with a random id: ${pages[0]!.asset}`);
  assert.equal(pages.map((p) => p.asset), [pages[0]!.asset, pages[0]!.asset, pages[0]!.asset], 'one build: one set of asset URLs');
  for (const h of f.hosts) assert.is(await statusOf(`${h.url}${pages[0]!.asset}`), 200, `${h.name} serves host1's ${pages[0]!.asset}`);

  const again = await play('site.yml v2 again (nothing to do)', 'site.yml', { cutover_ref: v2 });
  assert.equal(again.code, 0, show(again));
  for (const h of f.hosts) {
    assert.equal(again.recap[h.name]?.changed, 0, `${h.name} changed nothing on the second run: ${JSON.stringify(again.recap[h.name])}\n${show(again)}`);
    assert.equal(again.recap[h.name]?.failed, 0, h.name);
  }
  assert.match(summary(again), /host3: reused \S+; already live, nothing to switch/);
  assert.equal(await lives(), [ids.v2, ids.v2, ids.v2]);
  // The scheduled prune on each host runs what cron would run: the kit's compiled executable (bin/ and dist/
  // are there), not a file the playbook left out.
  for (const h of f.hosts) {
    const cron = await h.host.exec(['sh', '-c', `grep -v '^#' /etc/cron.d/cutover-${APP} | grep ' root '`]);
    const command = cron.stdout.trim().replace(/^(\S+\s+){5}root\s+/, '').replace(/ 2>&1 \| \/usr\/bin\/systemd-cat .*$/, '');
    assert.match(command, /^\/usr\/bin\/node \/opt\/cutover\/bin\/cutover prune --cron --manifest /, `${h.name}: ${cron.stdout}`);
    const run = await h.host.exec(['sh', '-c', command]);
    assert.is(run.code, 0, `${h.name}: the cron command exits 0:\n${run.stdout}\n${run.stderr}`);
    assert.is(run.stderr, '', `${h.name}: no fallback to tsx, no error: ${run.stderr}`);
  }
});

it('cutover_build: each, a release whose build fails on one host: no host switched, the run fails naming it', async () => {
  const h2 = f.hosts[1]!;
  marker(h2, 'fail-build', true);
  const v3 = await commitVersion('3');
  const hooksBefore = f.hosts.map(hookLog);
  const r = await play('rollout.yml v3 (each), build fails on host2', 'rollout.yml', { cutover_ref: v3, cutover_build: 'each' })
    .finally(() => marker(h2, 'fail-build', false));
  assert.is.not(r.code, 0, show(r));
  assert.match(summary(r), /host2: build of \S+ FAILED \(exit 1/, show(r));
  assert.match(r.stdout, /stopped before any host switched: the build failed on host2/, show(r));
  assert.equal(await lives(), [ids.v2, ids.v2, ids.v2], 'no host switched');
  assert.equal(await versions(), ['2', '2', '2']);
  assert.equal(f.hosts.map(hookLog), hooksBefore, 'no host was even drained');
  // Where v3 was built, the live v2 already has v3's asset file: behind a load balancer, a page from a host
  // that switched first can load its files from one that has not switched yet.
  const v3id = v3.slice(0, 12);
  for (const h of [f.hosts[0]!, f.hosts[2]!]) {
    const inside = (p: string) => path.join(h.host.root, `usr/local/src/${APP}`, p);
    const built = JSON.parse(fs.readFileSync(inside(`releases/${v3id}/.cutover-assets.json`), 'utf8')) as { dirs: { dist: string[] } };
    const asset = built.dirs.dist.find((n) => RANDOM_ASSET.test(n));
    assert.ok(asset, `${h.name}: v3 built an asset: ${JSON.stringify(built)}`);
    assert.is(fs.statSync(inside(`releases/${ids.v2}/dist/${asset}`)).ino, fs.statSync(inside(`releases/${v3id}/dist/${asset}`)).ino, `${h.name}: the live v2 has v3's ${asset} (hard link)`);
  }
});

it('built once, the build fails on the build host: nothing to release anywhere, no host switched', async () => {
  const h1 = f.hosts[0]!;
  marker(h1, 'fail-build', true);
  const v3b = await commitVersion('3b');
  const hooksBefore = f.hosts.map(hookLog);
  const r = await play('rollout.yml v3b, the one build fails on host1', 'rollout.yml', { cutover_ref: v3b }).finally(() => marker(h1, 'fail-build', false));
  assert.is.not(r.code, 0, show(r));
  assert.match(summary(r), /host1: build of \S+ \(the one build\) FAILED \(exit 1/, show(r));
  assert.match(summary(r), /host2: nothing to release \(no archive to release: exit 1/, show(r));
  assert.match(r.stdout, /stopped before any host switched: the build failed on host1\./, show(r));
  assert.equal(await lives(), [ids.v2, ids.v2, ids.v2], 'no host switched');
  assert.equal(f.hosts.map(hookLog), hooksBefore, 'no host was even drained');
  for (const h of f.hosts.slice(1)) assert.not.ok((await h.status()).releases.some((x) => x.commit === v3b), `${h.name} has no release of v3b`);
});

it('built once, one host cannot receive the archive: no host switched, the run fails naming it', async () => {
  const h2 = f.hosts[1]!;
  // host2's archive directory is taken by a file: the copy cannot land, as with a full or broken disk.
  const taken = path.join(h2.host.root, 'var/lib/cutover/archives');
  fs.rmSync(taken, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(taken), { recursive: true });
  fs.writeFileSync(taken, 'not a directory\n');
  const v3c = await commitVersion('3c');
  const hooksBefore = f.hosts.map(hookLog);
  const r = await play('rollout.yml v3c, host2 cannot receive', 'rollout.yml', { cutover_ref: v3c }).finally(() => fs.rmSync(taken, { force: true }));
  assert.is.not(r.code, 0, show(r));
  assert.match(summary(r), /host2: release of the archive of \S+ FAILED \(/, show(r));
  assert.match(summary(r), /host1: built \S+; not switched/, show(r));
  assert.match(r.stdout, /stopped before any host switched: releasing the archive failed on host2\./, show(r));
  assert.equal(await lives(), [ids.v2, ids.v2, ids.v2], 'no host switched');
  assert.equal(await versions(), ['2', '2', '2']);
  assert.equal(f.hosts.map(hookLog), hooksBefore, 'no host was even drained');
});

it('a release that fails its health gate on the second host: the first is rolled back, the third never switched', async () => {
  const [h1, h2, h3] = f.hosts as [FleetHost, FleetHost, FleetHost];
  marker(h2, 'unhealthy', true);
  // Built once, so the failure is the host's, at start: the server reads the marker (the build no longer can).
  const v4 = await commitVersion('4', { 'server.js': serverReadingMarker(fs.readFileSync(path.join(f.repo.dir, 'server.js'), 'utf8')) });
  const hooks3 = hookLog(h3);
  let rollout: Promise<PlayResult> | undefined;
  const action = () => (rollout ??= play('rollout.yml v4, unhealthy on host2', 'rollout.yml', { cutover_ref: v4 }));
  const loads = await Promise.all(f.hosts.map((h) => loadDuring(h.url, action, { workers: 2, paceMs: 10, leadMs: 300, tailMs: 500, maxMs: 300_000 })))
    .finally(() => marker(h2, 'unhealthy', false));
  const r = await rollout!;
  loads.forEach((l, i) => console.log(`  ${describeLoad(f.hosts[i]!.name, l.load, l.samples)}`));
  console.log(`  ${summary(r).trim().replace(/\n/g, '\n  ')}`);
  assert.is.not(r.code, 0, show(r));
  assert.match(r.stdout, /The rollout of \S+ failed on host2: exit 1/, show(r));
  assert.match(summary(r), /host1: built (\S+); switched from \S+, then rolled back to it/, show(r));
  assert.match(summary(r), /host2: built \S+; activation FAILED/, show(r));
  assert.match(summary(r), /host3: built \S+; not switched \(the rollout stopped\)/, show(r));
  assert.equal(await versions(), ['2', '2', '2'], 'the whole fleet serves v2 again');
  assert.equal(await lives(), [ids.v2, ids.v2, ids.v2]);
  // host1 went to v4 and back (its versions), host3 never left v2 and was never drained.
  const seq1 = versionSequence(loads[0]!.samples);
  assert.ok(seq1[0] === '2' && seq1.at(-1) === '2' && seq1.includes('4') && seq1.every((v) => v === '2' || v === '4'), `host1 served 2, then 4, then 2 again: ${seq1}`);
  assert.equal(versionSequence(loads[1]!.samples), ['2'], 'host2 never served v4');
  assert.equal(versionSequence(loads[2]!.samples), ['2']);
  assert.equal(hookLog(h3), hooks3, 'host3 was never drained');
  const v4on1 = (await h1.status()).releases.find((x) => x.commit === v4);
  assert.equal(v4on1?.state, 'bad', 'the release host1 left is marked bad');
  const v4on3 = (await h3.status()).releases.find((x) => x.commit === v4);
  assert.equal(v4on3?.state, 'ready', 'host3 built it and kept it ready, never live');
  for (const [i, l] of loads.entries()) assert.equal(l.load.failed, 0, `${f.hosts[i]!.name}: ${describeLoad('load', l.load)}`);
});

it('the playbook killed in the middle of a batch: the next run converges', async () => {
  const h2 = f.hosts[1]!;
  const v5 = await commitVersion('5');
  let pgid = 0;
  const running = play('rollout.yml v5, killed while host2 activates', 'rollout.yml', { cutover_ref: v5 }, { onSpawn: (pid) => { pgid = pid; } });
  // Wait for host2's activation (the second batch) to be under way, then kill the whole run at once.
  const deadline = Date.now() + 180_000;
  while (!/scripts\/activate\.ts|bin\/cutover activate/.test(await kitProcesses(h2.host))) {
    if (Date.now() > deadline) throw new Error('host2 never started its activation');
    await sleep(100);
  }
  process.kill(-pgid, 'SIGKILL');
  const killed = await running;
  assert.is.not(killed.code, 0);
  const afterKill = await lives();
  console.log(`  killed mid-batch: lives ${afterKill.join(', ')}; left running in host2: ${(await kitProcesses(h2.host)) || 'nothing'}`);
  assert.equal(afterKill[2], ids.v2, 'host3 was not reached');

  const r = await play('rollout.yml v5 again', 'rollout.yml', { cutover_ref: v5 });
  assert.equal(r.code, 0, show(r));
  assert.equal(await versions(), ['5', '5', '5']);
  const statuses = await Promise.all(f.hosts.map((h) => h.status()));
  const live = statuses[0]!.live;
  for (const [i, st] of statuses.entries()) {
    assert.equal(st.live, live, f.hosts[i]!.name);
    assert.equal(st.serving, live, `${f.hosts[i]!.name} serves its live release`);
    assert.equal(st.unfinished, null, `${f.hosts[i]!.name} has no unfinished activation`);
  }
  assert.match(summary(r), /host1: reused \S+; already live, nothing to switch/, show(r));
});

it('the status play prints every host\'s live release; the rollback play takes every host back to the release before', async () => {
  const live = (await lives())[0]!;
  const st = await play('status.yml', 'status.yml', {});
  assert.equal(st.code, 0, show(st));
  for (const h of f.hosts) assert.match(st.stdout, new RegExp(`${h.name}: live ${live} \\(commit `), show(st));
  assert.match(st.stdout, new RegExp(`every host is on ${live}: one release everywhere, the same bytes \\(archive `), show(st));
  const rb = await play('rollback.yml (to the release before v5)', 'rollback.yml', {});
  assert.equal(rb.code, 0, show(rb));
  assert.equal(await versions(), ['2', '2', '2']);
  assert.equal(await lives(), [ids.v2, ids.v2, ids.v2]);
});

it('a host unreachable when the rollout starts: no host switched, the run fails naming it', async () => {
  const hostsIni = path.join(f.inventory, 'hosts.ini');
  const inventory = fs.readFileSync(hostsIni, 'utf8');
  const h3 = f.hosts[2]!;
  // host3's connection enters a process that does not exist: ansible finds the host unreachable.
  fs.writeFileSync(hostsIni, inventory.replace(new RegExp(`^(${h3.name} .*ansible_nsenter_pid=)\\d+`, 'm'), (_, head: string) => `${head}4194303`));
  const hooksBefore = f.hosts.map(hookLog);
  try {
    const v6 = await commitVersion('6');
    const r = await play('rollout.yml v6, host3 unreachable', 'rollout.yml', { cutover_ref: v6 });
    assert.is.not(r.code, 0, show(r));
    assert.match(r.stdout, /UNREACHABLE/, show(r));
    assert.match(summary(r), `${h3.name}: unreachable, or failed before its build`, show(r));
    assert.match(r.stdout, `stopped before any host switched: ${h3.name} did not get through the build (unreachable or failed)`, show(r));
  } finally {
    fs.writeFileSync(hostsIni, inventory);
  }
  assert.equal(await lives(), [ids.v2, ids.v2, ids.v2], 'no host switched');
  assert.equal(await versions(), ['2', '2', '2']);
  assert.equal(f.hosts.map(hookLog), hooksBefore, 'no host was even drained');
});

it('a frozen host (cutover freeze) stops the rollout before any host builds, naming the host and the reason; unfreeze lets it through', async () => {
  const h2 = f.hosts[1]!;
  const kit = (args: string[]) => h2.host.exec(['/usr/bin/node', '/opt/cutover/bin/cutover', ...args, '--manifest', `/etc/cutover/${APP}.yaml`], { cwd: '/opt/cutover', timeoutMs: 60_000 });
  const frozen = await kit(['freeze', '--reason', 'migration until 18:00']);
  assert.is(frozen.code, 0, `${frozen.stdout}\n${frozen.stderr}`);
  const releasesBefore = await Promise.all(f.hosts.map(async (h) => (await h.status()).releases.length));
  try {
    const v7 = await commitVersion('7');
    const r = await play('rollout.yml v7, host2 frozen', 'rollout.yml', { cutover_ref: v7 });
    assert.is.not(r.code, 0, show(r));
    assert.match(r.stdout, new RegExp(`${h2.name} is frozen by \\S+ since \\S+: migration until 18:00\\. No host was built or switched`), show(r));
    assert.equal(await Promise.all(f.hosts.map(async (h) => (await h.status()).releases.length)), releasesBefore, 'no host built anything');
    assert.equal(await lives(), [ids.v2, ids.v2, ids.v2], 'no host switched');
  } finally {
    const lifted = await kit(['unfreeze']);
    assert.is(lifted.code, 0, lifted.stderr);
  }
});

it('cutover_build: each: three builds of one commit serve three asset URLs (a page from host1 breaks on host and host3), and status.yml names the hosts', async () => {
  // The test build names its asset with a random id (as Next.js does): built on each host, three build ids. This is why `once` is the default.
  const v8 = await commitVersion('8');
  const r = await play('rollout.yml v8 (each), random build id', 'rollout.yml', { cutover_ref: v8, cutover_build: 'each' });
  assert.equal(r.code, 0, show(r));
  assert.match(summary(r), /built on each host: the bytes may differ per build/, show(r));
  const pages = await Promise.all(f.hosts.map(page));
  assert.equal(pages.map((p) => p.version), ['8', '8', '8']);
  assert.is(new Set(pages.map((p) => p.asset)).size, 3, `three builds, three asset URLs: ${pages.map((p) => p.asset)}`);
  console.log(`  each: ${pages.map((p, i) => `${f.hosts[i]!.name} ${p.asset}`).join(', ')}`);
  for (const h of f.hosts.slice(1)) assert.is(await statusOf(`${h.url}${pages[0]!.asset}`), 404, `${h.name} never built host1's ${pages[0]!.asset}`);
  const live = (await lives())[0]!;
  assert.equal(await lives(), [live, live, live], 'one release id everywhere (the commit), yet different bytes');
  const st = await play('status.yml after v8 (each)', 'status.yml', {});
  assert.equal(st.code, 0, show(st));
  const verdict = /NOT one release everywhere: .*/.exec(st.stdout)?.[0] ?? '';
  assert.ok(verdict, `status.yml does not say one release: ${show(st)}`);
  assert.not.match(st.stdout, /one release everywhere, the same bytes/, show(st));
  for (const h of f.hosts) assert.ok(verdict.includes(h.name), `the verdict names ${h.name}: ${verdict}`);
});

it('an archive CI built (cutover_archive_src): the rollout builds nothing and every host serves its bytes; a damaged copy, a missing one and one without its .sha256 are refused on the controller, and a ref with it too', async () => {
  const v9 = await commitVersion('9');
  const h1 = f.hosts[0]!;
  // CI: `cutover build` on a machine provisioned with the manifest (host1 stands in for the build box); the archive then lies on the controller.
  const built = await h1.host.exec(['/usr/bin/node', '/opt/cutover/bin/cutover', 'build', v9, '--out', '/var/tmp/ci/fleet-v9.tar.gz', '--json', '--manifest', `/etc/cutover/${APP}.yaml`], { timeoutMs: 300_000 });
  assert.is(built.code, 0, `cutover build: ${built.stdout}${built.stderr}`);
  const sha256 = JSON.parse(built.stdout.trim().split('\n').at(-1)!).sha256 as string;
  const ci = await tempDir('cutover-ci');
  const bad = path.join(ci, 'damaged');
  fs.mkdirSync(bad);
  for (const name of ['fleet-v9.tar.gz', 'fleet-v9.tar.gz.sha256']) {
    fs.copyFileSync(path.join(h1.host.root, 'var/tmp/ci', name), path.join(ci, name));
    fs.copyFileSync(path.join(h1.host.root, 'var/tmp/ci', name), path.join(bad, name));
  }
  fs.rmSync(path.join(h1.host.root, 'var/tmp/ci'), { recursive: true, force: true });
  const damaged = fs.readFileSync(path.join(bad, 'fleet-v9.tar.gz'));
  damaged[damaged.length >> 1] ^= 0xff;
  fs.writeFileSync(path.join(bad, 'fleet-v9.tar.gz'), damaged);
  const before = await lives();

  const r1 = await play('rollout.yml, a damaged archive from CI', 'rollout.yml', { cutover_archive_src: path.join(bad, 'fleet-v9.tar.gz') });
  assert.is.not(r1.code, 0, show(r1));
  assert.match(r1.stdout, /stopped before any host switched: no host got the archive \(no archive to release: its sha256 is [0-9a-f]{64}, its \.sha256 file says [0-9a-f]{64}: a damaged or changed archive\)/, show(r1));
  assert.equal(await lives(), before, 'no host switched');
  assert.ok(fs.existsSync(path.join(bad, 'fleet-v9.tar.gz')), "the user's archive stays on the controller");

  // No file there, and a file without its .sha256 beside it: refused on the controller too, nothing switched.
  const r1b = await play('rollout.yml, no archive at cutover_archive_src', 'rollout.yml', { cutover_archive_src: path.join(ci, 'fleet-v8.tar.gz') });
  assert.is.not(r1b.code, 0, show(r1b));
  assert.match(r1b.stdout, /no host got the archive \(no archive to release: cutover_archive_src \S+fleet-v8\.tar\.gz is not a file on the controller\)/, show(r1b));
  const lone = path.join(ci, 'lone');
  fs.mkdirSync(lone);
  fs.copyFileSync(path.join(ci, 'fleet-v9.tar.gz'), path.join(lone, 'fleet-v9.tar.gz'));
  const r1c = await play('rollout.yml, an archive without its .sha256', 'rollout.yml', { cutover_archive_src: path.join(lone, 'fleet-v9.tar.gz') });
  assert.is.not(r1c.code, 0, show(r1c));
  assert.match(r1c.stdout, /no host got the archive \(no archive to release: there is no \S+fleet-v9\.tar\.gz\.sha256 beside it \(cutover build writes one\): copy it along\)/, show(r1c));
  assert.equal(await lives(), before, 'no host switched');

  const r2 = await play('rollout.yml with cutover_ref and cutover_archive_src', 'rollout.yml', { cutover_ref: v9, cutover_archive_src: path.join(ci, 'fleet-v9.tar.gz') });
  assert.is.not(r2.code, 0, show(r2));
  assert.match(r2.stdout, /not both/, show(r2));

  const r3 = await play('rollout.yml, the archive from CI', 'rollout.yml', { cutover_archive_src: path.join(ci, 'fleet-v9.tar.gz') });
  assert.equal(r3.code, 0, show(r3));
  // A build in the rollout would have made other bytes (the test build names its asset with a random id): every host has CI's.
  const pages = await Promise.all(f.hosts.map(page));
  assert.equal(pages.map((p) => p.version), ['9', '9', '9']);
  assert.is(new Set(pages.map((p) => p.asset)).size, 1, `one build, one asset URL: ${pages.map((p) => p.asset)}`);
  for (const h of f.hosts) {
    assert.is(await statusOf(`${h.url}${pages[0]!.asset}`), 200, `${h.name} serves CI's ${pages[0]!.asset}`);
    const st = await h.status();
    assert.is(st.releases.find((x) => x.id === st.live)?.source?.sha256, sha256, `${h.name} serves the archive CI built`);
  }
  assert.ok(fs.existsSync(path.join(ci, 'fleet-v9.tar.gz')), "the user's archive stays on the controller");
});

test.run();
