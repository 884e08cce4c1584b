// Activation: check ready → (preflight) → switch the symlink → restart → health gate → record; undo on failure.
import { OperationError, UsageError } from './errors.ts';
import { healthGate } from './health.ts';
import { unitChangedSinceStart, journalTail, resetFailed, restart, serviceControlEnabled, unitState } from './systemd.ts';
import { liveRelease, switchActive } from './switch.ts';
import { formatDuration } from './log.ts';
import { history, record, releaseOnDisk, type Context } from './context.ts';
import { preflight } from './preflight.ts';
import { maskSecrets } from './secrets.ts';
import { activations, type ReleaseRecord } from './history.ts';

export type Via = 'release' | 'activate' | 'rollback';

const notReady: Record<string, string> = {
  building: 'is still being built',
  interrupted: 'was interrupted part-way through its build',
  failed: 'failed to build',
  bad: 'was marked bad',
  removed: 'was pruned',
};

/** Refuses any release that is not a complete, good build still on disk. */
export function assertActivatable(ctx: Context, id: string, rec: ReleaseRecord | undefined): ReleaseRecord {
  if (!rec) {
    throw new UsageError(`There is no release ${id}.`, '`npx tsx scripts/status.ts` lists the releases.');
  }
  if (rec.state !== 'ready') {
    throw new OperationError(
      `Release ${id} cannot be activated: it ${notReady[rec.state]}${rec.reason ? ` (${rec.reason})` : ''}.`,
      `Build it afresh with \`npx tsx scripts/release.ts ${rec.commit.slice(0, 12)} --rebuild\`.`,
    );
  }
  if (!releaseOnDisk(ctx, id)) {
    throw new OperationError(`Release ${id} is recorded as ready but its directory is gone.`, 'Release its commit again to rebuild it.');
  }
  return rec;
}

function gateTarget(ctx: Context, id: string) {
  const control = serviceControlEnabled();
  return { port: ctx.m.port, cwd: ctx.paths.release(id), unit: control ? ctx.paths.unitName : undefined };
}

function units(ctx: Context): string[] {
  return ctx.m.socket ? [ctx.paths.unitName, ctx.paths.socketUnitName] : [ctx.paths.unitName];
}

/** Switches to `id` and restarts; returns the gate's verdict. */
async function cutTo(ctx: Context, id: string) {
  await ctx.log.step(`switch active to ${id}`, () => switchActive(ctx.ops, ctx.paths, id));
  try {
    await ctx.log.step(`restart ${ctx.paths.unitName}`, async () => {
      await resetFailed(ctx.ops, units(ctx));
      await restart(ctx.ops, ctx.paths.unitName);
    });
  } catch (e) {
    // systemd refused the start (a socket that cannot bind, a unit that does not load): a failed
    // gate like any other, so the caller switches back instead of leaving `active` on this release.
    return { ok: false, detail: `the restart failed: ${(e as Error).message.split('\n').join(' ')}` };
  }
  if (ctx.dryRun) {
    ctx.log.info(`    would wait for ${ctx.paths.unitName} to stay active and pass its health check (up to ${ctx.m.health.timeout} s)`);
    return { ok: true, detail: 'dry run' };
  }
  return ctx.log.step('health gate', async () => healthGate(ctx.m, gateTarget(ctx, id)));
}

/**
 * Makes `id` the live release. On a failed gate: switch back, restart the previous release, mark
 * `id` bad, print the unit's last journal lines, and throw (exit 1). With --dry-run, plannedCommit
 * names the commit of a release this run would have built.
 */
export async function activateRelease(ctx: Context, id: string, via: Via, plannedCommit?: string): Promise<void> {
  const { events, records } = history(ctx);
  // A dry run of release plans the activation of a build it did not make: that release is not in the history.
  const planned: ReleaseRecord | undefined =
    ctx.dryRun && plannedCommit && !records.has(id)
      ? { id, commit: plannedCommit, state: 'ready', order: records.size, builtAt: new Date().toISOString() }
      : undefined;
  const rec = planned ?? assertActivatable(ctx, id, records.get(id));
  let previous = liveRelease(ctx.paths);
  if (previous === id && !ctx.dryRun) {
    const lastActivated = activations(events).at(-1)?.release;
    const state = await unitState(ctx.paths.unitName);
    const unitChanged = state === 'active' && (await unitChangedSinceStart(ctx.paths.unitName, ctx.paths.unitFile));
    if (lastActivated === id && (state === 'active' || state === 'off') && !unitChanged) {
      ctx.log.info(`Release ${id} is already live; nothing to do.`);
      return;
    }
    if (unitChanged) ctx.log.info(`${ctx.paths.unitName} changed after its process started (provision ran): restarting ${id} under the new unit.`);
    // `active` points at id but its activation was never recorded: a kill or power loss between the
    // switch and the record, and the service may still run the release before it. Finish the
    // activation; on a failed gate go back to the release last recorded live.
    if (lastActivated !== id) {
      ctx.log.info(`Release ${id} is linked as active, but its activation did not finish: finishing it now.`);
      previous = lastActivated && records.get(lastActivated)?.state === 'ready' && releaseOnDisk(ctx, lastActivated) ? lastActivated : undefined;
    }
  }
  await preflight(ctx, id);
  const t0 = performance.now();
  const since = new Date();
  const gate = await cutTo(ctx, id);
  const duration_ms = Math.round(performance.now() - t0);
  if (gate.ok) {
    await record(ctx, { event: 'activated', release: id, commit: rec.commit, previous: previous ?? null, via, duration_ms });
    ctx.log.info(`Release ${id} (commit ${rec.commit.slice(0, 12)}${rec.ref ? `, ${rec.ref}` : ''}) is live${ctx.dryRun ? ' (dry run)' : ''}; the cutover took ${formatDuration(duration_ms)}.`);
    return;
  }
  // The app's own lines and check output may hold its secrets (a failed start often prints its database URL).
  const journal = maskSecrets(await journalTail(ctx.paths.unitName, 20, since), ctx.paths.envFile);
  const detail = maskSecrets(gate.detail, ctx.paths.envFile);
  if (previous === id) {
    // A restart in place (the service was stopped, or its unit changed): there is nothing to switch
    // back to, and the release itself served before, so it is not marked bad.
    throw new OperationError(
      `Restarting the live release ${id} failed its health gate: ${detail}.` + (journal ? `\nLast lines of the ${ctx.paths.unitName} journal:\n${journal}` : ''),
      'If provision just changed the unit, the change is the likely cause: fix the manifest, provision again, then activate again.',
    );
  }
  const restored = await restorePrevious(ctx, previous);
  await record(ctx, { event: 'activation-failed', release: id, commit: rec.commit, previous: previous ?? null, via, duration_ms, reason: detail });
  throw new OperationError(
    `Release ${id} failed its health gate: ${detail}. ${restored}` + (journal ? `\nLast lines of the ${ctx.paths.unitName} journal:\n${journal}` : ''),
    `${id} is marked bad and kept for inspection. Fix the app and release again.`,
  );
}

/** Switches back to the release that was live before, and says whether it is healthy again. */
async function restorePrevious(ctx: Context, previous: string | undefined): Promise<string> {
  if (!previous) {
    ctx.log.info('There was no live release before this one: stopping here.');
    return 'There was no earlier release to go back to.';
  }
  ctx.log.info(`Switching back to ${previous}.`);
  const back = await cutTo(ctx, previous);
  return back.ok
    ? `Switched back to ${previous}, which is healthy again.`
    : `Switched back to ${previous}, but it is not healthy either (${maskSecrets(back.detail, ctx.paths.envFile)}): look at the service now.`;
}
