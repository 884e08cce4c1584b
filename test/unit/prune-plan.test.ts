// Unit tests for the pure prune plan: what prune keeps and deletes, and why, from the history's order.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { planPrune, type PruneDecision, type PruneInput } from '../../scripts/lib/state/prune.ts';
import { releaseStates, rollbackTarget, type HistoryEvent } from '../../scripts/lib/state/history.ts';

let clock = Date.parse('2025-01-01T00:00:00Z');
function ev(event: HistoryEvent['event'], release: string, extra: Partial<HistoryEvent> = {}): HistoryEvent {
  clock += 1000;
  return { at: new Date(clock).toISOString(), event, release, commit: release.slice(0, 12).padEnd(40, '0'), by: 'tester', ...extra };
}
const built = (id: string) => [ev('build-started', id), ev('build-finished', id)];

// Build order g1 (oldest) … g6 (newest); names deliberately sort the other way round.
const g = ['f00000000001', 'e00000000002', 'd00000000003', 'c00000000004', 'b00000000005', 'a00000000006'];

function plan(events: HistoryEvent[], over: Partial<PruneInput> = {}): Map<string, PruneDecision> {
  const records = releaseStates(events, () => false);
  const onDisk = over.onDisk ?? [...records.keys()].filter((id) => records.get(id)!.state !== 'removed');
  const decisions = planPrune({ records, onDisk, keep: 2, inUse: new Map(), ...over });
  assert.is(decisions.length, onDisk.length, 'one decision per directory on disk, no more');
  assert.is(new Set(decisions.map((d) => d.id)).size, decisions.length, 'no directory decided twice');
  for (const d of decisions) assert.ok(d.reason.length >= 8, `a reason for ${d.id}`);
  return new Map(decisions.map((d) => [d.id, d]));
}
const kept = (p: Map<string, PruneDecision>) => [...p.values()].filter((d) => d.action === 'keep').map((d) => d.id).sort();
const deleted = (p: Map<string, PruneDecision>) => [...p.values()].filter((d) => d.action === 'delete').map((d) => d.id).sort();

test('keeps the newest N good releases by build order in the history, deletes older ones', () => {
  const events = g.flatMap(built);
  const p = plan(events, { keep: 2 });
  assert.equal(kept(p), [g[4], g[5]].sort());
  assert.equal(deleted(p), [g[0], g[1], g[2], g[3]].sort());
  assert.match(p.get(g[5])!.reason, /newest 2 good/);
  assert.match(p.get(g[0])!.reason, /older than the newest 2/);
  assert.equal(kept(plan(events, { keep: 5 })), [g[1], g[2], g[3], g[4], g[5]].sort());
  assert.equal(deleted(plan(events, { keep: 10 })), []);
});

test('the live release and the rollback target are kept however old they are', () => {
  const events = [...g.flatMap(built), ev('activated', g[1]), ev('activated', g[0])];
  const records = releaseStates(events, () => false);
  const live = g[0];
  const rollback = rollbackTarget(events, live, records, () => true);
  assert.is(rollback, g[1]);
  const p = plan(events, { keep: 1, live, rollback });
  assert.is(p.get(g[0])!.action, 'keep');
  assert.match(p.get(g[0])!.reason, /live/);
  assert.is(p.get(g[1])!.action, 'keep');
  assert.match(p.get(g[1])!.reason, /rollback target/);
  assert.is(p.get(g[5])!.action, 'keep', 'the newest good release');
  assert.equal(deleted(p), [g[2], g[3], g[4]].sort());
});

