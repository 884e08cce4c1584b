// withHostLock: the host-wide lock around the web servers' files waits for its holder, and gives up with the caller's error when the wait runs out.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { withHostLock } from '../../scripts/lib/state/lock.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cutover-hostlock-'));
const file = path.join(dir, 'proxy.lock');
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Holds the lock from another process for ms; resolves once it is held, with a promise of its release. */
async function holdFor(ms: number): Promise<{ released: Promise<void> }> {
  const p = spawn('flock', [file, 'sh', '-c', `echo held; sleep ${ms / 1000}`], { stdio: ['ignore', 'pipe', 'ignore'] });
  const released = new Promise<void>((resolve) => p.on('close', () => resolve()));
  await new Promise<void>((resolve) => p.stdout!.once('data', () => resolve()));
  return { released };
}

test('a held lock that outlasts the wait: the caller\'s error, and the work never runs', async () => {
  const { released } = await holdFor(3_000);
  let ran = false;
  const err = await withHostLock(file, 1, () => new Error('busy: another provision'), async () => {
    ran = true;
  }).catch((e: Error) => e);
  assert.instance(err, Error);
  assert.is((err as Error).message, 'busy: another provision');
  assert.not.ok(ran, 'the work did not run without the lock');
  await released;
});

test('a lock freed during the wait: the work runs after it, and the lock is free again afterwards', async () => {
  const { released } = await holdFor(1_000);
  const t0 = Date.now();
  const got = await withHostLock(file, 30, () => new Error('busy'), async () => Date.now() - t0);
  assert.ok(got >= 700, `it waited for the holder (${got} ms)`);
  await released;
  assert.is(await withHostLock(file, 1, () => new Error('busy'), async () => 'again'), 'again', 'released when the work ended');
});

test.run();
