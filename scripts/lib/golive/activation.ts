// Activation: read the state once and plan, then preflight → switch the symlink → cut over → record; one failure path.
import { OperationError, UsageError } from '../run/errors.ts';
import { cutOver, undoCutover, type CutoverResult } from './cutover.ts';
import { journalTail, unitChangedSince } from '../host/systemd.ts';
import { liveRelease, switchActive, unlinkActive } from '../state/switch.ts';
import { formatDuration } from '../run/log.ts';
import { history, record, releaseOnDisk, type Context } from '../state/context.ts';
import { preflight, type PreflightVerdict } from './preflight.ts';
import { maskSecrets } from '../assemble/secrets.ts';
import { activations, type HistoryEvent, type ReleaseRecord } from '../state/history.ts';
import { isRunning, liveSlot, slotStates, type SlotState } from '../host/slots.ts';
import { serviceControlEnabled } from '../host/systemd.ts';
import { runHooks, type HookFacts } from '../assemble/hooks.ts';

export type Via = 'release' | 'activate' | 'rollback';

const notReady: Record<string, string> = {
  building: 'is still being built',
  interrupted: 'was interrupted part-way through its build',
  failed: 'failed to build',
  bad: 'was marked bad',
  removed: 'was pruned',
};

/** Refuses any release that is not a complete, good build still on disk. */
export function assertActivatable(id: string, rec: ReleaseRecord | undefined, onDisk: boolean): ReleaseRecord {
  if (!rec) {
    throw new UsageError(`There is no release ${id}.`, '`cutover status` lists the releases.');
  }
  if (rec.state !== 'ready') {
    throw new OperationError(
      `Release ${id} cannot be activated: it ${notReady[rec.state]}${rec.reason ? ` (${rec.reason})` : ''}.`,
      `Build it afresh with \`cutover release ${rec.commit.slice(0, 12)} --rebuild\`.`,
    );
  }
  if (!onDisk) {
    throw new OperationError(`Release ${id} is recorded as ready but its directory is gone.`, 'Release its commit again to rebuild it.');
  }
  return rec;
}

/** What an activation starts from, read once: the history, the `active` link, and the service's slots. */
export interface ActivationState {
  events: HistoryEvent[];
  records: Map<string, ReleaseRecord>;
  /** The release `active` names. */
  live?: string;
  /** The release of the history's last recorded activation. */
  recorded?: string;
  slots: SlotState[];
  serviceControl: boolean;
  /** The live slot runs under an older version of the unit file (provision changed it since). */
  unitChanged: boolean;
  onDisk: (id: string) => boolean;
}

export async function readActivationState(ctx: Context): Promise<ActivationState> {
  const { events, records } = history(ctx);
  const slots = await slotStates(ctx.paths);
  const serving = liveSlot(slots);
  return {
    events,
    records,
    live: liveRelease(ctx.paths),
    recorded: activations(events).at(-1)?.release,
    slots,
    serviceControl: serviceControlEnabled(),
    unitChanged: serving ? unitChangedSince(serving.startedAtS, ctx.paths.unitFile) : false,
    onDisk: (id) => releaseOnDisk(ctx, id),
  };
}

export interface ActivationRequest {
  id: string;
  via: Via;
  dryRun: boolean;
  /** Restart the release even when it is already live and serving (`activate --restart`). */
  restart?: boolean;
  /** A dry run of release plans the activation of a build it did not make: that release is not in the history yet. */
  plannedCommit?: string;
}

export interface ActivationPlan {
  id: string;
  rec: ReleaseRecord;
  via: Via;
  /** Set when there is nothing to do, with the sentence that says why. */
  nothing?: string;
  /** The release to go back to when the new one fails; undefined when there is none. */
  previous?: string;
  /** The release already served before (a restart in place): a failure does not mark it bad. */
  inPlace: boolean;
  /** Why this activation runs, when that is not obvious (printed first). */
  note?: string;
}

