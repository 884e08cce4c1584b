// Tests scripts/lib/assemble/reuse.ts's shareIdenticalFiles (git builds): identical files become one inode with the other release's, but never through a link to a directory in it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { shareIdenticalFiles } from '../../scripts/lib/assemble/reuse.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cutover-share-'));
const put = (file: string, text: string) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text, { mode: 0o644 });
};
const ino = (file: string) => fs.statSync(file).ino;

test('identical files under real directories are linked; the app\'s writable dirs and different files are not', () => {
  const rel = path.join(dir, 'r1', 'new');
  const other = path.join(dir, 'r1', 'old');
  put(path.join(rel, 'lib', 'same.js'), 'x'.repeat(5000));
  put(path.join(other, 'lib', 'same.js'), 'x'.repeat(5000));
  put(path.join(rel, 'lib', 'diff.js'), 'a'.repeat(5000));
  put(path.join(other, 'lib', 'diff.js'), 'b'.repeat(5000));
  put(path.join(rel, 'uploads', 'u.txt'), 'u'.repeat(5000));
  put(path.join(other, 'uploads', 'u.txt'), 'u'.repeat(5000));
  const saved = shareIdenticalFiles(rel, other, ['uploads/']);
  assert.ok(saved > 0);
  assert.is(ino(path.join(rel, 'lib', 'same.js')), ino(path.join(other, 'lib', 'same.js')));
  assert.is.not(ino(path.join(rel, 'lib', 'diff.js')), ino(path.join(other, 'lib', 'diff.js')));
  assert.is.not(ino(path.join(rel, 'uploads', 'u.txt')), ino(path.join(other, 'uploads', 'u.txt')));
});

test('a link to a directory in the other release is not followed: a host file never becomes one inode with a release file', () => {
  const rel = path.join(dir, 'r2', 'new');
  const other = path.join(dir, 'r2', 'old');
  const host = path.join(dir, 'r2', 'etc'); // stands for /etc
  put(path.join(host, 'secret.conf'), 's'.repeat(5000));
  put(path.join(rel, 'conf', 'secret.conf'), 's'.repeat(5000)); // the same bytes, shipped in the new release
  fs.mkdirSync(other, { recursive: true });
  fs.symlinkSync(host, path.join(other, 'conf')); // the old release links conf/ to the host's directory
  assert.is(shareIdenticalFiles(rel, other), 0);
  assert.is.not(ino(path.join(rel, 'conf', 'secret.conf')), ino(path.join(host, 'secret.conf')));
  assert.is(fs.statSync(path.join(host, 'secret.conf')).nlink, 1, 'the host file has no second name');
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();
