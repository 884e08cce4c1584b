// Unit tests for the pure release plan: which id a commit gets, and what its build borrows from (caches, assets, identical files), from one reading of the history.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describePlan, planRelease, type ReleaseState } from '../../scripts/lib/assemble/plan.ts';
import { releaseStates, type HistoryEvent } from '../../scripts/lib/state/history.ts';

let clock = Date.parse('2025-01-01T00:00:00Z');
function ev(event: HistoryEvent['event'], release: string, extra: Partial<HistoryEvent> = {}): HistoryEvent {
  clock += 1000;
  return { at: new Date(clock).toISOString(), event, release, commit: release.slice(0, 12).padEnd(40, '0'), by: 'tester', ...extra };
}
const built = (id: string) => [ev('build-started', id), ev('build-finished', id)];
const live = (id: string) => ev('activated', id);

function state(events: HistoryEvent[], opts: { live?: string; gone?: string[] } = {}): ReleaseState {
  const records = releaseStates(events, () => false);
  const onDisk = (id: string) => records.has(id) && !(opts.gone ?? []).includes(id) && records.get(id)!.state !== 'removed';
  return { events, records, live: opts.live, onDisk, taken: (id) => records.has(id) || onDisk(id) };
}

const [a, b, c] = ['aaaaaaaaaaaa', 'bbbbbbbbbbbb', 'cccccccccccc'];
const commitOf = (id: string) => id.padEnd(40, '0');

test('a new commit gets its 12-digit id and borrows from the live release and the newest ready one', () => {
  const events = [...built(a), live(a), ...built(b), live(b), ...built(c)];
  const p = planRelease(state(events, { live: b }), 'd'.repeat(40), 'main', { assetsKeep: 2 });
  assert.is(p.id, 'dddddddddddd');
  assert.is(p.reuse, false);
  assert.is(p.live, b);
  assert.is(p.liveCommit, commitOf(b));
  assert.is(p.cacheDonor, c, 'the newest ready release, live or not');
  assert.equal(p.assetDonors, [b, a], 'the releases live most recently, newest first');
  assert.is(p.neighbour, b, 'identical files are shared with the live release');
});

test('a commit with a ready release reuses it; --rebuild gets the next free -rN id', () => {
  const events = [...built(a), live(a)];
  const s = state(events, { live: a });
  const again = planRelease(s, commitOf(a), 'v1', { assetsKeep: 2 });
  assert.is(again.id, a);
  assert.is(again.reuse, true);
  const rebuilt = planRelease(s, commitOf(a), 'v1', { rebuild: true, assetsKeep: 2 });
  assert.is(rebuilt.id, `${a}-r2`);
  assert.is(rebuilt.reuse, false);
  assert.is(rebuilt.neighbour, a);
});

test('releases not on disk lend nothing; with nothing live the newest ready release is the neighbour', () => {
  const events = [...built(a), live(a), ...built(b)];
  const p = planRelease(state(events, { gone: [a] }), 'd'.repeat(40), 'main', { assetsKeep: 2 });
  assert.is(p.live, undefined);
  assert.equal(p.assetDonors, [], 'a is gone from disk');
  assert.is(p.cacheDonor, b);
  assert.is(p.neighbour, b);
  const first = planRelease(state([]), 'e'.repeat(40), 'main', { assetsKeep: 2 });
  assert.equal([first.cacheDonor, first.neighbour, first.assetDonors.length], [undefined, undefined, 0]);
  assert.ok(describePlan(first).some((l) => l.includes('build eeeeeeeeeeee as release eeeeeeeeeeee')), describePlan(first).join('\n'));
});

test.run();
