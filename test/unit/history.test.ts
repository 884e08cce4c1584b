// Unit tests for the release history: the state machine, the rollback target and reuse, folded from hand-made event lists.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  appendHistory,
  readHistory,
  readyReleaseOf,
  releaseStates,
  rollbackTarget,
  writerAlive,
  type HistoryEvent,
} from '../../scripts/lib/state/history.ts';

// Ids whose alphabetical order is the reverse of the build order below, so nothing can pass by sorting names.
const A = 'ffff00000001';
const B = 'cccc00000002';
const C = 'aaaa00000003';
const D = '999900000004';

let clock = Date.parse('2025-01-01T00:00:00Z');
function ev(event: HistoryEvent['event'], release: string, extra: Partial<HistoryEvent> = {}): HistoryEvent {
  clock += 1000;
  return { at: new Date(clock).toISOString(), event, release, commit: `${release}${'0'.repeat(28)}`, by: 'tester', ...extra };
}
const built = (id: string, extra: Partial<HistoryEvent> = {}) => [ev('build-started', id, { pid: 4242, started: 7, ...extra }), ev('build-finished', id, { duration_ms: 1500 })];
const dead = () => false;
const alive = () => true;
const all = () => true;

test('each release folds to its state: ready, failed, bad, removed', () => {
  const events = [
    ...built(A),
    ev('build-started', B, { ref: 'v2' }),
    ev('build-failed', B, { reason: 'npm ci failed' }),
    ...built(C),
    ev('activated', C),
    ev('activation-failed', C, { reason: 'health gate' }),
    ...built(D),
    ev('marked-bad', D, { reason: 'rolled back' }),
    ev('removed', D),
  ];
  const r = releaseStates(events, dead);
  assert.is(r.get(A)!.state, 'ready');
  assert.is(r.get(A)!.buildMs, 1500);
  assert.is(r.get(B)!.state, 'failed');
  assert.is(r.get(B)!.reason, 'npm ci failed');
  assert.is(r.get(B)!.ref, 'v2');
  assert.is(r.get(C)!.state, 'bad');
  assert.is(r.get(C)!.reason, 'health gate');
  assert.is(r.get(D)!.state, 'removed');
  assert.ok(r.get(A)!.order < r.get(B)!.order && r.get(B)!.order < r.get(C)!.order && r.get(C)!.order < r.get(D)!.order, 'order is the build order');
  assert.is(r.size, 4);
});

test('archived: the build machine\'s own release gains the archive\'s sha256 and tree digest, keeps its state and kind', () => {
  const src = { kind: 'git' as const, sha256: 'e'.repeat(64), treeDigest: 'd'.repeat(64), builtBy: 'box' };
  const records = releaseStates([...built(A), ev('archived', A, { source: src }), ev('archived', B, { source: src })], dead);
  assert.equal(records.get(A)?.state, 'ready');
  assert.equal(records.get(A)?.source, { ...src, kind: 'git' });
  assert.not.ok(records.has(B), 'an archived event for a release never built is ignored');
  const failed = releaseStates([ev('build-started', C), ev('build-failed', C), ev('archived', C, { source: src })], dead);
  assert.equal(failed.get(C)?.state, 'failed', 'archived never makes a release ready');
});

test('a build still running is building; one whose writer is gone is interrupted', () => {
  const events = [ev('build-started', A, { pid: 1, started: 2 })];
  assert.is(releaseStates(events, alive).get(A)!.state, 'building');
  const gone = releaseStates(events, dead).get(A)!;
  assert.is(gone.state, 'interrupted');
  assert.not.ok(gone.interruptionRecorded, 'not yet recorded in the history');
  assert.match(gone.reason!, /process is gone/);
});

test('a recorded interruption is interrupted even if the pid is alive again, and is flagged as recorded', () => {
  const events = [ev('build-started', A), ev('build-interrupted', A, { reason: 'killed' })];
  const r = releaseStates(events, alive).get(A)!;
  assert.is(r.state, 'interrupted');
  assert.ok(r.interruptionRecorded);
});

test('late or misplaced events do not resurrect a release', () => {
  const events = [
    ...built(A),
    ev('build-interrupted', A), // a ready release is not interrupted by a stray event
    ...built(B),
    ev('removed', B),
    ev('marked-bad', B), // a removed release stays removed
    ev('build-finished', C), // an event for a release never started is ignored
  ];
  const r = releaseStates(events, dead);
  assert.is(r.get(A)!.state, 'ready');
  assert.is(r.get(B)!.state, 'removed');
  assert.not.ok(r.has(C));
});

