// What a killed run can leave behind, cleared under the lock before any verb acts: preflight units, a second running slot, a staged archive.
import type { Context } from '../state/context.ts';
import { clearPreflightLeftovers } from './preflight.ts';
import { preflightLeftovers } from '../host/preflight-units.ts';
import { isRunning, slotStates, slotToKeep, type SlotState } from '../host/slots.ts';
import { activations, readHistory } from '../state/history.ts';
import { stopSlot } from './cutover.ts';
import { clearDeadStaging } from '../assemble/staging.ts';

/**
 * Two slots running means a handover was cut short before the old slot stopped. Undoes the handover:
 * the slot that serves the release the history last recorded live keeps serving, the other stops.
 * `active` is left as it is: if it names the new release, that activation shows as unfinished
 * (status says so, rollback refuses to guess), and running it again finishes it.
 */
export async function settleSlots(ctx: Context, slots: SlotState[]): Promise<void> {
  const running = slots.filter(isRunning);
  if (running.length < 2) return;
  const recorded = activations(readHistory(ctx.paths.history)).at(-1)?.release;
  const keep = slotToKeep(running, recorded)!;
  const stop = running.find((s) => s !== keep)!;
  ctx.log.info(`Both slots run: a cutover was cut short. ${keep.unit} keeps serving ${keep.release ?? 'its release'}; stopping ${stop.unit}.`);
  await ctx.log.step(`stop ${stop.unit}`, () => stopSlot(ctx, stop.slot));
}

/** Run first by every verb that holds the lock (never in a dry run). */
export async function clearLeftovers(ctx: Context): Promise<void> {
  // Both reads at once (they are independent, and every locked verb waits for them), then each fix in turn.
  const [preflights, slots] = await Promise.all([preflightLeftovers(ctx.m.app), slotStates(ctx.paths)]);
  await clearPreflightLeftovers(ctx, preflights);
  await settleSlots(ctx, slots);
  clearDeadStaging(ctx.paths.incomingPrefix);
}
