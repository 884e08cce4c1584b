// unit: a handover's timeline (test/helpers/timeline.ts): the steady span before the verb (or the first unit event), its build, the window up to the old slot's stop, their max and p99, the slowest requests named by the step they fell in.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cutoverWindow, describeWindow, type UnitEvent } from '../helpers/timeline.ts';
import type { Sample } from '../helpers/apps.ts';

const T0 = 1_000_000;
const ev = (t: number, what: string, who: string): UnitEvent => ({ t: T0 + t, what, who });

test('cutoverWindow: steady before the verb, its build, window up to the last stop; max, p99, slowest with their step', () => {
  const samples: Sample[] = [];
  // 98 steady requests of 10 ms and two of 40 ms; in the window 100 of 12 ms, one of 90 ms after the new slot started, one failed.
  for (let i = 0; i < 98; i++) samples.push({ start: T0 - 5000 + i * 20, ms: 10, ok: true });
  samples.push({ start: T0 - 100, ms: 40, ok: true }, { start: T0 - 50, ms: 40, ok: true });
  for (let i = 0; i < 100; i++) samples.push({ start: T0 + i * 20, ms: 12, ok: true, version: 'v1' });
  samples.push({ start: T0 + 1500, ms: 90, ok: true, version: 'v2' }, { start: T0 + 1600, ms: 900, ok: false });
  // After the window: not counted.
  samples.push({ start: T0 + 2500, ms: 500, ok: true });
  const w = cutoverWindow(samples, [ev(0, 'Starting', 'preflight'), ev(1000, 'Started', 'shop@b.service'), ev(2000, 'Stopped', 'shop@a.service')], T0)!;
  assert.is(w.steadyMax, 40);
  assert.is(w.steadyP99, 40, 'two 40 ms requests in 100 reach the p99');
  assert.is(w.windowMax, 90);
  assert.is(w.windowP99, 12, 'one slow request of 101 is not the p99');
  assert.is(w.bound, 90);
  assert.equal(w.slowest[0], { atMs: 1500, ms: 90, after: 'Started shop@b.service', version: 'v2' });
  assert.equal(w.events, ['+0 Starting preflight', '+1000 Started shop@b.service', '+2000 Stopped shop@a.service']);
  assert.match(describeWindow(w), /window max 90 ms \(no-stall limit 90 ms: within\), p99 steady 40 ms, window 12 ms; build max 0 ms; slowest 90 ms at \+1500 \(after: Started shop@b.service; answered by v2\)/);
  assert.is(w.buildMax, 0, 'the verb started with the window: no build span');
  // The verb started 60 ms before the window: the two 40 ms requests fell in its build, the steady span is the 10 ms ones.
  const v = cutoverWindow(samples, [ev(0, 'Starting', 'preflight'), ev(2000, 'Stopped', 'shop@a.service')], T0 - 120)!;
  assert.equal([v.steadyMax, v.buildMax, v.windowMax, v.bound], [10, 40, 90, 60]);
  assert.match(describeWindow(v), /steady max 10 ms, window max 90 ms \(no-stall limit 60 ms: OVER\).*; build max 40 ms;/);
  assert.is(cutoverWindow(samples, [], T0), undefined);
  assert.is(describeWindow(undefined), 'cut-over window: no unit events found');
});

test.run();
