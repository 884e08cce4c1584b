// The bare mirror of the app's repository: fetch it, resolve a ref to one commit, export a tree.
import fs from 'node:fs';
import { $ } from 'zx/core';
import { OperationError, UsageError, type CutoverError } from '../run/errors.ts';
import type { Ops } from '../run/ops.ts';
import { printable } from '../manifest/paths.ts';

const gitEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true', LC_ALL: 'C' };

/**
 * A ref as the operator may give it: a hash, a tag or a branch. Refuses anything git could read as
 * an option, a revision expression (`a..b`, `x^`, `HEAD:path`) or a path, before git sees it.
 */
export function assertRefSyntax(ref: string): string {
  const problem =
    ref === '' ? 'is empty'
    : ref.startsWith('-') ? 'starts with "-" (git would read it as an option)'
    : /[\x00-\x20\x7f-\x9f\u2028\u2029]/.test(ref) ? 'contains spaces or control characters'
    : /[~^:?*[\\{}]|\.\.|\/\/|\/$|^\/|\.lock$|\.$|^@$/.test(ref) ? 'is not a plain commit hash, tag or branch name'
    : ref.length > 255 ? 'is too long'
    : undefined;
  if (problem) {
    throw new UsageError(
      `The ref "${printable(ref)}" ${problem}.`,
      'Give a commit hash (full or abbreviated), a tag or a branch name, e.g. `release 3f2a9c1` or `release main`.',
    );
  }
  return ref;
}

/** How git reaches the repository: the plain environment, or a deploy key's (deploykey.ts gitAccess). */
export interface RemoteAccess {
  env: Record<string, string>;
  /** An error that says what to do, for git's failure output (a changed host key, a refused key), or undefined. */
  explain(output: string): CutoverError | undefined;
}

/** A public repository's access: git's own defaults, no prompts. */
export const plainAccess: RemoteAccess = { env: {}, explain: () => undefined };

function envOf(access: RemoteAccess): Record<string, string> {
  if (Object.keys(access.env).length === 0) return gitEnv;
  // GIT_SSH_COMMAND from the access wins over root's own; GIT_SSH is dropped so nothing else names an ssh.
  const { GIT_SSH: _ignored, ...rest } = gitEnv as Record<string, string>;
  return { ...rest, ...access.env };
}

/** Runs a git command that talks to the repository; a failure ssh explains becomes that explanation. */
async function talk(ops: Ops, argv: string[], access: RemoteAccess): Promise<void> {
  // In /, not the caller's directory: a repository around it must not lend git its config.
  await ops.run(argv, { quiet: true, env: envOf(access), cwd: '/', explain: access.explain });
}

/** Clones the mirror on first use (into a temp dir, renamed when complete), else fetches it. */
export async function fetchMirror(ops: Ops, repoUrl: string, mirror: string, access: RemoteAccess = plainAccess): Promise<void> {
  if (fs.existsSync(mirror)) {
    // Only a changed URL is written, and the mirror keeps no FETCH_HEAD: a fetch that fails leaves the mirror as it was.
    const current = await git(mirror, ['config', '--get', 'remote.origin.url']);
    if (current.exitCode !== 0 || current.stdout.replace(/\n$/, '') !== repoUrl) {
      await ops.run(['git', '--git-dir', mirror, 'remote', 'set-url', 'origin', '--', repoUrl], { quiet: true, env: gitEnv });
    }
    await talk(ops, ['git', '--git-dir', mirror, 'fetch', '--prune', '--prune-tags', '--force', '--quiet', '--no-write-fetch-head', 'origin'], access);
    return;
  }
  const partial = `${mirror}.partial`;
  await ops.remove(partial);
  await talk(ops, ['git', 'clone', '--mirror', '--quiet', '--', repoUrl, partial], access);
  await ops.rename(partial, mirror);
}

/** Asks the repository for its refs (`git ls-remote --heads`) and changes nothing but what ssh records with accept-new: provision's first contact. */
export async function contactRemote(ops: Ops, repoUrl: string, access: RemoteAccess): Promise<void> {
  await talk(ops, ['git', 'ls-remote', '--heads', '--', repoUrl], access);
}

async function git(mirror: string, args: string[]) {
  return $({ env: gitEnv, quiet: true, nothrow: true })`git --git-dir ${mirror} ${args}`;
}

/** Resolves a ref in the mirror to one full commit hash; unknown, ambiguous or unreachable refs are errors. */
export async function resolveRef(mirror: string, ref: string): Promise<string> {
  assertRefSyntax(ref);
  const branch = await git(mirror, ['rev-parse', '--verify', '--quiet', `refs/heads/${ref}^{commit}`]);
  const tag = await git(mirror, ['rev-parse', '--verify', '--quiet', `refs/tags/${ref}^{commit}`]);
  const b = branch.exitCode === 0 ? branch.stdout.trim() : undefined;
  const t = tag.exitCode === 0 ? tag.stdout.trim() : undefined;
  if (b && t && b !== t) {
    throw new UsageError(
      `The ref "${ref}" is ambiguous: branch ${ref} is at ${b.slice(0, 12)} but tag ${ref} is at ${t.slice(0, 12)}.`,
      `Release the commit hash you mean instead.`,
    );
  }
  if (b || t) return (b ?? t)!;
  if (!/^[0-9a-f]{4,40}$/.test(ref)) {
    throw new UsageError(`No branch or tag named "${ref}" in the app's repository.`, 'Check the name, or push it first; `git ls-remote <repo>` lists what there is.');
  }
  const hash = await git(mirror, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`]);
  if (hash.exitCode !== 0) {
    const all = await git(mirror, ['rev-parse', '--disambiguate=' + ref]);
    const n = all.stdout.trim().split('\n').filter(Boolean).length;
    if (n > 1) {
      throw new UsageError(`The abbreviated hash "${ref}" is ambiguous: ${n} objects start with it.`, 'Give more digits of the hash.');
    }
    throw new UsageError(`No commit "${ref}" in the app's repository.`, 'Check the hash; `git log` in your checkout shows it, and it must be pushed.');
  }
  const commit = hash.stdout.trim();
  const reachable = await git(mirror, ['for-each-ref', '--count=1', '--contains', commit, 'refs/heads', 'refs/tags']);
  if (!reachable.stdout.trim()) {
    throw new UsageError(
      `Commit ${commit.slice(0, 12)} is on no branch or tag of the app's repository (it may have been force-pushed away).`,
      'Release a commit that a branch or tag contains.',
    );
  }
  return commit;
}

/**
 * Resolves a branch or tag by asking the repository itself (`git ls-remote`), without changing anything:
 * for --dry-run, whose mirror is not fetched. An annotated tag gives the commit it points at, not the tag
 * object; a branch and a tag of that name at different commits are ambiguous, as in resolveRef.
 * Undefined when the repository has no such branch or tag (e.g. the ref is a hash).
 */
export async function resolveRemote(repoUrl: string, ref: string, access: RemoteAccess = plainAccess): Promise<string | undefined> {
  assertRefSyntax(ref);
  const p = await $({ env: envOf(access), cwd: '/', quiet: true, nothrow: true })`git ls-remote -- ${repoUrl} ${'refs/heads/' + ref} ${'refs/tags/' + ref + '^{}'} ${'refs/tags/' + ref}`;
  if (p.exitCode !== 0) throw access.explain(p.stderr) ?? new OperationError(`Cannot reach the app's repository: ${p.stderr.trim()}`);
  const refs = new Map(
    p.stdout.trim().split('\n').filter(Boolean).map((l) => {
      const [hash, name] = l.split('\t');
      return [name, hash] as const;
    }),
  );
  const b = refs.get(`refs/heads/${ref}`);
  const t = refs.get(`refs/tags/${ref}^{}`) ?? refs.get(`refs/tags/${ref}`);
  if (b && t && b !== t) {
    throw new UsageError(
      `The ref "${ref}" is ambiguous: branch ${ref} is at ${b.slice(0, 12)} but tag ${ref} is at ${t.slice(0, 12)}.`,
      `Release the commit hash you mean instead.`,
    );
  }
  return b ?? t;
}

/** Writes the commit's tree into an empty directory: `git archive | tar -x`, nothing else of git. */
export async function exportTree(ops: Ops, mirror: string, commit: string, dir: string): Promise<void> {
  await ops.pipe(
    ['git', '--git-dir', mirror, 'archive', '--format=tar', commit],
    ['tar', '-x', '-C', dir, '--no-same-owner', '--no-same-permissions', '--no-overwrite-dir'],
    { env: gitEnv },
  );
}
