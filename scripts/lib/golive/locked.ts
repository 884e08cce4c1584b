// A verb's work under the app's lock: the lock taken, stop signals handled, what a killed run left cleared first.
import fs from 'node:fs';
import type { Context } from '../state/context.ts';
import { OperationError } from '../run/errors.ts';
import { clearLeftovers } from './leftovers.ts';
import { assertNotFrozen, type FreezeVerb } from '../state/freeze.ts';
import { acquireLock } from '../state/lock.ts';
import { handleStopSignals } from '../run/stop.ts';

/** Runs fn holding the app's lock (not with --dry-run, which changes nothing). */
/**
 * `frozen`: the verb a freeze may refuse (cutover freeze). It is checked before the lock is taken, so a
 * refusal touches nothing, and again once it is held, where a freeze made meanwhile counts.
 */
export async function withLock<T>(ctx: Context, operation: string, fn: () => Promise<T>, opts: { frozen?: FreezeVerb } = {}): Promise<T> {
  if (opts.frozen) assertNotFrozen(ctx.paths, opts.frozen);
  if (ctx.dryRun) return fn();
  if (!fs.existsSync(ctx.paths.root)) {
    throw new OperationError(`The app's root ${ctx.paths.root} does not exist.`, 'Run `cutover provision` first (or `release`, which creates it).');
  }
  const lock = acquireLock(ctx.paths.lock, operation);
  // While the lock is held, SIGTERM/SIGINT/SIGHUP stop the running step's processes and end the verb
  // at its next step, so the lock is never freed while a build of this run still runs.
  const restoreSignals = handleStopSignals();
  try {
    if (opts.frozen) assertNotFrozen(ctx.paths, opts.frozen);
    await clearLeftovers(ctx);
    return await fn();
  } finally {
    lock.release();
    restoreSignals();
  }
}
