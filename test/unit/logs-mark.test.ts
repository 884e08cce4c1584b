// Unit tests for the pure parts of cutover logs and freeze: which release a journal line came from, and what a freeze file means.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { markLines, type JournalEntry } from '../../scripts/lib/everyday/logs.ts';
import { parseFreeze } from '../../scripts/lib/state/freeze.ts';
import type { HistoryEvent } from '../../scripts/lib/state/history.ts';

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const us = (s: number) => String(Date.UTC(2026, 0, 1, 0, 0, s) * 1000);
const ev = (event: HistoryEvent['event'], release: string, s: number): HistoryEvent => ({ at: at(s), event, release, by: 't' });
const A = 'aaaaaaaaaaaa';
const B = 'bbbbbbbbbbbb';
const C = 'cccccccccccc';
// A live from 10 s; B's activation starts at 20 s and is recorded at 22 s; C's fails at 32 s; a rollback to A at 40 s.
const events = [ev('activated', A, 10), ev('activated', B, 22), ev('activation-failed', C, 32), ev('activated', A, 40)];
const line = (unit: string, s: number, run: string, message = 'm'): JournalEntry => ({ __REALTIME_TIMESTAMP: us(s), _SYSTEMD_UNIT: unit, _SYSTEMD_INVOCATION_ID: run, MESSAGE: message });

test("a slot's run is marked by the activation that started it, even for its lines logged after later activations", () => {
  const firstSeen = new Map([['r1', Date.UTC(2026, 0, 1, 0, 0, 9)], ['r2', Date.UTC(2026, 0, 1, 0, 0, 20)], ['r3', Date.UTC(2026, 0, 1, 0, 0, 30)]]);
  const lines = markLines([line('app@a.service', 25, 'r1'), line('app@b.service', 21, 'r2'), line('app@b.service', 45, 'r2'), line('app@a.service', 31, 'r3')], events, 'app', firstSeen);
  assert.equal(lines.map((l) => [l.source, l.release]), [['slot a', A], ['slot b', B], ['slot b', B], ['slot a', C]]);
});

test('a run the socket started after the last activation serves the release live then; preflight and exec units name their release', () => {
  const lines = markLines(
    [line('app@b.service', 50, 'r9'), line('cutover-preflight-app-bbbbbbbbbbbb.service', 19, 'p'), { __REALTIME_TIMESTAMP: us(60), _SYSTEMD_UNIT: 'init.scope', UNIT: 'cutover-exec-app-cccccccccccc-1a2b3c4d.service', MESSAGE: 'Started …' }],
    events,
    'app',
  );
  assert.equal(lines.map((l) => [l.source, l.release]), [['slot b', A], ['preflight', B], ['exec', C]]);
});

test('a live process tells its run: the new slot during a handover, before its activation is recorded, is not marked with the old release', () => {
  const e = { ...line('app@b.service', 50, 'r5', 'listening'), _PID: '846' };
  const lines = markLines([e, line('app@b.service', 51, 'r5')], events, 'app', new Map(), (pid) => (pid === 846 ? B : undefined));
  assert.equal(lines.map((l) => l.release), [B, B], 'the whole run keeps what its process said');
  assert.equal(markLines([e], events, 'app').map((l) => l.release), [A], 'without a live process: the release live since the last activation');
});

test('a freeze file that is not one freezes hard and says so; a good one reads back', () => {
  assert.equal(parseFreeze('{"reason":"sale","by":"alice","at":"t","hard":false}'), { reason: 'sale', by: 'alice', at: 't', hard: false });
  for (const bad of ['', 'garbage', '{}', '{"reason":""}']) {
    const f = parseFreeze(bad, '/x/freeze.json');
    assert.is(f.hard, true, bad);
    assert.match(f.reason, /is not a freeze cutover wrote/);
  }
});

test.run();
