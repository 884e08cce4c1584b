// Typed errors: each carries the exit code the operator sees and a hint that says the fix.

/** Exit codes are part of the command-line contract. */
export const ExitCode = {
  ok: 0,
  /** The operation failed; the live release is unchanged or was restored. */
  failed: 1,
  /** Bad usage or a bad manifest; nothing was done. */
  usage: 2,
  /** Another cutover operation holds this app's lock. */
  locked: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class CutoverError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly hint?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad argv, a bad manifest or a bad release name: exit 2, nothing changed. */
export class UsageError extends CutoverError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.usage, hint);
  }
}

/** An operation that failed; the live release is unchanged (or was restored). */
export class OperationError extends CutoverError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.failed, hint);
  }
}

/** The app's lock is held by another cutover process. */
export class LockedError extends CutoverError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.locked, hint);
  }
}

/** The kit was asked to stop (SIGTERM, SIGINT or SIGHUP): exit 1, the live release unchanged. */
/** A deliberate freeze of the app's deploys (cutover freeze): exit 3, like a held lock, with the reason, who and when. */
export class FrozenError extends CutoverError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.locked, hint);
  }
}

export class StoppedError extends CutoverError {
  constructor(
    message: string,
    readonly signal: string,
    hint?: string,
  ) {
    super(message, ExitCode.failed, hint);
  }
}