test('failed and interrupted builds are deleted, a build in progress is kept', () => {
  const events = [
    ...built(g[0]),
    ev('build-started', g[1]), ev('build-failed', g[1]),
    ev('build-started', g[2]), ev('build-interrupted', g[2]),
    ev('build-started', g[3]), // writer gone: interrupted
    ev('build-started', g[4], { pid: 1, started: 1 }),
  ];
  const records = releaseStates(events, (e) => e.release === g[4]);
  const p = new Map(planPrune({ records, onDisk: [g[0], g[1], g[2], g[3], g[4]], keep: 1, inUse: new Map() }).map((d) => [d.id, d]));
  assert.is(p.get(g[0])!.action, 'keep');
  assert.is(p.get(g[1])!.action, 'delete');
  assert.match(p.get(g[1])!.reason, /failed/);
  assert.is(p.get(g[2])!.action, 'delete');
  assert.match(p.get(g[2])!.reason, /interrupted/);
  assert.is(p.get(g[3])!.action, 'delete');
  assert.match(p.get(g[3])!.reason, /interrupted/);
  assert.is(p.get(g[4])!.action, 'keep');
  assert.match(p.get(g[4])!.reason, /being built/);
});

test('the newest bad release is kept for inspection, older bad ones deleted', () => {
  const events = [
    ...g.flatMap(built),
    ev('activated', g[5]),
    ev('activation-failed', g[1]), ev('marked-bad', g[3]), ev('activation-failed', g[2]),
  ];
  const p = plan(events, { keep: 5, live: g[5] });
  assert.is(p.get(g[3])!.action, 'keep', 'g3 is the newest bad build, whatever order it was marked in');
  assert.match(p.get(g[3])!.reason, /newest bad/);
  assert.is(p.get(g[2])!.action, 'delete');
  assert.is(p.get(g[1])!.action, 'delete');
  assert.match(p.get(g[1])!.reason, /bad/);
  assert.is(p.get(g[0])!.action, 'keep', 'bad releases do not use up the good quota');
});

test('a release a running process uses as its working directory is kept, naming the pid', () => {
  const events = g.flatMap(built);
  const p = plan(events, { keep: 1, inUse: new Map([[g[0], 4321]]) });
  assert.is(p.get(g[0])!.action, 'keep');
  assert.match(p.get(g[0])!.reason, /4321/);
  assert.equal(deleted(p), [g[1], g[2], g[3], g[4]].sort());
});

test('a directory cutover did not make is left alone; a removed release still on disk is deleted', () => {
  const events = [...g.slice(0, 2).flatMap(built), ev('removed', g[0])];
  const p = plan(events, { keep: 5, onDisk: [g[0], g[1], '0123456789ab', 'notes'] });
  assert.is(p.get('0123456789ab')!.action, 'keep');
  assert.match(p.get('0123456789ab')!.reason, /not in the history/);
  assert.is(p.get('notes')!.action, 'keep');
  assert.is(p.get(g[0])!.action, 'delete');
  assert.is(p.get(g[1])!.action, 'keep');
});

test('releases in the history but gone from disk get no decision', () => {
  const events = g.flatMap(built);
  const p = plan(events, { keep: 1, onDisk: [g[0], g[5]] });
  assert.equal([...p.keys()].sort(), [g[0], g[5]].sort());
  assert.is(p.get(g[0])!.action, 'delete');
});

test('a rebuild id (-r2) is ordered by its build, not by its name', () => {
  const events = [...built('aaaaaaaaaaaa-r2'), ...built('bbbbbbbbbbbb'), ...built('aaaaaaaaaaaa')];
  const p = plan(events, { keep: 1 });
  assert.equal(kept(p), ['aaaaaaaaaaaa']);
});

test('planPrune is pure: same input, same plan, input untouched', () => {
  const events = [...g.flatMap(built), ev('activated', g[0])];
  const records = releaseStates(events, () => false);
  const snapshot = JSON.stringify([...records.values()]);
  const input: PruneInput = { records, onDisk: [...g].reverse(), live: g[0], keep: 2, inUse: new Map() };
  const a = planPrune(input);
  const b = planPrune(input);
  assert.equal(a, b);
  assert.is(JSON.stringify([...records.values()]), snapshot);
  assert.equal(input.onDisk, [...g].reverse());
});

test.run();