test('writerAlive compares pid and start time, so a reused pid is not mistaken for the builder', () => {
  const e = ev('build-started', A, { pid: 99, started: 500 });
  assert.ok(writerAlive(e, (pid) => (pid === 99 ? 500 : undefined)));
  assert.not.ok(writerAlive(e, (pid) => (pid === 99 ? 501 : undefined)), 'same pid, another process');
  assert.not.ok(writerAlive(e, () => undefined), 'no such process');
  assert.not.ok(writerAlive(ev('build-started', A), () => 1), 'an event without pid cannot be alive');
  const mine = ev('build-started', A, { pid: process.pid, started: Number(fs.readFileSync(`/proc/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ')[19]) });
  assert.ok(writerAlive(mine), 'the real probe sees this process');
});

test('rollbackTarget: the newest activation before the live one, by history order, not by name', () => {
  const events = [...built(A), ...built(B), ...built(C), ev('activated', A), ev('activated', B), ev('activated', C)];
  const r = releaseStates(events, dead);
  assert.is(rollbackTarget(events, C, r, all), B);
  // Activating an older release by hand: rollback undoes that, back to what was live before it.
  const again = [...events, ev('activated', A)];
  assert.is(rollbackTarget(again, A, releaseStates(again, dead), all), C);
});

test('rollbackTarget skips bad, failed, removed and vanished releases, and the live one', () => {
  const events = [
    ...built(A), ...built(B), ...built(C), ...built(D),
    ev('activated', A), ev('activated', B), ev('activated', C), ev('activated', D),
    ev('marked-bad', C), ev('removed', B),
  ];
  const r = releaseStates(events, dead);
  assert.is(rollbackTarget(events, D, r, all), A);
  assert.is(rollbackTarget(events, D, r, (id) => id !== A), undefined, 'A is not on disk any more');
});

test('rollbackTarget: after a rollback the left release is bad, so the next rollback goes further back', () => {
  const events = [...built(A), ...built(B), ...built(C), ev('activated', A), ev('activated', B), ev('activated', C)];
  const after = [...events, ev('activated', B, { via: 'rollback', previous: C }), ev('marked-bad', C)];
  assert.is(rollbackTarget(after, B, releaseStates(after, dead), all), A);
  const twice = [...after, ev('activated', A, { via: 'rollback', previous: B }), ev('marked-bad', B)];
  assert.is(rollbackTarget(twice, A, releaseStates(twice, dead), all), undefined, 'no earlier good release');
});

test('rollbackTarget ignores releases that were built but never live, and failed activations', () => {
  const events = [...built(A), ...built(B), ...built(C), ev('activated', A), ev('activated', C)];
  const r = releaseStates(events, dead);
  assert.is(rollbackTarget(events, C, r, all), A, 'B was never live');
  const failed = [...built(A), ...built(B), ev('activated', A), ev('activation-failed', B)];
  assert.is(rollbackTarget(failed, A, releaseStates(failed, dead), all), undefined);
  assert.is(rollbackTarget([], undefined, new Map(), all), undefined);
  assert.is(rollbackTarget(events, undefined, r, all), C, 'with nothing live, the newest activated good release');
});

test('readyReleaseOf: the newest ready build of the commit, never a failed, bad or removed one', () => {
  const commit = 'c'.repeat(40);
  const events = [
    ev('build-started', 'cccccccccccc', { commit }), ev('build-finished', 'cccccccccccc'),
    ev('build-started', 'cccccccccccc-r2', { commit }), ev('build-finished', 'cccccccccccc-r2'),
    ev('build-started', 'cccccccccccc-r3', { commit }), ev('build-failed', 'cccccccccccc-r3'),
    ...built(A),
  ];
  assert.is(readyReleaseOf(commit, releaseStates(events, dead))!.id, 'cccccccccccc-r2');
  const bad = [...events, ev('marked-bad', 'cccccccccccc-r2')];
  assert.is(readyReleaseOf(commit, releaseStates(bad, dead))!.id, 'cccccccccccc');
  const gone = [...bad, ev('removed', 'cccccccccccc')];
  assert.is(readyReleaseOf(commit, releaseStates(gone, dead)), undefined);
  assert.is(readyReleaseOf('d'.repeat(40), releaseStates(events, dead)), undefined);
});

test('readHistory: a missing file is an empty history; a truncated last line is skipped, the rest kept', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cutover-history-'));
  try {
    const file = path.join(dir, 'history.jsonl');
    assert.equal(readHistory(file), []);
    appendHistory(file, { event: 'build-started', release: A, commit: 'a'.repeat(40), by: 'x' });
    appendHistory(file, { event: 'build-finished', release: A, commit: 'a'.repeat(40), by: 'x' });
    appendHistory(file, { event: 'activated', release: A, commit: 'a'.repeat(40), by: 'x' });
    const whole = fs.readFileSync(file, 'utf8');
    assert.is(whole.split('\n').length, 4, 'one JSON line per event');
    // A power loss in the middle of the last append.
    fs.writeFileSync(file, whole.slice(0, whole.length - 20));
    const events = readHistory(file);
    assert.equal(events.map((e) => e.event), ['build-started', 'build-finished']);
    assert.ok(events.every((e) => typeof e.at === 'string' && !Number.isNaN(Date.parse(e.at))));
    assert.is(releaseStates(events, dead).get(A)!.state, 'ready');
    // The next append after the torn line is not glued onto it (which would lose it too).
    appendHistory(file, { event: 'marked-bad', release: A, by: 'x' });
    assert.equal(readHistory(file).map((e) => e.event), ['build-started', 'build-finished', 'marked-bad']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('appendHistory refuses to follow a symlink planted at the history path', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cutover-history-'));
  try {
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'untouched\n');
    const file = path.join(dir, 'history.jsonl');
    fs.symlinkSync(victim, file);
    assert.throws(() => appendHistory(file, { event: 'removed', release: A, by: 'x' }));
    assert.is(fs.readFileSync(victim, 'utf8'), 'untouched\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
