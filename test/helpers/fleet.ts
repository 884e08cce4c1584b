// System-tier helpers for many hosts: test hosts on private networks, an Ansible inventory for them, ansible-playbook runs.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { bootHost, type ExecResult, type TestHost } from '../host/host.ts';
import { kitDir } from './kit.ts';
import { makeAppRepo, tempDir, type AppRepo } from './gitrepo.ts';

/** The project's Ansible directory (playbooks, role, ansible.cfg). */
export const ANSIBLE_DIR = path.join(kitDir, 'ansible');
/** Where the kit's npm cache (seeded on this machine) is put inside each host: the hosts reach no registry. */
const NPM_CACHE_INSIDE = '/var/cache/cutover-npm';
/** Where the app repository appears inside every host. */
export const SRC_INSIDE = '/srv/src';
/** The port the front proxy of each host listens on, at the host's own address (the load balancer's view). */
export const FRONT_PORT = 8080;
/** Each test hook appends one line here inside the host: "<drain|undrain> <live release>". */
export const HOOK_LOG = '/run/cutover-test-hooks';

// A plain TCP proxy, like nginx in front of an app that listens on loopback: <address>:FRONT_PORT -> 127.0.0.1:<app port>.
const PROXY_JS = `const net = require('node:net');
const [listenPort, appPort] = process.argv.slice(2).map(Number);
net.createServer((client) => {
  const app = net.connect(appPort, '127.0.0.1');
  client.pipe(app).pipe(client);
  const close = () => { client.destroy(); app.destroy(); };
  client.on('error', close); app.on('error', close);
}).listen(listenPort, '0.0.0.0');
`;

const HOOK_YML = (event: string, app: string) => `# Test hook: records ${event} and the host's live release at that moment.
- name: Test hook (${event})
  ansible.builtin.command:
    argv: [sh, -c, 'echo "$1 $(readlink /usr/local/src/$2/active)" >> $3', sh, ${event}, ${app}, ${HOOK_LOG}]
`;

export interface FleetHost {
  name: string;
  host: TestHost;
  /** http://<its private address>:FRONT_PORT */
  url: string;
  /** The kit's status --json inside it. */
  status(): Promise<{ live: string | null; serving: string | null; unfinished: string | null; releases: { id: string; commit: string; state: string; source?: { kind: string; sha256?: string; treeDigest?: string } }[] }>;
}

export interface Fleet {
  hosts: FleetHost[];
  app: string;
  repo: AppRepo;
  /** The inventory directory (hosts.ini, group_vars/cutover.yml). */
  inventory: string;
  /** Runs ansible-playbook <playbook> with extra vars; resolves when it exits. */
  play(playbook: string, extraVars?: Record<string, unknown>, opts?: { onSpawn?: (pid: number) => void }): Promise<PlayResult>;
  stop(): Promise<void>;
}

export interface PlayResult extends ExecResult {
  ms: number;
  /** PLAY RECAP per host: ok, changed, failed, unreachable... */
  recap: Record<string, Record<string, number>>;
}

/** Seeds an npm cache with the kit's dependencies (from its lockfile) on this machine, which reaches the registry. */
async function seedNpmCache(dir: string): Promise<string> {
  const work = path.join(dir, 'seed');
  const cache = path.join(dir, 'npm-cache');
  fs.mkdirSync(work, { recursive: true });
  for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(kitDir, f), path.join(work, f));
  const r = spawnSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', '--prefer-offline', '--cache', cache],
    { cwd: work, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`seeding the npm cache failed: ${r.stderr}`);
  return cache;
}

/** Parses ansible-playbook's PLAY RECAP lines. */
export function parseRecap(stdout: string): Record<string, Record<string, number>> {
  const recap: Record<string, Record<string, number>> = {};
  const at = stdout.lastIndexOf('PLAY RECAP');
  if (at < 0) return recap;
  for (const line of stdout.slice(at).split('\n').slice(1)) {
    const m = /^(\S+)\s+:\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    recap[m[1]!] = Object.fromEntries([...m[2]!.matchAll(/(\w+)=(\d+)/g)].map((x) => [x[1]!, Number(x[2])]));
  }
  return recap;
}

/**
 * Boots `count` test hosts, each on its own private network, with the app repo bound in and a front proxy on
 * FRONT_PORT, and writes an inventory that reaches them over the nsenter connection. `manifest` is the app's.
 */
