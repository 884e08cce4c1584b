// Tests the bench's verdict rule (test/bench/deploys.ts servedWrong): "0 failed" counts only with the versions served that the deploy's exit calls for.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { servedWrong } from '../bench/deploys.ts';

test('a deploy that went through must end on another version; a refused one on the version it began with', () => {
  assert.is(servedWrong(['1', '2'], 0), undefined);
  assert.is(servedWrong(['2', '1'], 0), undefined, 'a rollback');
  assert.is(servedWrong(['1'], 1), undefined, 'refused by preflight');
  assert.is(servedWrong(['1', '2', '1'], 1), undefined, 'switched back after a failed gate');
  assert.match(servedWrong(['1'], 0)!, 'did not change', 'exit 0 but still the old version (it exited before restarting)');
  assert.match(servedWrong(['1', '2'], 1)!, 'ended serving another version');
  assert.match(servedWrong([], 0)!, 'no version answered');
  assert.is(servedWrong(['1'], 0, 'same'), undefined, 'a restart of the same release');
  assert.match(servedWrong(['1', '2'], 0, 'same')!, 'ended serving another version');
  assert.is(servedWrong(['1', '2', '1', '2', '1'], 0, 'same-after-changes'), undefined, 'ten alternating activations');
  assert.match(servedWrong(['1'], 0, 'same-after-changes')!, 'in between');
  assert.match(servedWrong(['1', '2'], 0, 'same-after-changes')!, 'ended on the first');
});

test.run();
