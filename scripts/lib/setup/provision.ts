// Provision: make a host ready for the manifest's app (packages, user, layout, units, cron); each step checks before it changes.
import fs from 'node:fs';
import path from 'node:path';
import { $ } from 'zx/core';
import { OperationError } from '../run/errors.ts';
import { kitPaths } from '../run/kit.ts';
import type { Context } from '../state/context.ts';
import { renderSocket, renderUnits, type RenderedFile } from '../host/units.ts';
import { daemonReload, enablement, resetFailed, serviceControlEnabled, systemctl, unitState } from '../host/systemd.ts';
import { liveRelease } from '../state/switch.ts';
import { BOOT_SLOT } from '../manifest/paths.ts';
import { liveSlot, slotStates } from '../host/slots.ts';
import { startSlot, waitUntilSlotServes } from '../golive/cutover.ts';
import { healthGate } from '../golive/health.ts';

/** What provision did (or, with --dry-run, would do): one line per change. */
export type Changes = string[];

/**
 * Debian packages a runtime needs; a command already on PATH counts as present. For Python that is
 * python3 and its venv module (a venv brings its own pip), not a system-wide pip. zstd: a host then takes a
 * `.tar.zst` release archive (the Ansible rollout's choice when every host has it), whose inflate costs
 * the host ≈ a quarter of Node 18's gunzip.
 */
export function packagesFor(runtime: 'node' | 'python'): { command: string; pkg: string }[] {
  const common = [{ command: 'git', pkg: 'git' }, { command: 'flock', pkg: 'util-linux' }, { command: 'zstd', pkg: 'zstd' }];
  return runtime === 'node'
    ? [...common, { command: 'node', pkg: 'nodejs' }, { command: 'npm', pkg: 'npm' }]
    : [...common, { command: 'python3', pkg: 'python3' }, { command: 'pyvenv', pkg: 'python3-venv' }];
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => fs.existsSync(path.join(d, command)));
}

async function dpkgInstalled(pkg: string): Promise<boolean> {
  const p = await $({ quiet: true, nothrow: true })`dpkg-query -W -f=${'${Status}'} ${pkg}`;
  return p.stdout.includes('install ok installed');
}

export async function ensurePackages(ctx: Context, changes: Changes): Promise<void> {
  const missing: string[] = [];
  // A deploy key fetches over ssh: ssh and ssh-keygen (provision's first contact) come with openssh-client.
  const ssh = ctx.m.deploy_key ? [{ command: 'ssh', pkg: 'openssh-client' }] : [];
  for (const { command, pkg } of [...packagesFor(ctx.m.runtime), ...ssh]) {
    if (command === 'pyvenv' ? await dpkgInstalled(pkg) : onPath(command) || (await dpkgInstalled(pkg))) continue;
    missing.push(pkg);
  }
  if (missing.length === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await ctx.ops.run(['apt-get', 'update', '-qq'], { env, quiet: true });
  await ctx.ops.run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...missing], { env, quiet: true });
  changes.push(`installed ${missing.join(', ')} from the host's packages`);
}

async function uidOf(user: string): Promise<number | undefined> {
  const p = await $({ quiet: true, nothrow: true })`id -u ${user}`;
  return p.exitCode === 0 ? Number(p.stdout.trim()) : undefined;
}

export async function ensureUser(ctx: Context, changes: Changes): Promise<void> {
  const uid = await uidOf(ctx.m.user);
  if (uid === 0) throw new OperationError(`The user ${ctx.m.user} has uid 0: it is root under another name.`, 'Name an unprivileged user in the manifest.');
  if (uid !== undefined) return;
  await ctx.ops.run(['useradd', '--system', '--user-group', '--no-create-home', '--home-dir', ctx.paths.cache, '--shell', '/usr/sbin/nologin', ctx.m.user], { quiet: true });
  changes.push(`created the system user ${ctx.m.user}`);
}

