// fs tier: `active` is replaced atomically (rename of a fresh relative symlink), proven by a reader in another process.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { switchActive, liveRelease } from '../../scripts/lib/state/switch.ts';
import { createOps } from '../../scripts/lib/run/ops.ts';
import { appPaths, type AppPaths } from '../../scripts/lib/manifest/paths.ts';
import { snapshot } from '../helpers/kit.ts';
import { cleanupTempDirs, tempDir } from '../helpers/gitrepo.ts';

const A = 'aaaaaaaaaaaa';
const B = 'bbbbbbbbbbbb';
const SWITCHES = 3000;

let dir: string;
let paths: AppPaths;
const ops = createOps({ dryRun: false, print: () => {} });

/**
 * A separate node process that readlink()s `active` in a tight loop until the stop file appears, then
 * prints how many reads it made and every read that was not one of the expected targets.
 */
const READER = `
const fs = require('node:fs');
const [active, stop, ...allowed] = process.argv.slice(1);
let reads = 0, bad = 0; const samples = [];
process.stdout.write('ready\\n');
for (;;) {
  for (let i = 0; i < 500; i++) {
    let t;
    try { t = fs.readlinkSync(active); } catch (e) { t = 'ERROR ' + e.code; }
    reads++;
    if (!allowed.includes(t)) { bad++; if (samples.length < 5) samples.push(t); }
  }
  if (fs.existsSync(stop)) break;
}
process.stdout.write(JSON.stringify({ reads, bad, samples }) + '\\n');
`;

interface ReaderResult {
  reads: number;
  bad: number;
  samples: string[];
}

function startReader(active: string, stop: string, allowed: string[]): { child: ChildProcess; ready: Promise<void>; done: Promise<ReaderResult> } {
  const child = spawn(process.execPath, ['-e', READER, active, stop, ...allowed], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let onReady: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  const done = new Promise<ReaderResult>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.startsWith('ready\n')) onReady();
    });
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop()!;
      if (code !== 0) return reject(new Error(`reader exited ${code}: ${out}`));
      resolve(JSON.parse(last));
    });
  });
  return { child, ready, done };
}

test.before(async () => {
  dir = await tempDir('cutover-switch');
  const root = path.join(dir, 'root');
  paths = appPaths({ app: 'switchapp', root });
  for (const id of [A, B]) {
    fs.mkdirSync(paths.release(id), { recursive: true });
    fs.writeFileSync(path.join(paths.release(id), 'REVISION'), `${id}\n`);
  }
});
test.after(cleanupTempDirs);

test('the first switch creates a relative link that resolves to the release', async () => {
  await switchActive(ops, paths, A);
  const target = fs.readlinkSync(paths.active);
  assert.is(target, `releases/${A}`);
  assert.not.ok(path.isAbsolute(target), 'active is relative');
  assert.is(fs.readFileSync(path.join(paths.active, 'REVISION'), 'utf8'), `${A}\n`);
  assert.is(liveRelease(paths), A);
});

test(`active is never missing nor wrong while it is switched ${SWITCHES} times under a reader in another process`, async () => {
  const stop = path.join(dir, 'stop-atomic');
  const reader = startReader(paths.active, stop, [`releases/${A}`, `releases/${B}`]);
  await reader.ready;
  const t0 = Date.now();
  for (let i = 0; i < SWITCHES; i++) await switchActive(ops, paths, i % 2 ? A : B);
  const ms = Date.now() - t0;
  fs.writeFileSync(stop, '');
  const r = await reader.done;
  assert.is(r.bad, 0, `bad reads: ${JSON.stringify(r.samples)}`);
  assert.ok(r.reads > SWITCHES * 5, `the reader made ${r.reads} reads during ${SWITCHES} switches in ${ms} ms: enough to catch a gap`);
  assert.is(fs.readlinkSync(paths.active), `releases/${A}`, 'the last switch wins');
  const leftovers = fs.readdirSync(paths.root).filter((n) => n.startsWith('.active'));
  assert.equal(leftovers, [], 'no temporary links are left behind');
});

test('control: the same reader does catch a non-atomic switch (unlink, then symlink)', async () => {
  const stop = path.join(dir, 'stop-naive');
  const reader = startReader(paths.active, stop, [`releases/${A}`, `releases/${B}`]);
  await reader.ready;
  // Keep switching the naive way until the reader must have seen the gap (bounded).
  const deadline = Date.now() + 10_000;
  let i = 0;
  while (Date.now() < deadline && i < 200_000) {
    fs.unlinkSync(paths.active);
    fs.symlinkSync(`releases/${i++ % 2 ? A : B}`, paths.active);
    if (i % 2000 === 0) await new Promise((r) => setImmediate(r));
    if (i >= 20_000) break;
  }
  fs.writeFileSync(stop, '');
  const r = await reader.done;
  assert.ok(r.bad > 0, `the reader saw ${r.bad} missing links in ${r.reads} reads over ${i} naive switches`);
  assert.ok(r.samples.every((s) => s === 'ERROR ENOENT'), `what it saw: ${JSON.stringify(r.samples)}`);
  await switchActive(ops, paths, A);
});

test('the link stays valid when the whole root moves (it is relative)', async () => {
  await switchActive(ops, paths, B);
  const moved = path.join(dir, 'moved-root');
  fs.renameSync(paths.root, moved);
  try {
    assert.is(fs.readFileSync(path.join(moved, 'active', 'REVISION'), 'utf8'), `${B}\n`);
  } finally {
    fs.renameSync(moved, paths.root);
  }
});

test('a stale temporary link from a killed switch does not block the next switch', async () => {
  const stale = path.join(paths.root, `.active.${process.pid}.tmp`);
  fs.symlinkSync('releases/nowhere', stale);
  await switchActive(ops, paths, A);
  assert.is(fs.readlinkSync(paths.active), `releases/${A}`);
  assert.not.ok(fs.existsSync(stale) || fs.lstatSync(stale, { throwIfNoEntry: false }), 'the stale link is gone');
});

test('a switch with --dry-run only says what it would do', async () => {
  const lines: string[] = [];
  const dry = createOps({ dryRun: true, print: (l) => lines.push(l) });
  const before = snapshot(dir);
  await switchActive(dry, paths, B);
  assert.equal(snapshot(dir), before);
  assert.is(fs.readlinkSync(paths.active), `releases/${A}`);
  assert.is(lines.length, 1);
  assert.match(lines[0], /would point .*active at releases\/bbbbbbbbbbbb/);
});

test('switchActive refuses an id that is not a release id, and changes nothing', async () => {
  const before = snapshot(dir);
  for (const id of ['../x', '-rf', 'abc', `${A}/../..`]) {
    let err: unknown;
    try {
      await switchActive(ops, paths, id);
    } catch (e) {
      err = e;
    }
    assert.ok(err, `refused ${id}`);
  }
  assert.equal(snapshot(dir), before);
});

test.run();
