// The demo: a disposable systemd host, and the built-in example app through provision, releases, a refused release, rollback and prune.
import { bootKitHost, commandArgv, KIT, type KitHost } from './helpers/hostkit.ts';
import { getJson, type LoadResult } from './helpers/apps.ts';
import { loadDuring, versionSequence, type VersionSample } from './helpers/load.ts';
import { cleanupTempDirs } from './helpers/gitrepo.ts';
import type { ExecResult } from './host/host.ts';

const PORT = 3000; // config/app.yaml
const WORK = '/opt/cutover-demo/work';
const BARE = '/opt/cutover-demo/repo.git';
let failures = 0;

function say(title: string, text: string): void {
  console.log(`\n\x1b[1m### ${title}\x1b[0m\n${text}`);
}

function show(command: string, r: ExecResult, expect = 0): void {
  console.log(`\n  # ${command}`);
  const out = (r.stdout + r.stderr).trimEnd();
  if (out) console.log(out.replace(/^/gm, '  | '));
  const ok = r.code === expect;
  if (!ok) failures++;
  console.log(`  -> exit ${r.code}${ok ? '' : `  (expected ${expect}: THE DEMO FOUND A PROBLEM)`}`);
}

/**
 * Runs `cutover <verb> args` inside the host as root, as an operator types it, and shows it. The
 * first provision runs the kit's own bin/cutover (the command is not on the PATH yet; provision links it).
 */
async function verb(k: KitHost, v: string, args: string[] = [], expect = 0, opts: { beforeProvision?: boolean } = {}): Promise<ExecResult> {
  const argv = commandArgv(v, args, opts);
  const r = await k.host.exec(argv, { cwd: '/root', timeoutMs: 180_000 });
  show(argv.join(' '), r, expect);
  return r;
}

