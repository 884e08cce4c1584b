// Tests scripts/lib/golive/boot-priority.ts: the nice values of a control group's threads lowered and restored on real processes, the bounded window, the restore after it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BOOT_CPU_WEIGHT, BOOT_NICE, bootPriorityProperties, bootPriorityWindowMs, reniceControlGroup, restoreAfter } from '../../scripts/lib/golive/boot-priority.ts';
import type { Ops } from '../../scripts/lib/run/ops.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cutover-cgroup-'));
const children: ChildProcess[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The nice value of every thread of a process, from /proc. */
function threadNices(pid: number): number[] {
  return fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  });
}

/** An Ops that only records the commands it is asked to run. */
function recordingOps(): Ops & { ran: string[][] } {
  const ran: string[][] = [];
  return { dryRun: false, ran, run: async (argv: string[]) => (ran.push(argv), '') } as unknown as Ops & { ran: string[][] };
}

test.after(() => {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(root, { recursive: true, force: true });
});

test('a preflight starts at the boot priority: a fifth of the default CPU weight, nice 10', () => {
  assert.equal(bootPriorityProperties(), [`--property=CPUWeight=${BOOT_CPU_WEIGHT}`, `--property=Nice=${BOOT_NICE}`]);
  assert.ok(BOOT_CPU_WEIGHT < 100 && BOOT_NICE > 0);
});

test('the lowered window: at most 3 s, and half the health timeout when that is shorter', () => {
  assert.is(bootPriorityWindowMs(8), 3000);
  assert.is(bootPriorityWindowMs(60), 3000);
  assert.is(bootPriorityWindowMs(4), 2000);
});

test('reniceControlGroup lowers every thread of every process in the group, then restores only those at the boot value', async (): Promise<void> => {
  if (process.getuid?.() !== 0) {
    // Lowering a nice value back needs CAP_SYS_NICE: the kit runs as root.
    if (process.env.CI === 'true') assert.unreachable('this test needs root, and CI runs as root');
    console.log('  (skipped: not root)');
    return;
  }
  // A Node process has several threads already (V8's, libuv's); the other one set its own nice value.
  const app = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  const own = spawn('nice', ['-n', '15', 'sleep', '30'], { stdio: 'ignore' });
  children.push(app, own);
  await sleep(300);
  assert.ok(threadNices(app.pid!).length > 1, 'node runs several threads');
  const cg = '/system.slice/app@b.service';
  fs.mkdirSync(path.join(root, cg), { recursive: true });
  fs.writeFileSync(path.join(root, cg, 'cgroup.procs'), `${app.pid}\n${own.pid}\n`);

  const lowered = reniceControlGroup(cg, (n) => n < BOOT_NICE, BOOT_NICE, { cgroupRoot: root });
  assert.is(lowered, threadNices(app.pid!).length, 'each thread of the app, none of the other');
  assert.ok(threadNices(app.pid!).every((n) => n === BOOT_NICE), `every thread at ${BOOT_NICE}: ${threadNices(app.pid!)}`);
  assert.equal(threadNices(own.pid!), [15], 'a value the process set itself is left alone');
  assert.is(reniceControlGroup(cg, (n) => n < BOOT_NICE, BOOT_NICE, { cgroupRoot: root }), 0, 'lowering twice changes nothing');

  reniceControlGroup(cg, (n) => n === BOOT_NICE, 0, { cgroupRoot: root });
  assert.ok(threadNices(app.pid!).every((n) => n === 0), `every thread back at 0: ${threadNices(app.pid!)}`);
  assert.equal(threadNices(own.pid!), [15]);
  assert.is(reniceControlGroup('/system.slice/gone.service', () => true, 0, { cgroupRoot: root }), 0, 'a group without processes: nothing, no error');
});

test('restoreAfter gives the normal CPU weight back once the window has passed, and nothing when cancelled first', async () => {
  const ops = recordingOps();
  const kept = restoreAfter(ops, 'app@b.service', 40, '/cutover-test-no-such-group');
  const cancelled = restoreAfter(ops, 'app@a.service', 40, '/cutover-test-no-such-group');
  cancelled.cancel();
  await sleep(150);
  await kept.done();
  assert.equal(ops.ran, [['systemctl', 'set-property', '--runtime', 'app@b.service', 'CPUWeight=']]);
});

test.run();
