// fs tier: the `cutover` executable (bin/cutover, running the verbs compiled to dist/) gives the same output and exit codes as `tsx scripts/<verb>.ts`, and falls back to tsx with a clear message when dist/ is missing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { kitDir, makeFixture, runScript, scriptEnv, type Fixture, type RunResult } from '../helpers/kit.ts';
import { cleanupTempDirs, tempDir } from '../helpers/gitrepo.ts';

const VERBS = ['provision', 'release', 'activate', 'rollback', 'prune', 'status'];
const cutover = path.join(kitDir, 'bin', 'cutover');
let f: Fixture;

function exe(args: string[], bin = cutover): RunResult {
  const r = spawnSync(process.execPath, [bin, ...args], { env: scriptEnv(), encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, out: r.stdout + r.stderr };
}
const script = (verb: string, args: string[]) => runScript([path.join(kitDir, 'scripts', `${verb}.ts`), ...args], scriptEnv());
/** Durations and ages differ from run to run; nothing else may. */
const steady = (s: string) => s.replace(/\.active\.\d+\.tmp/g, '.active.PID.tmp').replace(/\d+(\.\d+)? (ms|s)\b/g, 'T').replace(/ \d+s /g, ' Ns ').replace(/"ageSeconds": \d+/g, '"ageSeconds": N');

async function same(verb: string, args: string[], what: string): Promise<RunResult> {
  const a = exe([verb, ...args]);
  const b = await script(verb, args);
  assert.is(a.code, b.code, `${what}: the same exit code\n--- cutover\n${a.out}\n--- tsx\n${b.out}`);
  assert.is(steady(a.stdout), steady(b.stdout), `${what}: the same stdout`);
  assert.is(steady(a.stderr), steady(b.stderr), `${what}: the same stderr`);
  return a;
}

test.before(async () => {
  const built = spawnSync('npm', ['run', '--silent', 'build'], { cwd: kitDir, encoding: 'utf8' });
  assert.is(built.status, 0, `npm run build: ${built.stderr}`);
  f = await makeFixture();
  const r = await f.run('release', ['main']);
  assert.is(r.code, 0, r.out);
});
test.after(cleanupTempDirs);

test('every verb: --help is the same through the executable and the script, and names both forms', async () => {
  for (const verb of VERBS) {
    const r = await same(verb, ['--help'], `${verb} --help`);
    assert.is(r.code, 0);
    assert.match(r.stdout, new RegExp(`^Usage: npx tsx scripts/${verb}\\.ts.*\\n   or: cutover ${verb}`));
  }
});

test('every verb: a bad flag and a missing manifest exit 2 with the same words', async () => {
  for (const verb of VERBS) {
    assert.is((await same(verb, ['--bogus'], `${verb} --bogus`)).code, 2);
    assert.is((await same(verb, ['--manifest', '/nonexistent/app.yaml', ...(verb === 'release' ? ['main'] : verb === 'activate' ? ['0123456789ab'] : [])], `${verb} without its manifest`)).code, 2);
  }
});

test('dry runs and status print the same through the executable and the script', async () => {
  const id = f.active()!.replace(/^releases\//, '');
  const m = ['--manifest', f.manifest];
  await same('release', ['main', '--dry-run', ...m], 'release --dry-run');
  await same('activate', [id, '--dry-run', ...m], 'activate --dry-run');
  await same('rollback', ['--dry-run', ...m], 'rollback --dry-run');
  await same('prune', ['--dry-run', '--keep', '1', ...m], 'prune --dry-run');
  await same('status', m, 'status');
  await same('status', ['--json', ...m], 'status --json');
});

test('cutover alone lists the verbs; an unknown verb exits 2 naming them', () => {
  const help = exe([]);
  assert.is(help.code, 0);
  for (const verb of VERBS) assert.match(help.stdout, new RegExp(`^  ${verb} `, 'm'));
  assert.equal(exe(['--help']).stdout, help.stdout);
  const bad = exe(['deploy']);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /"deploy" is not a verb\.\n  The verbs are provision, release, activate, rollback, prune, status/);
});

test('without dist/ (never compiled) the executable says so, how to rebuild, and runs the verb through tsx', async () => {
  const copy = await tempDir('cutover-kit');
  for (const d of ['bin', 'scripts', 'config', 'templates']) fs.cpSync(path.join(kitDir, d), path.join(copy, d), { recursive: true });
  fs.copyFileSync(path.join(kitDir, 'package.json'), path.join(copy, 'package.json'));
  fs.symlinkSync(path.join(kitDir, 'node_modules'), path.join(copy, 'node_modules'));
  const r = exe(['status', '--help'], path.join(copy, 'bin', 'cutover'));
  assert.is(r.code, 0, r.out);
  assert.match(r.stderr, /the compiled kit \(dist\/\) is missing: running it through tsx instead \(slower\)\. Rebuild it with `npm run build` in /);
  assert.is(r.stdout, (await script('status', ['--help'])).stdout);
  const bad = exe(['status', '--bogus'], path.join(copy, 'bin', 'cutover'));
  assert.is(bad.code, 2, 'the exit code comes through the fallback');
});

test.run();
