// Unit tests for private repositories: reading ssh URLs, the deploy key's and known_hosts' ownership rules, the manifest's deploy_key and known_hosts, git's environment, ssh's failures in words, and the ssh wrapper's argv.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  assertGuarded,
  explainSshFailure,
  gitAccess,
  GIT_SSH_WRAPPER,
  remoteAccessFor,
  type Lstat,
  type SshAccess,
} from '../../scripts/lib/assemble/deploykey.ts';
import { manifestProblems, parseManifest } from '../../scripts/lib/manifest/manifest.ts';
import { looksLikeSsh, sshRemote } from '../../scripts/lib/manifest/repo-url.ts';
import { ExitCode, OperationError } from '../../scripts/lib/run/errors.ts';

test('sshRemote reads ssh:// and scp-like URLs, with the name known_hosts gives the server', () => {
  assert.equal(sshRemote('ssh://git@127.0.0.1:4622/home/git/app.git'), { host: '127.0.0.1', port: 4622, known: '[127.0.0.1]:4622' });
  assert.equal(sshRemote('ssh://git@github.com/acme/shop.git'), { host: 'github.com', port: undefined, known: 'github.com' });
  assert.equal(sshRemote('ssh://git@github.com:22/acme/shop.git'), { host: 'github.com', port: 22, known: 'github.com' });
  assert.equal(sshRemote('git+ssh://gitlab.example.org/x.git'), { host: 'gitlab.example.org', port: undefined, known: 'gitlab.example.org' });
  assert.equal(sshRemote('git@github.com:acme/shop.git'), { host: 'github.com', port: undefined, known: 'github.com' });
  assert.equal(sshRemote('git.example.org:shop.git'), { host: 'git.example.org', port: undefined, known: 'git.example.org' });
  assert.equal(sshRemote('ssh://git@[::1]:2222/x.git'), { host: '::1', port: 2222, known: '[::1]:2222' });
  for (const notSsh of ['https://github.com/acme/shop.git', '/srv/src/shop', './a:b', 'file:///srv/x', 'git://host/x.git']) {
    assert.is(sshRemote(notSsh), undefined, notSsh);
    assert.is(looksLikeSsh(notSsh), false, notSsh);
  }
  // ssh, but not a host a message could name plainly: refused.
  for (const odd of ['ssh://git@-oProxyCommand=x/y', 'ssh://git@ho%st/x', 'ssh://git@host:99999/x', 'git@ho$t:x']) {
    assert.is(sshRemote(odd), undefined, odd);
    assert.is(looksLikeSsh(odd), true, odd);
  }
});

type St = { uid: number; mode: number; file?: boolean; dir?: boolean; link?: boolean };
const fake = (tree: Record<string, St>): Lstat => (p) => {
  const s = tree[p] ?? (p === '/' || p === '/etc' ? { uid: 0, mode: 0o755, dir: true } : undefined);
  if (!s) return undefined;
  return { uid: s.uid, mode: s.mode, isFile: () => Boolean(s.file), isDirectory: () => Boolean(s.dir), isSymbolicLink: () => Boolean(s.link) };
};
const dir = { uid: 0, mode: 0o755, dir: true };
const KEY = '/etc/cutover/shop.key';
const guardKey = (st: St | undefined, parent: St = dir) =>
  assertGuarded({ file: KEY, kind: 'key', setting: 'deploy_key in the manifest' }, fake({ '/etc/cutover': parent, ...(st ? { [KEY]: st } : {}) }));

function refused(fn: () => void, ...res: RegExp[]): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, OperationError);
    assert.is((e as OperationError).exitCode, ExitCode.failed);
    const text = `${(e as Error).message}\n${(e as OperationError).hint}`;
    for (const re of res) assert.match(text, re);
    return;
  }
  assert.unreachable('accepted');
}

