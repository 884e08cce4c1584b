// System tier: cutover exec and logs — a command in the live release (or a named ready one) as the service runs it: the app's user, environment and env file, the sandbox; its exit code passed on, the history line with env-file values masked, a terminal when there is one; the journal of both slots with each line marked by its release, followed across a handover.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanupTempDirs, type AppRepo } from '../helpers/gitrepo.ts';
import { expectExit, type KitHost } from '../helpers/hostkit.ts';
import { activeInside, historyInside, out, releaseIdOf } from '../helpers/system.ts';
import { systemTier } from '../helpers/prereq.ts';
import { bootNodeApp } from '../helpers/fixtures.ts';

const APP = 'execapp';
const ROOT = `/usr/local/src/${APP}`;
const SECRET = 'hunter2-very-secret';
let h: KitHost;
let repo: AppRepo;
let manifest: string;
let v1: string;
let v2: string;
const t0 = Date.now();

// --manifest before the command's --, where it is cutover's own.
const exec = (args: string[]) => h.kit('exec', ['--manifest', manifest, ...args], { timeoutMs: 60_000 });

const { it, ready } = systemTier(import.meta.url);
{
  test.before(async () => {
    if (!ready) return;
    ({ h, repo, manifest } = await bootNodeApp(APP, 5410, { shared: ['.env'], env_file: '.env', env: { STARTUP_DELAY_MS: '50', GREETING: 'from the manifest' } }));
    const r = await h.host.sh(`printf 'API_TOKEN=${SECRET}\\n' > ${ROOT}/shared/.env`);
    expectExit(r, 0, 'env file');
    v1 = releaseIdOf(await repo.head());
    v2 = releaseIdOf(await repo.commit({ VERSION: '2\n' }, 'v2'));
    expectExit(await h.kit('release', ['main'], { manifest }), 0, 'release v2');
    assert.is(activeInside(h, ROOT), v2);
  });
  test.after(async () => {
    await h?.stop();
    await cleanupTempDirs();
    console.log(`  exec.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });
}

it("runs as the app's user, in the live release, with the manifest's environment and the env file", async () => {
  const r = await exec(['--', 'sh', '-c', 'id -un; pwd -P; cat VERSION; echo "$GREETING"; test -n "$API_TOKEN" && echo token-set']);
  expectExit(r, 0, 'exec');
  assert.equal(r.stdout.trim().split('\n'), [APP, `${ROOT}/releases/${v2}`, '2', 'from the manifest', 'token-set']);
});

it("runs in the service's sandbox: a private /tmp and /dev, no new privileges, the sealed release read-only", async () => {
  const r = await exec(['--', 'sh', '-c', 'echo mine > /tmp/exec-probe; ls /dev | wc -l; grep NoNewPrivs /proc/self/status; touch VERSION 2>/dev/null && echo wrote-release; echo done']);
  expectExit(r, 0, 'exec');
  const [devices, nnp, last] = r.stdout.trim().split('\n');
  assert.ok(Number(devices) < 30, `PrivateDevices: a minimal /dev (${devices} entries)`);
  assert.match(nnp, /NoNewPrivs:\s+1/);
  assert.is(last, 'done', out(r));
  const seen = await h.host.sh('test -e /tmp/exec-probe && echo leaked || echo private');
  assert.is(seen.stdout.trim(), 'private', "PrivateTmp: the command's /tmp is its own");
});

it('--release runs in a ready release that is not live; a release that is not there or not ready is refused (exit 2)', async () => {
  const r = await exec(['--release', v1, '--', 'cat', 'VERSION']);
  expectExit(r, 0, 'exec --release v1');
  assert.is(r.stdout.trim(), '1');
  const missing = await exec(['--release', 'aaaaaaaaaaaa', '--', 'true']);
  assert.is(missing.code, 2, out(missing));
  assert.match(missing.stderr, /There is no release aaaaaaaaaaaa/);
});

it("passes on the command's exit code, and records who ran what with env-file values masked", async () => {
  const r = await exec(['--', 'sh', '-c', `echo ${SECRET} >/dev/null; exit 7`]);
  assert.is(r.code, 7, out(r));
  const last = historyInside(h, ROOT).filter((e) => e.event === 'exec').at(-1);
  assert.is(last.exit, 7);
  assert.is(last.release, v2);
  assert.match(last.command, /\[secret API_TOKEN\]/);
  assert.not.match(JSON.stringify(historyInside(h, ROOT)), new RegExp(SECRET), 'the secret is in no history line');
  assert.is(activeInside(h, ROOT), v2, 'nothing changed');
});

it('with a terminal attached, the command gets one (an interactive session)', async () => {
  const r = await h.host.sh(`script -qec "/opt/cutover/node_modules/.bin/tsx /opt/cutover/scripts/exec.ts --manifest ${manifest} -- sh -c 'tty; test -t 0 && echo interactive'" /dev/null`, { timeoutMs: 60_000 });
  expectExit(r, 0, 'exec under script');
  assert.match(r.stdout, /\/dev\/pts\/\d+/);
  assert.match(r.stdout, /interactive/);
});

/** `cutover logs` as JSON lines. */
async function logLines(args: string[] = []): Promise<{ release: string | null; source: string; message: string }[]> {
  const r = await h.kit('logs', ['--json', '--lines', '400', ...args], { manifest, timeoutMs: 60_000 });
  expectExit(r, 0, 'logs');
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

it('logs: after a rollback, the lines of both releases are each marked with the release that logged them', async () => {
  expectExit(await h.kit('rollback', [], { manifest }), 0, 'rollback');
  assert.is(activeInside(h, ROOT), v1);
  // The release a rollback left is bad: exec refuses it.
  const bad = await exec(['--release', v2, '--', 'true']);
  assert.is(bad.code, 2, out(bad));
  assert.match(bad.stderr, new RegExp(`Release ${v2} is bad, not ready: a command runs only in a ready release`));
  const lines = await logLines();
  const started = lines.filter((l) => / \(release [0-9a-f]{12}, pid \d+\) listening/.test(l.message));
  const said = (l: { message: string }) => /release ([0-9a-f]{12})/.exec(l.message)![1];
  assert.ok(started.some((l) => said(l) === v1) && started.some((l) => said(l) === v2), `both releases started:\n${started.map((l) => l.message).join('\n')}`);
  for (const l of started) assert.is(l.release, said(l), `marked with the release that logged it: ${JSON.stringify(l)}`);
  assert.ok(lines.some((l) => l.source === 'preflight'), 'the preflights are in it');
  assert.ok(lines.some((l) => l.source === 'exec' && l.release === v2), 'exec commands are in it, marked by their release');
  const only = await logLines(['--release', v2]);
  assert.ok(only.length > 0 && only.every((l) => l.release === v2), '--release keeps one release');
  assert.not.match(JSON.stringify(lines), new RegExp(SECRET), 'no env-file value in the output');
});

it('logs -f keeps following across a handover: a line the new slot logs appears', async () => {
  const child = h.host.sh(`timeout 40 /opt/cutover/node_modules/.bin/tsx /opt/cutover/scripts/logs.ts -f -n 0 --manifest ${manifest}`, { timeoutMs: 60_000 });
  await new Promise((r) => setTimeout(r, 3000));
  const v3 = releaseIdOf(await repo.commit({ VERSION: '3\n' }, 'v3'));
  expectExit(await h.kit('release', ['main'], { manifest }), 0, 'release v3');
  const r = await child;
  assert.match(r.stdout, new RegExp(`^\\S+ \\S+ ${v3}\\s+slot [ab] +version 3 \\(release ${v3}, pid \\d+\\) listening`, 'm'), r.stdout);
});

test.run();