/** Decides what an activation does, from the state alone (pure). */
export function planActivation(state: ActivationState, req: ActivationRequest): ActivationPlan {
  const { id, via } = req;
  const planned = req.dryRun && req.plannedCommit && !state.records.has(id);
  const rec: ReleaseRecord = planned
    ? { id, commit: req.plannedCommit!, state: 'ready', order: state.records.size, builtAt: new Date().toISOString() }
    : assertActivatable(id, state.records.get(id), state.onDisk(id));
  if (state.live !== id || req.dryRun) return { id, rec, via, previous: state.live, inPlace: false };
  if (state.recorded !== id) {
    // `active` points at id but its activation was never recorded: a kill or power loss between the
    // switch and the record, and the service may still run the release before it. Finish the
    // activation; on a failure go back to the release last recorded live.
    const back = state.recorded && state.records.get(state.recorded)?.state === 'ready' && state.onDisk(state.recorded) ? state.recorded : undefined;
    return { id, rec, via, previous: back, inPlace: false, note: `Release ${id} is linked as active, but its activation did not finish: finishing it now.` };
  }
  const serving = state.slots.some(isRunning) || !state.serviceControl;
  if (serving && !state.unitChanged && !req.restart) {
    return { id, rec, via, inPlace: true, nothing: `Release ${id} is already live; nothing to do (\`activate ${id} --restart\` starts it afresh, e.g. after an env file change).` };
  }
  const why = req.restart
    ? `Restarting the live release ${id} (--restart): a new process takes over before the old one stops.`
    : state.unitChanged
      ? `The service's unit changed after its process started (provision ran): restarting ${id} under the new unit.`
      : `The live release ${id} is not running: starting it.`;
  return { id, rec, via, previous: id, inPlace: true, note: why };
}

/** Prints the plan of a dry run in words (the steps print what they would run). */
function describePlan(ctx: Context, plan: ActivationPlan): void {
  ctx.log.info(`Plan: make ${plan.id} live${plan.previous && plan.previous !== plan.id ? ` (from ${plan.previous})` : ''}; on a failure, ${plan.previous ? `go back to ${plan.previous}` : 'stop the new process'}.`);
}

/**
 * Makes `id` the live release: preflight, switch `active`, cut over (a handover with a socket), record.
 * Any failure goes through failActivation: undo, mark bad (unless it served before), explain, exit 1.
 */
export async function activateRelease(ctx: Context, req: Omit<ActivationRequest, 'dryRun'>): Promise<void> {
  const state = await readActivationState(ctx);
  const plan = planActivation(state, { ...req, dryRun: ctx.dryRun });
  if (plan.nothing) return void ctx.log.info(plan.nothing);
  if (plan.note) ctx.log.info(plan.note);
  if (ctx.dryRun) describePlan(ctx, plan);
  const verdict = await preflight(ctx, plan.id);
  if (!verdict.ok) return failActivation(ctx, state, plan, { stage: 'preflight', verdict });
  const before = await runHooks(ctx, 'before_cutover', hookFacts(state, plan, 'starting'));
  if (!before.ok) return failActivation(ctx, state, plan, { stage: 'hook', verdict: { detail: before.detail, setting: `hooks.before_cutover[${before.index}]` } });
  const t0 = performance.now();
  if (state.live !== plan.id || ctx.dryRun) {
    await ctx.log.step(`switch active to ${plan.id}`, () => switchActive(ctx.ops, ctx.paths, plan.id));
  }
  const cut = await cutOver(ctx);
  const duration_ms = Math.round(performance.now() - t0);
  if (!cut.ok) return failActivation(ctx, state, plan, { stage: 'cutover', verdict: cut, duration_ms });
  await record(ctx, { event: 'activated', release: plan.id, commit: plan.rec.commit, previous: plan.previous ?? null, via: plan.via, duration_ms });
  const how = !cut.slot ? '' : ctx.m.socket ? `, handed over to ${ctx.paths.slotUnit(cut.slot)}` : `, restarted in ${ctx.paths.slotUnit(cut.slot)} (no socket: a restart)`;
  ctx.log.info(
    `Release ${plan.id} (commit ${plan.rec.commit.slice(0, 12)}${plan.rec.ref ? `, ${plan.rec.ref}` : ''}) is live${ctx.dryRun ? ' (dry run)' : ''}; the cutover took ${formatDuration(duration_ms)}${how}.`,
  );
  await runHooks(ctx, 'after_cutover', hookFacts(state, plan, 'live'));
}

/** What the hooks of this activation are told: the release, the one it replaces, and how. */
function hookFacts(state: ActivationState, plan: ActivationPlan, outcome: string, reason?: string): HookFacts {
  return {
    release: plan.id,
    commit: plan.rec.commit,
    previous: plan.previous,
    previousCommit: plan.previous ? state.records.get(plan.previous)?.commit : undefined,
    via: plan.via,
    outcome,
    reason,
  };
}

/**
 * The one failure path of an activation. A failed preflight changed nothing. A failed cut-over is undone:
 * `active` goes back to the previous release and the new process stops (after a handover the old one
 * never stopped; without a socket it starts again). The release is marked bad unless it served before.
 */
type Failure =
  | { stage: 'preflight'; verdict: PreflightVerdict }
  | { stage: 'hook'; verdict: { detail: string; setting: string } }
  | { stage: 'cutover'; verdict: CutoverResult; duration_ms: number };

