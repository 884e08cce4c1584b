// system tier: socket activation end to end in a real systemd: native fd 3, the preload, zero failed requests under load during release and rollback.
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootKitHost, expectExit, type KitHost } from '../helpers/hostkit.ts';
import { getJson } from '../helpers/apps.ts';
import { cleanupTempDirs, type AppRepo } from '../helpers/gitrepo.ts';
import { describeLoad, handoverProblems, loadDuring, versionSequence } from '../helpers/load.ts';
import { systemTier } from '../helpers/prereq.ts';
import { servingUnit } from '../helpers/system.ts';
import { setUp } from '../helpers/fixtures.ts';

const { it, ready: ROOT } = systemTier(import.meta.url);

// Ports 3500-3599 belong to this file and security.test.ts; this file uses 3501-3503.
const NATIVE = { app: 'socknative', port: 3501 }; // socket: true, the app takes fd 3
const PRELOAD = { app: 'sockpreload', port: 3502 }; // socket: "preload", the app binds PORT itself
const PLAIN = { app: 'socknone', port: 3503 }; // socket: false, for contrast
const url = (port: number) => `http://127.0.0.1:${port}`;

let h: KitHost;
const repos: Record<string, AppRepo> = {};
const manifests: Record<string, string> = {};
const numbers: string[] = [];
const t0 = Date.now();

function manifestFor(app: { app: string; port: number }, repoUrl: string, extra: Record<string, unknown>) {
  return h.manifest({
    app: app.app,
    repo: repoUrl,
    runtime: 'node',
    build: 'node build.js',
    start: 'node server.js',
    port: app.port,
    env: { STARTUP_DELAY_MS: '300' },
    health: { path: '/health', timeout: 15 },
    stop_timeout: 10,
    keep: 5,
    ...extra,
  });
}

async function setUpApp(app: { app: string; port: number }, extra: Record<string, unknown>) {
  const { repo, url: repoUrl } = await h.repo(app.app);
  repos[app.app] = repo;
  manifests[app.app] = manifestFor(app, repoUrl, extra);
  expectExit(await h.kit('provision', [], { manifest: manifests[app.app] }), 0, `provision ${app.app}`);
  expectExit(await h.kit('release', ['main'], { manifest: manifests[app.app] }), 0, `release v1 of ${app.app}`);
}

/** `ss -ltnp` inside for the port: who holds the listening socket. */
async function listeners(port: number): Promise<string> {
  const r = await h.host.exec(['ss', '-Hltnp', `sport = :${port}`]);
  return r.stdout.trim();
}

async function mainPid(unit: string): Promise<number> {
  const r = await h.host.exec(['systemctl', 'show', '--property=MainPID', '--value', unit]);
  return Number(r.stdout.trim());
}

/** The slot unit serving an app now. */
const serving = (app: string) => servingUnit(h, app);

