// System tier: the Python example app (stdlib WSGI) under Debian's gunicorn and a real systemd: releases, socket activation on fd 3, preflight.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ExecResult } from '../host/host.ts';
import { getJson, runLoad } from '../helpers/apps.ts';
import { cleanupTempDirs, type AppRepo } from '../helpers/gitrepo.ts';
import { bootKitHost, expectExit, type KitHost } from '../helpers/hostkit.ts';
import { activeInside, historyInside, inside, loopback, out, releaseIdOf, servingPid, statusJson, unitProps } from '../helpers/system.ts';
import { systemTier } from '../helpers/prereq.ts';
import { releaseCommit } from '../helpers/fixtures.ts';

const APP = 'pyapp';
const ROOT = `/usr/local/src/${APP}`;
const PORT = 3450;
const SERVICE_FILE = `/etc/systemd/system/${APP}@.service`;
// gunicorn binds PORT itself, or, with LISTEN_FDS and LISTEN_PID equal to its own pid, takes fd 3 and
// ignores --bind: ExecStart's shell must exec it (cutover puts `exec` in front of a simple command).
const START = 'gunicorn --bind 127.0.0.1:$PORT --workers 2 --graceful-timeout 5 app:application';

let k: KitHost;
let repo: AppRepo;
let url: string;
let manifest: string;
const id: Record<string, string> = {};

function writeManifest(over: Record<string, unknown> = {}): string {
  return k.manifest({
    app: APP,
    repo: url,
    runtime: 'python',
    port: PORT,
    start: START,
    env: { GREETING: 'hello from gunicorn' },
    health: { path: '/health', timeout: 15 },
    preflight: true,
    stop_timeout: 10,
    ...over,
  });
}

async function kit(verb: string, args: string[] = []): Promise<ExecResult> {
  return k.kit(verb, args, { manifest });
}

async function release(name: string, changes: Record<string, string | null>, code = 0): Promise<ExecResult> {
  const made = await releaseCommit(kit, repo, name, changes, code);
  id[name] = made.id;
  return made.r;
}

const app = () => getJson<{ version: string; release: string; pid: number; greeting: string | null }>(loopback(PORT));

/** The service's main process, checked to be gunicorn's arbiter itself (no shell between). */
async function gunicornMain(): Promise<number> {
  const pid = await servingPid(k, APP);
  assert.ok(pid > 0, 'the service has a main process');
  const cmdline = (await inside(k, `tr '\\0' ' ' < /proc/${pid}/cmdline`)).trim();
  assert.match(cmdline, /^\/usr\/bin\/python3 \/usr\/bin\/gunicorn --bind 127\.0\.0\.1:3450 /, `the main process is gunicorn: ${cmdline}`);
  return pid;
}

/** Answers from a gunicorn worker of the unit's arbiter, running in releases/<rid>. */
async function assertServes(version: string, rid: string): Promise<{ main: number; workers: string }> {
  const body = await app();
  assert.equal([body.version, body.release, body.greeting], [version, rid, 'hello from gunicorn']);
  const main = await gunicornMain();
  assert.is(Number(await inside(k, `awk '/^PPid:/ {print $2}' /proc/${body.pid}/status`)), main, 'a worker of the unit answers');
  assert.is(await inside(k, `readlink /proc/${main}/cwd`), `${ROOT}/releases/${rid}`);
  assert.is(activeInside(k, ROOT), rid);
  const workers = (await inside(k, `pgrep -P ${main} | sort -n | tr '\n' ' '`)).trim();
  assert.is(workers.split(' ').length, 2, `two workers: ${workers}`);
  return { main, workers };
}