/** Refuses a root whose existing part resolves elsewhere through a symlink. */
export function assertRootIsReal(root: string): void {
  let existing = root;
  while (!fs.existsSync(existing)) existing = path.dirname(existing);
  const real = fs.realpathSync(existing);
  if (real !== existing) {
    throw new OperationError(
      `The root ${root} goes through a symlink (${existing} is really ${real}).`,
      'Set root in the manifest to the real path; cutover never follows a path it did not validate.',
    );
  }
}

interface DirSpec {
  dir: string;
  mode: number;
  owner: string;
  /** The owning group; the owner's own group by default. */
  group?: string;
}

async function gidOf(group: string): Promise<number | undefined> {
  const p = await $({ quiet: true, nothrow: true })`getent group ${group}`;
  return p.exitCode === 0 ? Number(p.stdout.split(':')[2]) : undefined;
}

async function ensureDir(ctx: Context, spec: DirSpec, changes: Changes): Promise<void> {
  const st = fs.lstatSync(spec.dir, { throwIfNoEntry: false });
  if (st?.isSymbolicLink()) throw new OperationError(`${spec.dir} is a symlink; cutover will not follow it.`, 'Remove it, then provision again.');
  if (st && !st.isDirectory()) throw new OperationError(`${spec.dir} exists and is not a directory.`, 'Move it away, then provision again.');
  const group = spec.group ?? spec.owner;
  const uid = spec.owner === 'root' ? 0 : await uidOf(spec.owner);
  const gid = group === 'root' ? 0 : await gidOf(group);
  if (st && (st.mode & 0o7777) === spec.mode && (uid === undefined || st.uid === uid) && (gid === undefined || st.gid === gid)) return;
  if (!st) await ctx.ops.mkdir(spec.dir, spec.mode);
  await ctx.ops.chmod(spec.dir, spec.mode.toString(8));
  if (group === spec.owner) await ctx.ops.chown(spec.dir, spec.owner);
  else await ctx.ops.run(['chown', '--no-dereference', `${spec.owner}:${group}`, spec.dir], { quiet: true });
  const who = group === spec.owner ? spec.owner : `${spec.owner}:${group}`;
  changes.push(`${st ? 'fixed the owner and mode of' : 'created'} ${spec.dir} (${who}, ${spec.mode.toString(8)})`);
}

export async function ensureLayoutOwned(ctx: Context, changes: Changes): Promise<void> {
  const { paths, m } = ctx;
  assertRootIsReal(paths.root);
  for (const spec of [
    // Only root and the app's group may enter the root: other apps' users cannot read its code, mirror,
    // history or shared files (the releases themselves are world-readable once sealed).
    { dir: paths.root, mode: 0o750, owner: 'root', group: m.user },
    { dir: paths.releases, mode: 0o755, owner: 'root' },
    { dir: paths.shared, mode: 0o755, owner: 'root' },
    { dir: paths.cache, mode: 0o750, owner: m.user },
  ]) {
    await ensureDir(ctx, spec, changes);
  }
}

/** Creates missing shared paths for the app's user; never touches the content of one that exists. */
export async function ensureSharedPaths(ctx: Context, changes: Changes): Promise<void> {
  const { paths, m } = ctx;
  const rels = [...new Set([...m.shared, ...(m.env_file ? [m.env_file] : [])])];
  for (const rel of rels) {
    const target = paths.sharedTarget(rel);
    const isEnv = target === paths.envFile;
    const st = fs.lstatSync(target, { throwIfNoEntry: false });
    if (st?.isSymbolicLink()) throw new OperationError(`The shared path ${target} is a symlink; cutover will not follow it.`, 'Replace it with a real file or directory.');
    if (st) {
      if (isEnv && (st.mode & 0o077) !== 0) {
        await ctx.ops.chmod(target, '600');
        changes.push(`made ${target} readable by its owner only (0600): it holds secrets`);
      }
      continue;
    }
    for (let d = path.dirname(target); d !== paths.shared && !fs.existsSync(d); d = path.dirname(d)) {
      await ensureDir(ctx, { dir: d, mode: 0o755, owner: 'root' }, changes);
    }
    if (rel.endsWith('/')) await ctx.ops.mkdir(target, 0o750);
    else await ctx.ops.writeFile(target, '', isEnv ? 0o600 : 0o640);
    await ctx.ops.chown(target, m.user);
    changes.push(`created the shared ${rel.endsWith('/') ? 'directory' : 'file'} ${target}${isEnv ? ' (mode 0600: put the secrets there)' : ''}`);
  }
}

