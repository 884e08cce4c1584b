// System tier: provision and bootstrap against a real systemd 252 (user, layout, units, cron, idempotence, dry run, socket, sandbox score, bad manifests).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootKitHost, expectExit, KIT, type KitHost } from '../helpers/hostkit.ts';
import { cleanupTempDirs } from '../helpers/gitrepo.ts';
import { hostPath, inside, out, snapshotDiff, snapshotInside, statInside, unitProps } from '../helpers/system.ts';
import fs from 'node:fs';
import { systemTier } from '../helpers/prereq.ts';
import { npmApp } from '../helpers/fixtures.ts';

const APP = 'prov';
const ROOT = `/usr/local/src/${APP}`;
const PORT = 3401;
const BOOT_PORT = 3402;
const SERVICE_FILE = `/etc/systemd/system/${APP}@.service`;
/** The slot systemd starts at boot. */
const BOOT_UNIT = `${APP}@a.service`;
const SOCKET_FILE = `/etc/systemd/system/${APP}.socket`;
const CRON_FILE = `/etc/cron.d/cutover-${APP}`;

let k: KitHost;
let manifest: string;
let url: string;

function base(over: Record<string, unknown> = {}): Record<string, unknown> {
  return npmApp(APP, url, PORT, {
    env: { NODE_ENV: 'production' },
    shared: ['.env', 'uploads/', 'storage/sessions/'],
    prune: { schedule: '*/15 3 * * 1-5' },
    ...over,
  });
}

/** What provision may touch: units, cron, the app root, the user databases. */
function snapshot() {
  // cutover.lock is the lock's advisory holder record, rewritten by every operation that takes the
  // lock (provision included) by design; it is state, not something provision provisions.
  return snapshotInside(k, ['/etc/systemd/system', '/etc/cron.d', ROOT, '/etc/passwd', '/etc/group', '/etc/shadow'], {
    exclude: [`${ROOT}/cutover.lock`],
  });
}

async function verifyUnits(files: string[]): Promise<void> {
  const r = await k.host.exec(['systemd-analyze', 'verify', ...files], { timeoutMs: 60_000 });
  assert.is(r.code, 0, `systemd-analyze verify ${files.join(' ')} failed:\n${out(r)}`);
  assert.is(out(r).trim(), '', `systemd-analyze verify printed something:\n${out(r)}`);
}

const listening = async (port: number) => (await inside(k, `ss -ltnpH 'sport = :${port}'`)).trim();

