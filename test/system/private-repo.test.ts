// system tier: a private repository over ssh (Debian's sshd in the test host, a git user, a deploy key): provision pins the host key, release fetches with the key, and a missing, open, wrong or unaccepted key or a changed host key stops the release with what to do, changing nothing; the key reaches no output, history, release or the app's user.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootKitHost, expectExit, type KitHost } from '../helpers/hostkit.ts';
import { cleanupTempDirs, type AppRepo } from '../helpers/gitrepo.ts';
import { getJson } from '../helpers/apps.ts';
import type { ExecResult } from '../host/host.ts';
import { activeInside, historyInside, inside, loopback, out, servingPid, snapshotDiff, snapshotInside, statInside } from '../helpers/system.ts';
import { setUp, nodeApp } from '../helpers/fixtures.ts';
import { commandMissing, requiring, systemTierMissing, systemTier } from '../helpers/prereq.ts';
import { ANSIBLE_DIR, parseRecap } from '../helpers/fleet.ts';
import { tempDir } from '../helpers/gitrepo.ts';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';

const { it, ready } = systemTier(import.meta.url);
const withAnsible = requiring(systemTierMissing() ?? commandMissing('ansible-playbook', ['--version'], 'apt-get install ansible; test/setup.sh does'));

// Ports 4600-4699 belong to this file: the app on 4601, the git server's sshd on 4622.
const APP = 'privapp';
const PORT = 4601;
const SSH_PORT = 4622;
const ROOT = `/usr/local/src/${APP}`;
const KEY = `/etc/cutover/${APP}.key`;
const PINNED = `${ROOT}/known_hosts`;
const KNOWN = `[127.0.0.1]:${SSH_PORT}`;
const BARE = '/home/git/app.git';
const URL = `ssh://git@127.0.0.1:${SSH_PORT}${BARE}`;
const SSHD = '/root/sshd';
const t0 = Date.now();

let h: KitHost;
let repo: AppRepo;
let manifest: string;
/** Every line of the deploy key's file (the secret), to look for in outputs and files. */
let keyLines: string[] = [];
/** Every output of every kit run in this file. */
const outputs: string[] = [];

const kit = async (verb: string, args: string[] = []): Promise<ExecResult> => {
  const r = await h.kit(verb, args, { manifest });
  outputs.push(out(r));
  return r;
};

/** The git server: a git user (git-shell) whose authorized_keys holds the deploy key, and sshd on 127.0.0.1:4622 as a transient unit. */
async function startGitServer(): Promise<void> {
  await inside(h, [
    `useradd --create-home --home-dir /home/git --shell /usr/bin/git-shell git`,
    // sshd (without PAM) refuses an account whose password field starts with '!': '*' is no password, not a locked account.
    `usermod -p '*' git`,
    `install -d -m 700 -o root ${SSHD} && ssh-keygen -q -t ed25519 -N '' -f ${SSHD}/host_ed25519`,
    `printf '%s\\n' 'Port ${SSH_PORT}' 'ListenAddress 127.0.0.1' 'HostKey ${SSHD}/host_ed25519' 'PidFile /run/git-sshd.pid' 'UsePAM no' \\
       'PasswordAuthentication no' 'KbdInteractiveAuthentication no' 'PermitRootLogin no' 'AuthorizedKeysFile .ssh/authorized_keys' > ${SSHD}/sshd_config`,
    `systemd-run --quiet --unit=git-sshd -p RuntimeDirectory=sshd /usr/sbin/sshd -D -e -f ${SSHD}/sshd_config`,
  ].join(' && '), 'start the git server');
  await pushToServer();
}

/** Mirrors the test's app repo (seen read-only at /srv/src) into the server's bare repo, owned by git. */
async function pushToServer(): Promise<void> {
  await inside(h, [
    `[ -d ${BARE} ] || git init --quiet --bare ${BARE}`,
    `git -c safe.directory='*' --git-dir=${BARE} fetch --quiet --force /srv/src/${APP} '+refs/heads/*:refs/heads/*'`,
    `chown -R git:git ${BARE}`,
  ].join(' && '), 'update the server repo');
}

/** Makes the deploy key, root's, 0600, and authorizes its public half for the git user. */
async function makeDeployKey(): Promise<void> {
  await inside(h, [
    `install -d -m 755 -o root -g root /etc/cutover`,
    `ssh-keygen -q -t ed25519 -N '' -C cutover-deploy -f ${KEY}`,
    `install -d -m 700 -o git -g git /home/git/.ssh`,
    `sed 's/^/restrict /' ${KEY}.pub > /home/git/.ssh/authorized_keys`,
    `chown git:git /home/git/.ssh/authorized_keys && chmod 600 /home/git/.ssh/authorized_keys`,
  ].join(' && '), 'make the deploy key');
  keyLines = h.read(KEY).split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----'));
  assert.ok(keyLines.length >= 3, 'the key file has a body to look for');
}

