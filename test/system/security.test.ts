// system tier: least privilege in a real systemd: what the app's user can and cannot touch (inside its sandbox and out), secrets, build users, exposure scores.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { bootKitHost, expectExit, KIT, type KitHost } from '../helpers/hostkit.ts';
import { getJson } from '../helpers/apps.ts';
import { cleanupTempDirs, exampleAppDir, type AppRepo } from '../helpers/gitrepo.ts';
import type { ExecResult } from '../host/host.ts';
import { systemTier } from '../helpers/prereq.ts';
import { servingUnit } from '../helpers/system.ts';
import { nodeApp, pythonApp } from '../helpers/fixtures.ts';

const { it, ready: ROOT } = systemTier(import.meta.url);

// Ports 3500-3599 belong to this file and socket.test.ts; this file uses 3510-3511.
const NODE = { app: 'secnode', user: 'secnode-run', port: 3510, root: '/usr/local/src/secnode' };
const PY = { app: 'secpy', user: 'secpy-run', port: 3511, root: '/usr/local/src/secpy' };
const SECRET = `s3cr3t${randomBytes(12).toString('hex')}`;
const PY_SECRET = `pys3cr3t${randomBytes(12).toString('hex')}`;
const url = (port: number) => `http://127.0.0.1:${port}`;
/**
 * The kit installed the way the README installs it (`rsync -a --chown=root:root`, then bootstrap's
 * `npm ci` as root): a root-owned copy with the source's modes. The kit at KIT is a read-only bind,
 * which would refuse any write whatever the kit's permissions; the probes write to this copy.
 */
const INSTALLED_KIT = '/opt/cutover-installed';

let h: KitHost;
let nodeRepo: AppRepo;
const manifests: Record<string, string> = {};
const manifestObjs: Record<string, Record<string, unknown>> = {};
/** Everything cutover printed in this file, to search for the secrets at the end. */
const outputs: string[] = [];
/** `ps` snapshots taken while cutover and the apps ran. */
const psSnapshots: string[] = [];
const scores: string[] = [];
const t0 = Date.now();

async function kit(app: string, verb: string, args: string[] = []): Promise<ExecResult> {
  const r = await h.kit(verb, args, { manifest: manifests[app] });
  outputs.push(`$ ${verb} ${args.join(' ')} (${app})\n${r.stdout}\n${r.stderr}`);
  return r;
}