test('the deploy key must be a plain file of root, readable by root only, in directories only root can change', () => {
  guardKey({ uid: 0, mode: 0o100600, file: true });
  guardKey({ uid: 0, mode: 0o100400, file: true });
  guardKey({ uid: 0, mode: 0o100600, file: true }, { uid: 0, mode: 0o700, dir: true });
  refused(() => guardKey(undefined), /\/etc\/cutover\/shop\.key .* does not exist/, /ssh-keygen -t ed25519/, /shop\.key\.pub/, /provision/);
  refused(() => guardKey({ uid: 0, mode: 0o100644, file: true }), /mode 0644: users other than root can read it/, /chmod 600 \/etc\/cutover\/shop\.key/, /make a new key/);
  refused(() => guardKey({ uid: 0, mode: 0o100640, file: true }), /mode 0640/, /chmod 600/);
  refused(() => guardKey({ uid: 0, mode: 0o100606, file: true }), /can change it/);
  refused(() => guardKey({ uid: 1000, mode: 0o100600, file: true }), /owned by uid 1000, not root/, /chown root:root \/etc\/cutover\/shop\.key/);
  refused(() => guardKey({ uid: 0, mode: 0o120777, link: true }), /is a symlink/);
  refused(() => guardKey({ uid: 0, mode: 0o40700, dir: true }), /not a regular file/);
  refused(() => guardKey({ uid: 0, mode: 0o100600, file: true }, { uid: 0, mode: 0o777, dir: true }), /directory \/etc\/cutover.*writable by users other than root \(mode 0777\)/, /install -d/);
  refused(() => guardKey({ uid: 0, mode: 0o100600, file: true }, { uid: 33, mode: 0o755, dir: true }), /directory \/etc\/cutover.*owned by uid 33/);
  refused(() => guardKey({ uid: 0, mode: 0o100600, file: true }, { uid: 0, mode: 0o777, link: true }), /directory \/etc\/cutover.*is a symlink/);
});

test('known_hosts may be read by all but changed by root only; a missing one says to provision', () => {
  const KH = '/etc/cutover/shop.known_hosts';
  const guard = (st?: St) => assertGuarded({ file: KH, kind: 'known_hosts', setting: 'known_hosts in the manifest' }, fake({ '/etc/cutover': dir, ...(st ? { [KH]: st } : {}) }));
  guard({ uid: 0, mode: 0o100644, file: true });
  refused(() => guard(undefined), /not pinned/, /Run provision/);
  refused(() => guard({ uid: 0, mode: 0o100664, file: true }), /mode 0664: users other than root can change whom cutover trusts/, /chmod 644/);
  refused(() => guard({ uid: 1000, mode: 0o100644, file: true }), /owned by uid 1000/, /trust another server/);
});

const access: SshAccess = { remote: sshRemote('ssh://git@127.0.0.1:4622/r.git')!, key: KEY, knownHosts: '/srv/shop/known_hosts', knownHostsSetting: 'x' };
const good = fake({ '/etc/cutover': dir, [KEY]: { uid: 0, mode: 0o100600, file: true }, '/srv': dir, '/srv/shop': { uid: 0, mode: 0o750, dir: true }, '/srv/shop/known_hosts': { uid: 0, mode: 0o100644, file: true } });

test("git's environment: the kit's wrapper as GIT_SSH_COMMAND, the paths and strict checking (accept-new only when pinning); no key content", () => {
  const a = gitAccess(access, { lstat: good });
  assert.equal(a.env, { GIT_SSH_COMMAND: GIT_SSH_WRAPPER, GIT_SSH_VARIANT: 'ssh', CUTOVER_SSH_KEY: KEY, CUTOVER_KNOWN_HOSTS: '/srv/shop/known_hosts', CUTOVER_SSH_CHECK: 'yes' });
  const p = gitAccess(access, { lstat: good, pinning: { into: '/srv/shop/known_hosts.cutover-pin' } });
  assert.is(p.env.CUTOVER_SSH_CHECK, 'accept-new');
  assert.is(p.env.CUTOVER_KNOWN_HOSTS, '/srv/shop/known_hosts.cutover-pin');
  assert.ok(fs.statSync(GIT_SSH_WRAPPER).mode & 0o111, 'the wrapper is executable');
  // Without a deploy key: git's defaults, nothing checked.
  assert.equal(remoteAccessFor({ repo: 'https://x/y.git' }, { knownHosts: '/nowhere' }).env, {});
});

