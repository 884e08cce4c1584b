// The freeze: explicit state (<root>/freeze.json, not a lock) that stops release, activate and prune — and rollback only when hard — until unfreeze.
import fs from 'node:fs';
import { FrozenError } from '../run/errors.ts';
import type { AppPaths } from '../manifest/paths.ts';

export interface Freeze {
  reason: string;
  by: string;
  at: string;
  /** A hard freeze stops rollback too. */
  hard: boolean;
}

/** The freeze in force, or undefined; a file that cannot be read as one still freezes (its reason says so). */
export function readFreeze(paths: Pick<AppPaths, 'freeze'>): Freeze | undefined {
  let text: string;
  try {
    text = fs.readFileSync(paths.freeze, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { reason: `${paths.freeze} cannot be read (${(e as Error).message})`, by: 'unknown', at: 'unknown', hard: true };
  }
  return parseFreeze(text, paths.freeze);
}

/** Reads a freeze file's text (pure); anything malformed is a hard freeze that says so, never no freeze. */
export function parseFreeze(text: string, file = 'freeze.json'): Freeze {
  try {
    const j = JSON.parse(text) as Partial<Freeze>;
    if (typeof j.reason === 'string' && j.reason.trim()) {
      return { reason: j.reason, by: typeof j.by === 'string' ? j.by : 'unknown', at: typeof j.at === 'string' ? j.at : 'unknown', hard: j.hard === true };
    }
  } catch {
    // falls through
  }
  return { reason: `${file} is not a freeze cutover wrote`, by: 'unknown', at: 'unknown', hard: true };
}

/** One line for status and refusals: the reason, who, since when. */
export function describeFreeze(f: Freeze): string {
  return `${f.hard ? 'hard-frozen' : 'frozen'} by ${f.by} since ${f.at}: ${f.reason}`;
}

/** Refuses a verb while the app is frozen (rollback only under a hard freeze): exit 3 with the reason and the way out. */
export type FreezeVerb = 'release' | 'activate' | 'prune' | 'rollback';

export function assertNotFrozen(paths: Pick<AppPaths, 'freeze'>, verb: FreezeVerb): void {
  const f = readFreeze(paths);
  if (!f || (verb === 'rollback' && !f.hard)) return;
  throw new FrozenError(
    `Deploys of this app are ${describeFreeze(f)}. ${verb} is refused.`,
    `When it is time, \`cutover unfreeze\` lifts it.${verb !== 'rollback' && !f.hard ? ' A rollback is still allowed.' : ''}`,
  );
}
