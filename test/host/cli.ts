// Command line for the disposable systemd test host: `build` the rootfs, open a `shell` host, or run the `selftest`.
import { readdirSync, readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootHost, ensureRootfs, type TestHost } from './host.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const REPO_IN_HOST = '/opt/cutover';
const repoBind = { host: REPO, container: REPO_IN_HOST, readOnly: true };

const timings: [string, number][] = [];
async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try { return await fn(); } finally { timings.push([label, Date.now() - started]); }
}
function printTimings(): void {
  for (const [label, ms] of timings) console.log(`  ${label.padEnd(40)} ${(ms / 1000).toFixed(2)} s`);
}

async function build(): Promise<void> {
  const base = await timed('ensure rootfs', ensureRootfs);
  console.log(`rootfs ready: ${base}`);
  printTimings();
}

async function shell(): Promise<void> {
  const host = await bootHost({ binds: [repoBind] });
  console.log(`test host ${host.name} is up; the repo is at ${REPO_IN_HOST} (read-only) inside.`);
  console.log(`  enter it:   nsenter -t ${host.pid} -a /bin/bash -l`);
  console.log(`  its files:  ${host.root}`);
  console.log('Ctrl-C (or SIGTERM) stops it and removes everything it left.');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await host.stop();
  console.log(`${host.name} stopped.`);
}

// ---- selftest -------------------------------------------------------------------------------

let failures = 0;
function check(ok: boolean, what: string, detail = ''): void {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${!ok && detail ? `\n     ${detail.trim().replace(/\n/g, '\n     ')}` : ''}`);
  if (!ok) failures++;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => { body += s; }).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).once('error', reject);
  });
}

async function httpGetRetrying(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try { return await httpGet(url); } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function checkBasics(host: TestHost): Promise<void> {
  const state = await host.exec(['systemctl', 'is-system-running']);
  check(state.stdout.trim() === 'running', 'systemd is running', state.stdout + state.stderr);
  const node = await host.exec(['node', '--version']);
  check(/^v18\./.test(node.stdout), `node is 18.x (${node.stdout.trim()})`, node.stderr);
  const tools = ['git', 'cron', 'python3', 'gunicorn', 'npm', 'curl', 'flock', 'setpriv', 'runuser', 'useradd', 'tar', 'systemd-run', 'systemd-analyze'];
  for (const tool of tools) {
    const r = await host.exec(['sh', '-c', 'command -v "$1"', 'sh', tool]);
    check(r.code === 0, `${tool} is installed`);
  }
  const cron = await host.exec(['systemctl', 'is-active', 'cron']);
  check(cron.stdout.trim() === 'active', 'cron.service is active', cron.stdout);
  const journald = await host.exec(['systemctl', 'is-active', 'systemd-journald']);
  check(journald.stdout.trim() === 'active', 'systemd-journald is active', journald.stdout);
}

async function checkHttpUnit(host: TestHost): Promise<void> {
  const port = await freePort();
  const unit = `selftest-http-${port}`;
  const run = await host.exec(['systemd-run', `--unit=${unit}`, '-p', 'DynamicUser=yes', '-p', 'ProtectSystem=strict',
    '--', 'python3', '-m', 'http.server', '--bind', '127.0.0.1', '--directory', '/usr/share', String(port)]);
  check(run.code === 0, `systemd-run starts a transient HTTP unit on 127.0.0.1:${port}`, run.stderr);
  const res = await timed('HTTP from the host to a unit inside', () => httpGetRetrying(`http://127.0.0.1:${port}/`, 10_000))
    .catch((err: Error) => ({ status: 0, body: err.message }));
  check(res.status === 200, 'the host fetches it over 127.0.0.1 with node:http', `${res.status} ${res.body.slice(0, 200)}`);
  const journal = await host.journal(`${unit}.service`);
  check(journal.includes('"GET / HTTP/1.1" 200'), 'journalctl -u shows its request log', journal);
  const security = await host.exec(['systemd-analyze', 'security', '--no-pager', `${unit}.service`]);
  check(/Overall exposure level/.test(security.stdout), `systemd-analyze security runs (${/Overall exposure level for \S+: (.*)/.exec(security.stdout)?.[1] ?? '?'})`, security.stderr);
  await host.exec(['systemctl', 'stop', `${unit}.service`]);
}