/** A unified diff of a file's current content against what provision would write. */
export async function diff(file: string, content: string): Promise<string> {
  const old = fs.existsSync(file) ? file : '/dev/null';
  const p = await $({ input: content, quiet: true, nothrow: true })`diff -u --label ${file} --label ${file + ' (new)'} ${old} -`;
  return p.stdout;
}

async function writeIfChanged(ctx: Context, f: RenderedFile, changes: Changes): Promise<boolean> {
  const current = fs.existsSync(f.path) ? fs.readFileSync(f.path, 'utf8') : undefined;
  const mode = current === undefined ? undefined : fs.statSync(f.path).mode & 0o7777;
  if (current === f.content && mode === f.mode) return false;
  if (ctx.dryRun) ctx.log.info((await diff(f.path, f.content)).trimEnd().replace(/^/gm, '    '));
  await ctx.ops.mkdir(path.dirname(f.path));
  await ctx.ops.writeFile(f.path, f.content, f.mode);
  changes.push(`${current === undefined ? 'wrote' : 'updated'} ${f.path}`);
  return true;
}

/** When the manifest no longer asks for a socket, removes the socket unit cutover wrote earlier (only if it is cutover's). */
async function removeStaleSocket(ctx: Context, changes: Changes): Promise<boolean> {
  const file = ctx.paths.socketUnitFile;
  if (ctx.m.socket || !fs.existsSync(file)) return false;
  if (!fs.readFileSync(file, 'utf8').includes('deployed by cutover')) {
    ctx.log.warn(`${file} exists but was not written by cutover: left alone.`);
    return false;
  }
  if (serviceControlEnabled()) await systemctl(ctx.ops, ['disable', '--now', '--quiet', ctx.paths.socketUnitName]);
  await ctx.ops.remove(file);
  changes.push(`removed ${file}: the manifest no longer asks for socket activation`);
  return true;
}

/**
 * An app provisioned by an older cutover runs as the single unit <app>.service. Hands its socket over to
 * slot a (started beside it, confirmed serving, then the old unit stops and drains), then disables and
 * removes the old unit file. Without a socket the old unit stops first. Only a file cutover wrote is touched.
 */
async function migrateLegacyUnit(ctx: Context, changes: Changes): Promise<void> {
  const file = ctx.paths.legacyUnitFile;
  if (!fs.existsSync(file)) return;
  if (!fs.readFileSync(file, 'utf8').includes('deployed by cutover')) {
    ctx.log.warn(`${file} exists but was not written by cutover: left alone.`);
    return;
  }
  const legacy = ctx.paths.legacyUnitName;
  const slot = ctx.paths.slotUnit(BOOT_SLOT);
  if ((await unitState(legacy)) === 'active') {
    if (!ctx.m.socket) await systemctl(ctx.ops, ['stop', legacy]);
    // Through the cut-over's own start: a failed state left by an earlier attempt is cleared first.
    const started = await startSlot(ctx, BOOT_SLOT);
    if (!ctx.dryRun) {
      const served = !started.ok ? started : ctx.m.socket ? await waitUntilSlotServes(ctx, BOOT_SLOT) : await healthGate(ctx.m, { port: ctx.m.port, cwd: ctx.paths.active, unit: slot });
      if (!served.ok) {
        // The socket first, so that no queued connection starts slot a again once it is stopped.
        if (ctx.m.socket) await pointSocketAt(ctx, legacy);
        await systemctl(ctx.ops, ['stop', slot]);
        await resetFailed(ctx.ops, [slot]);
        if (!ctx.m.socket) await systemctl(ctx.ops, ['start', legacy]);
        throw new OperationError(
          `Moving ${legacy} to ${slot} failed: ${served.detail}. ${legacy} ${ctx.m.socket ? `kept serving, and ${ctx.paths.socketUnitName} starts it again (not ${slot})` : 'was started again'}.`,
          `Look at \`journalctl -u ${slot}\`, fix the cause, and provision again.`,
        );
      }
    }
    await systemctl(ctx.ops, ['stop', legacy]);
    changes.push(`handed ${legacy} over to ${slot}${ctx.m.socket ? ' (the new process served before the old one stopped)' : ''}`);
  }
  await systemctl(ctx.ops, ['disable', '--quiet', legacy]);
  await ctx.ops.remove(file);
  await daemonReload(ctx.ops);
  changes.push(`removed ${file}: the app now runs as ${ctx.paths.unitTemplateName} (slots a and b)`);
}