async function sh(script: string): Promise<string> {
  const r = await h.host.sh(script, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`inside the test host: ${script}\nexit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout.trim();
}

/** Runs `ps` in a loop inside the host while fn runs (the process list an unprivileged user sees, too). */
async function withPsSampler<T>(fn: () => Promise<T>): Promise<T> {
  const stopFile = `/run/ps-sampler-${Date.now()}`;
  const sampler = h.host.sh(`while [ ! -e ${stopFile} ]; do ps -eww -o user:20,pid,args; echo ----; sleep 0.05; done`, { timeoutMs: 300_000 });
  try {
    return await fn();
  } finally {
    await sh(`touch ${stopFile}`);
    const r = await sampler;
    psSnapshots.push(r.stdout);
    await sh(`rm -f ${stopFile}`);
  }
}

function setManifest(app: typeof NODE, obj: Record<string, unknown>) {
  manifestObjs[app.app] = obj;
  manifests[app.app] = h.manifest(obj);
}

async function uidOf(user: string): Promise<number> {
  return Number(await sh(`id -u ${user}`));
}

async function mainPid(unit: string): Promise<number> {
  return Number(await sh(`systemctl show --property=MainPID --value ${unit}`));
}

async function liveRelease(app: typeof NODE): Promise<string> {
  return sh(`readlink -f ${app.root}/active`);
}

interface Probe {
  name: string;
  /** A shell command run as the app's user; exit 0 means it was allowed. */
  cmd: string;
}

type Verdicts = Record<string, { allowed: boolean; output: string }>;

/** Runs each probe as `user`, either outside any sandbox (setpriv) or inside the running service's namespaces (nsenter). */
async function probe(where: 'outside' | 'sandbox', user: string, unit: string, probes: Probe[]): Promise<Verdicts> {
  const body = probes
    .map(({ name, cmd }) => `if out=$( { ${cmd} ; } 2>&1 ); then echo "ALLOWED ${name}"; else echo "DENIED ${name}: $(echo "$out" | tr '\\n' ' ')"; fi`)
    .join('\n');
  const script = `id -u; id -G\n${body}\n`;
  const uid = await uidOf(user);
  const gid = Number(await sh(`id -g ${user}`));
  const argv =
    where === 'outside'
      ? ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--', '/bin/sh', '-c', script]
      : ['nsenter', '-t', String(await mainPid(unit)), '-a', '-S', String(uid), '-G', String(gid), '--', '/bin/sh', '-c', script];
  const r = await h.host.exec(argv, { timeoutMs: 60_000 });
  assert.is(r.code, 0, `probe as ${user} (${where}) ran: ${r.stderr}`);
  const [ids, groups, ...lines] = r.stdout.trim().split('\n');
  assert.is(Number(ids), uid, `the probe runs as ${user} (${where})`);
  assert.not.ok(groups.split(' ').includes('0'), `the probe holds no root group: ${groups}`);
  const verdicts: Verdicts = {};
  for (const line of lines) {
    const m = /^(ALLOWED|DENIED) ([^:]+?)(?::\s?(.*))?$/.exec(line);
    if (m) verdicts[m[2]] = { allowed: m[1] === 'ALLOWED', output: m[3] ?? '' };
  }
  for (const p of probes) assert.ok(p.name in verdicts, `probe ${p.name} ran (${where}):\n${r.stdout}`);
  return verdicts;
}

function expectVerdicts(v: Verdicts, want: { allowed?: string[]; denied?: string[] }, where: string) {
  const wrong = [
    ...(want.denied ?? []).filter((n) => v[n].allowed).map((n) => `${n} was ALLOWED`),
    ...(want.allowed ?? []).filter((n) => !v[n].allowed).map((n) => `${n} was denied: ${v[n].output}`),
  ];
  assert.equal(wrong, [], `${where}:\n  ${wrong.join('\n  ')}`);
}

/** Every file and dir under a tree with its mode, owner and content hash: equal before and after means untouched. */
async function treeDigest(dir: string): Promise<string> {
  return sh(`cd ${dir} && find . -printf '%p %M %u:%g %l\\n' | sort && find . -type f -exec sha256sum {} + | sort`);
}

/** What the app's user must not be able to change: releases, active, history, lock, mirror, units, cron, kit. */
function modifyProbes(app: typeof NODE, release: string): Probe[] {
  return [
    { name: 'create-file-in-release', cmd: `touch ${release}/evil` },
    { name: 'append-to-release-code', cmd: `echo '//evil' >> ${release}/server.js` },
    { name: 'delete-release-file', cmd: `rm -f ${release}/VERSION && test ! -e ${release}/VERSION` },
    { name: 'chmod-release-file', cmd: `chmod 666 ${release}/server.js` },
    { name: 'create-release-dir', cmd: `mkdir ${app.root}/releases/evil` },
    { name: 'remove-release', cmd: `rm -rf ${release} && test ! -e ${release}` },
    { name: 'replace-active-link', cmd: `ln -sfn /tmp ${app.root}/active.evil && mv -T ${app.root}/active.evil ${app.root}/active` },
    { name: 'append-history', cmd: `echo '{}' >> ${app.root}/history.jsonl` },
    { name: 'write-lock', cmd: `echo evil > ${app.root}/cutover.lock` },
    { name: 'write-mirror', cmd: `echo evil >> ${app.root}/repo/HEAD` },
    { name: 'write-unit', cmd: `echo '[Service]' >> /etc/systemd/system/${app.app}@.service` },
    { name: 'add-dropin', cmd: `mkdir -p /etc/systemd/system/${app.app}@.service.d && touch /etc/systemd/system/${app.app}@.service.d/evil.conf` },
    { name: 'write-cron', cmd: `echo evil >> /etc/cron.d/cutover-${app.app}` },
    { name: 'write-kit-script', cmd: `echo evil >> ${INSTALLED_KIT}/scripts/release.ts` },
    { name: 'write-kit-preload', cmd: `echo evil >> ${INSTALLED_KIT}/scripts/preload/listen-fd.cjs` },
    { name: 'create-in-kit', cmd: `touch ${INSTALLED_KIT}/scripts/evil.ts` },
    { name: 'write-kit-dependency', cmd: `echo evil >> ${INSTALLED_KIT}/node_modules/zx/package.json` },
    { name: 'replace-kit-dir', cmd: `mv ${INSTALLED_KIT}/scripts ${INSTALLED_KIT}/scripts.evil` },
  ];
}

/** What the app's user must be able to do: write its shared paths (directly and through the release's links). */
function sharedProbes(app: typeof NODE, tag: string): Probe[] {
  return [
    { name: 'write-shared-dir', cmd: `echo ${tag} > ${app.root}/shared/uploads/probe-${tag} && grep -q ${tag} ${app.root}/shared/uploads/probe-${tag}` },
    { name: 'write-through-release-link', cmd: `echo ${tag} > ${app.root}/active/uploads/link-${tag} && test -s ${app.root}/shared/uploads/link-${tag}` },
    { name: 'read-own-release', cmd: `cat ${app.root}/active/server.js > /dev/null` },
  ];
}

/** Another app's files: its secrets, shared data, code, mirror, history, process environment. */
async function otherAppProbes(other: typeof NODE, files: { code: string; sharedDir: string; sharedFile: string }): Promise<Probe[]> {
  const release = await liveRelease(other);
  const pid = await mainPid(await servingUnit(h, other.app));
  return [
    { name: 'read-other-env-file', cmd: `cat ${other.root}/shared/.env` },
    { name: 'list-other-shared-dir', cmd: `ls ${other.root}/shared/${files.sharedDir}/` },
    { name: 'read-other-shared-file', cmd: `cat ${other.root}/shared/${files.sharedDir}/${files.sharedFile}` },
    { name: 'read-other-code', cmd: `cat ${release}/${files.code}` },
    { name: 'list-other-releases', cmd: `ls ${other.root}/releases/` },
    { name: 'read-other-mirror', cmd: `cat ${other.root}/repo/HEAD` },
    { name: 'read-other-history', cmd: `cat ${other.root}/history.jsonl` },
    { name: 'read-other-process-env', cmd: `cat /proc/${pid}/environ` },
  ];
}

test.before(async () => {
  if (!ROOT) return;
  try {
    h = await bootKitHost();
    await sh(`cp -a ${KIT} ${INSTALLED_KIT} && chown -R root:root ${INSTALLED_KIT}`);
    const node = await h.repo(NODE.app, 'node');
    nodeRepo = node.repo;
    // install and build record the uid they ran as; the build takes a moment so ps can see it.
    setManifest(
      NODE,
      nodeApp(NODE.app, node.url, NODE.port, {
        user: NODE.user,
        install: 'npm ci --no-audit --no-fund && id -u > install-uid',
        build: 'npm run build && id -u > build-uid && sleep 1',
        env: { NODE_ENV: 'production', STARTUP_DELAY_MS: '100' },
        env_file: '.env',
        shared: ['.env', 'uploads/'],
      }),
    );
    const py = await h.repo(PY.app, 'python');
    setManifest(
      PY,
      pythonApp(PY.app, py.url, PY.port, {
        user: PY.user,
        env: { PYTHONUNBUFFERED: '1', STARTUP_DELAY_MS: '100' },
        env_file: '.env',
        shared: ['.env', 'data/'],
      }),
    );
    // The two apps are independent: provision and release them side by side.
    await Promise.all(
      [NODE, PY].map(async (app) => {
        const t = Date.now();
        expectExit(await kit(app.app, 'provision'), 0, `provision ${app.app}`);
        console.log(`  provision ${app.app} (${manifestObjs[app.app].runtime}): ${((Date.now() - t) / 1000).toFixed(1)} s`);
      }),
    );
    // The secrets: written into the env files provision made (mode kept), before the first release.
    await sh(`cat > ${NODE.root}/shared/.env <<'EOF'\nGREETING=hello-${SECRET}\nAPI_TOKEN=${SECRET}-token\nEOF`);
    await sh(`cat > ${PY.root}/shared/.env <<'EOF'\nGREETING=hello-${PY_SECRET}\nEOF`);
    await sh(`echo private > ${PY.root}/shared/data/notes.txt && chown ${PY.user}: ${PY.root}/shared/data/notes.txt && chmod 640 ${PY.root}/shared/data/notes.txt`);
    await withPsSampler(async () => {
      await Promise.all(
        [NODE, PY].map(async (app) => {
          const t = Date.now();
          expectExit(await kit(app.app, 'release', ['main']), 0, `release ${app.app}`);
          console.log(`  release ${app.app}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
        }),
      );
      await getJson(`${url(NODE.port)}/`);
      await getJson(`${url(PY.port)}/`);
    });
  } catch (e) {
    // uvu counts the tests as not passed without saying why a hook failed: say it.
    console.error(`security.test.ts: the host setup failed: ${(e as Error).stack ?? e}`);
    throw e;
  }
});

