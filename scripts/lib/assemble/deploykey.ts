// Private repositories: the deploy key and the pinned host key every fetch of an ssh repository uses, checked before git runs.
import fs from 'node:fs';
import path from 'node:path';
import { CutoverError, OperationError } from '../run/errors.ts';
import type { Manifest } from '../manifest/types.ts';
import { kitPaths } from '../run/kit.ts';
import type { AppPaths } from '../manifest/paths.ts';
import { sshRemote, type SshRemote } from '../manifest/repo-url.ts';

/**
 * The only characters a deploy key's or known_hosts' path may have. ssh expands `%` and `${…}` in
 * both and splits UserKnownHostsFile on spaces, and a shell would read much more: paths of these
 * characters mean the same to git, the shell, ssh and the reader of a message.
 */
export const SAFE_PATH = /^\/[A-Za-z0-9._@+/-]+$/;

/** The kit's ssh wrapper: git runs it (GIT_SSH_COMMAND), and it execs ssh with the key and known_hosts as argv words. */
export const GIT_SSH_WRAPPER = path.join(kitPaths.scripts, 'git-ssh.sh');

/** What lstat tells about a path; a test passes its own. */
export type Lstat = (p: string) => Pick<fs.Stats, 'uid' | 'mode' | 'isFile' | 'isDirectory' | 'isSymbolicLink'> | undefined;
const realLstat: Lstat = (p) => fs.lstatSync(p, { throwIfNoEntry: false });

/** Which file a check is about, for its messages. */
export interface GuardedFile {
  file: string;
  /** 'key': readable by root only; 'known_hosts': writable by root only (it decides whom the fetch trusts). */
  kind: 'key' | 'known_hosts';
  /** The manifest key that names it, or how cutover chose it. */
  setting: string;
}

const mode = (m: number) => '0' + (m & 0o7777).toString(8);

/**
 * Refuses a deploy key or known_hosts file that someone other than root could read (the key) or change
 * (either), through the file itself, a symlink or a directory above it. The key's content is never read here.
 */
export function assertGuarded(g: GuardedFile, lstat: Lstat = realLstat): void {
  const what = g.kind === 'key' ? `The deploy key ${g.file} (${g.setting})` : `The known_hosts file ${g.file} (${g.setting})`;
  const st = lstat(g.file);
  if (!st) {
    throw g.kind === 'key'
      ? new OperationError(`${what} does not exist: nothing was fetched or changed.`, makeKeyHint(g.file))
      : new OperationError(
          `${what} does not exist, so the server's host key is not pinned: cutover will not fetch from a server it cannot recognise. Nothing was changed.`,
          'Run provision, which records the host key on first contact (and says its fingerprint), or put the server\'s known_hosts line in that file yourself.',
        );
  }
  if (st.isSymbolicLink()) {
    throw new OperationError(`${what} is a symlink; cutover reads it only as a plain file, never through a link. Nothing was changed.`, `Put the file itself at ${g.file} (owned by root, mode 0600).`);
  }
  if (!st.isFile()) throw new OperationError(`${what} is not a regular file. Nothing was changed.`, `Put the file itself at ${g.file}.`);
  const fix = g.kind === 'key' ? `\`chown root:root ${g.file} && chmod 600 ${g.file}\`` : `\`chown root:root ${g.file} && chmod 644 ${g.file}\``;
  if (st.uid !== 0) {
    throw new OperationError(`${what} is owned by uid ${st.uid}, not root: its owner could ${g.kind === 'key' ? 'read or replace it' : 'make cutover trust another server'}. Nothing was changed.`, `Run ${fix}, then try again.`);
  }
  const loose = g.kind === 'key' ? st.mode & 0o077 : st.mode & 0o022;
  if (loose) {
    throw new OperationError(
      g.kind === 'key'
        ? `${what} has mode ${mode(st.mode)}: users other than root can ${st.mode & 0o022 ? 'change' : 'read'} it. Nothing was changed.`
        : `${what} has mode ${mode(st.mode)}: users other than root can change whom cutover trusts. Nothing was changed.`,
      `Run \`chmod ${g.kind === 'key' ? '600' : '644'} ${g.file}\`, then try again${g.kind === 'key' ? '; if others could read it, they may have a copy: make a new key and replace the deploy key' : ''}.`,
    );
  }
  assertParentsGuarded(g, lstat);
}