async function failActivation(ctx: Context, state: ActivationState, plan: ActivationPlan, failure: Failure): Promise<never> {
  if (failure.stage === 'hook') return stopActivation(ctx, state, plan, failure.verdict);
  const { verdict } = failure;
  const cut = failure.stage === 'cutover' ? failure.verdict : undefined;
  const duration_ms = failure.stage === 'cutover' ? failure.duration_ms : undefined;
  const journalUnit = failure.stage === 'cutover' ? (failure.verdict.slot ? ctx.paths.slotUnit(failure.verdict.slot) : undefined) : failure.verdict.unit;
  // The app's own lines and check output may hold its secrets (a failed start often prints its database URL).
  const journal = journalUnit ? maskSecrets(await journalTail(journalUnit, 20, verdict.since), ctx.paths.envFile) : '';
  const detail = maskSecrets(verdict.detail, ctx.paths.envFile);
  const journalText = journal ? `\nLast lines of the ${journalUnit} journal:\n${journal}` : '';
  let outcome = '';
  let keptServing = false;
  if (cut) {
    if (plan.previous && plan.previous !== plan.id) {
      ctx.log.info(`Switching back to ${plan.previous}.`);
      await ctx.log.step(`switch active to ${plan.previous}`, () => switchActive(ctx.ops, ctx.paths, plan.previous!));
    } else if (!plan.previous) {
      // Before the stop: a request on the socket in between would otherwise start the failed release.
      await ctx.log.step(`remove ${ctx.paths.active}`, () => unlinkActive(ctx.ops, ctx.paths, plan.id));
    }
    const undo = await undoCutover(ctx, cut);
    keptServing = undo.keptServing;
    const back = plan.previous ?? 'the release before';
    outcome = !plan.previous
      ? `There was no earlier release to go back to: ${ctx.paths.active} is removed and the new process stopped, so no release is live.`
      : undo.ok
        ? undo.keptServing
          ? `Switched back to ${back}, which is healthy again: it kept serving throughout the attempt.`
          : `Switched back to ${back}, which is healthy again.`
        : `Switched back to ${back}, but it is not healthy either (${maskSecrets(undo.detail, ctx.paths.envFile)}): look at the service now.`;
  }
  const reason = cut ? detail : `preflight: ${detail}`;
  if (plan.inPlace) {
    // A restart in place (the service was stopped, its unit changed, or --restart): the release served
    // before, so the unit, the env file or the host is the likely cause; it is not marked bad.
    await runHooks(ctx, 'after_failure', hookFacts(state, plan, 'failed', reason));
    throw new OperationError(
      cut
        ? `Restarting the live release ${plan.id} failed its health gate: ${detail}. ${keptServing ? 'The old process kept serving.' : outcome}${journalText}`
        : `The live release ${plan.id} failed preflight under the current unit: ${detail}. It was not restarted.${journalText}`,
      `If provision just changed the unit, the change is the likely cause: fix the manifest, provision again, then activate again (after an env file change: fix the file, then \`activate ${plan.id} --restart\`).`,
    );
  }
  await record(ctx, { event: 'activation-failed', release: plan.id, commit: plan.rec.commit, previous: plan.previous ?? null, via: plan.via, ...(duration_ms !== undefined ? { duration_ms } : {}), reason });
  await runHooks(ctx, 'after_failure', hookFacts(state, plan, 'failed', reason));
  throw new OperationError(
    cut
      ? `Release ${plan.id} failed its health gate: ${detail}. ${outcome}${journalText}`
      : `Release ${plan.id} failed preflight and never went live: ${detail}.${journalText}`,
    cut
      ? `${plan.id} is marked bad and kept for inspection. Fix the app and release again.`
      : `The live release was not touched. ${plan.id} is marked bad and kept for inspection; fix the app and release again.`,
  );
}

/**
 * A before_cutover hook failed: nothing was switched or started, so there is nothing to undo. The
 * release keeps its state (the hook, not the release, may be what is wrong), the after_failure hooks run.
 */
async function stopActivation(ctx: Context, state: ActivationState, plan: ActivationPlan, why: { detail: string; setting: string }): Promise<never> {
  const reason = `${why.setting} hook: ${why.detail}`;
  if (!plan.inPlace) await record(ctx, { event: 'activation-stopped', release: plan.id, commit: plan.rec.commit, previous: plan.previous ?? null, via: plan.via, reason });
  await runHooks(ctx, 'after_failure', hookFacts(state, plan, 'failed', reason));
  throw new OperationError(
    `The activation of ${plan.id} was stopped by its ${why.setting} hook: ${why.detail}`,
    `Nothing changed: ${plan.previous && plan.previous !== plan.id ? `${plan.previous} is still live` : 'the live release and the service were not touched'}, and ${plan.id} is still ready (not marked bad). Fix what the hook checks (or the hook), then \`activate ${plan.id}\`.`,
  );
}