test.before(async () => {
  if (!ready) return;
  await setUp(async () => {
    h = await bootKitHost();
    repo = (await h.repo(APP)).repo;
    await startGitServer();
    await makeDeployKey();
    // The build writes its own environment into the release: the test reads what install and build could see.
    manifest = h.manifest(nodeApp(APP, URL, PORT, { deploy_key: KEY, build: 'node build.js && env > build-env.txt' }));
  });
});

test.after(async () => {
  await h?.stop();
  await cleanupTempDirs();
  console.log(`  private-repo.test: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

const version = async () => String((await getJson(loopback(PORT, '/'))).version).trim();

/** What a refused release must leave as it was: the app's root (but its lock), the units, the history, `active` and the serving process. */
async function unchangedBy(what: string, run: () => Promise<ExecResult>, expect: RegExp[]): Promise<ExecResult> {
  const snap = () => snapshotInside(h, [ROOT, '/etc/systemd/system'], { exclude: [`${ROOT}/cutover.lock`] });
  const before = { snap: snap(), active: activeInside(h, ROOT), history: historyInside(h, ROOT).length, pid: await servingPid(h, APP), version: await version() };
  const r = await run();
  assert.is(r.code, 1, `${what}: exit 1\n${out(r)}`);
  for (const re of expect) assert.match(r.stderr, re, `${what}: the message says ${re}\n${r.stderr}`);
  assert.equal(snapshotDiff(before.snap, snap()), [], `${what}: nothing under ${ROOT} or the units changed`);
  assert.is(activeInside(h, ROOT), before.active, `${what}: active unchanged`);
  assert.is(historyInside(h, ROOT).length, before.history, `${what}: no history line`);
  assert.is(await servingPid(h, APP), before.pid, `${what}: the same process serves`);
  assert.is(await version(), before.version, `${what}: the same version serves`);
  return r;
}

it('provision contacts the server once and pins its host key (root-owned, 0644), reporting the fingerprint; a second provision changes nothing', async () => {
  const r = await kit('provision');
  expectExit(r, 0, 'provision');
  const fp = await inside(h, `ssh-keygen -l -f ${SSHD}/host_ed25519.pub | cut -d' ' -f2`);
  assert.match(r.stdout, `pinned the ssh host key of ${KNOWN} in ${PINNED} (first contact): ED25519 ${fp}`);
  const pinned = h.read(PINNED);
  const hostKey = h.read(`${SSHD}/host_ed25519.pub`).split(' ').slice(0, 2).join(' ');
  assert.ok(pinned.includes(`${KNOWN} ${hostKey}`), `the pinned line is the server's key:\n${pinned}`);
  assert.equal(await statInside(h, PINNED), { owner: 'root', group: 'root', mode: '644', type: 'regular file' });
  assert.ok(!h.read(PINNED).includes('cutover-pin'), 'no draft left');
  const again = await kit('provision');
  expectExit(again, 0, 'provision again');
  assert.match(again.stdout, 'Nothing to change');
});

it('release fetches the private repository with the deploy key (strict host key checking) and the app serves', async () => {
  const r = await kit('release', ['main']);
  expectExit(r, 0, 'release main');
  assert.is(await version(), '1');
  const dry = await kit('release', ['main', '--dry-run']);
  expectExit(dry, 0, 'release --dry-run (the remote look-up through the key)');
  assert.match(dry.stdout, `main is commit ${await repo.head()}`);
});

it('the key is in no output, no history, no release file; the build and the app never see it or its path; the app user cannot read it', async () => {
  const id = activeInside(h, ROOT)!;
  const buildEnv = h.read(`${ROOT}/releases/${id}/build-env.txt`);
  assert.ok(buildEnv.includes('HOME='), 'the build wrote its environment');
  assert.not.match(buildEnv, /CUTOVER_|GIT_SSH|\.key/, `the build's environment carries nothing of the key:\n${buildEnv}`);
  const pid = await servingPid(h, APP);
  const environ = await inside(h, `tr '\\0' '\\n' < /proc/${pid}/environ`);
  assert.not.match(environ, /CUTOVER_SSH|GIT_SSH/, 'the service carries nothing of the key');
  for (const line of keyLines) {
    for (const o of outputs) assert.not.ok(o.includes(line), 'a line of the key appears in an output');
  }
  await inside(h, `printf '%s\\n' ${keyLines.map((l) => `'${l}'`).join(' ')} > /root/key-lines`);
  const found = await h.host.sh(`grep -rlF -f /root/key-lines ${ROOT} /etc/systemd/system /etc/cron.d /var/log /tmp`);
  assert.is(found.stdout.trim(), '', `no file holds a line of the key: ${found.stdout}`);
  assert.equal(await statInside(h, KEY), { owner: 'root', group: 'root', mode: '600', type: 'regular file' });
  const read = await h.host.exec(['setpriv', `--reuid=${APP}`, `--regid=${APP}`, '--init-groups', '--', 'cat', KEY]);
  assert.is.not(read.code, 0, 'the app user cannot read the key');
  assert.match(read.stderr, /Permission denied/);
});

it('a key with loose permissions or another owner, no key, or a key the server does not accept: exit 1, what to do, nothing changed', async () => {
  await repo.commit({ VERSION: '2\n' }, 'v2');
  await pushToServer();
  await inside(h, `chmod 644 ${KEY}`);
  await unchangedBy('a key readable by all', () => kit('release', ['main']), [/deploy key \/etc\/cutover\/privapp.key .*mode 0644/, /chmod 600 \/etc\/cutover\/privapp.key/]);
  await inside(h, `chmod 600 ${KEY} && chown ${APP} ${KEY}`);
  await unchangedBy("a key of the app's user", () => kit('release', ['main']), [/owned by uid \d+, not root/, /chown root:root/]);
  await inside(h, `chown root ${KEY} && mv ${KEY} /root/stashed.key`);
  const none = await unchangedBy('no key', () => kit('release', ['main']), [/deploy key \/etc\/cutover\/privapp.key .* does not exist/, /ssh-keygen -t ed25519/, /deploy key/]);
  assert.not.match(out(none), /would|fetch ssh:/, 'stopped before the fetch');
  await inside(h, `ssh-keygen -q -t ed25519 -N '' -f /root/other.key && install -m 600 -o root -g root /root/other.key ${KEY}`);
  await unchangedBy('a key the server does not accept', () => kit('release', ['main']), [/did not accept the deploy key \/etc\/cutover\/privapp.key/, /read access/]);
  await inside(h, `install -m 600 -o root -g root /root/stashed.key ${KEY}`);
  expectExit(await kit('release', ['main']), 0, 'release v2 with the key back');
  assert.is(await version(), '2');
});

it('a changed host key: release and its dry run refuse, naming the host, the pinned file and how to re-pin; after a deliberate re-pin the release works', async () => {
  await repo.commit({ VERSION: '3\n' }, 'v3');
  await pushToServer();
  await inside(h, `rm ${SSHD}/host_ed25519 ${SSHD}/host_ed25519.pub && ssh-keygen -q -t ed25519 -N '' -f ${SSHD}/host_ed25519 && systemctl restart git-sshd`);
  await h.host.waitUnit('git-sshd.service');
  const fp = await inside(h, `ssh-keygen -l -f ${SSHD}/host_ed25519.pub | cut -d' ' -f2`);
  const expect = [
    new RegExp(`ssh host key of \\[127\\.0\\.0\\.1\\]:${SSH_PORT} is not the one pinned in ${PINNED}`),
    new RegExp(`It now presents ED25519 ${fp.replace(/[+/]/g, '\\$&')}\\.`),
    new RegExp(`ssh-keygen -R '\\[127\\.0\\.0\\.1\\]:${SSH_PORT}' -f ${PINNED}`),
  ];
  await unchangedBy('a changed host key', () => kit('release', ['main']), expect);
  await unchangedBy('a changed host key (dry run)', () => kit('release', ['main', '--dry-run']), expect);
  // provision never re-pins a changed key by itself.
  const prov = await kit('provision');
  expectExit(prov, 0, 'provision with a changed host key (already pinned: it does not contact the server)');
  assert.not.match(prov.stdout, /pinned/);
  await unchangedBy('a changed host key after provision', () => kit('release', ['main']), expect);
  // The deliberate re-pin the message names; a dry run of provision says it would contact the server, and does not.
  await inside(h, `ssh-keygen -q -R '${KNOWN}' -f ${PINNED}`);
  const unpinned = h.read(PINNED);
  const dry = await kit('provision', ['--dry-run']);
  expectExit(dry, 0, 'provision --dry-run with the pin removed');
  assert.match(dry.stdout, `would contact ${KNOWN} and pin the ssh host key it presents in ${PINNED} (first contact)`);
  assert.is(h.read(PINNED), unpinned, 'the dry run pinned nothing');
  const repin = await kit('provision');
  expectExit(repin, 0, 'provision after removing the old pin');
  assert.match(repin.stdout, `pinned the ssh host key of ${KNOWN} in ${PINNED} (first contact): ED25519 ${fp}`);
  expectExit(await kit('release', ['main']), 0, 'release v3 after the re-pin');
  assert.is(await version(), '3');
});

it('provision with a deploy key that is not there yet: exit 1 with how to make one, and nothing provisioned', async () => {
  const other = 'privnokey';
  const m = h.manifest(nodeApp(other, URL, PORT + 1, { deploy_key: `/etc/cutover/${other}.key` }));
  const snap = () => snapshotInside(h, ['/etc/systemd/system', '/etc/cron.d', '/usr/local/src', '/etc/passwd', '/etc/group']);
  const before = snap();
  const r = await h.kit('provision', [], { manifest: m });
  outputs.push(out(r));
  assert.is(r.code, 1, out(r));
  assert.match(r.stderr, `The deploy key /etc/cutover/${other}.key (deploy_key in the manifest) does not exist`);
  assert.match(r.stderr, `ssh-keygen -t ed25519 -N '' -C cutover-deploy -f /etc/cutover/${other}.key`);
  assert.equal(snapshotDiff(before, snap()), [], 'provision changed nothing');
});

it('an unpinned host (the pin file removed): release refuses and says to provision; the key still never shows', async () => {
  await inside(h, `mv ${PINNED} /root/pinned.bak`);
  await unchangedBy('no pinned host key', () => kit('release', ['main']), [/known_hosts file .*known_hosts .* does not exist/, /Run provision/]);
  await inside(h, `mv /root/pinned.bak ${PINNED}`);
  for (const line of keyLines) for (const o of outputs) assert.not.ok(o.includes(line), 'a line of the key appears in an output');
});

withAnsible("ansible: cutover_deploy_key_src puts the key where the manifest's deploy_key says (root's, 0600), never logging it; a second run changes nothing", async () => {
  const work = await tempDir('cutover-ansible-key');
  const keySrc = path.join(work, 'fleetapp.key');
  const made = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fleet', '-f', keySrc]);
  assert.is(made.status, 0, String(made.stderr));
  const dest = '/etc/cutover/keys/fleetapp.key';
  const manifestSrc = path.join(work, 'fleetapp.yaml');
  fs.writeFileSync(manifestSrc, stringify(nodeApp('fleetapp', URL, PORT + 2, { deploy_key: dest })));
  const playbook = path.join(work, 'key.yml');
  fs.writeFileSync(playbook, stringify([{ hosts: 'all', gather_facts: false, tasks: [{ 'ansible.builtin.include_role': { name: 'cutover', tasks_from: 'deploy_key' } }] }]));
  fs.writeFileSync(path.join(work, 'hosts.ini'), `k ansible_connection=community.docker.nsenter ansible_nsenter_pid=${h.host.pid} ansible_python_interpreter=/usr/bin/python3\n`);
  const play = () => {
    const r = spawnSync('ansible-playbook', ['-i', path.join(work, 'hosts.ini'), playbook, '-e', JSON.stringify({ cutover_manifest_src: manifestSrc, cutover_deploy_key_src: keySrc })], {
      cwd: ANSIBLE_DIR,
      encoding: 'utf8',
      env: { ...process.env, ANSIBLE_CONFIG: path.join(ANSIBLE_DIR, 'ansible.cfg'), ANSIBLE_ROLES_PATH: path.join(ANSIBLE_DIR, 'roles'), ANSIBLE_LOCAL_TEMP: path.join(work, 'tmp'), ANSIBLE_NOCOLOR: '1' },
    });
    assert.is(r.status, 0, `ansible-playbook: ${r.stdout}\n${r.stderr}`);
    return { text: `${r.stdout}\n${r.stderr}`, recap: parseRecap(r.stdout).k! };
  };
  const first = play();
  assert.ok(first.recap.changed >= 1, `the first run copies the key: ${first.text}`);
  assert.is(h.read(dest), fs.readFileSync(keySrc, 'utf8'), 'the key on the host is the controller\'s');
  assert.equal(await statInside(h, dest), { owner: 'root', group: 'root', mode: '600', type: 'regular file' });
  const body = fs.readFileSync(keySrc, 'utf8').split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----'));
  for (const line of body) assert.not.ok(first.text.includes(line), "a line of the key is in ansible's output");
  const second = play();
  assert.is(second.recap.changed, 0, `a second run changes nothing: ${second.text}`);
});

test.run();
