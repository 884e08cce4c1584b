// unit: one pass over an archive (archive-read.ts) into a tree (tree-writer.ts): the record and the entries written with sealed modes, problems refused with nothing unsafe written, a neighbour's identical files linked, never through a link.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { Header } from 'tar';
import { compressionFor, compressionOf } from '../../scripts/lib/assemble/compression.ts';
import { readArchive } from '../../scripts/lib/assemble/archive-read.ts';
import { landedMode, treeWriter, type TreeWriter } from '../../scripts/lib/assemble/tree-writer.ts';
import { shareSource } from '../../scripts/lib/assemble/share-source.ts';
import { worthUnpacking } from '../../scripts/lib/assemble/receive.ts';
import type { ReleaseState } from '../../scripts/lib/assemble/plan.ts';
import { commandMissing, requiring } from '../helpers/prereq.ts';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cutover-unpack-'));
test.after(() => fs.rmSync(work, { recursive: true, force: true }));
const RELEASE = 'aaaaaaaaaaaa';
const record = {
  format: 1, app: 'shop', commit: 'a'.repeat(40), ref: 'main', release: RELEASE, runtime: 'node', runtimeVersion: 'v18.19.0',
  arch: 'x64', os: 'debian 12', builtAt: '2026-01-01T00:00:00.000Z', builtBy: 'ci', treeDigest: 'b'.repeat(64), native: false,
};

interface E { path: string; type?: string; mode?: number; data?: string | Buffer; linkpath?: string }
let n = 0;
/** A tar.gz of these entries, the record first (as cutover build writes it). */
function archive(entries: E[]): string {
  const blocks: Buffer[] = [];
  const mtime = new Date('2026-01-02T03:04:05Z');
  for (const e of [{ path: '.cutover-archive.json', data: JSON.stringify(record) }, ...entries]) {
    const data = typeof e.data === 'string' ? Buffer.from(e.data) : e.data ?? Buffer.alloc(0);
    const type = e.type ?? 'File';
    const h = new Header({ path: e.path, mode: e.mode ?? (type === 'Directory' ? 0o775 : 0o664), size: type === 'File' ? data.length : 0, type, linkpath: e.linkpath, mtime, uid: 1000, gid: 1000 } as never);
    const block = Buffer.alloc(512);
    h.encode(block, 0);
    blocks.push(block);
    if (type === 'File' && data.length > 0) blocks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  const file = path.join(work, `a${++n}.tar.gz`);
  fs.writeFileSync(file, zlib.gzipSync(Buffer.concat(blocks)));
  return file;
}

const limits = { maxBytes: 1 << 30, maxEntries: 1000 };
const opts = { releaseDirOf: () => `/srv/shop/releases/${RELEASE}`, limits };

async function unpack(file: string, o: { share?: string; skip?: string[] } = {}): Promise<{ dir: string; writer: TreeWriter; error?: Error }> {
  const dir = path.join(work, `t${++n}`);
  let writer!: TreeWriter;
  const me = { uid: process.getuid!(), gid: process.getgid!(), dev: fs.statSync(work).dev };
  const share = o.share ? shareSource(o.share, me, o.skip) : undefined;
  try {
    await readArchive(file, { ...opts, sink: () => (writer = treeWriter(dir, { seal: true, share, umask: 0o022 })) });
    return { dir, writer };
  } catch (e) {
    return { dir, writer, error: e as Error };
  }
}

const mode = (p: string) => fs.lstatSync(p).mode & 0o7777;

test('landedMode: permission bits, the umask off, and sealed: no group or other write', () => {
  assert.is(landedMode(0o100775, 0o644, 0o022, true), 0o755);
  assert.is(landedMode(0o664, 0o644, 0o002, false), 0o664);
  assert.is(landedMode(0o666, 0o644, 0o002, false), 0o664);
  assert.is(landedMode(0, 0o644, 0o022, true), 0o644, 'no mode: the default');
  assert.is(landedMode(0o1777, 0o755, 0, true), 0o1755, 'the sticky bit stays');
});

test('the record and every entry are written, with sealed modes, times, links and implied parents', async () => {
  const file = archive([
    { path: 'app/', type: 'Directory', mode: 0o775 },
    { path: 'app/index.js', data: 'hello\n', mode: 0o664 },
    { path: 'bin/run', data: '#!/bin/sh\n', mode: 0o775 },
    { path: 'deep/er/file.txt', data: 'x' },
    { path: 'empty', data: '' },
    { path: 'link', type: 'SymbolicLink', linkpath: 'app/index.js', mode: 0o777 },
    { path: 'python', type: 'SymbolicLink', linkpath: '/usr/bin/python3', mode: 0o777 },
    { path: 'hard', type: 'Link', linkpath: 'app/index.js' },
  ]);
  const { dir, error } = await unpack(file);
  assert.is(error, undefined);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, '.cutover-archive.json'), 'utf8')).release, RELEASE, 'the record is a file of the tree');
  assert.is(fs.readFileSync(path.join(dir, 'app/index.js'), 'utf8'), 'hello\n');
  assert.is(mode(path.join(dir, 'app/index.js')), 0o644);
  assert.is(mode(path.join(dir, 'bin/run')), 0o755);
  assert.is(mode(path.join(dir, 'app')), 0o755);
  assert.is(mode(dir), 0o755, 'the top directory');
  assert.is(mode(path.join(dir, 'deep/er')), 0o755, 'a parent the archive did not list');
  assert.is(fs.readFileSync(path.join(dir, 'empty'), 'utf8'), '');
  assert.is(fs.readlinkSync(path.join(dir, 'link')), 'app/index.js');
  assert.is(fs.readlinkSync(path.join(dir, 'python')), '/usr/bin/python3');
  assert.is(fs.statSync(path.join(dir, 'hard')).ino, fs.statSync(path.join(dir, 'app/index.js')).ino);
  assert.is(fs.statSync(path.join(dir, 'app/index.js')).mtime.toISOString(), '2026-01-02T03:04:05.000Z');
  assert.is(fs.statSync(path.join(dir, 'app')).mtime.toISOString(), '2026-01-02T03:04:05.000Z', "a directory's time, set after its children");
  assert.is(fs.statSync(path.join(dir, 'app/index.js')).uid, process.getuid!(), "the owner is the unpacker's, not the archive's");
});