export async function bootFleet(opts: { count: number; app: string; manifest: (repoUrl: string) => Record<string, unknown> }): Promise<Fleet> {
  const work = await tempDir('cutover-fleet');
  const srcDir = path.join(work, 'src');
  const repo = await makeAppRepo(path.join(srcDir, opts.app));
  const cache = await seedNpmCache(work);
  const booted = await Promise.allSettled(Array.from({ length: opts.count }, () =>
    bootHost({ privateNetwork: true, binds: [{ host: srcDir, container: SRC_INSIDE, readOnly: true }] })));
  const up = booted.flatMap((b) => (b.status === 'fulfilled' ? [b.value] : []));
  const failed = booted.find((b) => b.status === 'rejected') as PromiseRejectedResult | undefined;
  if (failed) {
    await Promise.allSettled(up.map((h) => h.stop()));
    throw failed.reason;
  }
  const names = up.map((_, i) => `host${i + 1}`);
  const manifestFile = path.join(work, `${opts.app}.yaml`);
  const manifest = opts.manifest(`${SRC_INSIDE}/${opts.app}`);
  fs.writeFileSync(manifestFile, stringify(manifest));
  for (const h of up) {
    fs.cpSync(cache, path.join(h.root, NPM_CACHE_INSIDE), { recursive: true });
    fs.writeFileSync(path.join(h.root, 'usr/local/lib/front-proxy.cjs'), PROXY_JS);
    const r = await h.exec(['systemd-run', '--unit', 'front-proxy', '--property=Restart=always',
      'node', '/usr/local/lib/front-proxy.cjs', String(FRONT_PORT), String(manifest.port)]);
    if (r.code !== 0) throw new Error(`${h.name}: starting the front proxy failed: ${r.stderr}`);
  }
  const inventory = path.join(work, 'inventory');
  fs.mkdirSync(path.join(inventory, 'group_vars'), { recursive: true });
  fs.writeFileSync(path.join(inventory, 'hosts.ini'), ['[cutover]', ...up.map((h, i) =>
    `${names[i]} ansible_connection=community.docker.nsenter ansible_nsenter_pid=${h.pid} ansible_python_interpreter=/usr/bin/python3`), ''].join('\n'));
  for (const event of ['drain', 'undrain']) fs.writeFileSync(path.join(work, `${event}.yml`), HOOK_YML(event, opts.app));
  fs.writeFileSync(path.join(inventory, 'group_vars', 'cutover.yml'), stringify({
    cutover_manifest_src: manifestFile,
    cutover_npm_ci_args: ['--offline', '--cache', NPM_CACHE_INSIDE],
    cutover_drain_tasks: path.join(work, 'drain.yml'),
    cutover_undrain_tasks: path.join(work, 'undrain.yml'),
  }));
  const manifestInside = `/etc/cutover/${opts.app}.yaml`;
  const hosts: FleetHost[] = up.map((h, i) => ({
    name: names[i]!,
    host: h,
    url: `http://${h.address}:${FRONT_PORT}`,
    async status() {
      // The kit's executable, as the playbooks run it: the verbs prepare.yml compiled (≈ 0.2 s, where tsx takes ≈ 1.5 s).
      const r = await h.exec(['/usr/bin/node', '/opt/cutover/bin/cutover', 'status', '--json', '--manifest', manifestInside],
        { cwd: '/opt/cutover', timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`${names[i]}: status --json failed (exit ${r.code}): ${r.stderr}`);
      return JSON.parse(r.stdout);
    },
  }));
  return {
    hosts,
    app: opts.app,
    repo,
    inventory,
    play: (playbook, extraVars = {}, o = {}) => runPlaybook(work, inventory, playbook, extraVars, o.onSpawn),
    stop: async () => { await Promise.allSettled(up.map((h) => h.stop())); },
  };
}

function runPlaybook(work: string, inventory: string, playbook: string, extraVars: Record<string, unknown>,
  onSpawn?: (pid: number) => void): Promise<PlayResult> {
  const started = Date.now();
  const localTemp = path.join(work, 'ansible-local');
  const env = {
    ...process.env,
    ANSIBLE_CONFIG: path.join(ANSIBLE_DIR, 'ansible.cfg'),
    ANSIBLE_LOCAL_TEMP: localTemp,
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_FORCE_COLOR: '0',
    ANSIBLE_HOST_KEY_CHECKING: 'False',
  };
  const argv = ['-i', path.join(inventory, 'hosts.ini'), path.join(ANSIBLE_DIR, playbook), '-e', JSON.stringify(extraVars)];
  // Its own process group, so a test can kill the whole run (ansible's workers and their nsenter children) at once.
  const child = spawn('ansible-playbook', argv, { cwd: ANSIBLE_DIR, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid) onSpawn?.(child.pid);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({
      code: code ?? (signal ? 128 + 9 : 1), stdout, stderr, ms: Date.now() - started, recap: parseRecap(stdout),
    }));
  });
}

/** The kit's and its verbs' processes still running inside a host (a killed playbook can leave one behind). */
export async function kitProcesses(h: TestHost): Promise<string> {
  const r = await h.exec(['pgrep', '-af', 'scripts/[a-z]+[.]ts|bin/cutover [a-z]+']);
  return r.stdout.trim();
}