/** Refuses a file whose directories (up to /) someone other than root could change: they could swap the file. A missing one is refused too. */
export function assertParentsGuarded(g: GuardedFile, lstat: Lstat = realLstat): void {
  for (let dir = path.dirname(g.file); ; dir = path.dirname(dir)) {
    const d = lstat(dir);
    if (!d || !d.isDirectory() || d.isSymbolicLink() || d.uid !== 0 || (d.mode & 0o022) !== 0) {
      const why = !d ? 'does not exist' : d.isSymbolicLink() ? 'is a symlink' : !d.isDirectory() ? 'is not a directory' : d.uid !== 0 ? `is owned by uid ${d.uid}` : `is writable by users other than root (mode ${mode(d.mode)})`;
      throw new OperationError(
        `The directory ${dir}, above ${g.kind === 'key' ? 'the deploy key' : 'the known_hosts file'} ${g.file}, ${why}${d ? ': someone other than root could swap the file' : ''}. Nothing was changed.`,
        `Keep the file in a directory that only root can change (e.g. /etc/cutover: \`install -d -m 755 -o root -g root /etc/cutover\`).`,
      );
    }
    if (path.dirname(dir) === dir) break;
  }
}

/** How to make and install a deploy key, for the message that finds none. */
export function makeKeyHint(file: string): string {
  return [
    `Make one on the host: \`install -d -m 700 -o root ${path.dirname(file)} && ssh-keygen -t ed25519 -N '' -C cutover-deploy -f ${file}\`,`,
    `add ${file}.pub to the repository as a read-only deploy key, then run provision (it pins the server's host key) and release again.`,
  ].join('\n');
}

/** The deploy key and known_hosts an app's fetches use, when its manifest has a deploy key. */
export interface SshAccess {
  remote: SshRemote;
  key: string;
  knownHosts: string;
  /** Where each path comes from, for messages. */
  knownHostsSetting: string;
}

/** The app's ssh access (paths only; nothing checked yet), or undefined for an app without a deploy key. */
export function sshAccessOf(m: Pick<Manifest, 'repo' | 'deploy_key' | 'known_hosts'>, paths: Pick<AppPaths, 'knownHosts'>): SshAccess | undefined {
  if (!m.deploy_key) return undefined;
  const remote = sshRemote(m.repo);
  // The manifest check refuses a deploy key with a repo that is not ssh; this is the same rule, for a caller that skipped it.
  if (!remote) throw new OperationError(`The manifest has deploy_key but its repo ${m.repo} is not an ssh URL.`, 'Write repo as ssh://git@host/owner/app.git or git@host:owner/app.git.');
  return { remote, key: m.deploy_key, knownHosts: paths.knownHosts, knownHostsSetting: m.known_hosts ? 'known_hosts in the manifest' : "the pinned host keys provision keeps in the app's root" };
}

/** What git needs in its environment for this access: the wrapper, and the two paths and the check mode for it. */
export interface GitAccess {
  env: Record<string, string>;
  /** Turns git's failure output into an error that says what to do, or undefined when it is something else. */
  explain(output: string): CutoverError | undefined;
}

/**
 * Checks the key and the pinned host keys (before git runs, so a bad one changes nothing), and gives git's
 * environment for them. `pinning` (provision, first contact): known_hosts is written by ssh, so its
 * absence is not an error, and an unknown host is accepted into `knownHosts` instead (accept-new).
 */