/**
 * After a failed move, the socket unit (already rewritten to start slot a) would start slot a again at the
 * next connection it sees queued: it is pointed back at the old unit, which keeps the socket. The next
 * provision writes it afresh and tries the move again.
 */
async function pointSocketAt(ctx: Context, unit: string): Promise<void> {
  await ctx.ops.writeFile(ctx.paths.socketUnitFile, renderSocket(ctx.m, unit)!, 0o644);
  await daemonReload(ctx.ops);
}

async function isEnabled(unit: string): Promise<boolean> {
  return (await enablement(unit)) === 'enabled';
}

/** Writes the units and the cron entry, reloads systemd when a unit changed, and enables the units. */
export async function ensureUnits(ctx: Context, changes: Changes): Promise<void> {
  const files = renderUnits(ctx.m);
  let unitChanged = false;
  for (const f of files) {
    const changed = await writeIfChanged(ctx, f, changes);
    if (changed && f.path.endsWith('.service') || changed && f.path.endsWith('.socket')) unitChanged = true;
  }
  if (await removeStaleSocket(ctx, changes)) unitChanged = true;
  if (!serviceControlEnabled()) return;
  if (unitChanged) await daemonReload(ctx.ops);
  await migrateLegacyUnit(ctx, changes);
  const serving = liveSlot(await slotStates(ctx.paths));
  if (unitChanged && !ctx.dryRun && serving) {
    const live = liveRelease(ctx.paths);
    ctx.log.info(`    ${serving.unit} is running under its old unit until the next cutover${live ? `; to apply the change now: cutover activate ${live} --restart` : ''}`);
  }
  const units = [ctx.paths.slotUnit(BOOT_SLOT), ...(ctx.m.socket ? [ctx.paths.socketUnitName] : [])];
  for (const unit of units) {
    // Checked in a dry run too: a unit that is already enabled is not a change it would make.
    if (await isEnabled(unit)) continue;
    await systemctl(ctx.ops, ['enable', '--quiet', unit]);
    changes.push(`enabled ${unit}`);
  }
}

/** Where provision puts the `cutover` command on root's PATH. */
export const COMMAND_LINK = '/usr/local/bin/cutover';

/**
 * Links /usr/local/bin/cutover to this kit's bin/cutover, when that path is free or already a link to a
 * cutover kit's bin/cutover (say, a copy of the kit that moved); anything else there is left alone.
 */
export async function ensureCommandLink(ctx: Context, changes: Changes, link = COMMAND_LINK): Promise<void> {
  const target = path.join(kitPaths.dir, 'bin', 'cutover');
  const st = fs.lstatSync(link, { throwIfNoEntry: false });
  const current = st?.isSymbolicLink() ? fs.readlinkSync(link) : undefined;
  if (current === target) return;
  if (st && !(current && current.endsWith('/bin/cutover'))) {
    ctx.log.warn(`${link} exists and is not a link to a cutover kit: left as it is. Run the verbs as ${target}, or as npx tsx scripts/<verb>.ts.`);
    return;
  }
  await ctx.ops.mkdir(path.dirname(link));
  if (st) await ctx.ops.remove(link);
  await ctx.ops.symlink(target, link);
  changes.push(`linked ${link} -> ${target}${current ? ` (was ${current})` : ''}`);
}
