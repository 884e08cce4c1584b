// Provision's first contact with a private repository's server: pin the host key it presents (once), and check the deploy key opens the repository.
import fs from 'node:fs';
import { $ } from 'zx/core';
import type { Context } from '../state/context.ts';
import { assertGuarded, assertParentsGuarded, gitAccess, sshAccessOf, type SshAccess } from '../assemble/deploykey.ts';
import { contactRemote } from '../assemble/git.ts';
import type { Changes } from './provision.ts';

/** Whether a known_hosts file has a line for the server (`ssh-keygen -F`, which also reads hashed lines). */
async function hasPin(file: string, known: string): Promise<boolean> {
  if (!fs.existsSync(file)) return false;
  const p = await $({ quiet: true, nothrow: true })`ssh-keygen -F ${known} -f ${file}`;
  return p.exitCode === 0;
}

/** The fingerprints of the server's keys in a known_hosts file: "ED25519 SHA256:…", one per key. */
async function fingerprints(file: string, known: string): Promise<string[]> {
  const p = await $({ quiet: true, nothrow: true })`ssh-keygen -l -F ${known} -f ${file}`;
  return p.stdout
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(/\s+/).slice(1).join(' '));
}

/**
 * With a deploy key, before provision changes anything: the key must be there and root's alone, and a
 * known_hosts that exists must be root's to change, so a bad one stops provision with nothing done.
 */
export function checkDeployKeyFirst(ctx: Context): void {
  const a = sshAccessOf(ctx.m, ctx.paths);
  if (!a) return;
  assertGuarded({ file: a.key, kind: 'key', setting: 'deploy_key in the manifest' });
  if (fs.existsSync(a.knownHosts)) assertGuarded({ file: a.knownHosts, kind: 'known_hosts', setting: a.knownHostsSetting });
}

/**
 * With a deploy key: when the server's host key is not pinned yet, contacts the server once with
 * StrictHostKeyChecking=accept-new into a copy of the known_hosts file, then puts the copy in place
 * (rename) and reports the fingerprint. A key already pinned is never replaced here (a changed key is
 * refused by ssh even with accept-new): re-pinning is deleting the old line first, on purpose.
 */
export async function ensureHostKeyPinned(ctx: Context, changes: Changes): Promise<void> {
  const a = sshAccessOf(ctx.m, ctx.paths);
  if (!a) return;
  const file = a.knownHosts;
  const { known } = a.remote;
  if (fs.existsSync(file)) {
    assertGuarded({ file, kind: 'known_hosts', setting: a.knownHostsSetting });
    if (await hasPin(file, known)) {
      // Checked here too, so provision says at once when the key is missing or open to others.
      gitAccess(a);
      return;
    }
  } else if (!ctx.dryRun) {
    assertParentsGuarded({ file, kind: 'known_hosts', setting: a.knownHostsSetting });
  }
  if (ctx.dryRun) {
    gitAccess(a, { pinning: { into: file } });
    ctx.log.info(`    would contact ${known} and pin the ssh host key it presents in ${file} (first contact)`);
    changes.push(`pinned the ssh host key of ${known} in ${file} (first contact)`);
    return;
  }
  await pin(ctx, a, changes);
}

async function pin(ctx: Context, a: SshAccess, changes: Changes): Promise<void> {
  const file = a.knownHosts;
  const { known } = a.remote;
  const draft = `${file}.cutover-pin`;
  await ctx.ops.writeFile(draft, fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '', 0o644);
  let failure: unknown;
  try {
    await contactRemote(ctx.ops, ctx.m.repo, gitAccess(a, { pinning: { into: draft } }));
  } catch (e) {
    failure = e;
  }
  // The host key is the server's whether or not the deploy key was accepted: keep a pin ssh recorded.
  if (await hasPin(draft, known)) {
    await ctx.ops.chmod(draft, '644');
    await ctx.ops.rename(draft, file);
    const prints = await fingerprints(file, known);
    changes.push(
      `pinned the ssh host key of ${known} in ${file} (first contact): ${prints.join(', ')}; compare it with the fingerprint your git server publishes`,
    );
  } else {
    await ctx.ops.remove(draft);
  }
  if (failure) throw failure;
}
