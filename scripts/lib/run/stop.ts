// Stopping on SIGTERM, SIGINT and SIGHUP: the running steps' process groups are stopped, and the verb ends at its next step.
import { StoppedError } from './errors.ts';

export const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

/** Stops one running step (its whole process group); given the signal the kit received. */
export type Stopper = (signal: StopSignal) => void;

const stoppers = new Set<Stopper>();
let requested: StopSignal | undefined;
/** What runs and must not be cut short (an activation), if anything. */
let deferredFor: string | undefined;
let installed = 0;

function onSignal(signal: StopSignal): void {
  // The terminal may be gone (ssh dropped: SIGHUP): a failed write must not end the kit before it cleans up.
  if (signal === 'SIGHUP') for (const s of [process.stdout, process.stderr]) s.on('error', () => {});
  const first = requested === undefined;
  requested ??= signal;
  if (deferredFor) {
    if (first) process.stderr.write(`cutover: ${signal} received: ${deferredFor} finishes first (it cannot be cut short safely), then cutover stops.\n`);
    return;
  }
  if (first) process.stderr.write(`cutover: ${signal} received: stopping the running step, then cutover stops.\n`);
  for (const stop of stoppers) stop(requested);
}

const handlers = new Map(STOP_SIGNALS.map((s) => [s, () => onSignal(s)] as const));

/**
 * From here until the returned function is called, SIGTERM, SIGINT and SIGHUP stop the running
 * step and make the verb end at its next step instead of killing the kit outright (which would
 * leave the step's processes running and its build unrecorded). Nests.
 */
export function handleStopSignals(): () => void {
  if (installed++ === 0) for (const [s, h] of handlers) process.on(s, h);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (--installed === 0) for (const [s, h] of handlers) process.off(s, h);
  };
}

/** The signal the kit was asked to stop by, if any. */
export function stopRequested(): StopSignal | undefined {
  return requested;
}

/** Registers a running step's stopper; call the returned function when the step has ended. */
export function onStop(stop: Stopper): () => void {
  if (requested && !deferredFor) stop(requested);
  stoppers.add(stop);
  return () => stoppers.delete(stop);
}

/** At a step boundary: throws StoppedError when a stop was asked for (unless inside a deferred section). */
export function throwIfStopped(next: string): void {
  if (!requested || deferredFor) return;
  throw new StoppedError(
    `Stopped by ${requested} before the step "${next}".`,
    requested,
    'The steps before it are done and kept (`cutover status` shows the releases); run the command again to do the rest.',
  );
}

/**
 * Runs fn to its end even when a stop signal arrives meanwhile (e.g. an activation, which switches and
 * restarts and is bounded by its own timeouts); the stop takes effect at the next step after it.
 */
export async function finishBeforeStopping<T>(what: string, fn: () => Promise<T>): Promise<T> {
  if (deferredFor) return fn();
  deferredFor = what;
  try {
    return await fn();
  } finally {
    deferredFor = undefined;
  }
}

/** For tests: forget a stop that was asked for. */
export function resetStop(): void {
  requested = undefined;
}