export function gitAccess(a: SshAccess, opts: { pinning?: { into: string }; lstat?: Lstat } = {}): GitAccess {
  for (const p of [a.key, a.knownHosts, opts.pinning?.into, GIT_SSH_WRAPPER]) {
    if (p !== undefined && !SAFE_PATH.test(p)) {
      throw new OperationError(
        `The path ${JSON.stringify(p)} has characters that ssh or a shell would read as more than a name.`,
        'Use paths made of letters, digits and . _ - @ + / only (for the kit too: e.g. /opt/cutover).',
      );
    }
  }
  try {
    fs.accessSync(GIT_SSH_WRAPPER, fs.constants.X_OK);
  } catch {
    throw new OperationError(`The kit's ssh wrapper ${GIT_SSH_WRAPPER} is missing or not executable, so git cannot fetch with the deploy key.`, `Copy the kit again with its file modes (rsync -a, or tar), or run \`chmod 755 ${GIT_SSH_WRAPPER}\`.`);
  }
  assertGuarded({ file: a.key, kind: 'key', setting: 'deploy_key in the manifest' }, opts.lstat);
  if (!opts.pinning) assertGuarded({ file: a.knownHosts, kind: 'known_hosts', setting: a.knownHostsSetting }, opts.lstat);
  return {
    env: {
      // A path of SAFE_PATH's characters: git runs it without a shell (it has no shell characters),
      // and it would mean the same through one. It overrides any core.sshCommand or GIT_SSH of root's.
      GIT_SSH_COMMAND: GIT_SSH_WRAPPER,
      GIT_SSH_VARIANT: 'ssh',
      CUTOVER_SSH_KEY: a.key,
      CUTOVER_KNOWN_HOSTS: opts.pinning?.into ?? a.knownHosts,
      CUTOVER_SSH_CHECK: opts.pinning ? 'accept-new' : 'yes',
    },
    explain: (output) => explainSshFailure(a, output),
  };
}

/** The sentence and the fix for what ssh said when a fetch failed: a changed or unknown host key, a refused or unreadable key. */
export function explainSshFailure(a: SshAccess, output: string): CutoverError | undefined {
  const { known } = a.remote;
  const kh = a.knownHosts;
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for \S+ has changed/.test(output)) {
    // ssh names the key it was offered: "The fingerprint for the ED25519 key sent by the remote host is\nSHA256:…."
    const offered = /fingerprint for the (\S+) key sent by the remote host is\s+(SHA256:[A-Za-z0-9+/=]+)/.exec(output);
    return new OperationError(
      `The ssh host key of ${known} is not the one pinned in ${kh}: the server's key changed, or something between this host and it is not the server.${offered ? ` It now presents ${offered[1]} ${offered[2]}.` : ''} Nothing was fetched or changed.`,
      [
        `If the server's key was changed on purpose, check its new fingerprint with whoever runs the server, then re-pin deliberately:`,
        `\`ssh-keygen -R '${known}' -f ${kh}\` removes the old pin, and provision records the key it meets next (and prints its fingerprint).`,
      ].join('\n'),
    );
  }
  if (/Host key verification failed|host key is known for|No .* host key is known/.test(output)) {
    return new OperationError(
      `The ssh host key of ${known} is not pinned in ${kh}, and cutover only fetches from a server it recognises. Nothing was fetched or changed.`,
      `Run provision, which pins the host key on first contact and prints its fingerprint, or add the server's known_hosts line to ${kh}.`,
    );
  }
  if (/Permission denied \(|Load key|invalid format|error in libcrypto|bad permissions/.test(output)) {
    return new OperationError(
      `The server ${known} did not accept the deploy key ${a.key} (or ssh could not load it). Nothing was fetched or changed.`,
      `Add ${a.key}.pub to the repository as a deploy key with read access (\`ssh-keygen -y -f ${a.key}\` prints it if the .pub is gone), then try again.`,
    );
  }
  return undefined;
}

/** The access every fetch of the app uses: its deploy key's (checked now, before anything changes), or git's defaults without one. */
export function remoteAccessFor(m: Pick<Manifest, 'repo' | 'deploy_key' | 'known_hosts'>, paths: Pick<AppPaths, 'knownHosts'>): GitAccess {
  const a = sshAccessOf(m, paths);
  return a ? gitAccess(a) : { env: {}, explain: () => undefined };
}