async function environOf(pid: number): Promise<Record<string, string>> {
  const r = await h.host.exec(['cat', `/proc/${pid}/environ`]);
  return Object.fromEntries(r.stdout.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

async function liveLink(app: string): Promise<string> {
  return (await h.host.exec(['readlink', `/usr/local/src/${app}/active`])).stdout.trim();
}

function report(line: string) {
  numbers.push(line);
  console.log(`\n  ${line}`);
}

test.before(async () => {
  if (!ROOT) return;
  await setUp(async () => {
    h = await bootKitHost();
    await setUpApp(NATIVE, { socket: true });
    await setUpApp(PRELOAD, { socket: 'preload', env: { STARTUP_DELAY_MS: '300', IGNORE_LISTEN_FDS: '1' } });
    await setUpApp(PLAIN, { socket: false });
  });
});

test.after(async () => {
  if (h) await h.stop();
  await cleanupTempDirs();
  if (numbers.length) console.log(`\n  socket activation, measured:\n    ${numbers.join('\n    ')}`);
  console.log(`\n  socket.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

it('native fd 3: systemd holds the port, the app listens on the inherited socket and answers', async () => {
  const held = await listeners(NATIVE.port);
  assert.match(held, /"systemd",pid=1,/, `systemd (pid 1) holds 127.0.0.1:${NATIVE.port}:\n${held}`);
  assert.is((await h.host.exec(['systemctl', 'is-active', `${NATIVE.app}.socket`])).stdout.trim(), 'active');
  const unit = await serving(NATIVE.app);
  const pid = await mainPid(unit);
  assert.ok(pid > 0, 'the service runs');
  assert.match(held, new RegExp(`"node",pid=${pid},fd=3`), `the app's fd 3 is that socket:\n${held}`);
  const env = await environOf(pid);
  assert.is(env.LISTEN_FDS, '1');
  assert.is(env.NODE_OPTIONS, undefined, 'no preload with socket: true');
  assert.match(await h.host.journal(unit, 30), /listening on inherited socket fd 3/);
  const body = await getJson(`${url(NATIVE.port)}/`);
  assert.is(body.version, '1');
  assert.is(body.pid, pid);
});

it('native fd 3: with the service stopped the port stays open and the first connection starts the app (its boot slot a)', async () => {
  const unit = await serving(NATIVE.app);
  expectExit(await h.host.exec(['systemctl', 'stop', unit]), 0, 'stop the service');
  assert.is((await h.host.exec(['systemctl', 'is-active', unit])).stdout.trim(), 'inactive');
  assert.match(await listeners(NATIVE.port), /"systemd",pid=1,/, 'the socket unit still listens');
  const t = performance.now();
  const body = await getJson(`${url(NATIVE.port)}/`, 10_000); // waits in the queue while systemd starts the app
  report(`on-demand start through the socket: first request answered in ${Math.round(performance.now() - t)} ms`);
  assert.is(body.version, '1');
  assert.is(await mainPid(`${NATIVE.app}@a.service`), body.pid);
});

it('preload: the app binds PORT itself, yet the port is the socket unit\'s and the app answers through it', async () => {
  const held = await listeners(PRELOAD.port);
  assert.match(held, /"systemd",pid=1,/, `systemd (pid 1) holds 127.0.0.1:${PRELOAD.port}:\n${held}`);
  const unit = await serving(PRELOAD.app);
  const pid = await mainPid(unit);
  const env = await environOf(pid);
  assert.is(env.IGNORE_LISTEN_FDS, '1', 'the app ignores LISTEN_FDS');
  assert.match(env.NODE_OPTIONS ?? '', /--require \/opt\/cutover\/scripts\/preload\/listen-fd\.cjs/);
  // The app believes it listened on PORT (its own log line says so) …
  assert.match(await h.host.journal(unit, 30), new RegExp(`listening on 127\\.0\\.0\\.1:${PRELOAD.port}`));
  // … but its listening socket is fd 3, the one systemd passed; it bound no second socket.
  assert.match(held, new RegExp(`"node",pid=${pid},fd=3\\)`), `the app listens on fd 3 only:\n${held}`);
  assert.is(held.split('\n').length, 1, `one listening socket on the port:\n${held}`);
  const body = await getJson(`${url(PRELOAD.port)}/`);
  assert.is(body.version, '1');
  assert.is(body.pid, pid);
});

it('preload: during restarts connections wait in the queue instead of being refused', async () => {
  const unit = await serving(PRELOAD.app);
  const before = await mainPid(unit);
  const run = await loadDuring(
    url(PRELOAD.port),
    async () => {
      for (let i = 0; i < 2; i++) {
        expectExit(await h.host.exec(['systemctl', 'restart', unit]), 0, 'restart');
        await new Promise((r) => setTimeout(r, 800));
      }
    },
    { workers: 8, minMs: 3000 },
  );
  report(describeLoad('preload, 2 × systemctl restart', run.load, run.samples));
  const after = await mainPid(unit);
  assert.is.not(after, before, 'the app really restarted');
  assert.is(run.load.failed, 0, `no failed request: ${JSON.stringify(run.load.errors)}`);
  assert.is(run.samples.filter((s) => s.error).length, 0, 'no failed version sample');
  // Each restart leaves ≥ 300 ms with no process accepting; a request that waited through it proves the queueing.
  assert.ok(run.load.max >= 250, `some request waited in the queue through a restart (max latency ${run.load.max} ms)`);
});

it('load during `release` with socket: true: zero failed requests, the version switches from old to new', async () => {
  await repos[NATIVE.app].commit({ VERSION: '2\n' }, 'v2');
  const run = await loadDuring(url(NATIVE.port), () => h.kit('release', ['main'], { manifest: manifests[NATIVE.app] }), { workers: 8, minMs: 3000 });
  expectExit(run.result, 0, 'release v2');
  report(describeLoad('socket: true, release 1 → 2', run.load, run.samples));
  assert.is(run.load.failed, 0, `no failed request: ${JSON.stringify(run.load.errors)}`);
  assert.is(run.samples.filter((s) => s.error).length, 0, 'no failed version sample');
  // A handover: version 1, both for a moment (the two processes share the socket's queue), then only 2.
  assert.equal(handoverProblems(run.samples, '1', '2', run.actionEndMs), []);
  assert.ok(run.load.requests >= 1000, `a real load (${run.load.requests} requests)`);
  assert.is((await getJson(`${url(NATIVE.port)}/`)).version, '2');
});

it('load during `rollback` with socket: true: zero failed requests, the version switches back', async () => {
  const run = await loadDuring(url(NATIVE.port), () => h.kit('rollback', [], { manifest: manifests[NATIVE.app] }), { workers: 8, minMs: 3000 });
  expectExit(run.result, 0, 'rollback');
  report(describeLoad('socket: true, rollback 2 → 1', run.load, run.samples));
  assert.is(run.load.failed, 0, `no failed request: ${JSON.stringify(run.load.errors)}`);
  assert.is(run.samples.filter((s) => s.error).length, 0, 'no failed version sample');
  assert.equal(handoverProblems(run.samples, '2', '1', run.actionEndMs), []);
  assert.is((await getJson(`${url(NATIVE.port)}/`)).version, '1');
});

it('for contrast, load during `release` with socket: false: the restart refuses connections (the control that the zero above means something)', async () => {
  await repos[PLAIN.app].commit({ VERSION: '2\n' }, 'v2');
  const run = await loadDuring(url(PLAIN.port), () => h.kit('release', ['main'], { manifest: manifests[PLAIN.app] }), { workers: 8, minMs: 3000 });
  expectExit(run.result, 0, 'release v2 without a socket');
  report(describeLoad('socket: false, release 1 → 2', run.load, run.samples));
  // Same app, same load, same 300 ms start: without the socket unit the port is closed while the app restarts.
  assert.ok(run.load.failed > 0, `with socket: false some requests must fail during the restart: ${JSON.stringify(run.load)}`);
  assert.ok((run.load.errors.ECONNREFUSED ?? 0) > 0, `the failures are refused connections: ${JSON.stringify(run.load.errors)}`);
  assert.is((await getJson(`${url(PLAIN.port)}/`)).version, '2', 'the release itself worked');
  assert.match(await listeners(PLAIN.port), /"node",pid=\d+/, 'the app holds the port itself');
  assert.not.match(await listeners(PLAIN.port), /"systemd",pid=1,/);
});

it('a release that crashes at start under socket: true: preflight refuses it, zero failed requests', async () => {
  const live = await liveLink(NATIVE.app);
  await repos[NATIVE.app].commit({ VERSION: '3\n', BEHAVIOUR: 'crash\n' }, 'v3 crashes at start');
  const run = await loadDuring(url(NATIVE.port), () => h.kit('release', ['main'], { manifest: manifests[NATIVE.app] }), { workers: 8, minMs: 3000 });
  report(describeLoad('socket: true, release of a crashing version (refused)', run.load, run.samples));
  expectExit(run.result, 1, 'release of a crashing version');
  const out = run.result.stdout + run.result.stderr;
  assert.match(out, /failed preflight and never went live/);
  assert.match(out, /crashing at start on purpose/, 'its journal lines are printed');
  assert.is(run.load.failed, 0, `no failed request: ${JSON.stringify(run.load.errors)}`);
  assert.equal(versionSequence(run.samples), ['1'], 'version 1 served throughout');
  assert.is(await liveLink(NATIVE.app), live, 'active was not touched');
  const crashId = (await repos[NATIVE.app].head()).slice(0, 12);
  const status = JSON.parse((await h.kit('status', ['--json'], { manifest: manifests[NATIVE.app] })).stdout);
  const crash = status.releases.find((r: { id: string }) => r.id === crashId);
  assert.is(crash?.state, 'bad', `the crashing release is marked bad: ${JSON.stringify(crash)}`);
  assert.match(crash?.reason ?? '', /preflight/);
  assert.is.not(status.live, crashId);
  assert.is((await getJson(`${url(NATIVE.port)}/`)).version, '1');
});

it('a restart that systemd refuses (the socket cannot bind) fails the cutover and switches active back', async () => {
  const m = manifests[NATIVE.app];
  const live = await liveLink(NATIVE.app);
  await repos[NATIVE.app].commit({ VERSION: '4\n', BEHAVIOUR: null }, 'v4');
  expectExit(await h.kit('release', ['main', '--no-activate'], { manifest: m }), 0, 'build v4');
  const v4 = (await repos[NATIVE.app].head()).slice(0, 12);
  expectExit(await h.host.exec(['systemctl', 'stop', `${NATIVE.app}.socket`, `${NATIVE.app}@a.service`, `${NATIVE.app}@b.service`]), 0, 'stop the socket');
  // Someone else takes the port (the test host shares this machine's network), so the socket unit cannot bind.
  const squatter = net.createServer();
  await new Promise<void>((resolve, reject) => squatter.once('error', reject).listen(NATIVE.port, '127.0.0.1', resolve));
  try {
    const r = await h.kit('activate', [v4], { manifest: m });
    expectExit(r, 1, 'activate while the port is taken');
    assert.match(r.stderr, /systemd could not start socknative@[ab]\.service/);
    assert.is(await liveLink(NATIVE.app), live, 'active points at the release that was live before');
    const status = JSON.parse((await h.kit('status', ['--json'], { manifest: m })).stdout);
    assert.is(status.releases.find((x: { id: string }) => x.id === v4)?.state, 'bad');
  } finally {
    await new Promise((resolve) => squatter.close(resolve));
  }
  const back = await h.kit('activate', [live.split('/').pop()!], { manifest: m });
  expectExit(back, 0, 'activate the live release once the port is free');
  assert.is((await getJson(`${url(NATIVE.port)}/`)).version, '1');
});

test.run();
