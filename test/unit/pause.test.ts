// Tests the crash tests' pause point in scripts/lib/run/log.ts (CUTOVER_TEST_PAUSE): it stops exactly where named, blocks until killed, and is inert when unset.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { kitDir } from '../helpers/kit.ts';
import { parsePause, PAUSE_MARK } from '../../scripts/lib/run/log.ts';

const tsx = path.join(kitDir, 'node_modules', '.bin', 'tsx');
// Three steps and two plain lines; each step and line leaves a trace on stdout.
const script = `
import { createLogger } from ${JSON.stringify(path.join(kitDir, 'scripts/lib/run/log.ts'))};
const log = createLogger();
log.info('first line');
await log.step('fetch the repo', async () => { console.log('fetch ran'); });
await log.step('build: npm run build', async () => { console.log('build ran'); });
log.info('Release x is ready');
await log.step('switch active', async () => { console.log('switch ran'); });
console.log('the end');
`;
const scriptFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cutover-pause-')), 'steps.mts');
fs.writeFileSync(scriptFile, script);
test.after(() => fs.rmSync(path.dirname(scriptFile), { recursive: true, force: true }));

/** Runs the script with CUTOVER_TEST_PAUSE=value; when the pause mark shows, waits 300 ms (it must still be blocked) and kills its process group. */
function runPaused(value: string | undefined): Promise<{ out: string; blocked: boolean; code: number | null }> {
  return new Promise((resolve) => {
    const env = { ...process.env, CUTOVER_TEST_PAUSE: value ?? '' };
    const child = spawn(tsx, [scriptFile], { env, stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    let out = '';
    let blocked = false;
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      if (out.includes(PAUSE_MARK) && !blocked) {
        setTimeout(() => {
          blocked = child.exitCode === null && child.signalCode === null && !out.slice(out.indexOf(PAUSE_MARK)).includes('ran');
          process.kill(-child.pid!, 'SIGKILL'); // tsx and the node it started
        }, 300);
      }
    });
    child.on('close', (code) => resolve({ out, blocked, code }));
  });
}

test('unset: every step runs, no mark', async () => {
  const r = await runPaused(undefined);
  assert.is(r.code, 0);
  assert.not.match(r.out, PAUSE_MARK);
  assert.match(r.out, /switch ran\n    done in [^\n]+\nthe end\n$/);
});

test(':start stops after the header, before the step runs; :end after its "done in"; :line after the line', async () => {
  const start = await runPaused('build:start');
  assert.ok(start.blocked, 'blocked until killed');
  assert.match(start.out, /==> build: npm run build\n\[cutover test pause\] build:start\n$/);
  assert.not.match(start.out, 'build ran');
  const end = await runPaused('build:end');
  assert.ok(end.blocked);
  assert.match(end.out, /build ran\n    done in [^\n]+\n\[cutover test pause\] build:end\n$/);
  const line = await runPaused('Release x is ready:line');
  assert.ok(line.blocked);
  assert.match(line.out, /Release x is ready\n\[cutover test pause\] Release x is ready:line\n$/);
});

test('a point that is never reached: the run ends normally, with no mark', async () => {
  const r = await runPaused('no such step:start');
  assert.is(r.code, 0);
  assert.not.match(r.out, PAUSE_MARK);
});

test('parsePause: a prefix may hold colons; a malformed value is refused, naming the variable', () => {
  assert.equal(parsePause('preflight abc on 127.0.0.1:start'), { prefix: 'preflight abc on 127.0.0.1', at: 'start' });
  assert.is(parsePause(''), undefined);
  assert.throws(() => parsePause('build'), /CUTOVER_TEST_PAUSE="build" is not/);
  assert.throws(() => parsePause('build:middle'), /CUTOVER_TEST_PAUSE/);
});

test('the kit runs with the variable unset by default (no pause leaks into a real run)', () => {
  const r = spawnSync('grep', ['-rl', 'CUTOVER_TEST_PAUSE', path.join(kitDir, 'scripts')], { encoding: 'utf8' });
  assert.equal(r.stdout.trim().split('\n').map((f) => path.relative(kitDir, f)), ['scripts/lib/run/log.ts'], 'read in one place only');
});

test.run();