async function checkSystemdRun(host: TestHost): Promise<void> {
  const wait = await host.exec(['systemd-run', '--wait', '--pipe', '--quiet', '-p', 'ProtectSystem=strict', '-p', 'PrivateTmp=yes',
    '-p', 'User=nobody', '--', 'sh', '-c', 'id -un; touch /usr/x 2>/dev/null || echo ro; exit 3']);
  check(wait.stdout === 'nobody\nro\n' && wait.code === 3, 'systemd-run --wait --pipe -p ... passes output and exit code',
    `code ${wait.code}: ${wait.stdout}${wait.stderr}`);
  const env = await host.exec(['sh', '-c', 'echo "$FOO" && pwd && cat'], { env: { FOO: 'bar' }, cwd: '/etc', input: 'in\n' });
  check(env.stdout === 'bar\n/etc\nin\n', 'exec passes env, cwd and input', env.stdout + env.stderr);
  const slow = await host.exec(['sleep', '10'], { timeoutMs: 300 });
  check(slow.code === 124, `exec timeoutMs ends a slow command (code ${slow.code})`);
}

async function checkKitRuns(host: TestHost): Promise<void> {
  const tsFile = '/tmp/selftest.ts';
  await fs.writeFile(path.join(host.root, tsFile), 'const n: number = 41;\nconsole.log(`tsx ok ${n + 1} ${process.version}`);\n');
  const r = await timed('npx tsx of a tiny .ts inside', () =>
    host.exec(['npx', 'tsx', tsFile], { cwd: REPO_IN_HOST, timeoutMs: 60_000 }));
  check(/^tsx ok 42 v18\./.test(r.stdout), `cd ${REPO_IN_HOST} && npx tsx file.ts works on the container's node`, `code ${r.code}: ${r.stdout}${r.stderr}`);
  const e = await host.exec(['npx', 'tsx', '-e', 'console.log(1)'], { cwd: REPO_IN_HOST, timeoutMs: 60_000 });
  check(e.stdout.trim() === '1', 'npx tsx -e works', `code ${e.code}: ${e.stdout}${e.stderr}`);
}

async function checkStateDir(): Promise<void> {
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'cutover-host-state-'));
  try {
    const first = await timed('boot with a stateDir', () => bootHost({ stateDir }));
    await first.exec(['sh', '-c', 'echo kept > /var/tmp/marker && sync']);
    await timed('cut the power', () => first.cutPower());
    const second = await timed('boot the same stateDir again', () => bootHost({ stateDir }));
    const marker = await second.exec(['cat', '/var/tmp/marker']);
    check(marker.stdout === 'kept\n', 'a stateDir keeps files across a power cut and a second boot', marker.stderr);
    await second.stop();
    await expectNothingLeft(first.name);
    await expectNothingLeft(second.name);
  } finally {
    await fs.rm(stateDir, { recursive: true, force: true });
  }
}

function leftovers(name: string): string[] {
  const found: string[] = [];
  for (const root of ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified', '/run/systemd/nspawn/propagate']) {
    try { if (readdirSync(root).includes(name)) found.push(path.join(root, name)); } catch { /* absent */ }
  }
  if (readFileSync('/proc/self/mountinfo', 'utf8').includes(name)) found.push(`a mount naming ${name}`);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try { if (readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`/${name}`)) found.push(`process ${pid}`); } catch { /* gone */ }
  }
  return found;
}

async function expectNothingLeft(name: string): Promise<void> {
  const found = leftovers(name);
  check(found.length === 0, `${name} left no cgroup dir, propagate dir, mount or process`, found.join('\n'));
}

function nspawnTmpDirs(): string[] {
  return readdirSync('/tmp').filter((n) => n.startsWith('nspawn-'));
}

async function selftest(): Promise<void> {
  await timed('ensure rootfs', ensureRootfs);
  const mountsBefore = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').length;
  const tmpBefore = nspawnTmpDirs().length;
  const host = await timed('boot to running', () => bootHost({ binds: [repoBind] }));
  try {
    await checkBasics(host);
    await checkHttpUnit(host);
    await checkSystemdRun(host);
    await checkKitRuns(host);
  } finally {
    await timed('stop', () => host.stop());
  }
  await expectNothingLeft(host.name);
  await checkStateDir();
  const mountsAfter = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').length;
  check(mountsAfter === mountsBefore, `no mounts left on the host (${mountsBefore} before, ${mountsAfter} after)`);
  check(nspawnTmpDirs().length === tmpBefore, 'no /tmp/nspawn-* dirs left');
  console.log('timings:');
  printTimings();
  console.log(failures ? `selftest: ${failures} check(s) FAILED` : 'selftest: all checks passed');
  process.exitCode = failures ? 1 : 0;
}

const commands: Record<string, () => Promise<void>> = { build, shell, selftest };
const command = commands[process.argv[2] ?? ''];
if (!command) {
  console.error('usage: npx tsx test/host/cli.ts build|shell|selftest');
  process.exitCode = 2;
} else {
  command().catch((err: Error) => {
    console.error(err.message);
    process.exitCode = 1;
  });
}
