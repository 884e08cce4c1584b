// System tier: the node example app's whole life under a real systemd: releases, preflight, the health gate, rollback, prune from the real cron line, restarts.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ExecResult } from '../host/host.ts';
import { getJson, httpGet } from '../helpers/apps.ts';
import { cleanupTempDirs, type AppRepo } from '../helpers/gitrepo.ts';
import { bootKitHost, expectExit, type KitHost } from '../helpers/hostkit.ts';
import {
  activeInside,
  eventually,
  historyInside,
  hostPath,
  inside,
  loopback,
  out,
  releaseIdOf,
  releasesOnDisk,
  servingPid,
  servingUnit,
  statusJson,
  unitProps,
} from '../helpers/system.ts';
import { systemTier } from '../helpers/prereq.ts';
import { npmApp, releaseCommit } from '../helpers/fixtures.ts';

const APP = 'life';
const ROOT = `/usr/local/src/${APP}`;
const PORT = 3410;
/** A PORT the env file sets, which cutover must override. */
const STRAY_PORT = 3411;
/** Every slot of the app's service, for journalctl -u. */
const SLOTS_GLOB = `${APP}@*.service`;
const SECRET = `greeting-${randomBytes(8).toString('hex')}`;

let k: KitHost;
let repo: AppRepo;
let url: string;
let manifest: string;
/** Everything cutover printed in this file, to look for the secret at the end. */
const printed: string[] = [];
/** Release ids by name. */
const id: Record<string, string> = {};

function writeManifest(over: Record<string, unknown> = {}): string {
  return k.manifest(npmApp(APP, url, PORT, { preflight: true, socket: false, stop_timeout: 5, keep: 10, ...over }));
}

async function kit(verb: string, args: string[] = []): Promise<ExecResult> {
  const r = await k.kit(verb, args, { manifest });
  printed.push(out(r));
  return r;
}

async function release(name: string, changes: Record<string, string | null>, code = 0): Promise<ExecResult> {
  const made = await releaseCommit(kit, repo, name, changes, code);
  id[name] = made.id;
  return made.r;
}

const app = () => getJson<{ version: string; release: string; pid: number; greeting: string | null }>(loopback(PORT));
const mainPid = () => servingPid(k, APP);
const byId = (status: any, rid: string) => status.releases.find((r: any) => r.id === rid);