test.after(async () => {
  if (h) await h.stop();
  await cleanupTempDirs();
  if (scores.length) console.log(`\n  systemd-analyze security, default units:\n    ${scores.join('\n    ')}`);
  console.log(`\n  security.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

it('both apps run, under their own users, with the secrets from their env files', async () => {
  const node = await getJson(`${url(NODE.port)}/`);
  assert.is(node.greeting, `hello-${SECRET}`, 'the env file reached the node app');
  const py = await getJson(`${url(PY.port)}/`);
  assert.is(py.greeting, `hello-${PY_SECRET}`, 'the env file reached the python app');
  assert.is(await sh(`ps -o user= -p ${await mainPid(await servingUnit(h, NODE.app))}`), NODE.user);
  assert.is(await sh(`ps -o user= -p ${await mainPid(await servingUnit(h, PY.app))}`), PY.user);
});

it('the env file is 0600 and owned by the app user; provision puts 0600 back', async () => {
  for (const app of [NODE, PY]) {
    assert.is(await sh(`stat -c '%a %U' ${app.root}/shared/.env`), `600 ${app.user}`, `${app.app}'s env file`);
  }
  await sh(`chmod 644 ${NODE.root}/shared/.env`);
  const r = await kit(NODE.app, 'provision');
  expectExit(r, 0, 'provision again');
  assert.match(r.stdout, /0600/);
  assert.is(await sh(`stat -c '%a %U' ${NODE.root}/shared/.env`), `600 ${NODE.user}`);
  assert.is(await sh(`grep -c . ${NODE.root}/shared/.env`), '2', 'provision kept the secrets');
});

