// Runs the example apps for real on loopback, and checks the git-repo and load-generator test helpers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { freePort, getJson, httpGet, runLoad, waitForHttp } from '../helpers/apps.ts';
import { cleanupTempDirs, exampleAppDir, makeAppRepo, tempDir, type ExampleApp } from '../helpers/gitrepo.ts';
import { commandMissing, requiring } from '../helpers/prereq.ts';

interface Running {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();
const withGunicorn = requiring(commandMissing('gunicorn', ['--version'], 'apt-get install gunicorn'));

function spawnApp(cmd: string, args: string[], opts: { cwd: string; port: number; env?: Record<string, string>; fd3?: number }): Running {
  const { LISTEN_FDS: _fds, LISTEN_PID: _pid, ...inherited } = process.env;
  const env = { ...inherited, PORT: String(opts.port), STARTUP_DELAY_MS: '0', ...opts.env };
  const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'pipe', 'pipe'];
  if (opts.fd3 !== undefined) stdio.push(opts.fd3);
  const child = spawn(cmd, args, { cwd: opts.cwd, env, stdio });
  running.add(child);
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  return { child, url: `http://127.0.0.1:${opts.port}`, output: () => out, exited };
}

/** Starts an example app from dir: node server.js, python3 app.py, or gunicorn app:application. */
async function startApp(kind: 'node' | 'python' | 'gunicorn', dir: string, env: Record<string, string> = {}, fd3?: number): Promise<Running> {
  const port = await freePort();
  if (kind === 'node') return spawnApp(process.execPath, ['server.js'], { cwd: dir, port, env, fd3 });
  if (kind === 'python') return spawnApp('python3', ['app.py'], { cwd: dir, port, env, fd3 });
  if (fd3 !== undefined) {
    // gunicorn takes fd 3 only when LISTEN_PID is its own pid, as systemd sets it: exec keeps the shell's pid.
    return spawnApp('sh', ['-c', 'LISTEN_PID=$$ LISTEN_FDS=1 exec gunicorn app:application'], { cwd: dir, port, env, fd3 });
  }
  return spawnApp('gunicorn', ['-b', `127.0.0.1:${port}`, '--graceful-timeout', '5', 'app:application'], { cwd: dir, port, env });
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function stop(app: Running, timeoutMs = 5000) {
  app.child.kill('SIGTERM');
  return within(app.exited, timeoutMs, 'the app stopping on SIGTERM');
}

/** A private copy of an example app, optionally with a BEHAVIOUR file. */
async function appCopy(app: ExampleApp, behaviour?: string): Promise<string> {
  const dir = path.join(await tempDir(`cutover-apps-${app}`), `${app}-release`);
  await cp(exampleAppDir(app), dir, { recursive: true, filter: (src) => !/(^|\/)(dist|node_modules|__pycache__|BEHAVIOUR)$/.test(src) });
  if (behaviour !== undefined) await writeFile(path.join(dir, 'BEHAVIOUR'), behaviour);
  return dir;
}

async function build(dir: string) {
  const result = spawnSync(process.execPath, ['build.js'], { cwd: dir, encoding: 'utf8' });
  assert.is(result.status, 0, result.stderr);
}

/** A listening socket made here and handed to the app as fd 3, as a .socket unit would. */
async function listeningSocket(): Promise<{ server: net.Server; port: number; fd: number }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  return { server, port: (server.address() as net.AddressInfo).port, fd };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test.after(async () => {
  for (const child of running) child.kill('SIGKILL');
  await cleanupTempDirs();
});

test('node: the build writes version.json and a content-hashed asset that changes with the version', async () => {
  const dir = await appCopy('node');
  await build(dir);
  const v1 = JSON.parse(await readFile(path.join(dir, 'dist', 'version.json'), 'utf8'));
  assert.is(v1.version, '1');
  assert.match(v1.asset, /^app\.[0-9a-f]{12}\.js$/);
  assert.ok(!Number.isNaN(Date.parse(v1.builtAt)));
  await writeFile(path.join(dir, 'VERSION'), '2\n');
  await build(dir);
  const v2 = JSON.parse(await readFile(path.join(dir, 'dist', 'version.json'), 'utf8'));
  assert.is.not(v2.asset, v1.asset);
  assert.equal((await readdir(path.join(dir, 'dist'))).sort(), [v2.asset, 'version.json'].sort());
});

test('node: build-fail makes the build exit 1', async () => {
  const dir = await appCopy('node', 'build-fail\n');
  assert.is(spawnSync(process.execPath, ['build.js'], { cwd: dir }).status, 1);
});

test('node: /health, / (version, release, pid, GREETING), /version and the hashed asset', async () => {
  const dir = await appCopy('node');
  await build(dir);
  const app = await startApp('node', dir, { GREETING: 'hello from .env' });
  assert.is((await waitForHttp(`${app.url}/health`, 3000)).body, 'ok\n');
  const info = await getJson(`${app.url}/`);
  assert.equal(
    { version: info.version, release: info.release, pid: info.pid, greeting: info.greeting },
    { version: '1', release: 'node-release', pid: app.child.pid, greeting: 'hello from .env' },
  );
  assert.is((await httpGet(`${app.url}/version`)).body, '1\n');
  const asset = await httpGet(`${app.url}${info.asset}`);
  assert.is(asset.status, 200);
  assert.match(asset.body, 'APP_VERSION = "1"');
  assert.is((await httpGet(`${app.url}/assets/app.000000000000.js`)).status, 404);
  assert.equal(await stop(app), { code: 0, signal: null });
});

test('node: SIGTERM finishes the in-flight request, refuses new connections, exits 0', async () => {
  const app = await startApp('node', await appCopy('node'));
  await waitForHttp(`${app.url}/health`, 3000);
  const inFlight = httpGet(`${app.url}/slow?ms=700`);
  await sleep(150);
  app.child.kill('SIGTERM');
  await sleep(100);
  const refused = await httpGet(`${app.url}/health`).then(() => 'answered', (err) => err.code);
  assert.is(refused, 'ECONNREFUSED');
  const res = await inFlight;
  assert.is(res.status, 200);
  assert.match(res.body, /^slept 700 ms in \S+\n$/);
  assert.equal(await within(app.exited, 3000, 'exit after SIGTERM'), { code: 0, signal: null });
});

test('node: BEHAVIOUR crash exits 1 before listening', async () => {
  const app = await startApp('node', await appCopy('node', 'crash\n'));
  assert.equal(await within(app.exited, 3000, 'crash'), { code: 1, signal: null });
  assert.match(app.output(), 'crash');
});

test('node: BEHAVIOUR unhealthy serves but /health answers 500', async () => {
  const app = await startApp('node', await appCopy('node', 'unhealthy'));
  assert.is((await waitForHttp(`${app.url}/health`, 3000, { anyStatus: true })).status, 500);
  assert.is((await getJson(`${app.url}/`)).version, '1');
  await stop(app);
});

test('node: BEHAVIOUR slow-start=<ms> delays listening; STARTUP_DELAY_MS is overridden', async () => {
  const began = Date.now();
  const app = await startApp('node', await appCopy('node', 'slow-start=900\n'), { STARTUP_DELAY_MS: '0' });
  await sleep(400);
  assert.is(await httpGet(`${app.url}/health`).then(() => 'answered', (err) => err.code), 'ECONNREFUSED');
  await waitForHttp(`${app.url}/health`, 3000);
  assert.ok(Date.now() - began >= 900);
  await stop(app);
});

test('node: BEHAVIOUR hang never listens, and SIGTERM still stops it', async () => {
  const app = await startApp('node', await appCopy('node', 'hang'));
  await sleep(500);
  assert.is(app.child.exitCode, null);
  assert.is(await httpGet(`${app.url}/health`).then(() => 'answered', (err) => err.code), 'ECONNREFUSED');
  assert.equal(await stop(app), { code: 0, signal: null });
});

test('node: socket activation: LISTEN_FDS=1 serves on the inherited fd 3, queued requests wait for it', async () => {
  const sock = await listeningSocket();
  const app = await startApp('node', await appCopy('node'), { LISTEN_FDS: '1', STARTUP_DELAY_MS: '300' }, sock.fd);
  sock.server.close(); // the app holds its own copy of the socket now
  const url = `http://127.0.0.1:${sock.port}`;
  const info = await getJson(`${url}/`); // sent before the app listens: waits in the queue, not refused
  assert.is(info.pid, app.child.pid);
  assert.match(app.output(), 'fd 3');
  await stop(app);
});

test('node: IGNORE_LISTEN_FDS=1 and BEHAVIOUR no-fd3 listen on PORT even with LISTEN_FDS set', async () => {
  for (const [env, behaviour] of [[{ IGNORE_LISTEN_FDS: '1' }, undefined], [{}, 'no-fd3']] as const) {
    const app = await startApp('node', await appCopy('node', behaviour), { LISTEN_FDS: '1', ...env });
    assert.is((await waitForHttp(`${app.url}/health`, 3000)).body, 'ok\n');
    await stop(app);
  }
});

test('python3 app.py: endpoints, GREETING, graceful SIGTERM', async () => {
  const app = await startApp('python', await appCopy('python'), { GREETING: 'hi' });
  assert.is((await waitForHttp(`${app.url}/health`, 5000)).body, 'ok\n');
  const info = await getJson(`${app.url}/`);
  assert.equal(info, { version: '1', release: 'python-release', pid: app.child.pid, greeting: 'hi' });
  assert.is((await httpGet(`${app.url}/version`)).body, '1\n');
  const inFlight = httpGet(`${app.url}/slow?ms=600`);
  await sleep(150);
  app.child.kill('SIGTERM');
  assert.is((await inFlight).body, 'slept 600 ms\n');
  assert.equal(await within(app.exited, 3000, 'exit after SIGTERM'), { code: 0, signal: null });
});

test('python3 app.py: BEHAVIOUR crash, unhealthy, and socket activation on fd 3', async () => {
  const crashed = await startApp('python', await appCopy('python', 'crash'));
  assert.equal(await within(crashed.exited, 5000, 'crash'), { code: 1, signal: null });
  const unhealthy = await startApp('python', await appCopy('python', 'unhealthy'));
  assert.is((await waitForHttp(`${unhealthy.url}/health`, 5000, { anyStatus: true })).status, 500);
  await stop(unhealthy);
  const sock = await listeningSocket();
  const app = await startApp('python', await appCopy('python'), { LISTEN_FDS: '1' }, sock.fd);
  sock.server.close();
  assert.is((await getJson(`http://127.0.0.1:${sock.port}/`)).pid, app.child.pid);
  await stop(app);
});

withGunicorn('gunicorn app:application: endpoints, fd 3, crash, graceful SIGTERM', async () => {
  const app = await startApp('gunicorn', await appCopy('python'));
  assert.is((await waitForHttp(`${app.url}/health`, 8000)).body, 'ok\n');
  assert.is((await getJson(`${app.url}/`)).release, 'python-release');
  const inFlight = httpGet(`${app.url}/slow?ms=500`);
  await sleep(150);
  app.child.kill('SIGTERM');
  assert.is((await inFlight).body, 'slept 500 ms\n');
  assert.equal(await within(app.exited, 8000, 'gunicorn exit'), { code: 0, signal: null });
  const sock = await listeningSocket();
  const activated = await startApp('gunicorn', await appCopy('python'), {}, sock.fd);
  sock.server.close();
  assert.is((await getJson(`http://127.0.0.1:${sock.port}/`, 8000)).version, '1');
  await stop(activated, 8000);
  const crashed = await startApp('gunicorn', await appCopy('python', 'crash'));
  assert.is((await within(crashed.exited, 8000, 'gunicorn crash')).code, 3);
});

test('makeAppRepo: a real repo with commit v1, then commits, deletions, tags and branches', async () => {
  const repo = await makeAppRepo(path.join(await tempDir('cutover-apps-repo'), 'shop'));
  const v1 = await repo.head();
  assert.match(v1, /^[0-9a-f]{40}$/);
  assert.is(await repo.git('log', '--format=%s'), 'v1');
  assert.is(await repo.git('show', 'HEAD:VERSION'), '1');
  assert.ok((await repo.git('ls-files')).split('\n').includes('server.js'));
  const bad = await repo.commit({ VERSION: '2\n', BEHAVIOUR: 'crash\n', 'src/new.txt': 'x' }, 'v2 crashes');
  assert.is.not(bad, v1);
  assert.is(await repo.git('show', `${bad}:BEHAVIOUR`), 'crash');
  const fixed = await repo.commit({ BEHAVIOUR: null }, 'v3');
  assert.is(await repo.git('ls-tree', '--name-only', fixed, 'BEHAVIOUR'), '');
  await repo.tag('v1.0.0', v1);
  await repo.tag('v3.0.0', undefined, 'release 3');
  assert.is(await repo.git('rev-parse', 'v1.0.0'), v1);
  assert.is(await repo.git('rev-parse', 'v3.0.0^{commit}'), fixed);
  await repo.branch('feature');
  const feature = await repo.commit({ VERSION: '4\n' }, 'v4 on a branch');
  assert.is(await repo.git('rev-parse', 'main'), fixed);
  assert.is(await repo.git('rev-parse', 'feature'), feature);
  await repo.branch('main');
  assert.is(await repo.head(), fixed);
  await repo.commit({ '../escape': 'x' }, 'nope').then(() => assert.unreachable('committed outside the repo'), () => {});
  const py = await makeAppRepo(path.join(await tempDir('cutover-apps-repo'), 'api'), { app: 'python' });
  assert.ok((await py.git('ls-files')).split('\n').includes('app.py'));
});

test('runLoad: counts refused connections when nothing listens; none against a live app', async () => {
  const dead = await runLoad({ url: `http://127.0.0.1:${await freePort()}/`, workers: 4, durationMs: 300, newConnectionPerRequest: true });
  assert.ok(dead.requests > 0 && dead.failed === dead.requests);
  assert.is(dead.errors.ECONNREFUSED, dead.requests);
  assert.ok(dead.longestOutageMs >= 250, `outage ${dead.longestOutageMs} ms`);
  const app = await startApp('node', await appCopy('node'));
  await waitForHttp(`${app.url}/health`, 3000);
  const live = await runLoad({ url: `${app.url}/health`, workers: 4, durationMs: 300, newConnectionPerRequest: true });
  assert.ok(live.requests > 10);
  assert.is(live.failed, 0);
  assert.is(live.longestOutageMs, 0);
  assert.ok(live.p50 > 0 && live.p50 <= live.p99 && live.p99 <= live.max);
  await stop(app);
});

test('runLoad and the HTTP helpers refuse anything but loopback', async () => {
  for (const url of ['http://example.com/', 'http://10.0.0.1/', 'http://localhost/', 'https://127.0.0.1/']) {
    await runLoad({ url, workers: 1, durationMs: 10 }).then(() => assert.unreachable(url), (err) => assert.match(err.message, 'refusing'));
    await httpGet(url).then(() => assert.unreachable(url), (err) => assert.match(err.message, 'refusing'));
    await waitForHttp(url, 5000).then(() => assert.unreachable(url), (err) => assert.match(err.message, 'refusing'));
  }
});

test.run();
