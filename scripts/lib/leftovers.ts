// What a killed run can leave behind, cleared under the lock before any verb acts: preflight units, a second running slot.
import type { Context } from './context.ts';
import { clearPreflightLeftovers } from './preflight.ts';
import { isRunning, slotStates } from './slots.ts';
import { activations, readHistory, releaseStates } from './history.ts';
import { liveRelease, switchActive } from './switch.ts';
import { stopSlot } from './cutover.ts';
import { releaseOnDisk } from './context.ts';

/**
 * Two slots running means a handover was cut short before the old slot stopped. Undoes it: the slot
 * that serves the release the history last recorded live keeps serving (of two serving that release,
 * the older: the newer is an unconfirmed restart), the other stops, and `active` names the kept release.
 */
export async function settleSlots(ctx: Context): Promise<void> {
  const running = (await slotStates(ctx.paths)).filter(isRunning);
  if (running.length < 2) return;
  const events = readHistory(ctx.paths.history);
  const recorded = activations(events).at(-1)?.release;
  const byAge = [...running].sort((a, b) => a.startedUs - b.startedUs);
  const keep = byAge.find((s) => s.release === recorded) ?? byAge.at(-1)!;
  const stop = running.find((s) => s !== keep)!;
  ctx.log.info(`Both slots run: a cutover was cut short. ${keep.unit} keeps serving ${keep.release ?? 'its release'}; stopping ${stop.unit}.`);
  await ctx.log.step(`stop ${stop.unit}`, () => stopSlot(ctx, stop.slot));
  const back = keep.release;
  if (back && liveRelease(ctx.paths) !== back && releaseStates(events).get(back)?.state === 'ready' && releaseOnDisk(ctx, back)) {
    await ctx.log.step(`switch active back to ${back}`, () => switchActive(ctx.ops, ctx.paths, back));
  }
}

/** Run first by every verb that holds the lock (never in a dry run). */
export async function clearLeftovers(ctx: Context): Promise<void> {
  await clearPreflightLeftovers(ctx);
  await settleSlots(ctx);
}