const { it, ready } = systemTier(import.meta.url);
{
  test.before(async () => {
    if (!ready) return;
    k = await bootKitHost();
    ({ repo, url } = await k.repo('pyapp', 'python'));
    manifest = writeManifest();
  });

  test.after(async () => {
    await k?.stop();
    await cleanupTempDirs();
  });

  it('provision for runtime python, release v1: gunicorn serves it from releases/<id>', async () => {
    const t0 = Date.now();
    const p = await kit('provision');
    expectExit(p, 0, 'provision');
    console.log(`  provision (python runtime) took ${Date.now() - t0} ms`);
    const unit = k.read(SERVICE_FILE);
    assert.ok(unit.includes('\nMemoryDenyWriteExecute=yes\n'), 'CPython runs with W^X memory');
    assert.ok(unit.includes('ExecStart=/usr/bin/env "PORT=3450" /bin/sh -c "exec gunicorn --bind 127.0.0.1:$$PORT '), 'the shell execs gunicorn');
    id.v1 = releaseIdOf(await repo.head());
    const r = await kit('release', ['main']);
    expectExit(r, 0, 'release v1');
    assert.not.match(r.stdout, '==> install', 'no install step for this app');
    await assertServes('1', id.v1);
  });

  it('release v2: answers v2 from a new gunicorn', async () => {
    const before = await gunicornMain();
    await release('v2', { VERSION: '2\n' });
    const { main } = await assertServes('2', id.v2);
    assert.is.not(main, before);
  });

  it('a release that crashes at start is refused by preflight and never goes live', async () => {
    const before = await assertServes('2', id.v2);
    const r = await release('crash', { VERSION: '3\n', BEHAVIOUR: 'crash\n' }, 1);
    assert.match(r.stderr, `Release ${id.crash} failed preflight and never went live`);
    assert.match(r.stderr, 'crashing at start on purpose', 'its journal lines are printed');
    assert.not.match(out(r), `switch active to ${id.crash}`);
    const after = await assertServes('2', id.v2);
    assert.equal(after, before, 'the live gunicorn and its workers were not touched');
    assert.is((await statusJson(k, manifest)).releases.find((x: any) => x.id === id.crash).state, 'bad');
  });

  it('socket: true: gunicorn takes fd 3 from the socket unit; a cutover under load refuses nothing', async () => {
    writeManifest({ socket: true });
    const p = await kit('provision');
    expectExit(p, 0, 'provision socket: true');
    assert.match(p.stdout, `wrote /etc/systemd/system/${APP}.socket`);
    await release('v4', { VERSION: '4\n', BEHAVIOUR: null });
    const { main } = await assertServes('4', id.v4);
    assert.is((await unitProps(k, `${APP}.socket`, ['ActiveState'])).ActiveState, 'active');
    // One listening socket, held by systemd and by gunicorn: gunicorn adopted it rather than binding its own.
    const ss = await inside(k, `ss -ltnpH 'sport = :${PORT}'`);
    assert.is(ss.split('\n').length, 1, `one listener on ${PORT}:\n${ss}`);
    assert.match(ss, '("systemd",pid=1,');
    assert.match(ss, `("gunicorn",pid=${main},fd=`); // gunicorn's socket.fromfd(3) dups it to another number
    assert.match(await inside(k, `journalctl -u '${APP}@*' _PID=${main} --no-pager -o cat`), `Listening at: http://127.0.0.1:${PORT} (${main})`);

    // A cutover to v5 while 4 clients keep connecting: connections wait in the socket's queue.
    const stop = new AbortController();
    const load = runLoad({ url: loopback(PORT, '/version'), workers: 4, durationMs: 120_000, signal: stop.signal, requestTimeoutMs: 10_000 });
    let r: ExecResult;
    try {
      r = await release('v5', { VERSION: '5\n' });
    } finally {
      stop.abort();
    }
    const result = await load;
    console.log(`  python socket cutover under load: ${result.requests} requests, ${result.failed} failed ${JSON.stringify(result.errors)}, max ${result.max} ms`);
    assert.match(r!.stdout, `Release ${id.v5}`);
    await assertServes('5', id.v5);
    assert.ok(result.requests > 50, `the load ran (${result.requests} requests)`);
    assert.is(result.failed, 0, `failed requests: ${JSON.stringify(result.errors)}`);
  });

  it('socket: true: a crash at start is refused by preflight, the socket and the live release untouched', async () => {
    const before = await assertServes('5', id.v5);
    const r = await release('crash2', { VERSION: '6\n', BEHAVIOUR: 'crash\n' }, 1);
    assert.match(r.stderr, `Release ${id.crash2} failed preflight and never went live`);
    assert.equal(await assertServes('5', id.v5), before);
    assert.is((await unitProps(k, `${APP}.socket`, ['ActiveState'])).ActiveState, 'active');
    const failed = historyInside(k, ROOT).filter((e) => e.release === id.crash2 && e.event === 'activation-failed');
    assert.is(failed.length, 1);
    assert.match(failed[0].reason, /^preflight: /);
    assert.is(await inside(k, `systemctl list-units --all --no-legend 'cutover-preflight-*'`), '', 'no preflight unit or socket left');
  });

  it('socket true → false while live: the app keeps serving on its inherited socket, the next release binds the port', async () => {
    const before = await assertServes('5', id.v5);
    writeManifest({ socket: false });
    const p = await kit('provision');
    expectExit(p, 0, 'provision socket: false');
    assert.match(p.stdout, `removed /etc/systemd/system/${APP}.socket`);
    assert.equal(await assertServes('5', id.v5), before, 'the running gunicorn was neither stopped nor restarted');
    assert.equal(await unitProps(k, `${APP}.socket`, ['LoadState', 'ActiveState']), { LoadState: 'not-found', ActiveState: 'inactive' });
    await release('v7', { VERSION: '7\n', BEHAVIOUR: null });
    const { main } = await assertServes('7', id.v7);
    const ss = await inside(k, `ss -ltnpH 'sport = :${PORT}'`);
    assert.not.match(ss, '"systemd"', `systemd no longer holds the port:\n${ss}`);
    assert.match(ss, `("gunicorn",pid=${main},`);
  });
}

test.run();