it("install and build run as the manifest's user, never as root", async () => {
  const uid = await uidOf(NODE.user);
  assert.ok(uid > 0);
  const release = await liveRelease(NODE);
  assert.is(await sh(`cat ${release}/install-uid`), String(uid), 'install ran as the app user');
  assert.is(await sh(`cat ${release}/build-uid`), String(uid), 'build ran as the app user');
  // And ps saw the build's shell as that user, never as root.
  // (The root-owned lines are cutover's own wrapper, `setpriv --reuid=… -- /bin/sh -c …`, before it drops to the user.)
  const buildLines = psSnapshots.join('\n').split('\n').filter((l) => /^\S+\s+\d+\s+(\/bin\/sh -c npm run build|node build\.js|sleep 1$)/.test(l));
  assert.ok(buildLines.length > 0, 'ps caught the build running');
  for (const l of buildLines) assert.match(l, new RegExp(`^${NODE.user}\\s`), `a build process ran as another user: ${l}`);
});

it("outside the sandbox (setpriv) the app's user cannot modify releases, active, history, mirror, units, cron or the kit", async () => {
  const release = await liveRelease(NODE);
  const before = await treeDigest(NODE.root + '/releases');
  const activeBefore = await sh(`readlink ${NODE.root}/active`);
  const v = await probe('outside', NODE.user, await servingUnit(h, NODE.app), [...modifyProbes(NODE, release), ...sharedProbes(NODE, 'outside')]);
  expectVerdicts(v, { denied: modifyProbes(NODE, release).map((p) => p.name), allowed: sharedProbes(NODE, 'outside').map((p) => p.name) }, 'as the app user, outside the sandbox');
  // Refused by the installed kit's own owners and modes (not by a missing file or a read-only mount).
  for (const name of ['write-kit-script', 'write-kit-preload', 'create-in-kit', 'write-kit-dependency', 'replace-kit-dir']) {
    assert.match(v[name]!.output, /Permission denied/, `${name} was refused for another reason: ${v[name]!.output}`);
  }
  assert.is(await treeDigest(NODE.root + '/releases'), before, 'the releases are unchanged');
  assert.is(await sh(`readlink ${NODE.root}/active`), activeBefore);
  // On a server nothing in the kit may be the app user's or writable by others.
  assert.is(await sh(`find ${INSTALLED_KIT} \\( -user ${NODE.user} -o -group ${NODE.user} -o -perm -o=w \\) ! -type l -print | head -5`), '', 'no kit file is writable by the app user');
  assert.ok(Number(await sh(`find ${INSTALLED_KIT} -type f | wc -l`)) > 100, 'the installed kit is there, with its dependencies');
  assert.is(await sh(`cat ${INSTALLED_KIT}/scripts/release.ts | md5sum`), await sh(`cat ${KIT}/scripts/release.ts | md5sum`), 'the kit is unchanged');
});