test('a refused entry stops the writing: what follows it is never written, and every problem is listed', async () => {
  const file = archive([
    { path: 'ok.txt', data: 'fine' },
    { path: 'inner', type: 'SymbolicLink', linkpath: 'app', mode: 0o777 },
    { path: 'inner/evil', data: 'evil' },
    { path: 'after.txt', data: 'never' },
    { path: 'ww', data: 'x', mode: 0o666 },
  ]);
  const { dir, error } = await unpack(file);
  assert.ok(error, 'refused');
  assert.match(error!.message, /"inner\/evil" lies below the symlink "inner"/);
  assert.match(error!.message, /"ww" is writable by every user/, 'problems after the first are still listed');
  assert.ok(fs.existsSync(path.join(dir, 'ok.txt')), 'written before the problem (the caller removes the tree)');
  assert.not.ok(fs.existsSync(path.join(dir, 'app')), 'nothing written through the link');
  assert.not.ok(fs.existsSync(path.join(dir, 'after.txt')), 'nothing after the problem');
});

test('a path twice, or a path below a file, is refused', async () => {
  const twice = await unpack(archive([{ path: 'a', data: '1' }, { path: 'a', data: '2' }]));
  assert.match(twice.error?.message ?? '', /"a" appears twice in the archive/);
  assert.is(fs.readFileSync(path.join(twice.dir, 'a'), 'utf8'), '1', 'the first stays as it was');
  const below = await unpack(archive([{ path: 'f', data: '1' }, { path: 'f/g', data: '2' }]));
  assert.match(below.error?.message ?? '', /"f\/g" (lies below a file|appears twice)/);
  // The second copy of a path is refused even when it would be linked to the neighbour's file (created only at its end).
  const nb = path.join(work, 'nb-twice');
  fs.mkdirSync(nb);
  fs.writeFileSync(path.join(nb, 'a'), '2');
  fs.chmodSync(path.join(nb, 'a'), 0o644);
  const shared = await unpack(archive([{ path: 'a', data: '1' }, { path: 'a', data: '2' }]), { share: nb });
  assert.match(shared.error?.message ?? '', /"a" appears twice in the archive/);
  assert.is(fs.readFileSync(path.join(shared.dir, 'a'), 'utf8'), '1');
});