/** Runs git inside the host as a developer would, in the demo's working copy, and pushes. */
async function push(k: KitHost, message: string, files: Record<string, string | null>): Promise<void> {
  for (const [file, content] of Object.entries(files)) {
    const r = content === null
      ? await k.host.exec(['rm', '-f', '--', `${WORK}/${file}`])
      : await k.host.exec(['sh', '-c', 'cat > "$1"', 'sh', `${WORK}/${file}`], { input: content });
    if (r.code !== 0) throw new Error(`writing ${file}: ${r.stderr}`);
  }
  const git = (args: string[]) => k.host.exec(['git', '-C', WORK, '-c', 'user.name=Demo Developer', '-c', 'user.email=dev@demo.invalid', ...args]);
  for (const args of [['add', '-A'], ['commit', '--quiet', '--allow-empty', '-m', message], ['push', '--quiet', 'origin', 'main']]) {
    const r = await git(args);
    if (r.code !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  }
  console.log(`\n  (a developer pushed "${message}" to ${BARE})`);
}

async function live(label: string): Promise<void> {
  try {
    const j = await getJson<{ version: string; release: string; greeting?: string }>(`http://127.0.0.1:${PORT}/`);
    console.log(`  curl http://127.0.0.1:${PORT}/ -> version ${j.version.trim()} from releases/${j.release}${label ? `  (${label})` : ''}`);
  } catch (e) {
    failures++;
    console.log(`  curl http://127.0.0.1:${PORT}/ -> FAILED: ${(e as Error).message}`);
  }
}

/** When v1 and v2 both answered (the handover's overlap), from the version samples. */
function overlapLine(samples: VersionSample[]): string {
  const firstNew = samples.find((x) => x.version === '2')?.t;
  const lastOld = samples.filter((x) => x.version === '1').at(-1)?.t;
  if (firstNew === undefined || lastOld === undefined) return versionSequence(samples).join(' → ');
  return lastOld > firstNew
    ? `only v1, then v1 and v2 both (for ${lastOld - firstNew} ms: two processes on one socket), then only v2`
    : `only v1, then only v2`;
}

function loadLine(r: LoadResult): string {
  return `${r.requests} requests, ${r.failed} failed${r.failed ? ` (${JSON.stringify(r.errors)})` : ''}, p50 ${r.p50.toFixed(0)} ms, p99 ${r.p99.toFixed(0)} ms, max ${r.max.toFixed(0)} ms`;
}

async function main(): Promise<void> {
  say('1. A disposable server', 'Booting a Debian bookworm container with systemd 252 as PID 1 and Node 18 (its own packages),\nwith the cutover kit copied to /opt/cutover, the way an operator copies it to a server.');
  const k = await bootKitHost();
  try {
    const setup = await k.host.sh(
      `set -e; mkdir -p /opt/cutover-demo; git init --quiet --bare -b main ${BARE}; cp -r ${KIT}/examples/node-app ${WORK}; cd ${WORK}; rm -rf dist node_modules; git init --quiet -b main; git remote add origin ${BARE}`,
    );
    if (setup.code !== 0) throw new Error(setup.stderr);
    await push(k, 'v1', { VERSION: '1\n' });

    say('2. provision', `Makes the host ready for the app in config/app.yaml ("demo"): the system user, the layout under\n/usr/local/src/demo, the shared paths, the service and socket units, the cron entry that prunes,\nand the \`cutover\` command on root's PATH (a link to ${KIT}/bin/cutover, which runs the verbs compiled in dist/).`);
    await verb(k, 'provision', [], 0, { beforeProvision: true });
    say('   provision again', 'It is idempotent: a second run changes nothing and says so. From here on, `cutover` is on the PATH.');
    await verb(k, 'provision');

    say('3. release main', 'Fetches the mirror, builds v1 in its own directory, preflights it on a spare port, switches the\n`active` symlink and starts the app in slot a of its service, behind its socket, gated by the health check.');
    await verb(k, 'release', ['main']);
    await live('v1 is live');

    say('4. release v2 under load: a handover', `While 8 clients hammer the app with a new connection per request, v2 goes live. v2 starts in\nthe idle slot on the same socket while v1 still serves; once v2 answers, v1 stops, finishing its\nrequests in flight. Nobody waits for an app to start.`);
    await push(k, 'v2', { VERSION: '2\n' });
    const run = await loadDuring(`http://127.0.0.1:${PORT}`, () => verb(k, 'release', ['main']), { workers: 8, path: '/', sampleEveryMs: 10 });
    const result = run.load;
    console.log(`\n  load during the release: ${loadLine(result)}`);
    console.log(`  versions answering: ${overlapLine(run.samples)}`);
    if (result.failed) failures++;
    await live('v2 is live');

    say('5. a broken release is refused', 'v3 crashes at start. Preflight runs it as a transient unit with the same user and sandbox on a\nspare port first: it never goes live, the journal says why, and v2 keeps serving.');
    await push(k, 'v3 (crashes at start)', { VERSION: '3\n', BEHAVIOUR: 'crash\n' });
    await verb(k, 'release', ['main'], 1);
    await live('still v2');

    say('6. rollback', 'Goes back to the last good release before the live one, read from the release history; the\nrelease it leaves (v2) is marked bad and kept for inspection.');
    await verb(k, 'rollback');
    await live('v1 again');

    say('7. prune', 'Shows what it would delete and why, then deletes: never the live release, the rollback target,\na build in progress, or a release a running process still uses. Cron runs the same nightly.');
    console.log('\n  # cat /etc/cron.d/cutover-demo');
    console.log(k.read('/etc/cron.d/cutover-demo').trimEnd().split('\n').filter((l) => !l.startsWith('#')).map((l) => `  | ${l}`).join('\n'));
    await verb(k, 'prune', ['--keep', '1', '--dry-run']);
    await verb(k, 'prune', ['--keep', '1']);

    say('8. status', 'The live release (*), the rollback target (<), and every release with its state.');
    await verb(k, 'status');
  } finally {
    await k.stop();
    await cleanupTempDirs();
  }
  say('Done', failures === 0 ? 'Every step behaved as described. The container is gone; nothing was left on this machine.' : `${failures} step(s) did not behave as described (see above).`);
  process.exitCode = failures === 0 ? 0 : 1;
}

await main();