const { it, ready } = systemTier(import.meta.url);
{
  test.before(async () => {
    if (!ready) return;
    k = await bootKitHost();
    url = (await k.repo('prov')).url;
    manifest = k.manifest(base());
  });

  test.after(async () => {
    await k?.stop();
    await cleanupTempDirs();
  });

  it('provision from scratch: system user, layout with owners and modes, units enabled and valid, cron entry', async () => {
    assert.is.not((await k.host.exec(['id', '-u', APP])).code, 0, 'the user must not exist before provision');
    const t0 = Date.now();
    const r = await k.kit('provision', [], { manifest });
    expectExit(r, 0, 'provision');
    console.log(`  provision from scratch took ${Date.now() - t0} ms (the kit call included)`);
    assert.match(r.stdout, `created the system user ${APP}`);

    // The user: a system account with no login shell, its own group, home = the cache dir.
    const [name, , uid, gid, , home, shell] = (await inside(k, `getent passwd ${APP}`)).split(':');
    assert.is(name, APP);
    assert.ok(Number(uid) > 0 && Number(uid) < 1000, `uid ${uid} is a system uid`);
    assert.is(shell, '/usr/sbin/nologin');
    assert.is(home, `${ROOT}/cache`);
    assert.is((await inside(k, `getent group ${APP}`)).split(':')[2], gid, 'the user has a group of its own');
    const login = await k.host.exec(['su', '-', APP, '-c', 'echo logged-in']);
    assert.is.not(login.code, 0, 'su to the app user must be refused: it has no login shell');
    assert.not.match(login.stdout, 'logged-in');

    // The layout. The root is root:<app group> 0750 (other apps' users cannot look inside; commit 8337cb8).
    const expect: [string, string, string, string, string][] = [
      [ROOT, 'root', APP, '750', 'directory'],
      [`${ROOT}/releases`, 'root', 'root', '755', 'directory'],
      [`${ROOT}/shared`, 'root', 'root', '755', 'directory'],
      [`${ROOT}/cache`, APP, APP, '750', 'directory'],
      [`${ROOT}/shared/.env`, APP, APP, '600', 'regular empty file'],
      [`${ROOT}/shared/uploads`, APP, APP, '750', 'directory'],
      [`${ROOT}/shared/storage`, 'root', 'root', '755', 'directory'],
      [`${ROOT}/shared/storage/sessions`, APP, APP, '750', 'directory'],
      [SERVICE_FILE, 'root', 'root', '644', 'regular file'],
      [CRON_FILE, 'root', 'root', '644', 'regular file'],
    ];
    for (const [p, owner, group, mode, type] of expect) {
      const st = await statInside(k, p);
      assert.equal(st, { owner, group, mode, type }, `${p}: ${JSON.stringify(st)}`);
    }
    assert.not.ok(fs.existsSync(hostPath(k, SOCKET_FILE)), 'socket: false writes no socket unit');

    // The service unit: what it says, that systemd accepts it as is, that it is enabled.
    const unit = k.read(SERVICE_FILE);
    for (const line of [`User=${APP}`, `Group=${APP}`, `WorkingDirectory=${ROOT}/active`, `EnvironmentFile=-${ROOT}/shared/.env`,
      `ReadWritePaths=-${ROOT}/shared/uploads`, `ReadWritePaths=-${ROOT}/shared/storage/sessions`, 'Type=exec', 'ProtectSystem=strict']) {
      assert.ok(unit.split('\n').includes(line), `${SERVICE_FILE} lacks the line ${line}`);
    }
    await verifyUnits([SERVICE_FILE]);
    assert.is((await k.host.exec(['systemctl', 'is-enabled', BOOT_UNIT])).stdout.trim(), 'enabled');
    const props = await unitProps(k, BOOT_UNIT, ['LoadState', 'FragmentPath', 'User', 'WorkingDirectory', 'NeedDaemonReload']);
    assert.equal(props, { LoadState: 'loaded', FragmentPath: SERVICE_FILE, User: APP, WorkingDirectory: `${ROOT}/active`, NeedDaemonReload: 'no' });

    // The cron entry: a name cron reads, one valid line with absolute paths that exist, no '%'.
    assert.match(CRON_FILE.split('/').pop()!, /^[A-Za-z0-9_-]+$/, 'cron ignores /etc/cron.d files with other characters in their names');
    const lines = k.read(CRON_FILE).split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
    const assignments = lines.filter((l) => /^[A-Z_]+=/.test(l));
    assert.equal(assignments, ['SHELL=/bin/sh', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin']);
    const jobs = lines.filter((l) => !/^[A-Z_]+=/.test(l));
    assert.is(jobs.length, 1, `one job line: ${JSON.stringify(jobs)}`);
    const fields = jobs[0]!.trim().split(/\s+/);
    assert.equal(fields.slice(0, 5), ['*/15', '3', '*', '*', '1-5'], 'the manifest schedule');
    assert.is(fields[5], 'root');
    const command = fields.slice(6).join(' ');
    assert.not.match(command, '%', "cron turns '%' into a newline");
    assert.equal(fields.slice(6, 9), ['/usr/bin/node', `${KIT}/bin/cutover`, 'prune']);
    assert.match(command, `--cron --manifest ${manifest} `);
    for (const p of fields.slice(6, 8)) assert.ok(fs.existsSync(hostPath(k, p)), `${p} exists inside`);
    // cron itself: restart it (it reads /etc/cron.d at start) and look for complaints about the file.
    // A deliberately bad entry beside it shows that cron does complain in this journal.
    fs.writeFileSync(hostPath(k, '/etc/cron.d/zz-control'), '61 * * * * root true\n', { mode: 0o644 });
    const since = (await inside(k, 'date +%s')).trim();
    await inside(k, 'systemctl restart cron');
    const cronLog = await (async () => {
      for (let i = 0; i < 50; i++) {
        const text = await inside(k, `journalctl -u cron --since @${since} --no-pager -o cat`);
        if (text.includes('zz-control')) return text;
        await new Promise((r) => setTimeout(r, 100));
      }
      return inside(k, `journalctl -u cron --since @${since} --no-pager -o cat`);
    })();
    fs.rmSync(hostPath(k, '/etc/cron.d/zz-control'));
    assert.match(cronLog, 'zz-control', `the control entry is reported by cron:\n${cronLog}`);
    assert.not.match(cronLog, `cutover-${APP}`, `cron complained about the cutover entry:\n${cronLog}`);
  });

  it('provision again: "Nothing to change", and no file, owner, mode or mtime changes', async () => {
    const before = snapshot();
    const t0 = Date.now();
    const r = await k.kit('provision', [], { manifest });
    expectExit(r, 0, 'second provision');
    console.log(`  provision with nothing to do took ${Date.now() - t0} ms`);
    assert.match(r.stdout, `Nothing to change: the host is already provisioned for ${APP}.`);
    assert.not.match(r.stdout, /Made \d+ change/);
    assert.equal(snapshotDiff(before, snapshot()), []);
  });

  it('provision --dry-run on a changed manifest prints the diffs and changes nothing', async () => {
    const before = snapshot();
    const serviceBefore = k.read(SERVICE_FILE);
    k.manifest(base({ port: 3403, env: { NODE_ENV: 'staging' }, prune: { schedule: '5 4 * * *' }, shared: ['.env', 'uploads/', 'storage/sessions/', 'extra/'] }));
    try {
      const r = await k.kit('provision', ['--dry-run'], { manifest });
      expectExit(r, 0, 'provision --dry-run');
      const text = r.stdout;
      assert.match(text, `--- ${SERVICE_FILE}\n`);
      assert.match(text, `+++ ${SERVICE_FILE} (new)`);
      assert.match(text, /^\s+-Environment="NODE_ENV=production"$/m);
      assert.match(text, /^\s+\+Environment="NODE_ENV=staging"$/m);
      assert.match(text, /^\s+\+Environment="PORT=3403"$/m);
      assert.match(text, /^\s+\+ExecStart=\/usr\/bin\/env "PORT=3403" /m);
      assert.match(text, /^\s+\+ReadWritePaths=-\/usr\/local\/src\/prov\/shared\/extra$/m);
      assert.match(text, `--- ${CRON_FILE}\n`);
      assert.match(text, /^\s+-\*\/15 3 \* \* 1-5 root /m);
      assert.match(text, /^\s+\+5 4 \* \* \* root /m);
      assert.match(text, 'Would make 3 changes:');
      assert.match(text, '  - created the shared directory /usr/local/src/prov/shared/extra');
      // The unit is enabled already: a dry run must not claim it would enable it.
      assert.not.match(text, `enabled ${BOOT_UNIT}`);
      assert.equal(snapshotDiff(before, snapshot()), [], 'a dry run changed the host');
      assert.is(k.read(SERVICE_FILE), serviceBefore);
      assert.is((await unitProps(k, BOOT_UNIT, ['NeedDaemonReload'])).NeedDaemonReload, 'no');
    } finally {
      k.manifest(base());
    }
  });

  it('socket false → true → false: the socket unit is added, enabled and valid, then stopped and removed', async () => {
    k.manifest(base({ socket: true }));
    let r = await k.kit('provision', [], { manifest });
    expectExit(r, 0, 'provision socket: true');
    assert.match(r.stdout, `wrote ${SOCKET_FILE}`);
    assert.match(r.stdout, `updated ${SERVICE_FILE}`);
    assert.match(r.stdout, `enabled ${APP}.socket`);
    assert.equal(await statInside(k, SOCKET_FILE), { owner: 'root', group: 'root', mode: '644', type: 'regular file' });
    assert.match(k.read(SOCKET_FILE), `\nListenStream=127.0.0.1:${PORT}\n`);
    assert.ok(k.read(SERVICE_FILE).split('\n').includes(`Requires=${APP}.socket`));
    await verifyUnits([SERVICE_FILE, SOCKET_FILE]);
    assert.is((await k.host.exec(['systemctl', 'is-enabled', `${APP}.socket`])).stdout.trim(), 'enabled');
    // (lstat: the link's absolute target means the container's file, not the test side's)
    assert.is(fs.readlinkSync(hostPath(k, `/etc/systemd/system/sockets.target.wants/${APP}.socket`)), SOCKET_FILE);
    assert.is((await unitProps(k, BOOT_UNIT, ['NeedDaemonReload'])).NeedDaemonReload, 'no', 'systemd was reloaded');
    // Open the port as a boot would, to see that going back to false really closes it.
    await inside(k, `systemctl start ${APP}.socket`);
    assert.match(await listening(PORT), '"systemd",pid=1');

    k.manifest(base({ socket: false }));
    r = await k.kit('provision', [], { manifest });
    expectExit(r, 0, 'provision socket: false');
    assert.match(r.stdout, `removed ${SOCKET_FILE}: the manifest no longer asks for socket activation`);
    assert.not.ok(fs.existsSync(hostPath(k, SOCKET_FILE)), 'the socket unit file is gone');
    assert.not.ok(fs.lstatSync(hostPath(k, `/etc/systemd/system/sockets.target.wants/${APP}.socket`), { throwIfNoEntry: false }), 'and its enablement link');
    assert.not.ok(k.read(SERVICE_FILE).includes(`${APP}.socket`), 'the service no longer requires the socket');
    assert.is(await listening(PORT), '', 'the port is closed');
    const props = await unitProps(k, `${APP}.socket`, ['LoadState', 'ActiveState']);
    assert.equal(props, { LoadState: 'not-found', ActiveState: 'inactive' });
    await verifyUnits([SERVICE_FILE]);

    r = await k.kit('provision', [], { manifest });
    expectExit(r, 0, 'provision again');
    assert.match(r.stdout, 'Nothing to change');
  });

  it('systemd-analyze security: the default unit exposure is at most 1.5', async () => {
    const r = await k.host.exec(['systemd-analyze', 'security', '--no-pager', BOOT_UNIT]);
    expectExit(r, 0, 'systemd-analyze security');
    const m = /Overall exposure level for prov@a\.service: (\d+\.\d+) (\S+)/.exec(r.stdout);
    assert.ok(m, `no overall exposure line in:\n${r.stdout}`);
    const score = Number(m![1]);
    console.log(`  systemd-analyze security ${BOOT_UNIT} (systemd 252, node app, socket false): exposure ${score} ${m![2]}`);
    assert.ok(score <= 1.5, `exposure ${score} is above 1.5`);
  });

  it('a bad manifest: exit 2, every problem listed, nothing on the host changes', async () => {
    const before = snapshot();
    const cron = snapshotInside(k, ['/etc/cron.d', '/etc/systemd/system']);
    const file = '/etc/cutover/bad.yaml';
    fs.writeFileSync(hostPath(k, file), [`app: ${APP}`, `repo: ${url}`, 'start: node server.js', 'port: 80', 'socket: maybe', 'colour: blue', ''].join('\n'));
    let r = await k.kit('provision', [], { manifest: file });
    expectExit(r, 2, 'provision with a bad manifest');
    assert.match(r.stderr, /3 problems/);
    assert.match(r.stderr, /:4\b.*port/);
    assert.match(r.stderr, /:5\b.*socket/);
    assert.match(r.stderr, /:6\b.*colour/);
    // A new app whose manifest is bad: no user, no root, no units.
    fs.writeFileSync(hostPath(k, file), ['app: newapp', `repo: ${url}`, 'start: node server.js', 'health: { path: /health, command: "true" }', ''].join('\n'));
    r = await k.kit('provision', [], { manifest: file });
    expectExit(r, 2, 'provision of a new app with a bad manifest');
    assert.match(r.stderr, 'health');
    assert.is.not((await k.host.exec(['id', '-u', 'newapp'])).code, 0, 'no user was created');
    assert.not.ok(fs.existsSync(hostPath(k, '/usr/local/src/newapp')));
    assert.equal(snapshotDiff(before, snapshot()), []);
    assert.equal(snapshotDiff(cron, snapshotInside(k, ['/etc/cron.d', '/etc/systemd/system'])), []);
    fs.rmSync(hostPath(k, file));
  });

  it('bootstrap.sh with node already there: says so, touches no network, provisions', async () => {
    const bootManifest = k.manifest({ app: 'boot', repo: url, port: BOOT_PORT, start: 'node server.js', health: { path: '/health', timeout: 10 } });
    // A network namespace with only a down loopback: any attempt to reach a mirror or a registry fails,
    // and bootstrap (set -e) would fail with it.
    const netns = await k.host.exec(['unshare', '--net', 'ip', '-o', 'link']);
    expectExit(netns, 0, 'unshare --net');
    assert.equal(netns.stdout.trim().split('\n').map((l) => l.split(':')[1]!.trim()), ['lo'], 'the namespace has no network');
    const t0 = Date.now();
    const r = await k.host.exec(['unshare', '--net', 'sh', `${KIT}/scripts/bootstrap.sh`, '--manifest', bootManifest], { timeoutMs: 120_000 });
    expectExit(r, 0, 'bootstrap.sh');
    console.log(`  bootstrap.sh on a host with node took ${Date.now() - t0} ms`);
    assert.match(r.stdout, '==> node, npm and git are already installed');
    assert.not.match(r.stdout, /==> installing .*from the host's packages/);
    assert.match(r.stdout, "==> installing the kit's dependencies");
    assert.match(r.stdout, 'already installed');
    assert.match(r.stdout, '==> provision');
    assert.match(r.stdout, 'created the system user boot');
    assert.match(r.stdout, 'wrote /etc/systemd/system/boot@.service');
    assert.is((await inside(k, 'getent passwd boot')).split(':')[6], '/usr/sbin/nologin');
    assert.is((await k.host.exec(['systemctl', 'is-enabled', 'boot@a.service'])).stdout.trim(), 'enabled');
    assert.ok(fs.existsSync(hostPath(k, '/etc/cron.d/cutover-boot')));
    await verifyUnits(['/etc/systemd/system/boot@.service']);
    // And it is as idempotent as provision.
    const again = await k.host.exec(['unshare', '--net', 'sh', `${KIT}/scripts/bootstrap.sh`, '--manifest', bootManifest], { timeoutMs: 120_000 });
    expectExit(again, 0, 'bootstrap.sh again');
    assert.match(again.stdout, 'Nothing to change');
  });
}

test.run();
