// system tier: the handover — the new release serves on the socket before the old one stops: native fd 3, the preload, gunicorn; in-flight requests, a dying release, --restart, the move from a single unit, a kill mid-handover.
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootKitHost, expectExit, type KitHost } from '../helpers/hostkit.ts';
import { getJson, httpGet } from '../helpers/apps.ts';
import { cleanupTempDirs, type AppRepo } from '../helpers/gitrepo.ts';
import { describeLoad, handoverProblems, loadDuring, versionSequence } from '../helpers/load.ts';
import { activeInside, eventually, historyInside, inside, loopback, out, releaseIdOf, slotsInside, statusJson } from '../helpers/system.ts';
import { systemTier } from '../helpers/prereq.ts';

const { it, ready } = systemTier(import.meta.url);

// Ports 4300-4399 belong to this file.
const NATIVE = { app: 'honative', port: 4301 };
const PRELOAD = { app: 'hopreload', port: 4302 };
const PY = { app: 'hopy', port: 4303 };
const LEGACY = { app: 'holegacy', port: 4304 };
type App = typeof NATIVE;

let h: KitHost;
const repos: Record<string, AppRepo> = {};
const manifests: Record<string, string> = {};
const original: Record<string, Record<string, unknown>> = {};
const numbers: string[] = [];
const t0 = Date.now();
const rootOf = (a: App) => `/usr/local/src/${a.app}`;

function manifestFor(a: App, repoUrl: string, extra: Record<string, unknown>) {
  return h.manifest({
    app: a.app,
    repo: repoUrl,
    runtime: 'node',
    build: 'node build.js',
    start: 'node server.js',
    port: a.port,
    env: { STARTUP_DELAY_MS: '300' },
    env_file: '.env',
    health: { path: '/health', timeout: 15 },
    stop_timeout: 10,
    keep: 5,
    ...extra,
  });
}

async function setUp(a: App, kind: 'node' | 'python', extra: Record<string, unknown>) {
  const { repo, url } = await h.repo(a.app, kind);
  repos[a.app] = repo;
  manifests[a.app] = manifestFor(a, url, extra);
  await manifestObject(a);
  expectExit(await h.kit('provision', [], { manifest: manifests[a.app] }), 0, `provision ${a.app}`);
  expectExit(await h.kit('release', ['main'], { manifest: manifests[a.app] }), 0, `release v1 of ${a.app}`);
}

const kit = (a: App, verb: string, args: string[] = []) => h.kit(verb, args, { manifest: manifests[a.app] });
const base = (a: App) => `http://127.0.0.1:${a.port}`;
const version = async (a: App) => String((await getJson(loopback(a.port, '/'))).version);

function report(line: string) {
  numbers.push(line);
  console.log(`\n  ${line}`);
}

/** A release of the next version under load: exit 0, no failed request, both versions for a moment, then only the new one. */
async function releaseUnderLoad(a: App, from: string, to: string, files: Record<string, string | null> = {}) {
  await repos[a.app]!.commit({ VERSION: `${to}\n`, ...files }, `v${to}`);
  const run = await loadDuring(base(a), () => kit(a, 'release', ['main']), { workers: 8, minMs: 3000, path: '/version' });
  expectExit(run.result, 0, `release v${to} of ${a.app}`);
  report(describeLoad(`${a.app}: handover ${from} → ${to}`, run.load, run.samples));
  assert.is(run.load.failed, 0, `no failed request: ${JSON.stringify(run.load.errors)}`);
  assert.is(run.samples.filter((s) => s.error).length, 0, 'no failed version sample');
  assert.equal(handoverProblems(run.samples, from, to, run.actionEndMs), []);
  assert.match(run.result.stdout, /is live; the cutover took .*, handed over to /);
  assert.is(await version(a), to);
  const running = (await slotsInside(h, a.app)).filter((s) => s.state !== 'inactive');
  assert.is(running.length, 1, `one slot runs after the handover: ${JSON.stringify(running)}`);
  return run;
}

/** Starts GET /slow?ms=… now; resolves with its answer (status and body). */
function slowRequest(a: App, ms: number) {
  return httpGet(loopback(a.port, `/slow?ms=${ms}`), { timeoutMs: ms + 20_000 });
}