test('a host mismatch is refused before any entry is written', async () => {
  const dir = path.join(work, 'mismatch');
  const file = archive([{ path: 'x', data: 'x' }]);
  let made = false;
  const r = await readArchive(file, {
    ...opts,
    hostMismatch: () => [['it was built for riscv64, and this host is x64', 'Build it on an x64 machine.']],
    sink: () => {
      made = true;
      return treeWriter(dir, { seal: true });
    },
  }).catch((e: Error) => e);
  assert.match((r as Error).message, /built for riscv64/);
  assert.not.ok(made, 'no writer was even made');
  assert.not.ok(fs.existsSync(dir));
});

test('sharing: a file identical to the neighbour\'s is that file; a different one of the same size, a changed mode, a writable dir and a path through a link are written', async () => {
  const nb = path.join(work, 'neighbour');
  const big = Buffer.alloc(300_000, 7);
  const bigOther = Buffer.from(big);
  bigOther[250_000] = 8; // differs late: the first chunks compare equal
  fs.mkdirSync(path.join(nb, 'lib'), { recursive: true });
  fs.mkdirSync(path.join(nb, 'cache/images'), { recursive: true });
  fs.mkdirSync(path.join(nb, 'real'), { recursive: true });
  fs.writeFileSync(path.join(nb, 'lib/same.js'), 'same content\n');
  fs.writeFileSync(path.join(nb, 'lib/big.bin'), big);
  fs.writeFileSync(path.join(nb, 'lib/other.bin'), big);
  fs.writeFileSync(path.join(nb, 'lib/mode.js'), 'same content\n');
  fs.writeFileSync(path.join(nb, 'cache/images/a.png'), 'png');
  fs.writeFileSync(path.join(nb, 'real/f.js'), 'through\n');
  fs.symlinkSync('real', path.join(nb, 'via'));
  for (const f of ['lib/same.js', 'lib/big.bin', 'lib/other.bin', 'cache/images/a.png', 'real/f.js']) fs.chmodSync(path.join(nb, f), 0o644);
  fs.chmodSync(path.join(nb, 'lib/mode.js'), 0o755);
  const file = archive([
    { path: 'lib/same.js', data: 'same content\n' },
    { path: 'lib/big.bin', data: big },
    { path: 'lib/other.bin', data: bigOther },
    { path: 'lib/mode.js', data: 'same content\n', mode: 0o644 },
    { path: 'cache/images/a.png', data: 'png' },
    { path: 'via/f.js', data: 'through\n' },
  ]);
  const { dir, writer, error } = await unpack(file, { share: nb, skip: ['cache/images/'] });
  assert.is(error, undefined);
  const ino = (root: string, rel: string) => fs.statSync(path.join(root, rel)).ino;
  assert.is(ino(dir, 'lib/same.js'), ino(nb, 'lib/same.js'), 'identical: linked');
  assert.is(ino(dir, 'lib/big.bin'), ino(nb, 'lib/big.bin'), 'identical over many chunks: linked');
  assert.is.not(ino(dir, 'lib/other.bin'), ino(nb, 'lib/other.bin'), 'same size, different bytes: written');
  assert.ok(fs.readFileSync(path.join(dir, 'lib/other.bin')).equals(bigOther), 'written whole: the compared prefix, then the rest');
  assert.is(fs.readFileSync(path.join(nb, 'lib/other.bin')).equals(big), true, "the neighbour's file is untouched");
  assert.is.not(ino(dir, 'lib/mode.js'), ino(nb, 'lib/mode.js'), 'another mode: written');
  assert.is.not(ino(dir, 'cache/images/a.png'), ino(nb, 'cache/images/a.png'), "the app's writable dir: never shared");
  assert.is.not(ino(dir, 'via/f.js'), ino(nb, 'real/f.js'), 'never through a link of the neighbour');
  assert.ok(writer.sharedBytes() >= big.length, `the shared bytes are counted (${writer.sharedBytes()})`);
});