it("inside the running unit's sandbox (nsenter into its namespaces) the app's user cannot modify them either, and can write its shared paths", async () => {
  const release = await liveRelease(NODE);
  const before = await treeDigest(NODE.root + '/releases');
  const v = await probe('sandbox', NODE.user, await servingUnit(h, NODE.app), [
    ...modifyProbes(NODE, release),
    ...sharedProbes(NODE, 'sandbox'),
    { name: 'write-outside-shared', cmd: `touch ${NODE.root}/shared/evil` },
  ]);
  expectVerdicts(
    v,
    {
      denied: [...modifyProbes(NODE, release).map((p) => p.name), 'write-outside-shared'],
      allowed: sharedProbes(NODE, 'sandbox').map((p) => p.name),
    },
    "as the app user, inside the service's sandbox",
  );
  // In the sandbox a write fails because the file system is read-only (ProtectSystem=strict), not only by permission.
  assert.match(v['create-file-in-release'].output, /Read-only file system/);
  assert.is(await treeDigest(NODE.root + '/releases'), before, 'the releases are unchanged');
  assert.is(await sh(`cat ${NODE.root}/shared/uploads/probe-sandbox`), 'sandbox', 'the sandboxed write reached the real shared dir');
});

it("neither app's user can read the other app's files (inside or outside the sandbox)", async () => {
  const nodeOnPy = await otherAppProbes(PY, { code: 'app.py', sharedDir: 'data', sharedFile: 'notes.txt' });
  const pyOnNode = await otherAppProbes(NODE, { code: 'server.js', sharedDir: 'uploads', sharedFile: 'probe-outside' });
  const all = (ps: Probe[]) => ({ denied: ps.map((p) => p.name) });
  // A control: the probes can succeed: each app reads its own.
  const own = await probe('outside', PY.user, await servingUnit(h, PY.app), [{ name: 'read-own-env-file', cmd: `cat ${PY.root}/shared/.env` }, { name: 'read-own-data', cmd: `cat ${PY.root}/shared/data/notes.txt` }]);
  expectVerdicts(own, { allowed: ['read-own-env-file', 'read-own-data'] }, 'the python app user reads its own files');
  expectVerdicts(await probe('outside', NODE.user, await servingUnit(h, NODE.app), nodeOnPy), all(nodeOnPy), "the node app's user on the python app's files, outside the sandbox");
  expectVerdicts(await probe('sandbox', NODE.user, await servingUnit(h, NODE.app), nodeOnPy), all(nodeOnPy), "the node app's user on the python app's files, in its sandbox");
  expectVerdicts(await probe('outside', PY.user, await servingUnit(h, PY.app), pyOnNode), all(pyOnNode), "the python app's user on the node app's files, outside the sandbox");
  expectVerdicts(await probe('sandbox', PY.user, await servingUnit(h, PY.app), pyOnNode), all(pyOnNode), "the python app's user on the node app's files, in its sandbox");
});