test.before(async () => {
  if (!ready) return;
  h = await bootKitHost();
  await setUp(NATIVE, 'node', { socket: true });
  // An app that binds PORT itself and exits at once on SIGTERM (as some frameworks do): the preload adopts
  // the socket and holds that exit back until the requests in flight are answered.
  await setUp(PRELOAD, 'node', { socket: 'preload', env: { STARTUP_DELAY_MS: '300', IGNORE_LISTEN_FDS: '1' } });
  await setUp(PY, 'python', {
    runtime: 'python',
    build: undefined,
    start: 'gunicorn --bind 127.0.0.1:$PORT --workers 2 --graceful-timeout 10 app:application',
    socket: true,
  });
});

test.after(async () => {
  if (h) await h.stop();
  await cleanupTempDirs();
  if (numbers.length) console.log(`\n  handover, measured:\n    ${numbers.join('\n    ')}`);
  console.log(`\n  handover.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

it('native fd 3: a release under load hands over with 0 failed requests; the old slot stops only after the new one serves', async () => {
  const before = await slotsInside(h, NATIVE.app);
  const run = await releaseUnderLoad(NATIVE, '1', '2');
  const after = await slotsInside(h, NATIVE.app);
  const was = before.find((s) => s.state === 'active')!;
  const now = after.find((s) => s.state === 'active')!;
  assert.is.not(now.unit, was.unit, 'the new release runs in the other slot');
  // systemd's own timestamps tell the order: the new slot was active before the old one left active.
  const stamp = async (unit: string, prop: string) => Number((await inside(h, `systemctl show -p ${prop} --value ${unit}`)) || 0);
  const newActive = await stamp(now.unit, 'ActiveEnterTimestampMonotonic');
  const oldLeft = await stamp(was.unit, 'ActiveExitTimestampMonotonic');
  assert.ok(newActive > 0 && oldLeft > newActive, `the new slot was active (${newActive}) before the old one stopped (${oldLeft})`);
  assert.match(run.result.stdout, `${was.unit} drained and stopped`);
});

it('native fd 3: a 3 s request in flight when the cutover starts completes with 200 from the old release', async () => {
  const m = manifests[NATIVE.app]!;
  const old = activeInside(h, rootOf(NATIVE))!;
  await repos[NATIVE.app]!.commit({ VERSION: '3\n' }, 'v3');
  expectExit(await kit(NATIVE, 'release', ['main', '--no-activate']), 0, 'build v3');
  const v3 = releaseIdOf(await repos[NATIVE.app]!.head());
  const slow = slowRequest(NATIVE, 3000);
  await new Promise((r) => setTimeout(r, 200)); // the old process has accepted it
  const t = Date.now();
  const r = await h.kit('activate', [v3], { manifest: m });
  expectExit(r, 0, 'activate v3');
  const res = await slow;
  assert.is(res.status, 200);
  assert.is(res.body.trim(), `slept 3000 ms in ${old}`, 'answered by the old release');
  assert.ok(Date.now() - t >= 2000, 'the activation waited for the old process to finish it');
  assert.is(await version(NATIVE), '3');
});

it('native fd 3: a release that dies right after it starts (no preflight) never takes the old one down', async () => {
  const live = activeInside(h, rootOf(NATIVE))!;
  const pidBefore = (await slotsInside(h, NATIVE.app)).find((s) => s.state === 'active')!.pid;
  await repos[NATIVE.app]!.commit({ VERSION: '4\n', BEHAVIOUR: 'crash\n' }, 'v4 crashes');
  h.manifest({ ...(await manifestObject(NATIVE)), preflight: false });
  try {
    const run = await loadDuring(base(NATIVE), () => kit(NATIVE, 'release', ['main']), { workers: 8, minMs: 3000, path: '/version' });
    report(describeLoad(`${NATIVE.app}: a release that dies at start, no preflight (refused)`, run.load, run.samples));
    expectExit(run.result, 1, 'the crashing release');
    assert.match(out(run.result), /failed its health gate/);
    assert.match(out(run.result), /kept serving throughout/);
    assert.is(run.load.failed, 0, `no failed request: ${JSON.stringify(run.load.errors)}`);
    assert.equal(versionSequence(run.samples), ['3']);
    assert.is(activeInside(h, rootOf(NATIVE)), live, 'active points at the old release again');
    const now = (await slotsInside(h, NATIVE.app)).filter((s) => s.state !== 'inactive');
    assert.equal(now.map((s) => s.pid), [pidBefore], 'the old process never stopped, and no other runs');
    const v4 = releaseIdOf(await repos[NATIVE.app]!.head());
    assert.is((await statusJson(h, manifests[NATIVE.app]!)).releases.find((x: any) => x.id === v4)?.state, 'bad');
  } finally {
    h.manifest(await manifestObject(NATIVE));
  }
});

it('activate <live> --restart: a changed env file reaches a new process through a handover, gated and recorded', async () => {
  const live = activeInside(h, rootOf(NATIVE))!;
  const r0 = await kit(NATIVE, 'activate', [live]);
  expectExit(r0, 0, 'activate the live release');
  assert.match(r0.stdout, 'already live; nothing to do');
  await inside(h, `printf 'GREETING=restarted by an env change\\n' > ${rootOf(NATIVE)}/shared/.env`);
  const before = historyInside(h, rootOf(NATIVE)).length;
  const run = await loadDuring(base(NATIVE), () => kit(NATIVE, 'activate', [live, '--restart']), { workers: 8, minMs: 2500 });
  expectExit(run.result, 0, 'activate --restart');
  report(describeLoad(`${NATIVE.app}: activate --restart (env file changed)`, run.load, run.samples));
  assert.is(run.load.failed, 0, `no failed request: ${JSON.stringify(run.load.errors)}`);
  assert.is((await getJson(loopback(NATIVE.port, '/'))).greeting, 'restarted by an env change');
  const added = historyInside(h, rootOf(NATIVE)).slice(before);
  assert.equal(added.map((e) => [e.event, e.release]), [['activated', live]]);
});

it('activate --restart whose new process fails at the cut-over itself (after preflight): the old process keeps serving, the release is not marked bad', async () => {
  const live = activeInside(h, rootOf(NATIVE))!;
  const pid = (await slotsInside(h, NATIVE.app)).find((s) => s.state === 'active')!.pid;
  // With IGNORE_LISTEN_FDS the app binds PORT itself: EADDRINUSE on the app's own port, which the socket holds.
  // (Preflight would catch it too, on its own socket: it is off here, so the cut-over's own failure path runs.)
  await inside(h, `printf 'GREETING=restarted by an env change\\nIGNORE_LISTEN_FDS=1\\n' > ${rootOf(NATIVE)}/shared/.env`);
  h.manifest({ ...(await manifestObject(NATIVE)), preflight: false });
  try {
    const run = await loadDuring(base(NATIVE), () => kit(NATIVE, 'activate', [live, '--restart']), { workers: 8, minMs: 2500 });
    expectExit(run.result, 1, 'activate --restart with a broken env file');
    assert.not.match(run.result.stdout, '==> preflight');
    assert.match(out(run.result), `Restarting the live release ${live} failed its health gate`);
    assert.match(out(run.result), 'The old process kept serving.');
    assert.match(out(run.result), /EADDRINUSE/, 'the journal says why');
    assert.is(run.load.failed, 0, `no failed request: ${JSON.stringify(run.load.errors)}`);
    assert.equal((await slotsInside(h, NATIVE.app)).filter((s) => s.state === 'active').map((s) => s.pid), [pid], 'the old process serves, alone');
    const rec = (await statusJson(h, manifests[NATIVE.app]!)).releases.find((x: any) => x.id === live);
    assert.is(rec?.state, 'ready', 'a release that served before is not marked bad');
  } finally {
    await inside(h, `printf 'GREETING=restarted by an env change\\n' > ${rootOf(NATIVE)}/shared/.env`);
    h.manifest(await manifestObject(NATIVE));
  }
});

it('the preload: an app that exits at once on SIGTERM still finishes its request in flight, and a release under load fails nothing', async () => {
  await repos[PRELOAD.app]!.commit({ BEHAVIOUR: 'exit-on-sigterm\n' }, 'harsh SIGTERM');
  expectExit(await kit(PRELOAD, 'release', ['main']), 0, 'release the harsh app');
  const old = activeInside(h, rootOf(PRELOAD))!;
  await repos[PRELOAD.app]!.commit({ VERSION: '2\n' }, 'v2');
  expectExit(await kit(PRELOAD, 'release', ['main', '--no-activate']), 0, 'build v2');
  const v2 = releaseIdOf(await repos[PRELOAD.app]!.head());
  const slow = slowRequest(PRELOAD, 2500);
  await new Promise((r) => setTimeout(r, 200));
  expectExit(await kit(PRELOAD, 'activate', [v2]), 0, 'activate v2');
  const res = await slow;
  assert.is(res.status, 200, `the request in flight was answered: ${res.body}`);
  assert.is(res.body.trim(), `slept 2500 ms in ${old}`);
  await releaseUnderLoad(PRELOAD, '2', '3');
});

/** A long-lived upgraded connection to the example app's /lines (a WebSocket without its framing): each line sent comes back as "<release> <line>". */
function upgradedConnection(port: number): Promise<{ send(line: string): void; lines: string[]; closed: Promise<{ error?: string }> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const lines: string[] = [];
    let head = '';
    let upgraded = false;
    let rest = '';
    const closed = new Promise<{ error?: string }>((done) => {
      let error: string | undefined;
      socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
      socket.on('close', () => done({ error }));
    });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (!upgraded) {
        head += chunk;
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!/^HTTP\/1\.1 101 /.test(head)) return reject(new Error(`not upgraded: ${head}`));
        upgraded = true;
        chunk = head.slice(end + 4);
        resolve({ send: (line) => socket.writableEnded || socket.write(`${line}\n`), lines, closed });
      }
      rest += chunk;
      for (let i = rest.indexOf('\n'); i >= 0; i = rest.indexOf('\n')) {
        lines.push(rest.slice(0, i));
        rest = rest.slice(i + 1);
        // The goodbye: end our side too and send nothing more, as a WebSocket client answers a close frame.
        if (lines.at(-1) === 'bye: reconnect') socket.end();
      }
    });
    socket.once('connect', () => socket.write(`GET /lines HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: line-echo\r\n\r\n`));
    socket.once('error', reject);
  });
}

it('the preload: a long-lived upgraded connection (as a WebSocket) stays on the old release through the handover, until the old app says goodbye at its SIGTERM; a new one reaches the new release', async () => {
  await repos[PRELOAD.app]!.commit({ VERSION: '4\n', BEHAVIOUR: null }, 'v4: a graceful SIGTERM again');
  expectExit(await kit(PRELOAD, 'release', ['main']), 0, 'release v4');
  const old = activeInside(h, rootOf(PRELOAD))!;
  const conn = await upgradedConnection(PRELOAD.port);
  await repos[PRELOAD.app]!.commit({ VERSION: '5\n' }, 'v5');
  let pings = 0;
  const pinger = setInterval(() => conn.send(`ping ${++pings}`), 100);
  const r = await kit(PRELOAD, 'release', ['main']);
  clearInterval(pinger);
  expectExit(r, 0, 'release v5');
  const { error } = await conn.closed;
  const v5 = activeInside(h, rootOf(PRELOAD))!;
  assert.is.not(v5, old);
  assert.is(error, undefined, 'closed cleanly, not reset');
  assert.ok(conn.lines.length >= 5, `the connection kept working through the release (${conn.lines.length} answers to ${pings} pings)`);
  assert.is(conn.lines.at(-1), 'bye: reconnect', "the old app's goodbye at its SIGTERM ends it");
  const answers = conn.lines.slice(0, -1);
  assert.ok(answers.every((l) => l.startsWith(`${old} ping `)), `every answer came from the old release: ${answers.slice(-3).join(' | ')}`);
  const next = await upgradedConnection(PRELOAD.port);
  next.send('hello');
  await eventually('an answer on the new connection', () => next.lines.length > 0, 5000);
  assert.is(next.lines[0], `${v5} hello`, 'a new connection reaches the new release');
  const stopLine = /drained and stopped in ([0-9.]+) (ms|s)/.exec(r.stdout);
  assert.ok(stopLine, out(r));
  const stopS = Number(stopLine![1]) / (stopLine![2] === 'ms' ? 1000 : 1);
  assert.ok(stopS < 10, `the old slot stopped on its own (${stopS} s), not by SIGKILL at stop_timeout (10 s)`);
  report(`${PRELOAD.app}: an upgraded connection kept on ${old} for ${answers.length} answers through the release, then "bye: reconnect"; the old slot stopped in ${stopLine![1]} ${stopLine![2]}`);
});

it('gunicorn: a release under load hands over with 0 failed requests', async () => {
  await releaseUnderLoad(PY, '1', '2');
});

it('a move from the single <app>.service that fails (the new unit cannot start the app) keeps the old unit serving, fails no request, exits 1 and says why', async () => {
  await setUp(LEGACY, 'node', { socket: true });
  // Make it look as an older cutover left it: one <app>.service (the template's text, %i fixed), the
  // socket starting that unit, running, and the slots stopped.
  const template = await inside(h, `cat /etc/systemd/system/${LEGACY.app}@.service`);
  const legacy = template.replace(/%i/g, 'legacy').replace(/^Sockets=.*\n/m, '');
  await inside(h, `cat > /etc/systemd/system/${LEGACY.app}.service <<'EOF'\n${legacy}\nEOF\nsed -i '/^Service=/d' /etc/systemd/system/${LEGACY.app}.socket`);
  await inside(h, `systemctl daemon-reload && systemctl start ${LEGACY.app}.service && systemctl stop ${LEGACY.app}@a.service ${LEGACY.app}@b.service && systemctl is-active ${LEGACY.app}.service`);
  assert.is(await version(LEGACY), '1');
  // The same provision also brings a start command that cannot run: slot a never serves.
  const good = await manifestObject(LEGACY);
  h.manifest({ ...good, start: 'node no-such-server.js' });
  try {
    const run = await loadDuring(base(LEGACY), () => kit(LEGACY, 'provision'), { workers: 4, minMs: 2000 });
    expectExit(run.result, 1, 'provision with a start that fails');
    report(describeLoad(`${LEGACY.app}: a failed move from <app>.service`, run.load, run.samples));
    assert.is(run.load.failed, 0, `no failed request: ${JSON.stringify(run.load.errors)}`);
    assert.match(run.result.stderr, `Moving ${LEGACY.app}.service to ${LEGACY.app}@a.service failed`);
    assert.match(run.result.stderr, `${LEGACY.app}.service kept serving`);
    assert.match(run.result.stderr, `journalctl -u ${LEGACY.app}@a.service`);
    assert.is((await h.host.exec(['systemctl', 'is-active', `${LEGACY.app}.service`])).stdout.trim(), 'active', 'the old unit runs');
    assert.is((await h.host.exec(['test', '-e', `/etc/systemd/system/${LEGACY.app}.service`])).code, 0, 'the old unit file is kept');
    assert.match(await inside(h, `systemctl show -p Triggers --value ${LEGACY.app}.socket`), `${LEGACY.app}.service`, 'the socket starts the old unit again, not slot a');
    assert.equal((await slotsInside(h, LEGACY.app)).map((s) => s.state), ['inactive', 'inactive'], 'slot a was stopped again, its failed state cleared');
    assert.is(await version(LEGACY), '1');
  } finally {
    h.manifest(good);
  }
});

it('provision moves an app from the single <app>.service of an older cutover to the slots without failing a request', async () => {
  // Goes on from the failed move above: the old unit still serves, and the manifest is right again.
  const root = rootOf(LEGACY);
  assert.is(await version(LEGACY), '1');
  const run = await loadDuring(base(LEGACY), () => kit(LEGACY, 'provision'), { workers: 8, minMs: 3000 });
  expectExit(run.result, 0, 'provision');
  report(describeLoad(`${LEGACY.app}: provision moves <app>.service to the slots`, run.load, run.samples));
  assert.is(run.load.failed, 0, `no failed request: ${JSON.stringify(run.load.errors)}`);
  assert.match(run.result.stdout, `handed ${LEGACY.app}.service over to ${LEGACY.app}@a.service`);
  assert.match(run.result.stdout, `removed /etc/systemd/system/${LEGACY.app}.service`);
  assert.is((await h.host.exec(['systemctl', 'is-active', `${LEGACY.app}.service`])).stdout.trim(), 'inactive');
  assert.is((await h.host.exec(['test', '-e', `/etc/systemd/system/${LEGACY.app}.service`])).code, 1, 'the old unit file is gone');
  assert.equal((await slotsInside(h, LEGACY.app)).map((s) => s.state), ['active', 'inactive']);
  assert.is(await version(LEGACY), '1');
  assert.is(activeInside(h, root), releaseIdOf(await repos[LEGACY.app]!.head()));
  const again = await kit(LEGACY, 'provision');
  expectExit(again, 0, 'provision again');
  assert.match(again.stdout, 'Nothing to change');
});

it('kill -9 of the kit mid-handover: two processes at most, status shows both slots, the next verb undoes it, then the release finishes', async () => {
  const a = NATIVE;
  const root = rootOf(a);
  await repos[a.app]!.commit({ VERSION: '5\n', BEHAVIOUR: 'slow-start=1500\n' }, 'v5 starts slowly');
  expectExit(await kit(a, 'release', ['main', '--no-activate']), 0, 'build v5');
  const v5 = releaseIdOf(await repos[a.app]!.head());
  h.manifest({ ...(await manifestObject(a)), preflight: false });
  try {
    const activation = kit(a, 'activate', [v5]);
    await eventually('both slots run', async () => (await slotsInside(h, a.app)).filter((s) => s.state === 'active').length === 2, 20_000);
    await inside(h, `kill -9 $(pgrep -f '([s]cripts/activate[.]ts|[b]in/cutover activate) ${v5}')`);
    await activation;
    const running = (await slotsInside(h, a.app)).filter((s) => s.state === 'active');
    assert.is(running.length, 2, 'the kill left both slots');
    const processes = Number(await inside(h, `pgrep -c -u ${a.app} || true`));
    assert.ok(processes <= 2, `at most two app processes: ${processes}`);
    const s = await statusJson(h, manifests[a.app]!);
    assert.is(s.slots.filter((x: any) => x.state === 'active').length, 2, `status shows both slots: ${JSON.stringify(s.slots)}`);
    assert.is(s.unfinished, v5, 'status names the unfinished activation');
    assert.ok([s.serving, s.alsoServing].includes(v5) && s.alsoServing !== null, `status names both releases that answer: ${s.serving}, ${s.alsoServing}`);
    const p = await kit(a, 'prune');
    expectExit(p, 0, 'the next verb');
    assert.match(p.stdout, /Both slots run: a cutover was cut short/);
    assert.is((await slotsInside(h, a.app)).filter((x) => x.state === 'active').length, 1);
    assert.is(await version(a), '3', 'the handover is undone: the old release serves alone');
    assert.is(activeInside(h, root), v5, 'active still names the unfinished activation');
    assert.is((await statusJson(h, manifests[a.app]!)).unfinished, v5);
    const rb = await kit(a, 'rollback');
    expectExit(rb, 1, 'a plain rollback of the unfinished activation');
    assert.match(rb.stderr, 'did not finish');
    expectExit(await kit(a, 'activate', [v5]), 0, 'activate v5 again');
    assert.is(await version(a), '5');
    assert.is((await slotsInside(h, a.app)).filter((x) => x.state === 'active').length, 1);
  } finally {
    h.manifest(await manifestObject(a));
  }
});

it('kill -9 during preflight: status lists the preflight unit left running, the next verb stops it, and the release can be pruned', async () => {
  const a = NATIVE;
  await repos[a.app]!.commit({ VERSION: '6\n', BEHAVIOUR: 'slow-start=3000\n' }, 'v6 starts slowly');
  const v6 = releaseIdOf(await repos[a.app]!.head());
  const run = kit(a, 'release', ['main']);
  const unit = `cutover-preflight-${a.app}-${v6}.service`;
  await eventually('the preflight unit runs', async () => (await h.host.exec(['systemctl', 'is-active', unit])).stdout.trim() === 'active', 60_000);
  await inside(h, `kill -9 $(pgrep -f '([s]cripts/release[.]ts|[b]in/cutover release) main')`);
  await run;
  assert.is((await h.host.exec(['systemctl', 'is-active', unit])).stdout.trim(), 'active', 'the killed run left its preflight unit running');
  const s = await statusJson(h, manifests[a.app]!);
  assert.ok(s.preflights.includes(unit), `status lists it: ${JSON.stringify(s.preflights)}`);
  assert.match((await kit(a, 'status')).stdout, `preflight units left running: ${unit}`);
  const runtimeMax = await inside(h, `systemctl show -p RuntimeMaxUSec --value ${unit}`);
  assert.is.not(runtimeMax, 'infinity', 'a preflight unit carries its own upper bound');
  const p = await kit(a, 'prune', ['--keep', '1']);
  expectExit(p, 0, 'prune');
  assert.match(p.stdout, `Stopping cutover-preflight-${a.app}-${v6}: a cutover run that was killed during its preflight left it running.`);
  assert.is(await inside(h, `systemctl list-units --all --no-legend 'cutover-preflight-${a.app}-*'`), '', 'no preflight unit or socket remains');
  // Nothing runs in it any more: prune judges it like any release (before, the in-use check kept it for good).
  const plan = await kit(a, 'prune', ['--keep', '1', '--dry-run']);
  assert.not.match(plan.stdout, `${v6}: a running process`);
});

/** The manifest object an app was set up with (kept at set-up, so a test that changes it can put it back). */
async function manifestObject(a: App): Promise<Record<string, unknown>> {
  if (!original[a.app]) {
    const { parse } = await import('yaml');
    original[a.app] = parse(h.read(manifests[a.app]!)) as Record<string, unknown>;
  }
  return original[a.app]!;
}

test.run();
