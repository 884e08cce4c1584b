// The manifest's hooks: run the commands of one lifecycle point, in order, with the release's facts in their environment.
import { appEnvironment } from './appenv.ts';
import type { Context } from '../state/context.ts';
import { OperationError, StoppedError } from '../run/errors.ts';
import type { Hook, HookPoint } from '../manifest/types.ts';
import { maskSecrets } from './secrets.ts';

/** What a hook is told about the moment it runs in (the CUTOVER_* variables). */
export interface HookFacts {
  release: string;
  commit: string;
  previous?: string;
  previousCommit?: string;
  via?: 'release' | 'activate' | 'rollback';
  /** built, starting, live, failed or rolled-back. */
  outcome: string;
  /** Why an activation failed (after_failure). */
  reason?: string;
}

/** The result of one point's hooks: ok, or the first failure (a `before` point stops there). */
export type HooksOutcome = { ok: true } | { ok: false; hook: Hook; index: number; detail: string };

/** The environment of a hook: the app's own (as its commands get it), then the facts, which cutover owns. */
export function hookEnvironment(ctx: Context, point: HookPoint, hook: Hook, facts: HookFacts): Record<string, string> {
  const { m, paths } = ctx;
  return {
    ...appEnvironment(m, { home: hook.as === 'root' ? '/root' : paths.cache, envFile: paths.envFile }),
    CUTOVER_HOOK: point,
    CUTOVER_APP: m.app,
    CUTOVER_RELEASE: facts.release,
    CUTOVER_COMMIT: facts.commit,
    CUTOVER_RELEASE_DIR: paths.release(facts.release),
    CUTOVER_PREVIOUS_RELEASE: facts.previous ?? '',
    CUTOVER_PREVIOUS_COMMIT: facts.previousCommit ?? '',
    CUTOVER_VIA: facts.via ?? '',
    CUTOVER_OUTCOME: facts.outcome,
    CUTOVER_REASON: facts.reason ?? '',
  };
}

/**
 * Runs the hooks of one point in the release directory, each in its own process group under its time
 * limit. A `before` point stops at the first failure and returns it; an `after` point runs every hook
 * and only reports a failure (a warning), since what it follows has already happened.
 */
export async function runHooks(ctx: Context, point: HookPoint, facts: HookFacts): Promise<HooksOutcome> {
  const hooks = ctx.m.hooks[point] ?? [];
  const fatal = point.startsWith('before_');
  let first: HooksOutcome = { ok: true };
  for (const [index, hook] of hooks.entries()) {
    const setting = `hooks.${point}[${index}]`;
    try {
      await ctx.log.step(`hook ${point}${hook.as === 'root' ? ' (as root)' : ''}: ${hook.run}`, () =>
        ctx.ops.run(['/bin/sh', '-c', hook.run], {
          cwd: ctx.paths.release(facts.release),
          env: hookEnvironment(ctx, point, hook, facts),
          user: hook.as === 'root' ? undefined : ctx.m.user,
          display: hook.run,
          limit: { seconds: hook.timeout, setting: `${setting}.timeout` },
        }),
      );
    } catch (e) {
      if (e instanceof StoppedError || !(e instanceof OperationError)) throw e;
      const detail = maskSecrets(e.message, ctx.paths.envFile);
      if (fatal) return { ok: false, hook, index, detail };
      ctx.log.warn(`the ${setting} hook failed (${detail}); ${afterNote[point] ?? 'carrying on'}.`);
      if (first.ok) first = { ok: false, hook, index, detail };
    }
  }
  return first;
}

const afterNote: Partial<Record<HookPoint, string>> = {
  after_build: 'the release is built and stays ready',
  after_cutover: 'the release is live regardless',
  after_failure: 'the failed activation was undone regardless',
  after_rollback: 'the rollback stands regardless',
};
