// Tests scripts/preload/listen-fd.cjs for real: a parent holds a listening socket, a child node app adopts it as fd 3.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { preloadFile } from '../../scripts/lib/host/sandbox.ts';

const PRELOAD = preloadFile();
const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-preload-'));
const children: ChildProcess[] = [];

/** The test app: a plain http server that listens the way the mode says, and reports what it sees. */
const APP = `
const http = require('node:http');
const report = (server) => (req, res) => res.end(JSON.stringify({
  pid: process.pid, server, address: servers[server].address(),
  LISTEN_FDS: process.env.LISTEN_FDS ?? null, LISTEN_PID: process.env.LISTEN_PID ?? null,
  LISTEN_FDNAMES: process.env.LISTEN_FDNAMES ?? null,
}));
const servers = {};
const listening = [];
function serve(name, ...listenArgs) {
  const s = (servers[name] = http.createServer(report(name)));
  listening.push(new Promise((resolve, reject) => { s.once('error', reject); s.listen(...listenArgs, resolve); }));
}
const PORT = process.env.PORT;
switch (process.env.APP_MODE) {
  case 'string': serve('main', PORT); break;
  case 'number-host': serve('main', Number(PORT), '127.0.0.1'); break;
  case 'options': serve('main', { port: Number(PORT), host: '127.0.0.1' }); break;
  case 'two': serve('main', PORT); serve('other', 0, '127.0.0.1'); break;
  case 'twice': serve('main', PORT); serve('again', Number(PORT), '127.0.0.1'); break;
  case 'zero': serve('other', 0, '127.0.0.1'); break;
  case 'no-health':
    // Answers every path but /health, which it never answers: a release whose warm-up gets no answer.
    servers.main = http.createServer((req, res) => { if (req.url !== '/health') res.end(JSON.stringify({ server: 'main', pid: process.pid })); });
    listening.push(new Promise((resolve) => servers.main.listen(PORT, resolve)));
    break;
  case 'close-wait': {
    // Like adapter-node: on SIGTERM it closes the server and leaves only when close's callback says it
    // closed without error; a 20 s timer (its SHUTDOWN_TIMEOUT) keeps the process alive until then.
    serve('main', PORT);
    process.on('SIGTERM', () => {
      const timer = setTimeout(() => servers.main.closeAllConnections(), 20_000);
      servers.main.close((error) => { if (error) return; clearTimeout(timer); });
    });
    break;
  }
  case 'slow': case 'slow-fd3': {
    // Listens at once but answers only from readyAt on (Next.js listens before its handler is ready).
    const readyAt = Date.now() + Number(process.env.READY_MS);
    const s = (servers.main = http.createServer((req, res) => setTimeout(() => res.end(JSON.stringify({
      server: 'main', pid: process.pid, readyAt, LISTEN_FDS: process.env.LISTEN_FDS ?? null,
    })), Math.max(0, readyAt - Date.now()))));
    listening.push(new Promise((resolve, reject) => { s.once('error', reject); s.listen(process.env.APP_MODE === 'slow' ? PORT : { fd: 3 }, resolve); }));
    break;
  }
}
Promise.all(listening).then(
  () => console.log(JSON.stringify(Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, s.address()])))),
  (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(1); },
);
`;
writeFileSync(path.join(dir, 'app.js'), APP);

/** A listening loopback socket in this process, standing in for systemd's socket unit. */
async function socketUnit(): Promise<{ fd: number; port: number; close: () => void }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', 511, resolve));
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  return { fd, port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

/** A port nothing listens on. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

interface Started {
  child: ChildProcess;
  addresses: Record<string, { port: number } | undefined> & { error?: string };
}

/**
 * Starts the app through /bin/sh, so that LISTEN_PID can name the app's own pid (`$$` survives exec,
 * exactly as with systemd's `/bin/sh -c 'exec …'`), and waits for its report line.
 */
async function start(opts: { script: string; env: Record<string, string>; fd?: number; preload?: boolean }): Promise<Started> {
  const { LISTEN_FDS: _a, LISTEN_PID: _b, LISTEN_FDNAMES: _c, NODE_OPTIONS: _d, PORT: _e, ...base } = process.env;
  const node = process.execPath;
  const requireArg = opts.preload === false ? '' : `--require ${PRELOAD}`;
  const script = opts.script.replace('NODE', `${node} ${requireArg} ${path.join(dir, 'app.js')}`);
  const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
  if (opts.fd !== undefined) stdio.push(opts.fd);
  const child = spawn('/bin/sh', ['-c', script], { env: { ...base, ...opts.env }, stdio });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.once('exit', (code) => reject(new Error(`app exited (${code}) before listening: ${err}`)));
    setTimeout(() => reject(new Error(`app did not listen in time: ${err}`)), 10_000).unref();
  });
  return { child, addresses: JSON.parse(line) };
}