test('a path ssh or a shell would read as more than a name is refused before anything runs', () => {
  for (const bad of ['/etc/cutover/a b.key', '/etc/cutover/%h.key', '/etc/cutover/$HOME.key', '/etc/cutover/a;b', '/etc/cutover/`x`']) {
    refused(() => gitAccess({ ...access, key: bad }, { lstat: good }), /characters that ssh or a shell would read/, /letters, digits and \. _ - @ \+ \//);
    refused(() => gitAccess({ ...access, knownHosts: bad }, { lstat: good }), /characters/);
  }
});

test("ssh's failures in words: a changed host key names the host, the pinned file and the re-pin; an unknown host says provision; a refused key says add the .pub", () => {
  const changed = explainSshFailure(access, '@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nIt is also possible that a host key has just been changed.\nThe fingerprint for the ED25519 key sent by the remote host is\nSHA256:q0Yx3Zb+AbC/12=.\nHost key verification failed.\nfatal: Could not read from remote repository.')!;
  assert.match(changed.message, /ssh host key of \[127\.0\.0\.1\]:4622 is not the one pinned in \/srv\/shop\/known_hosts/);
  assert.match(changed.message, 'It now presents ED25519 SHA256:q0Yx3Zb+AbC/12=. Nothing');
  assert.match(changed.message, /Nothing was fetched or changed/);
  assert.match(changed.hint!, /ssh-keygen -R '\[127\.0\.0\.1\]:4622' -f \/srv\/shop\/known_hosts/);
  assert.match(changed.hint!, /provision/);
  const unknown = explainSshFailure(access, 'No ED25519 host key is known for [127.0.0.1]:4622 and you have requested strict checking.\nHost key verification failed.')!;
  assert.match(unknown.message, /is not pinned in \/srv\/shop\/known_hosts/);
  assert.match(unknown.hint!, /Run provision/);
  const denied = explainSshFailure(access, 'git@127.0.0.1: Permission denied (publickey).\nfatal: Could not read from remote repository.')!;
  assert.match(denied.message, /did not accept the deploy key \/etc\/cutover\/shop\.key/);
  assert.match(denied.hint!, /shop\.key\.pub .* deploy key with read access/);
  assert.is(explainSshFailure(access, "fatal: '/r.git' does not appear to be a git repository"), undefined);
});

const base = 'app: shop\nstart: node server.js\n';
const problems = (yaml: string) => manifestProblems(base + yaml, 'm.yaml').join('\n');

test('the manifest: deploy_key and known_hosts are plain absolute paths outside the root, deploy_key needs an ssh repo, known_hosts needs deploy_key', () => {
  const m = parseManifest(base + 'repo: git@github.com:acme/shop.git\ndeploy_key: /etc/cutover/shop.key\n', 'm.yaml');
  assert.is(m.deploy_key, '/etc/cutover/shop.key');
  assert.is(m.known_hosts, undefined);
  parseManifest(base + 'repo: ssh://git@h:2222/x.git\ndeploy_key: /etc/cutover/shop.key\nknown_hosts: /etc/cutover/shop.known_hosts\n', 'm.yaml');
  assert.match(problems('repo: https://github.com/acme/shop.git\ndeploy_key: /etc/cutover/shop.key\n'), /m\.yaml:4: deploy_key: is used only over ssh, but repo 'https:\/\/github\.com\/acme\/shop\.git' is not an ssh URL/);
  assert.match(problems('repo: ssh://git@ho%st/x.git\ndeploy_key: /etc/cutover/shop.key\n'), /deploy_key: is for an ssh repository, but the host in repo/);
  assert.match(problems('repo: git@h:x.git\ndeploy_key: etc/shop.key\n'), /deploy_key: must be an absolute path made of letters, digits/);
  assert.match(problems('repo: git@h:x.git\ndeploy_key: /etc/cutover/my key\n'), /deploy_key: must be an absolute path .*ssh expands % and \$ and splits on spaces/);
  assert.match(problems('repo: git@h:x.git\ndeploy_key: /etc/cutover/%h.key\n'), /deploy_key: must be an absolute path/);
  assert.match(problems('repo: git@h:x.git\ndeploy_key: /etc/cutover/../shadow\n'), /deploy_key: must be written plainly/);
  assert.match(problems('repo: git@h:x.git\ndeploy_key: /usr/local/src/shop/shared/key\n'), /deploy_key: is inside the app's root \/usr\/local\/src\/shop/);
  assert.match(problems('repo: git@h:x.git\nroot: /srv/shop\ndeploy_key: /srv/shop/k\n'), /deploy_key: is inside the app's root \/srv\/shop/);
  assert.match(problems('repo: git@h:x.git\nknown_hosts: /etc/cutover/kh\n'), /known_hosts: is used only with deploy_key/);
  assert.match(problems('repo: git@h:x.git\ndeploy_key: /etc/cutover/k\nknown_hosts: /usr/local/src/shop/known_hosts\n'), /known_hosts: is inside the app's root .*or leave known_hosts out: provision then keeps the pin in \/usr\/local\/src\/shop\/known_hosts/);
});

test('the wrapper hands ssh each path as one argv word (no shell splitting) with strict checking, and refuses to run without cutover', () => {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'cutover-fake-ssh-'));
  try {
    fs.writeFileSync(path.join(bin, 'ssh'), '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n', { mode: 0o755 });
    const env = { PATH: `${bin}:/usr/bin:/bin`, CUTOVER_SSH_KEY: '/k/a b;$(touch /tmp/x)', CUTOVER_KNOWN_HOSTS: '/kh', CUTOVER_SSH_CHECK: 'yes' };
    const r = spawnSync(GIT_SSH_WRAPPER, ['-p', '22', 'git@h', "git-upload-pack '/r.git'"], { env, encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    const argv = r.stdout.split('\n').slice(0, -1);
    assert.equal(argv.slice(0, 2), ['-i', '/k/a b;$(touch /tmp/x)']);
    for (const o of ['IdentitiesOnly=yes', 'BatchMode=yes', 'StrictHostKeyChecking=yes', 'UserKnownHostsFile=/kh', 'GlobalKnownHostsFile=/dev/null', 'UpdateHostKeys=no']) {
      assert.ok(argv.includes(o), `ssh gets -o ${o}: ${argv.join(' ')}`);
    }
    assert.equal(argv.slice(-3), ['-p', '22', 'git@h', "git-upload-pack '/r.git'"].slice(-3));
    const pin = spawnSync(GIT_SSH_WRAPPER, ['h'], { env: { ...env, CUTOVER_SSH_CHECK: 'accept-new' }, encoding: 'utf8' });
    assert.ok(pin.stdout.split('\n').includes('StrictHostKeyChecking=accept-new'));
    const loose = spawnSync(GIT_SSH_WRAPPER, ['h'], { env: { ...env, CUTOVER_SSH_CHECK: 'no' }, encoding: 'utf8' });
    assert.is(loose.status, 2, 'CUTOVER_SSH_CHECK=no is refused');
    const bare = spawnSync(GIT_SSH_WRAPPER, ['h'], { env: { PATH: env.PATH }, encoding: 'utf8' });
    assert.is.not(bare.status, 0);
    assert.match(bare.stderr, /CUTOVER_SSH_KEY/);
  } finally {
    fs.rmSync(bin, { recursive: true, force: true });
  }
});

test.run();