it('a failed preflight and a failed health gate print journal lines, but never the secrets', async () => {
  // A version that crashes at start, printing its token the way a failed database connection prints its URL.
  const leaky = `console.error('cannot connect to the database with token ' + process.env.API_TOKEN + ' (' + process.env.GREETING + ')');\nprocess.exit(1);\n`;
  await nodeRepo.commit({ VERSION: '2\n', 'server.js': leaky }, 'v2 crashes, printing its secret');
  const live = await liveRelease(NODE);
  const r = await withPsSampler(() => kit(NODE.app, 'release', ['main']));
  expectExit(r, 1, 'release of a crashing version');
  assert.match(r.stdout + r.stderr, /failed preflight/);
  assert.match(r.stdout + r.stderr, /cannot connect to the database with token/, 'the journal lines are printed');
  assert.is(await liveRelease(NODE), live);
  // The same through the real unit's health gate: preflight off, a version that starts, then dies, printing its secret.
  await nodeRepo.commit({ VERSION: '3\n', 'server.js': `setTimeout(() => { ${leaky} }, 200); setInterval(() => {}, 1000);\n` }, 'v3 dies after start');
  setManifest(NODE, { ...manifestObjs[NODE.app], preflight: false });
  const g = await withPsSampler(() => kit(NODE.app, 'release', ['main']));
  expectExit(g, 1, 'release of a version that fails its health gate');
  assert.match(g.stdout + g.stderr, /failed its health gate/);
  assert.match(g.stdout + g.stderr, /cannot connect to the database with token/, 'the journal lines are printed');
  assert.is(await liveRelease(NODE), live, 'switched back');
  assert.is((await getJson(`${url(NODE.port)}/`)).greeting, `hello-${SECRET}`, 'the old release serves again');
  for (const text of [r.stdout + r.stderr, g.stdout + g.stderr]) {
    assert.not.ok(text.includes(SECRET), `cutover printed the secret:\n${text.split('\n').filter((l) => l.includes(SECRET)).join('\n')}`);
  }
  setManifest(NODE, { ...manifestObjs[NODE.app], preflight: true });
});

