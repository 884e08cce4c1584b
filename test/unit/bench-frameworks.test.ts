// Tests test/bench/frameworks.ts: the framework test's lines summed up as one row per cut-over, with its verdict against the no-stall limit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { summarize } from '../bench/frameworks.ts';

const output = `
  flask: release v2 in 9.1 s; load: 4200 requests in 11.0 s, 0 failed · p50 3.3 ms, p99 18.3 ms, max 274.9 ms · longest outage 0 ms
  flask: cut-over window: steady max 116 ms, window max 275 ms (no-stall limit 174 ms: OVER); slowest 275 ms at +812 (after: Started preflight)
    events: 0 Started preflight
  flask: rollback in 4.0 s; load: 2100 requests in 6.0 s, 2 failed (ECONNRESET ×2) · p50 3.5 ms, p99 19.1 ms, max 60 ms · longest outage 0 ms
  flask: rollback's cut-over window: steady max 40 ms, window max 60 ms (no-stall limit 90 ms: within); slowest 60 ms at +10
`;

test('one row per cut-over: load, steady max, window max against the limit, failed requests', () => {
  const { rows, lines } = summarize(output);
  assert.equal(rows.get('flask v2'), { load: 'p50 3.3 ms, p99 18.3 ms, max 274.9 ms', failed: 0, window: { steady: 116, max: 275, limit: 174 } });
  assert.equal(rows.get('flask rollback')?.window, { steady: 40, max: 60, limit: 90 });
  assert.is(rows.get('flask rollback')?.failed, 2);
  assert.match(lines[2]!, '| flask v2 | p50 3.3 ms, p99 18.3 ms, max 274.9 ms | 116 ms | 275 ms | 174 ms | **OVER** | 0 |');
  assert.match(lines[3]!, '| within | 2 |');
});

test('no framework lines: no rows', () => {
  assert.is(summarize('nothing here\n').rows.size, 0);
});

test.run();