const { it, ready } = systemTier(import.meta.url);
{
  test.before(async () => {
    if (!ready) return;
    k = await bootKitHost();
    ({ repo, url } = await k.repo('life'));
    manifest = writeManifest();
  });

  test.after(async () => {
    await k?.stop();
    await cleanupTempDirs();
  });

  it('release v1: the service answers from releases/<id>, with the env file reaching the app', async () => {
    expectExit(await kit('provision'), 0, 'provision');
    const envFile = hostPath(k, `${ROOT}/shared/.env`);
    // The env file may set PORT too: the service and its preflight must still use the manifest's port.
    fs.writeFileSync(envFile, `# secrets\nGREETING=${SECRET}\nPORT=${STRAY_PORT}\n`);
    id.v1 = releaseIdOf(await repo.head());
    const t0 = Date.now();
    const r = await kit('release', ['main']);
    expectExit(r, 0, 'release v1');
    console.log(`  release v1 (${id.v1}, build and first start): ${Date.now() - t0} ms`);
    assert.match(r.stdout, `Release ${id.v1} (commit ${id.v1}, main) is live`);
    assert.is(activeInside(k, ROOT), id.v1);
    const body = await app();
    assert.is(body.version, '1');
    assert.is(body.release, id.v1);
    assert.is(body.greeting, SECRET, 'the env file variable reaches the app');
    // The process really runs in the release directory, and the unit is the one answering.
    const pid = await mainPid();
    assert.is(body.pid, pid, 'the unit main process answers (exec replaced the shell)');
    assert.is(await inside(k, `readlink /proc/${pid}/cwd`), `${ROOT}/releases/${id.v1}`);
    assert.is(await inside(k, `stat -c '%U %a' ${ROOT}/shared/.env`), `${APP} 600`);
    assert.is(await inside(k, `ss -ltnH 'sport = :${STRAY_PORT}'`), '', "nothing listens on the env file's PORT");
    const status = await statusJson(k, manifest);
    assert.is(status.live, id.v1);
    assert.is(status.service, 'active');
  });

  it('release v2: answers v2 from a new process', async () => {
    const before = await app();
    await release('v2', { VERSION: '2\n' });
    const body = await app();
    assert.equal([body.version, body.release], ['2', id.v2]);
    assert.is.not(body.pid, before.pid);
    assert.is(activeInside(k, ROOT), id.v2);
  });

  it('a release that crashes at start is refused by preflight: exit 1, never live, journal printed', async () => {
    const before = await app();
    const r = await release('crash', { VERSION: '3\n', BEHAVIOUR: 'crash\n' }, 1);
    assert.match(r.stderr, `Release ${id.crash} failed preflight and never went live`);
    assert.match(r.stderr, 'crashing at start on purpose (BEHAVIOUR says crash)', 'the journal lines are printed');
    assert.not.match(out(r), `switch active to ${id.crash}`);
    assert.is(activeInside(k, ROOT), id.v2);
    const after = await app();
    assert.equal([after.version, after.release, after.pid], ['2', id.v2, before.pid], 'the live process was not even restarted');
    const transient = await inside(k, `systemctl list-units --all --no-legend 'cutover-preflight-*'`);
    assert.is(transient, '', 'the preflight unit is gone');
    const events = historyInside(k, ROOT).filter((e) => e.release === id.crash);
    assert.not.ok(events.some((e) => e.event === 'activated'));
    assert.match(events.at(-1).reason, /^preflight: /);
    assert.is(byId(await statusJson(k, manifest), id.crash).state, 'bad');
  });

  it('health check fails with preflight off: switched, gate fails, switched back, exit 1, marked bad', async () => {
    writeManifest({ preflight: false, health: { path: '/health', timeout: 4 } });
    try {
      const before = await app();
      const r = await release('unhealthy', { VERSION: '4\n', BEHAVIOUR: 'unhealthy\n' }, 1);
      const text = out(r);
      assert.not.match(text, 'preflight');
      assert.match(text, `switch active to ${id.unhealthy}`);
      // The gate ends at the 4 s timeout, or earlier on 500s in a row (health.failures): either way the 500 is named.
      assert.match(r.stderr, new RegExp(`Release ${id.unhealthy} failed its health gate: (not healthy within 4 s \\(last: )?GET /health answered 500`));
      assert.match(text, `Switching back to ${id.v2}`);
      assert.match(r.stderr, `Switched back to ${id.v2}, which is healthy again.`);
      assert.match(r.stderr, `version 4 (release ${id.unhealthy}, pid`, "the unit's journal lines are printed");
      assert.is(activeInside(k, ROOT), id.v2);
      const after = await app();
      assert.equal([after.version, after.release], ['2', id.v2]);
      assert.is.not(after.pid, before.pid, 'the old release was restarted after the bad one ran');
      // The bad release really ran as the service.
      assert.match(await inside(k, `journalctl -u '${SLOTS_GLOB}' --no-pager -o cat`), `version 4 (release ${id.unhealthy}, pid`);
      const failed = historyInside(k, ROOT).filter((e) => e.release === id.unhealthy && e.event === 'activation-failed');
      assert.is(failed.length, 1);
      assert.equal([failed[0].via, failed[0].previous], ['release', id.v2]);
      const status = await statusJson(k, manifest);
      assert.is(byId(status, id.unhealthy).state, 'bad');
      assert.is(status.live, id.v2);
    } finally {
      writeManifest();
    }
  });

  it('rollback: the previous good release answers, the one left is marked bad', async () => {
    await release('v5', { VERSION: '5\n', BEHAVIOUR: null });
    assert.is((await app()).release, id.v5);
    const r = await kit('rollback');
    expectExit(r, 0, 'rollback');
    assert.match(r.stdout, `Rolling back from ${id.v5} to ${id.v2}.`);
    const body = await app();
    assert.equal([body.version, body.release], ['2', id.v2]);
    assert.is(activeInside(k, ROOT), id.v2);
    const status = await statusJson(k, manifest);
    assert.is(status.live, id.v2);
    assert.is(byId(status, id.v5).state, 'bad');
    assert.match(byId(status, id.v5).reason, `rolled back to ${id.v2}`);
    const last = historyInside(k, ROOT).filter((e) => e.event === 'activated').at(-1);
    assert.equal([last.release, last.via, last.previous], [id.v2, 'rollback', id.v5]);
  });

  it('rollback --to: goes to the named release; a bad one is refused', async () => {
    const refused = await kit('rollback', ['--to', id.v5]);
    expectExit(refused, 1, 'rollback --to a bad release');
    assert.match(refused.stderr, `Release ${id.v5} cannot be activated: it was marked bad`);
    assert.is(activeInside(k, ROOT), id.v2);
    const r = await kit('rollback', ['--to', id.v1]);
    expectExit(r, 0, 'rollback --to v1');
    const body = await app();
    assert.equal([body.version, body.release, body.greeting], ['1', id.v1, SECRET]);
    const status = await statusJson(k, manifest);
    assert.is(status.live, id.v1);
    assert.is(byId(status, id.v2).state, 'bad');
  });

  it('prune from the real cron line: keeps the live release, the rollback target and the newest bad one', async () => {
    await release('v6', { VERSION: '6\n' });
    await release('v7', { VERSION: '7\n' });
    let status = await statusJson(k, manifest);
    assert.equal([status.live, status.rollbackTarget], [id.v7, id.v6]);
    const before = releasesOnDisk(k, ROOT);
    assert.ok(before.includes(id.v1), `v1 (good, not live, not the rollback target) is on disk before: ${before}`);
    writeManifest({ keep: 1 });

    // The entry exactly as cron would run it: the file's variables, then the command by /bin/sh -c.
    const lines = k.read(`/etc/cron.d/cutover-${APP}`).split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    const vars = lines.filter((l) => /^[A-Z_]+=/.test(l));
    const [job, ...more] = lines.filter((l) => !/^[A-Z_]+=/.test(l));
    assert.equal(more, []);
    const fields = job!.trim().split(/\s+/);
    assert.equal(fields.slice(0, 6), ['17', '3', '*', '*', '*', 'root']);
    const command = job!.trim().replace(/^(\S+\s+){6}/, '');
    assert.not.match(command, '%', "cron would turn '%' into a newline and feed the rest to stdin");
    const since = (await inside(k, 'date +%s')).trim();
    const t0 = Date.now();
    const cron = await k.host.exec(['env', '-i', ...vars, 'HOME=/root', 'LOGNAME=root', '/bin/sh', '-c', command], { cwd: '/root', timeoutMs: 120_000 });
    expectExit(cron, 0, `the cron command ${command}`);
    console.log(`  prune from the cron line: ${Date.now() - t0} ms`);
    assert.is(cron.stdout + cron.stderr, '', 'all its output goes to the journal');

    const after = releasesOnDisk(k, ROOT);
    assert.equal(after, [id.v5, id.v6, id.v7].sort(), `on disk after prune (keep 1): ${after}`);
    const journal = await eventually('prune output in the journal', async () => {
      const text = await inside(k, `journalctl -t cutover-prune --since @${since} --no-pager -o cat`);
      return /Deleted \d+ release/.test(text) ? text : '';
    });
    assert.match(journal, `keep   ${id.v7}: it is live`);
    assert.match(journal, `keep   ${id.v6}: it is the rollback target`);
    assert.match(journal, `keep   ${id.v5}: it is the newest bad release`);
    assert.match(journal, `delete ${id.v1}: it is older than the newest 1 good releases`);
    assert.match(journal, `Deleted ${before.length - 3} release`);
    const removed = historyInside(k, ROOT).filter((e) => e.event === 'removed').map((e) => e.release);
    assert.ok(removed.includes(id.v1));
    status = await statusJson(k, manifest);
    assert.equal([status.live, status.rollbackTarget], [id.v7, id.v6]);
    assert.is((await app()).release, id.v7, 'the live release still answers');
  });

  it('activate while the service is stopped starts it again', async () => {
    const SERVICE = await servingUnit(k, APP);
    await inside(k, `systemctl stop ${SERVICE}`);
    await httpGet(loopback(PORT)).then(
      () => assert.unreachable('the stopped service answered'),
      (e) => assert.is(e.code, 'ECONNREFUSED'),
    );
    assert.is((await statusJson(k, manifest)).service, 'inactive');
    const r = await kit('activate', [id.v7]);
    expectExit(r, 0, 'activate the live release while stopped');
    assert.not.match(r.stdout, 'nothing to do');
    assert.equal([(await app()).release, (await unitProps(k, await servingUnit(k, APP), ['ActiveState'])).ActiveState], [id.v7, 'active']);
  });

  it('StartLimitBurst: right after plain restarts hit the limit, 6 activations in a row all succeed', async () => {
    // A drop-in on both slots lowers the limit to 2 starts in 5 min: six activations start each slot
    // 3 times within that window however slow this machine is, more than the limit allows, so their
    // success proves the kit clears the limit (not that the machine was slow). Removed at the end.
    const dropIn = `/etc/systemd/system/${APP}@.service.d/test-start-limit.conf`;
    await inside(k, `mkdir -p /etc/systemd/system/${APP}@.service.d && printf '[Unit]\\nStartLimitIntervalSec=300\\nStartLimitBurst=2\\n' > ${dropIn} && systemctl daemon-reload`);
    try {
      const SERVICE = await servingUnit(k, APP);
      assert.equal(await unitProps(k, SERVICE, ['StartLimitBurst', 'StartLimitIntervalUSec']), { StartLimitBurst: '2', StartLimitIntervalUSec: '5min' });
      // The control: systemd refuses the 3rd start within the window.
      const codes = await inside(k, `systemctl reset-failed ${SERVICE}; for i in 1 2 3; do systemctl restart ${SERVICE}; printf '%s ' $?; done`);
      assert.equal(codes.split(' '), ['0', '0', '1'], `systemctl restart exit codes: ${codes}`);
      assert.equal(await unitProps(k, SERVICE, ['ActiveState', 'Result']), { ActiveState: 'failed', Result: 'start-limit-hit' });
      writeManifest({ preflight: false });
      const t0 = Date.now();
      const starts: { unit: string; at: number }[] = [];
      for (let i = 0; i < 6; i++) {
        const target = i % 2 === 0 ? id.v6 : id.v7;
        const r = await kit('activate', [target]);
        expectExit(r, 0, `activation ${i + 1} (${target})`);
        assert.is((await app()).release, target, `activation ${i + 1} answers ${target}`);
        const unit = await servingUnit(k, APP);
        starts.push({ unit, at: Number((await unitProps(k, unit, ['ExecMainStartTimestampMonotonic'])).ExecMainStartTimestampMonotonic) });
      }
      const spanS = (starts.at(-1)!.at - starts[0]!.at) / 1e6;
      const counts = new Map<string, number>();
      for (const x of starts) counts.set(x.unit, (counts.get(x.unit) ?? 0) + 1);
      console.log(`  6 activations: ${Date.now() - t0} ms in all; the service's 6 starts spanned ${spanS.toFixed(2)} s (${[...counts].map(([u, n]) => `${u} ×${n}`).join(', ')})`);
      assert.is(new Set(starts.map((x) => x.at)).size, 6, 'each activation started the service anew');
      // The premise: some slot started more often than the limit allows, within one window.
      assert.ok(Math.max(...counts.values()) > 2, `no slot started more than twice: ${JSON.stringify([...counts])}`);
      assert.ok(spanS < 300, `the 6 starts spanned ${spanS.toFixed(2)} s: more than the 300 s window, so they prove nothing about the limit`);
    } finally {
      writeManifest({ keep: 1 });
      await inside(k, `rm -f ${dropIn} && systemctl daemon-reload`);
    }
  });

  it('status --json reflects it all, and the secret never appears in output, history or status', async () => {
    const r = await kit('status', ['--json']);
    expectExit(r, 0, 'status --json');
    const s = JSON.parse(r.stdout);
    assert.is(s.app, APP);
    assert.is(s.service, 'active');
    assert.is(s.live, id.v7);
    assert.is(s.rollbackTarget, id.v6);
    assert.is(s.lock, null);
    const view = s.releases.map((x: any) => [x.id, x.state, x.live, x.rollbackTarget, x.onDisk]);
    assert.equal(view, [
      [id.v7, 'ready', true, false, true],
      [id.v6, 'ready', false, true, true],
      [id.v5, 'bad', false, false, true],
    ]);
    assert.is(byId(s, id.v7).commit.slice(0, 12), id.v7);
    const text = await kit('status');
    expectExit(text, 0, 'status');
    assert.match(text.stdout, `live: ${id.v7}`);
    assert.match(text.stdout, `rollback target: ${id.v6}`);

    const history = fs.readFileSync(hostPath(k, `${ROOT}/history.jsonl`), 'utf8');
    for (const [where, t] of [['cutover output', printed.join('\n')], ['history.jsonl', history]] as const) {
      assert.not.ok(t.includes(SECRET), `the secret appears in ${where}`);
    }
    assert.ok(printed.length > 15, 'the output of every kit call was collected');
    // After all this life, provision still finds nothing to change (no drift from releases or prunes).
    const again = await kit('provision');
    expectExit(again, 0, 'provision after the releases');
    assert.match(again.stdout, 'Nothing to change');
    assert.not.ok(again.stdout.includes(SECRET) || again.stderr.includes(SECRET));
    assert.is((await app()).greeting, SECRET, 'while the app still has it');
  });

  it('a unit change from provision reaches the live service through activate <live>', async () => {
    const live = activeInside(k, ROOT)!.split('/').pop()!;
    const before = await mainPid();
    const environ = async (pid: number) => inside(k, `tr '\\0' '\\n' < /proc/${pid}/environ`);
    await new Promise((r) => setTimeout(r, 1100)); // the unit file's mtime must be later than the start, in seconds
    manifest = writeManifest({ keep: 1, env: { UNIT_GENERATION: 'two' } });
    const p = await kit('provision');
    expectExit(p, 0, 'provision with a new environment variable');
    assert.match(p.stdout, `to apply the change now: cutover activate ${live} --restart`);
    assert.not.match(await environ(before), 'UNIT_GENERATION=two', 'the running process still has the old environment');
    const a = await kit('activate', [live]);
    expectExit(a, 0, 'activate the live release');
    assert.match(a.stdout, 'changed after its process started');
    const after = await mainPid();
    assert.is.not(after, before, 'the service was restarted');
    assert.match(await environ(after), 'UNIT_GENERATION=two');
    const again = await kit('activate', [live]);
    assert.match(again.stdout, 'already live; nothing to do');
  });
  it('a broken unit change is caught by preflight: the live process keeps serving and the release is not blamed', async () => {
    const live = activeInside(k, ROOT)!.split('/').pop()!;
    const before = await mainPid();
    await new Promise((r) => setTimeout(r, 1100));
    manifest = writeManifest({ keep: 1, env: { UNIT_GENERATION: 'two' }, start: 'node no-such-server.js' });
    expectExit(await kit('provision'), 0, 'provision a unit whose start command fails');
    const a = await kit('activate', [live]);
    expectExit(a, 1, 'activate the live release under the broken unit');
    assert.match(a.stderr, `The live release ${live} failed preflight under the current unit`);
    assert.match(a.stderr, 'fix the manifest, provision again');
    assert.is(await mainPid(), before, 'the running process was not restarted');
    assert.is((await app()).release, live, 'and it still serves');
    assert.is(byId(await statusJson(k, manifest), live).state, 'ready', 'the release is not blamed for the unit');
    await new Promise((r) => setTimeout(r, 1100));
    manifest = writeManifest({ keep: 1, env: { UNIT_GENERATION: 'two' } });
    expectExit(await kit('provision'), 0, 'provision the fixed unit');
    expectExit(await kit('activate', [live]), 0, 'activate under the fixed unit');
    assert.is((await app()).release, live);
  });
}

test.run();
