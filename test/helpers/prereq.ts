// A test's prerequisites (root, systemd, gunicorn…): a missing one fails the run under CI=true, and elsewhere is counted and shown as skipped, never as passed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test as uvuTest } from 'uvu';

type Test = typeof uvuTest;
export type Register = (name: string, fn: () => void | Promise<void>) => void;

/** CI sets CI=true (.ci/run does too): there a missing prerequisite is a failure, not a skip. */
export const CI = process.env.CI === 'true' || process.env.CI === '1';

/**
 * `test` itself when nothing is missing. When `missing` says what is missing, a stand-in that
 * registers each test as failing under CI=true (naming what is missing), and elsewhere as skipped
 * (uvu counts it under Skipped) with a `SKIP:` line the runner lists at the end (`quiet`: the
 * caller prints one line for many).
 */
export function requiring(missing: string | undefined, t: Test = uvuTest, opts: { quiet?: boolean } = {}): Register {
  if (!missing) return (name, fn) => t(name, fn);
  if (CI) {
    return (name) =>
      t(name, () => {
        throw new Error(`${missing}. CI=true: a missing prerequisite fails the run (install it, or run without CI=true to skip)`);
      });
  }
  return (name) => {
    if (!opts.quiet) console.log(`SKIP: ${name} (${missing})`);
    t.skip(name, () => {});
  };
}

/** Why the system tier cannot run here, or undefined when it can. */
export function systemTierMissing(): string | undefined {
  return process.getuid?.() === 0 ? undefined : 'the system tier needs root (it boots a systemd-nspawn test host)';
}

/** The system tier's `test`: the real one as root; otherwise skipped (or failing under CI=true). `ready` tells hooks whether to boot anything. */
export function systemTier(file: string): { it: Register; ready: boolean } {
  const missing = systemTierMissing();
  if (missing && !CI) console.log(`SKIP: every test of ${path.basename(file)}: ${missing}`);
  return { it: requiring(missing, uvuTest, { quiet: true }), ready: !missing };
}

/** Why a command cannot be run here (`<cmd> is not installed`), or undefined when `<cmd> args` exits 0. */
export function commandMissing(cmd: string, args: string[] = ['--version'], hint = ''): string | undefined {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0 ? undefined : `${cmd} is not installed here${hint ? ` (${hint})` : ''}`;
}

/** Why a file is missing, or undefined when it exists. */
export function fileMissing(file: string, what = file): string | undefined {
  return existsSync(file) ? undefined : `${what} is missing`;
}

/** Why a test needs root and does not have it, or undefined as root. */
export function rootMissing(why: string): string | undefined {
  return process.getuid?.() === 0 ? undefined : `not root: ${why} needs root`;
}
