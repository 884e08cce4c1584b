// Unit tests for assertRefSyntax: what the operator may pass as <ref> before git ever sees it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRefSyntax } from '../../scripts/lib/assemble/git.ts';
import { ExitCode, UsageError } from '../../scripts/lib/run/errors.ts';

const good = [
  'main',
  'master',
  'v1.4.2',
  'release-2025.01',
  'feature/login',
  'team/alice/fix_1',
  'HEAD',
  '3f2a9c1',
  '3f2a9c1b0d4e',
  'c2e9cab517368d896613fc0bc7957264e9b45cf9',
  'v1@2',
  'x'.repeat(255),
];

const bad: Array<[string, RegExp]> = [
  ['', /empty/],
  ['-rf', /starts with "-"/],
  ['--upload-pack=touch /tmp/pwned', /starts with "-"/],
  ['--output=/etc/passwd', /starts with "-"/],
  ['a b', /spaces or control/],
  ['main\n', /spaces or control/],
  ['a\nb', /spaces or control/],
  ['tab\there', /spaces or control/],
  ['nul\x00byte', /spaces or control/],
  ['del\x7f', /spaces or control/],
  ['esc\x1b[31m', /spaces or control/],
  ['csi\u009b31m', /spaces or control/],
  ['line\u2028sep', /spaces or control/],
  ['HEAD:VERSION', /not a plain/],
  ['main:server.js', /not a plain/],
  ['main~1', /not a plain/],
  ['main^', /not a plain/],
  ['main^{tree}', /not a plain/],
  ['main@{1}', /not a plain/],
  ['@', /not a plain/],
  ['main..evil', /not a plain/],
  ['main...evil', /not a plain/],
  ['../x', /not a plain/],
  ['../../etc/passwd', /not a plain/],
  ['/etc/passwd', /not a plain/],
  ['feature/', /not a plain/],
  ['a//b', /not a plain/],
  ['x.lock', /not a plain/],
  ['x.', /not a plain/],
  ['*', /not a plain/],
  ['v1.?', /not a plain/],
  ['[ab]', /not a plain/],
  ['back\\slash', /not a plain/],
  ['x'.repeat(256), /too long/],
];

test('accepts commit hashes (full and abbreviated), tags and branch names', () => {
  for (const ref of good) assert.is(assertRefSyntax(ref), ref, ref);
});

test('refuses options, revision expressions, paths and control characters, with exit code 2', () => {
  for (const [ref, why] of bad) {
    let err: unknown;
    try {
      assertRefSyntax(ref);
    } catch (e) {
      err = e;
    }
    assert.instance(err, UsageError, `refused: ${JSON.stringify(ref)}`);
    const e = err as UsageError;
    assert.is(e.exitCode, ExitCode.usage);
    assert.match(e.message, why, `${JSON.stringify(ref)}: ${e.message}`);
    assert.ok(e.hint && /hash|tag|branch/.test(e.hint), 'the hint says what to give instead');
  }
});

/** How a message should show a ref: JSON-style escapes for every control character. */
const shown = (ref: string) =>
  JSON.stringify(ref).slice(1, -1).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

test('the message names the ref, printable, on one line', () => {
  for (const [ref] of bad) {
    if (ref.length > 100) continue;
    try {
      assertRefSyntax(ref);
    } catch (e) {
      const msg = (e as Error).message;
      assert.ok(msg.includes(shown(ref)), `names ${JSON.stringify(ref)}: ${msg}`);
      assert.not.match(msg, /[\x00-\x1f\x7f-\x9f\u2028\u2029]/, `no raw control characters reach the terminal: ${JSON.stringify(msg)}`);
    }
  }
});

test.run();