function get(port: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(JSON.parse(body)));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`no answer on port ${port}`)));
  });
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

const SELF = 'LISTEN_PID=$$ exec NODE';

for (const mode of ['string', 'number-host', 'options']) {
  test(`listen(PORT) as ${mode} adopts the inherited socket (LISTEN_PID = the app's pid)`, async () => {
    const sock = await socketUnit();
    const port = await freePort();
    const { child, addresses } = await start({ script: SELF, env: { LISTEN_FDS: '1', PORT: String(port), APP_MODE: mode }, fd: sock.fd });
    sock.close(); // only the child holds the socket now, as with systemd
    assert.is(addresses.main?.port, sock.port, 'the server reports the socket unit port');
    const body = await get(sock.port);
    assert.is(body.pid, child.pid, 'the app itself answers on the socket port');
    assert.is(body.LISTEN_FDS, null, 'LISTEN_FDS is unset after adopting');
    assert.is(body.LISTEN_PID, null, 'LISTEN_PID is unset after adopting');
    assert.is(body.LISTEN_FDNAMES, null, 'LISTEN_FDNAMES is unset after adopting');
    assert.ok(await refused(port), 'nothing bound PORT itself');
    child.kill();
  });
}

test('a listen on another port passes through untouched', async () => {
  const sock = await socketUnit();
  const port = await freePort();
  const { child, addresses } = await start({ script: SELF, env: { LISTEN_FDS: '1', PORT: String(port), APP_MODE: 'two' }, fd: sock.fd });
  sock.close();
  assert.is(addresses.main?.port, sock.port);
  const other = addresses.other?.port;
  assert.ok(other && other !== sock.port && other !== port, 'the other server got its own port');
  assert.is((await get(other!)).server, 'other');
  assert.is((await get(sock.port)).server, 'main');
  child.kill();
});

test('only the first listen on PORT adopts the socket; a second one binds PORT itself', async () => {
  const sock = await socketUnit();
  const port = await freePort();
  const { child, addresses } = await start({ script: SELF, env: { LISTEN_FDS: '1', PORT: String(port), APP_MODE: 'twice' }, fd: sock.fd });
  sock.close();
  assert.is(addresses.main?.port, sock.port);
  assert.is(addresses.again?.port, port);
  assert.is((await get(port)).server, 'again');
  child.kill();
});

test('LISTEN_PID naming an ancestor (npm start → sh → node) is accepted', async () => {
  const sock = await socketUnit();
  const port = await freePort();
  // The shell forks node instead of exec'ing it (the trailing command keeps the shell alive).
  const { child, addresses } = await start({
    script: 'LISTEN_PID=$$; export LISTEN_PID; NODE; true',
    env: { LISTEN_FDS: '1', PORT: String(port), APP_MODE: 'string' },
    fd: sock.fd,
  });
  sock.close();
  assert.is(addresses.main?.port, sock.port);
  const body = await get(sock.port);
  assert.is.not(body.pid, child.pid, 'node is a child of the shell');
  child.kill('SIGKILL');
  process.kill(body.pid as number);
});

test('without LISTEN_FDS nothing changes: the app binds PORT', async () => {
  const port = await freePort();
  const { child, addresses } = await start({ script: 'exec NODE', env: { PORT: String(port), APP_MODE: 'string' } });
  assert.is(addresses.main?.port, port);
  assert.is((await get(port)).server, 'main');
  child.kill();
});

test('LISTEN_PID of an unrelated process: the socket is not ours, the app binds PORT', async () => {
  const sock = await socketUnit();
  const port = await freePort();
  const { child, addresses } = await start({
    script: 'exec NODE',
    env: { LISTEN_FDS: '1', LISTEN_PID: '999999999', PORT: String(port), APP_MODE: 'string' },
    fd: sock.fd,
  });
  sock.close();
  assert.is(addresses.main?.port, port);
  const body = await get(port);
  assert.is(body.LISTEN_FDS, '1', 'the environment is left alone');
  child.kill();
});

test("a child forked by Node (fd 3 is its IPC channel, NODE_CHANNEL_FD=3) never adopts fd 3", async () => {
  const port = await freePort();
  const { LISTEN_FDS: _a, LISTEN_PID: _b, NODE_OPTIONS: _c, ...base } = process.env;
  const child = fork(path.join(dir, 'app.js'), [], {
    execArgv: ['--require', PRELOAD],
    env: { ...base, LISTEN_FDS: '1', PORT: String(port), APP_MODE: 'string' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  children.push(child);
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => ((out += d), out.includes('\n') && resolve(out.split('\n')[0]!)));
    child.once('exit', (code) => reject(new Error(`forked app exited (${code})`)));
  });
  assert.is(JSON.parse(line).main?.port, port, `the forked app bound PORT itself: ${line}`);
  assert.is((await get(port)).LISTEN_FDS, '1');
  child.kill();
});