it("secrets never appear in cutover's output, its history, or the process list", async () => {
  outputs.push((await kit(NODE.app, 'status')).stdout, (await kit(PY.app, 'status', ['--json'])).stdout);
  await nodeRepo.commit({ VERSION: '4\n', 'server.js': fs.readFileSync(path.join(exampleAppDir('node'), 'server.js'), 'utf8') }, 'v4 works again');
  expectExit(await withPsSampler(() => kit(NODE.app, 'release', ['main'])), 0, 'release v4');
  assert.is((await getJson(`${url(NODE.port)}/`)).version, '4');
  expectExit(await withPsSampler(() => kit(NODE.app, 'rollback')), 0, 'rollback');
  assert.is((await getJson(`${url(NODE.port)}/`)).greeting, `hello-${SECRET}`);
  psSnapshots.push(await sh('ps -eww -o user:20,pid,args'));
  const leaks = (label: string, text: string) =>
    [SECRET, PY_SECRET].filter((s) => text.includes(s)).map((s) => `${label}: ${text.split('\n').filter((l) => l.includes(s)).slice(0, 3).join(' | ')}`);
  const found = [
    ...outputs.flatMap((o) => leaks("cutover's output", o)),
    ...leaks('node history', await sh(`cat ${NODE.root}/history.jsonl`)),
    ...leaks('python history', await sh(`cat ${PY.root}/history.jsonl`)),
    ...psSnapshots.flatMap((p) => leaks('ps', p)),
  ];
  assert.ok(outputs.length >= 8 && psSnapshots.length >= 4, 'the outputs and process lists were collected');
  assert.ok(psSnapshots.join('').split('----').length > 20, 'ps sampled many times');
  assert.equal(found, [], `secrets leaked:\n${found.join('\n')}`);
});

it('every release on disk (live, rolled back from, refused) stays unmodifiable by the app user, inside and outside the sandbox', async () => {
  const releases = (await sh(`ls ${NODE.root}/releases`)).split('\n');
  assert.ok(releases.length >= 2, `several releases on disk: ${releases.join(' ')}`);
  console.log(`  releases on disk: ${releases.join(' ')}`);
  const before = await treeDigest(NODE.root + '/releases');
  // Each probe succeeds if it changed ANY release.
  const any = (op: string) => `for d in ${NODE.root}/releases/*/; do ${op} && exit 0; done; exit 1`;
  const probes: Probe[] = [
    { name: 'create-in-any-release', cmd: any('touch "$d/evil" 2>/dev/null') },
    { name: 'append-to-any-release', cmd: any('echo evil 2>/dev/null >> "$d/VERSION"') },
    { name: 'chmod-any-release', cmd: any('chmod 777 "$d" 2>/dev/null') },
    { name: 'rename-any-release', cmd: any('mv "$d" "${d%/}.evil" 2>/dev/null') },
  ];
  for (const where of ['outside', 'sandbox'] as const) {
    expectVerdicts(await probe(where, NODE.user, await servingUnit(h, NODE.app), probes), { denied: probes.map((p) => p.name) }, `every release, ${where}`);
  }
  assert.is(await treeDigest(NODE.root + '/releases'), before, 'the releases are unchanged');
});

it('systemd-analyze security of the default units: at most 1.5 for the node and the python app', async () => {
  for (const app of [NODE, PY]) {
    const unit = await servingUnit(h, app.app);
    const r = await h.host.exec(['systemd-analyze', 'security', '--no-pager', unit]);
    const m = /Overall exposure level for \S+: ([\d.]+) (\S+)/.exec(r.stdout);
    assert.ok(m, `systemd-analyze security printed a score:\n${r.stdout}\n${r.stderr}`);
    const open = r.stdout.split('\n').filter((l) => /^\s*✗/.test(l)).map((l) => l.trim().replace(/\s+/g, ' '));
    scores.push(`${unit} (${manifestObjs[app.app].runtime}): ${m![1]} ${m![2]}${open.length ? `; open: ${open.map((l) => l.split(' ')[1]).join(', ')}` : ''}`);
    console.log(`\n  ${scores.at(-1)}`);
    assert.ok(Number(m![1]) <= 1.5, `${unit} scores ${m![1]}, more than 1.5:\n${open.join('\n')}`);
    // … with everything still working.
    assert.is((await h.host.exec(['systemctl', 'is-active', unit])).stdout.trim(), 'active');
  }
  assert.is((await getJson(`${url(PY.port)}/`)).version, '1');
  assert.ok((await getJson(`${url(NODE.port)}/`)).version);
});

test.run();