test('an empty archive (zero blocks only), a stream that is not gzip, and a truncated one are refused as such', async () => {
  const empty = path.join(work, 'empty.tar.gz');
  fs.writeFileSync(empty, zlib.gzipSync(Buffer.alloc(10240)));
  assert.match((await readArchive(empty, opts).catch((e: Error) => e) as Error).message, /it is empty \(no entries at all\)/);
  const raw = path.join(work, 'raw.tar');
  fs.writeFileSync(raw, zlib.gunzipSync(fs.readFileSync(archive([{ path: 'x', data: 'x' }]))));
  assert.match((await readArchive(raw, opts).catch((e: Error) => e) as Error).message, /not a whole, readable tar\.gz stream/);
  const whole = fs.readFileSync(archive([{ path: 'big', data: Buffer.alloc(200_000, 1) }]));
  const cut = path.join(work, 'cut.tar.gz');
  fs.writeFileSync(cut, whole.subarray(0, whole.length - 20));
  assert.match((await readArchive(cut, opts).catch((e: Error) => e) as Error).message, /not a whole, readable tar\.gz stream .*truncated or corrupt/);
});

// Skipped without the zstd program, failing under CI=true (test/setup.sh installs it): never a silent pass.
const withZstd = requiring(commandMissing('zstd', ['--version'], 'apt-get install zstd'));
/** The same archive as .tar.zst (its tar recompressed by the zstd program). */
function asZstd(gz: string): string {
  const out = gz.replace(/\.tar\.gz$/, '.tar.zst');
  const r = spawnSync('zstd', ['-q', '-3', '-f', '-o', out], { input: zlib.gunzipSync(fs.readFileSync(gz)) });
  assert.is(r.status, 0, String(r.stderr));
  return out;
}

withZstd('zstd: an archive compressed with zstd is read by the zstd program, told by its first bytes; truncated, or without zstd on the host, it is refused', async () => {
  const file = asZstd(archive([{ path: 'app/index.js', data: 'hello\n' }, { path: 'big', data: Buffer.alloc(300_000, 3) }]));
  assert.is(compressionOf(file), 'zstd');
  const { dir, error } = await unpack(file);
  assert.is(error, undefined);
  assert.is(fs.readFileSync(path.join(dir, 'app/index.js'), 'utf8'), 'hello\n');
  assert.is(fs.statSync(path.join(dir, 'big')).size, 300_000);
  const whole = fs.readFileSync(file);
  const cut = path.join(work, 'cut.tar.zst');
  fs.writeFileSync(cut, whole.subarray(0, Math.floor(whole.length / 2)));
  assert.match((await readArchive(cut, opts).catch((e: Error) => e) as Error).message, /not a whole, readable tar\.zst stream .*truncated or corrupt/);
  const pathBefore = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    const e = (await readArchive(file, opts).catch((x: Error) => x)) as Error & { hint?: string };
    assert.match(e.message, /it is compressed with zstd, and this host has no zstd program/);
    assert.match(String(e.hint), /apt-get install zstd/);
  } finally {
    process.env.PATH = pathBefore;
  }
  assert.is(compressionFor('x.tar.zst'), 'zstd');
  assert.is(compressionFor('x.tzst'), 'zstd');
  assert.is(compressionFor('x.tar.gz'), 'gzip');
});