test('without PORT the preload stays out of the way, even with a socket passed', async () => {
  const sock = await socketUnit();
  const { child, addresses } = await start({ script: SELF, env: { LISTEN_FDS: '1', APP_MODE: 'zero' }, fd: sock.fd });
  sock.close();
  assert.ok(addresses.other?.port, JSON.stringify(addresses));
  child.kill();
});

/** The old slot: an HTTP server on a loopback socket that answers {server: 'old'} and passes its fd on, as the socket unit's queue. */
async function oldSlot(): Promise<{ fd: number; port: number; close: () => void }> {
  const server = http.createServer((_req, res) => res.end(JSON.stringify({ server: 'old' })));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', 511, resolve));
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  return { fd, port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

for (const mode of ['slow', 'slow-fd3']) {
  test(`with CUTOVER_WARMUP_PATH (${mode === 'slow' ? 'listen(PORT)' : 'listen({ fd: 3 })'}), the app takes no connection from the shared socket until it has answered the path on a private port`, async () => {
    const old = await oldSlot();
    const port = await freePort();
    const sent: { at: number; body: Record<string, unknown> }[] = [];
    const { child, addresses } = await start({
      script: SELF,
      env: { LISTEN_FDS: '1', PORT: String(port), APP_MODE: mode, READY_MS: '1500', CUTOVER_WARMUP_PATH: '/health' },
      fd: old.fd,
    });
    assert.is(addresses.main?.port, port, "the app's server.address() says PORT (where the socket unit listens), not the private warm-up port");
    // Both the old slot (this process) and the new app hold the socket now, as in a handover.
    const until = Date.now() + 15_000;
    let main: Record<string, unknown> | undefined;
    while (!main && Date.now() < until) {
      const at = Date.now();
      const body = await get(old.port);
      sent.push({ at, body });
      if (body.server === 'main') main = body;
    }
    old.close();
    assert.ok(main, `the app took connections from the shared socket after its warm-up (${sent.length} requests, all answered by the old slot)`);
    const readyAt = main!.readyAt as number;
    const early = sent.filter((s) => s.at < readyAt);
    assert.ok(early.length > 0, 'requests were sent while the app was not ready yet');
    assert.equal(early.filter((s) => s.body.server !== 'old'), [], 'every request sent before the app was ready was answered by the old slot');
    assert.is(main!.LISTEN_FDS, null, 'LISTEN_FDS is unset after adopting');
    assert.ok(await refused(port), 'nothing bound PORT itself');
    child.kill();
  });
}

test('a warm-up that gets no answer adopts the socket anyway after CUTOVER_WARMUP_TIMEOUT_MS (the health gate judges the release)', async () => {
  const sock = await socketUnit();
  const port = await freePort();
  const { child } = await start({ script: SELF, env: { LISTEN_FDS: '1', PORT: String(port), APP_MODE: 'no-health', CUTOVER_WARMUP_PATH: '/health', CUTOVER_WARMUP_TIMEOUT_MS: '1500' }, fd: sock.fd });
  sock.close(); // only the app holds the socket: a connection waits in the queue until the app adopts it
  const t0 = Date.now();
  const body = await get(sock.port);
  assert.is(body.server, 'main', 'the app answers on the socket once the warm-up gave up');
  assert.ok(Date.now() - t0 >= 1000, `not before the warm-up's time limit (${Date.now() - t0} ms)`);
  child.kill();
});

test("an app that waits for its own server.close() callback on SIGTERM exits once the drain is over (the preload's close does not make the app's fail)", async () => {
  const sock = await socketUnit();
  const port = await freePort();
  const { child } = await start({ script: SELF, env: { LISTEN_FDS: '1', PORT: String(port), APP_MODE: 'close-wait', CUTOVER_WARMUP_PATH: '/' }, fd: sock.fd });
  sock.close();
  await get(sock.port);
  const t0 = Date.now();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise<'alive'>((r) => setTimeout(() => r('alive'), 10_000))]);
  assert.is.not(code, 'alive', 'still running 10 s after SIGTERM: its close() callback got ERR_SERVER_NOT_RUNNING and its 20 s timer kept it up');
  assert.ok(Date.now() - t0 < 10_000);
});

test.after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test.run();
