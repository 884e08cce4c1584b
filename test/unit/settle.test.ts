// Tests scripts/lib/golive/settle.ts: when the gate starts probing — once every process of the new slot waits for work — on real processes and a made-up cgroup tree.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cgroupPids, untilBooted } from '../../scripts/lib/golive/settle.ts';
import { waitsForWork } from '../../scripts/lib/state/procfs.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cutover-cgroup-'));
const procs = (cg: string, pids: number[], under = '') => {
  fs.mkdirSync(path.join(root, under, cg), { recursive: true });
  fs.writeFileSync(path.join(root, under, cg, 'cgroup.procs'), pids.map((p) => `${p}\n`).join(''));
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children: ChildProcess[] = [];
const start = (cmd: string, args: string[]) => {
  const c = spawn(cmd, args, { stdio: 'ignore' });
  children.push(c);
  return c.pid!;
};

test('cgroupPids reads cgroup.procs of a unified host and of a hybrid one (systemd v2 tree under unified/); undefined when missing', () => {
  procs('/system.slice/app@b.service', [12, 34]);
  assert.equal(cgroupPids('/system.slice/app@b.service', root), [12, 34]);
  procs('/system.slice/hy@b.service', [56], 'unified');
  assert.equal(cgroupPids('/system.slice/hy@b.service', root), [56]);
  assert.is(cgroupPids('/system.slice/gone.service', root), undefined);
});

test('waitsForWork: a process in a timed sleep or an event loop waits; one that runs does not; a gone one is undefined', async () => {
  const sleeper = start('sleep', ['30']);
  const busy = start('sh', ['-c', 'while :; do :; done']);
  await sleep(150);
  assert.is(waitsForWork(sleeper), true);
  const selecting = start('python3', ['-c', 'import select, socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); select.select([s], [], [], 30)']);
  const accepting = start('python3', ['-c', 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); s.accept()']);
  // Python starts in its own time on a busy machine: until then it runs.
  const eventually = async (pid: number) => {
    for (const until = Date.now() + 5000; Date.now() < until; await sleep(50)) if (waitsForWork(pid)) return true;
    return false;
  };
  assert.ok(await eventually(selecting), "select() on a listening socket: gunicorn's workers");
  assert.ok(await eventually(accepting), 'a blocking accept()');
  // A busy loop is running (R) whenever it is looked at, unless it was just preempted: most looks say so.
  let running = 0;
  for (let i = 0; i < 10; i++) {
    if (waitsForWork(busy) === false) running++;
    await sleep(5);
  }
  assert.ok(running >= 8, `the busy loop did not wait (${running} of 10 looks)`);
  assert.is(waitsForWork(2 ** 22 + 12345), undefined);
});

test('untilBooted: waits while a process of the slot runs, ends once its process set is stable and each has waited', async () => {
  const busy = start('sh', ['-c', 'while :; do :; done']);
  const idle = start('sleep', ['30']);
  procs('/t/new.service', [idle, busy]);
  const stillBooting = await untilBooted('new.service', { maxMs: 300, everyMs: 25, cgroup: '/t/new.service', cgroupRoot: root });
  assert.not.ok(stillBooting.booted, stillBooting.detail);
  assert.match(stillBooting.detail, /still booting after 300 ms/);
  // The "workers" are forked: a new process set, which must be stable again before it counts.
  const idle2 = start('sleep', ['30']);
  procs('/t/new.service', [idle, idle2]);
  const r = await untilBooted('new.service', { maxMs: 3000, everyMs: 25, cgroup: '/t/new.service', cgroupRoot: root });
  assert.ok(r.booted, r.detail);
  assert.match(r.detail, /2 process\(es\) waiting for work/);
  assert.ok(r.ms >= 50, `two stable looks, 25 ms apart: ${r.ms} ms`);
});

test("untilBooted returns at once without the slot's process list, or when it has no process (it exited)", async () => {
  const r = await untilBooted('gone.service', { maxMs: 5000, cgroup: '/t/gone.service', cgroupRoot: root });
  assert.not.ok(r.booted);
  assert.is(r.ms < 100, true);
  assert.match(r.detail, /no process list for gone.service/);
  procs('/t/exited.service', []);
  const exited = await untilBooted('exited.service', { maxMs: 5000, cgroup: '/t/exited.service', cgroupRoot: root });
  assert.not.ok(exited.booted);
  assert.match(exited.detail, /exited.service has no process/);
});

test.after(() => {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(root, { recursive: true, force: true });
});
test.run();
