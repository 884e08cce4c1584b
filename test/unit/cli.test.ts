// unit: the command line: what the lock says its holder does (the verb with its flags), and the parsed args.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeOperation, parseCommandLine, type CommandSpec } from '../../scripts/lib/run/cli.ts';

const release: CommandSpec = {
  name: 'release',
  summary: 'test',
  positionals: '<ref>',
  arity: [1, 1],
  options: { rebuild: { type: 'boolean', help: '' }, 'no-activate': { type: 'boolean', help: '' } },
};

test('the operation keeps the flags as given, and drops --manifest', () => {
  assert.is(describeOperation('release', ['v1', '--rebuild']), 'release v1 --rebuild');
  assert.is(describeOperation('release', ['--manifest', '/etc/cutover/shop.yaml', 'v1', '--no-activate']), 'release v1 --no-activate');
  assert.is(describeOperation('prune', ['--manifest=/etc/x.yaml', '--keep', '3', '--cron']), 'prune --keep 3 --cron');
  assert.is(describeOperation('rollback', ['--to=3f2a9c1b0d4e']), 'rollback --to=3f2a9c1b0d4e');
  assert.is(describeOperation('status', []), 'status');
});

test('odd words in the operation are quoted, so the lock message stays one readable line', () => {
  assert.is(describeOperation('release', ['a b\nc']), 'release "a b\\nc"');
});

test('parsed args carry the operation', () => {
  const a = parseCommandLine(release, ['v1', '--rebuild', '--manifest', '/tmp/m.yaml'], {});
  assert.ok(a !== 'help', 'not --help');
  assert.is(a.operation, 'release v1 --rebuild');
  assert.is(a.manifestFile, '/tmp/m.yaml');
});

test.run();