withZstd('zstd: its output, read through one reused buffer, lands byte for byte: files across many reads, odd sizes, a neighbour\'s copy that differs late', async () => {
  const random = (size: number, seed: number) => {
    const b = Buffer.alloc(size);
    let x = seed;
    for (let i = 0; i < size; i++) b[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    return b;
  };
  const big = random(3_000_001, 1);
  const files: E[] = [{ path: 'big', data: big }];
  for (let i = 0; i < 200; i++) files.push({ path: `d${i % 7}/f${i}`, data: random((i * 977) % 70_001, i + 2) });
  const file = asZstd(archive(files));
  const live = await unpack(file);
  assert.is(live.error, undefined);
  for (const f of files) assert.ok(fs.readFileSync(path.join(live.dir, f.path)).equals(f.data as Buffer), f.path);
  // The next release: the same files but for one byte near the end of the big one; the rest is linked from the live tree.
  const changed = Buffer.from(big);
  changed[2_999_000] ^= 1;
  const next = await unpack(asZstd(archive([{ path: 'big', data: changed }, ...files.slice(1)])), { share: live.dir });
  assert.is(next.error, undefined);
  assert.ok(fs.readFileSync(path.join(next.dir, 'big')).equals(changed));
  assert.is.not(fs.statSync(path.join(next.dir, 'big')).ino, fs.statSync(path.join(live.dir, 'big')).ino);
  for (const f of files.slice(1)) {
    const at = path.join(next.dir, f.path);
    assert.ok(fs.readFileSync(at).equals(f.data as Buffer), f.path);
    if ((f.data as Buffer).length > 0) assert.is(fs.statSync(at).ino, fs.statSync(path.join(live.dir, f.path)).ino, f.path);
  }
});

withZstd('zstd where no FIFO can be made (no mkfifo on the host): read from its stdout pipe instead, byte for byte', async () => {
  // A PATH with the zstd program and nothing else: openFifo's mkfifo cannot run, so the pipe fallback reads the output.
  const bin = fs.mkdtempSync(path.join(work, 'bin-'));
  const zstd = spawnSync('sh', ['-c', 'command -v zstd'], { encoding: 'utf8' }).stdout.trim();
  fs.symlinkSync(zstd, path.join(bin, 'zstd'));
  const files: E[] = [{ path: 'big', data: Buffer.alloc(2_500_003, 7) }];
  for (let i = 0; i < 60; i++) files.push({ path: `d${i % 5}/f${i}`, data: Buffer.alloc((i * 1531) % 40_001, i) });
  const file = asZstd(archive(files));
  const pathBefore = process.env.PATH;
  process.env.PATH = bin;
  try {
    assert.is.not(spawnSync('mkfifo', ['--version']).status, 0, 'mkfifo must be out of reach for this test');
    const { dir, error } = await unpack(file);
    assert.is(error, undefined);
    for (const f of files) assert.ok(fs.readFileSync(path.join(dir, f.path)).equals(f.data as Buffer), f.path);
    const cut = path.join(work, 'cut-pipe.tar.zst');
    const whole = fs.readFileSync(file);
    fs.writeFileSync(cut, whole.subarray(0, Math.floor(whole.length / 2)));
    assert.match((await readArchive(cut, opts).catch((e: Error) => e) as Error).message, /not a whole, readable tar\.zst stream .*truncated or corrupt/);
  } finally {
    process.env.PATH = pathBefore;
  }
});

test('worthUnpacking: not when the release id is taken on this host', () => {
  const state = (taken: string[]) => ({ taken: (id: string) => taken.includes(id) }) as unknown as ReleaseState;
  assert.ok(worthUnpacking(state([]), record as never));
  assert.not.ok(worthUnpacking(state([RELEASE]), record as never));
});

test.run();
