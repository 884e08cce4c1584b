// The disposable systemd test host: boots a real systemd (PID 1 in systemd-nspawn), runs commands in it, leaves nothing behind.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BUILD_SCRIPT = path.join(HERE, 'build-rootfs.sh');
/** Where the rootfs tarball and its unpacked base live (outside the repo). */
export const CACHE_DIR = process.env.CUTOVER_TEST_HOST_CACHE ?? '/var/cache/cutover-test-host';
const CGROUP_ROOTS = ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified'];
const PROPAGATE_DIR = '/run/systemd/nspawn/propagate';
const NAME_PREFIX = 'cutover-host-';
/** The private networks' addresses (10.213.0.0/16, a /30 per host): traffic to them stays on this machine. */
export const PRIVATE_NET_PREFIX = '10.213.';
/** Host-side veth names of private networks: cth<test pid>n<counter> (at most 15 characters). */
const LINK_PATTERN = /^cth(\d+)n\d+$/;
/** The container-side name of its veth. */
const CONTAINER_LINK = 'cv0';
/** The clean root environment every command inside the host starts with. */
export const CONTAINER_ENV: Record<string, string> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  USER: 'root',
  LOGNAME: 'root',
  LANG: 'C.UTF-8',
  TERM: 'dumb',
};
const OUTPUT_LIMIT = 64 * 1024;

export interface ExecResult { code: number; stdout: string; stderr: string }
export interface ExecOptions { env?: Record<string, string>; input?: string; timeoutMs?: number; cwd?: string }
export interface Bind { host: string; container: string; readOnly?: boolean }
export interface BootOptions {
  /** Machine name (hostname inside); default cutover-host-<pid>-<n>, unique per process. */
  name?: string;
  binds?: Bind[];
  /** Host dir that keeps the container's writable layer across stop and a second boot (one host at a time). */
  stateDir?: string;
  /** How long to wait for `systemctl is-system-running`; default 60 s. */
  bootTimeoutMs?: number;
  /** Echo the container's console (boot messages) to stderr. Also CUTOVER_TEST_HOST_VERBOSE=1. */
  verbose?: boolean;
  /**
   * Its own network namespace (own loopback, so every host can use the same ports), joined to this machine by
   * one veth pair: the container is at `address`, reachable from this machine only, and reaches nothing else.
   */
  privateNetwork?: boolean;
}

export interface TestHost {
  name: string;
  /** The container's PID 1 as seen from the host. */
  pid: number;
  /** The container's filesystem as seen from the host (/proc/<pid>/root). */
  root: string;
  /** With privateNetwork: the container's IPv4 address, reachable from this machine; otherwise undefined. */
  address?: string;
  /** Runs argv inside the container (all namespaces, clean env); never throws on a non-zero exit. */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Runs a /bin/sh -c script inside the container. */
  sh(script: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Waits for `systemctl is-system-running` to settle; returns "running" or "degraded" (failed units printed). */
  waitSystemRunning(timeoutMs?: number): Promise<string>;
  /** Waits until `systemctl is-active unit` prints state (default "active"). */
  waitUnit(unit: string, state?: string, timeoutMs?: number): Promise<void>;
  /** The last journal lines of a unit inside the container. */
  journal(unit: string, lines?: number): Promise<string>;
  /** nspawn's own output so far, the last 64 KiB (the container's console goes to /dev/null under --console=pipe). */
  output(): string;
  /** Clean shutdown (SIGTERM to nspawn), then removes cgroup dirs and the propagate dir. Idempotent. */
  stop(): Promise<void>;
  /** Cuts the power: SIGKILL to every process in the container at once, then the same cleanup as stop. */
  cutPower(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const log = (msg: string) => process.stderr.write(`[test-host] ${msg}\n`);
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(2)} s`;

/** The rootfs version: a hash of the build recipe, as build-rootfs.sh computes it. */
export function rootfsVersion(): string {
  return createHash('sha256').update(readFileSync(BUILD_SCRIPT)).digest('hex').slice(0, 12);
}

/** Builds the rootfs tarball if missing, unpacks it once to a base dir next to it, returns that dir. */
export async function ensureRootfs(): Promise<string> {
  const version = rootfsVersion();
  const tarball = path.join(CACHE_DIR, `rootfs-${version}.tar.zst`);
  const base = path.join(CACHE_DIR, `base-${version}`);
  const unpacked = () => existsSync(path.join(base, 'usr/lib/systemd/systemd'));
  if (unpacked()) return base;
  if (!existsSync(tarball)) await buildRootfs(); // it keeps its tree as the base
  if (!unpacked()) await unpack(tarball, base);
  return base;
}

async function buildRootfs(): Promise<void> {
  const started = Date.now();
  log(`building the rootfs with ${BUILD_SCRIPT} (a few minutes, once)`);
  const child = spawn('bash', [BUILD_SCRIPT], { stdio: ['ignore', 'inherit', 'inherit'] });
  const code = await exitCode(child);
  if (code !== 0) throw new Error(`build-rootfs.sh failed with exit code ${code}`);
  log(`rootfs built in ${seconds(started)}`);
}

async function unpack(tarball: string, base: string): Promise<void> {
  const started = Date.now();
  const tmp = `${base}.unpack-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  const tar = spawn('tar', ['-I', 'zstd', '-xpf', tarball, '-C', tmp, '--numeric-owner', '--xattrs', '--xattrs-include=*'],
    { stdio: ['ignore', 'inherit', 'inherit'] });
  const code = await exitCode(tar);
  if (code !== 0) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw new Error(`unpacking ${tarball} failed with exit code ${code}`);
  }
  try {
    await fs.rename(tmp, base);
    log(`unpacked ${tarball} to ${base} in ${seconds(started)}`);
  } catch {
    await fs.rm(tmp, { recursive: true, force: true }); // another process unpacked it first
  }
}

function exitCode(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? osConstants.signals[signal] : 0)));
  });
}

// ---- booting ------------------------------------------------------------------------------

let counter = 0;
const running = new Map<string, Host>();

/** Boots a fresh container over the cached base; resolves once systemd reports running (or degraded). */
export async function bootHost(opts: BootOptions = {}): Promise<TestHost> {
  const base = await ensureRootfs();
  sweepStale();
  const name = opts.name ?? `${NAME_PREFIX}${process.pid}-${counter++}`;
  validateName(name);
  if (running.has(name)) throw new Error(`a test host named ${name} is already running`);
  const started = Date.now();
  const cgroups = CGROUP_ROOTS.map((root) => path.join(root, name));
  const net = opts.privateNetwork ? allocateNetwork() : undefined;
  const argv = await launchArgv(base, name, opts, cgroups, net);
  for (const dir of cgroups) await fs.mkdir(dir, { recursive: true });
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const host = new Host(name, child, cgroups, opts.verbose ?? process.env.CUTOVER_TEST_HOST_VERBOSE === '1', net);
  running.set(name, host);
  installExitHandlers();
  try {
    await host.attach(opts.bootTimeoutMs ?? 60_000);
    if (net) await host.configureNetwork(net);
  } catch (err) {
    const diagnosis = await host.diagnose();
    await host.cutPower(); // a half-booted PID 1 may ignore the poweroff signal
    throw new Error(`${(err as Error).message}${diagnosis}`);
  }
  log(`${name} booted in ${seconds(started)} (pid ${host.pid})`);
  return host;
}

function validateName(name: string): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$/.test(name)) throw new Error(`invalid test host name: ${name}`);
}

// Moves itself into the two cgroup dirs, then becomes the next command (argv passed as "$@", never quoted by hand).
const CGROUP_WRAPPER = 'echo $$ > "$1/cgroup.procs" && echo $$ > "$2/cgroup.procs" && shift 2 && exec "$@"';
// Inside a private mount namespace: mounts the persistent overlay, then becomes the next command.
const OVERLAY_WRAPPER = 'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" && shift 4 && exec "$@"';

async function launchArgv(base: string, name: string, opts: BootOptions, cgroups: string[], net?: PrivateNet): Promise<string[]> {
  const nspawn = ['systemd-nspawn', '-b', '--machine', name, '--register=no', '--keep-unit', '--console=pipe',
    ...bindArgs(opts.binds ?? []),
    // --network-veth-extra implies --private-network; the names are ours, so no two hosts' links can collide.
    ...(net ? [`--network-veth-extra=${net.link}:${CONTAINER_LINK}`] : [])];
  // PDEATHSIG: if the test process dies without cleaning up, nspawn still gets SIGTERM and powers off.
  const prefix = ['sh', '-c', CGROUP_WRAPPER, 'sh', ...cgroups, 'setpriv', '--pdeathsig', 'TERM'];
  if (!opts.stateDir) return [...prefix, ...nspawn, '-D', base, '--volatile=overlay'];
  const { upper, work, merged } = await stateDirs(opts.stateDir);
  return [...prefix, 'unshare', '-m', '--propagation', 'private',
    'sh', '-c', OVERLAY_WRAPPER, 'sh', base, upper, work, merged, ...nspawn, '-D', merged];
}

function bindArgs(binds: Bind[]): string[] {
  return binds.map((b) => {
    for (const p of [b.host, b.container]) {
      if (!path.isAbsolute(p) || p.includes(':')) throw new Error(`bind paths must be absolute and free of ':' (${p})`);
    }
    return `${b.readOnly ? '--bind-ro' : '--bind'}=${b.host}:${b.container}`;
  });
}

async function stateDirs(stateDir: string): Promise<{ upper: string; work: string; merged: string }> {
  const dir = path.resolve(stateDir);
  if (/[,:]/.test(dir)) throw new Error(`stateDir must be free of ',' and ':' (${dir})`);
  const dirs = { upper: path.join(dir, 'upper'), work: path.join(dir, 'work'), merged: path.join(dir, 'merged') };
  for (const d of Object.values(dirs)) await fs.mkdir(d, { recursive: true });
  return dirs;
}

// ---- private networks -------------------------------------------------------------------------

interface PrivateNet {
  /** The host-side veth. */
  link: string;
  /** This machine's address on the link, and the container's (a /30 of 10.213.0.0/16 each). */
  local: string;
  address: string;
}

let netCounter = 0;

/** A link name and a /30 no interface of this machine uses yet: derived from the pid, so test processes differ. */
function allocateNetwork(): PrivateNet {
  const used = new Set(readdirSync('/sys/class/net'));
  const addrs = spawnSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' }).stdout;
  for (let tries = 0; tries < 16; tries++) {
    const n = netCounter++;
    const block = ((process.pid % 1024) * 16 + (n % 16)) * 4;
    const prefix = `${PRIVATE_NET_PREFIX}${block >> 8}.`;
    const local = `${prefix}${(block & 255) + 1}`;
    const net = { link: `cth${process.pid}n${n}`, local, address: `${prefix}${(block & 255) + 2}` };
    if (!used.has(net.link) && !addrs.includes(` ${local}/`)) return net;
  }
  throw new Error('no free private network for a test host (16 tries)');
}

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr.trim()}`);
}

/** Removes a host-side veth if it is still there (the kernel removes it with the container's namespace). */
function removeLink(link: string): void {
  if (existsSync(path.join('/sys/class/net', link))) spawnSync('ip', ['link', 'delete', link]);
}

// ---- the running host -----------------------------------------------------------------------

class Host implements TestHost {
  pid = 0;
  private out = '';
  private exited: Promise<number>;
  private hasExited = false;
  private stopping: Promise<void> | undefined;

  constructor(readonly name: string, private child: ChildProcess, private cgroups: string[], verbose: boolean,
    private net?: PrivateNet) {
    const collect = (chunk: Buffer) => {
      this.out = (this.out + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
      if (verbose) process.stderr.write(chunk);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    this.exited = exitCode(child).finally(() => { this.hasExited = true; });
  }

  get root(): string { return `/proc/${this.pid}/root`; }
  get address(): string | undefined { return this.net?.address; }
  get nspawnPid(): number { return this.child.pid ?? 0; }
  output(): string { return this.out; }

  /** Finds the container's PID 1, then waits for systemd to finish booting. */
  async attach(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.pid) {
      this.pid = findContainerInit(this.nspawnPid);
      if (!this.pid) await this.pause(deadline, 'find the container PID 1', 20);
    }
    while (!runsSystemd(this.pid)) await this.pause(deadline, 'exec systemd', 20);
    await this.waitSystemRunning(deadline - Date.now());
  }

  /** Addresses both ends of the veth and brings them (and the container's loopback) up. */
  async configureNetwork(net: PrivateNet): Promise<void> {
    ip(['addr', 'add', `${net.local}/30`, 'dev', net.link]);
    ip(['link', 'set', net.link, 'up']);
    const script = 'ip link set lo up && ip addr add "$1/30" dev "$2" && ip link set "$2" up';
    const r = await this.exec(['sh', '-c', script, 'sh', net.address, CONTAINER_LINK], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`${this.name}: configuring its network failed: ${r.stderr.trim()}`);
  }

  private async pause(deadline: number, what: string, ms: number): Promise<void> {
    if (this.hasExited) throw this.failure(`systemd-nspawn exited before the container could ${what}`);
    if (Date.now() > deadline) throw this.failure(`timed out waiting for the container to ${what}`);
    await sleep(ms);
  }

  /** What systemd inside was busy with (its console goes to /dev/null under --console=pipe, so ask). */
  async diagnose(): Promise<string> {
    if (!this.pid || this.hasExited || !runsSystemd(this.pid)) return '';
    const jobs = await this.exec(['systemctl', 'list-jobs', '--no-pager'], { timeoutMs: 5_000 });
    const journal = await this.exec(['journalctl', '-b', '--no-pager', '-n', '30'], { timeoutMs: 5_000 });
    return `\n--- systemctl list-jobs ---\n${jobs.stdout}${jobs.stderr}\n--- journalctl -b (last lines) ---\n${journal.stdout}${journal.stderr}`;
  }

  private failure(message: string): Error {
    return new Error(`${this.name}: ${message}.\n--- systemd-nspawn output (last lines) ---\n${lastLines(this.out, 40)}`);
  }

  async waitSystemRunning(timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.hasExited) throw this.failure('systemd-nspawn exited while systemd was booting');
      const state = (await this.exec(['systemctl', 'is-system-running'], { timeoutMs: 10_000 })).stdout.trim();
      if (state === 'running') return state;
      if (state === 'degraded') {
        const failed = await this.exec(['systemctl', '--failed', '--no-legend', '--plain']);
        log(`${this.name} is degraded; failed units:\n${failed.stdout}`);
        return state;
      }
      await this.pause(deadline, `reach running (last state: ${state || 'no answer'})`, 50);
    }
  }

  async waitUnit(unit: string, state = 'active', timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = (await this.exec(['systemctl', 'is-active', unit])).stdout.trim();
      if (now === state) return;
      await this.pause(deadline, `see ${unit} ${state} (it is ${now})`, 50);
    }
  }

  async journal(unit: string, lines = 50): Promise<string> {
    const r = await this.exec(['journalctl', '--no-pager', '-o', 'short-precise', '-n', String(lines), '-u', unit]);
    return r.stdout;
  }

  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    if (!this.pid || this.hasExited) return Promise.reject(new Error(`${this.name} is not running`));
    return runInside(this.pid, argv, opts);
  }

  sh(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(['/bin/sh', '-c', script], opts);
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown(false);
    return this.stopping;
  }

  cutPower(): Promise<void> {
    this.stopping ??= this.shutdown(true);
    return this.stopping;
  }

  private async shutdown(hard: boolean): Promise<void> {
    if (!this.hasExited) {
      if (hard) this.pid ||= findContainerInit(this.nspawnPid);
      if (hard && this.pid) killQuietly(this.pid, 'SIGKILL'); // PID 1 of a namespace: the kernel kills all of it
      killQuietly(this.nspawnPid, 'SIGTERM');
      const timer = setTimeout(() => this.forceKill(), hard ? 5_000 : 20_000);
      await this.exited;
      clearTimeout(timer);
    }
    await removeLeftovers(this.name, this.cgroups);
    if (this.net) removeLink(this.net.link);
    running.delete(this.name);
  }

  private forceKill(): void {
    log(`${this.name} did not power off in time; killing it`);
    if (this.pid) killQuietly(this.pid, 'SIGKILL');
    killQuietly(this.nspawnPid, 'SIGKILL');
  }

  /** For the process 'exit' handler: the same teardown, synchronously. */
  stopSync(): void {
    if (!this.hasExited) {
      killQuietly(this.nspawnPid, 'SIGTERM');
      if (!waitGoneSync(this.pid, 10_000) && this.pid) killQuietly(this.pid, 'SIGKILL');
      waitGoneSync(this.pid, 5_000);
    }
    removeLeftoversSync(this.name, this.cgroups);
    if (this.net) removeLink(this.net.link);
  }
}

function lastLines(text: string, n: number): string {
  return text.split('\n').slice(-n).join('\n');
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try { if (pid > 0) process.kill(pid, signal); } catch { /* already gone */ }
}

/** The container's PID 1: a child of nspawn that is PID 1 in its own PID namespace. */
function findContainerInit(nspawnPid: number): number {
  let children: string[];
  try {
    children = readFileSync(`/proc/${nspawnPid}/task/${nspawnPid}/children`, 'utf8').trim().split(/\s+/);
  } catch { return 0; }
  for (const child of children.filter(Boolean)) {
    try {
      const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${child}/status`, 'utf8'))?.[1]?.trim().split(/\s+/);
      if (nspid && nspid.length > 1 && nspid[nspid.length - 1] === '1') return Number(child);
    } catch { /* gone meanwhile */ }
  }
  return 0;
}

/** True once the process has exec'd systemd (before that it is nspawn's inner child). */
function runsSystemd(pid: number): boolean {
  try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd'; } catch { return false; }
}

// ---- running commands inside -----------------------------------------------------------------

function insideArgv(pid: number, argv: string[], opts: ExecOptions): string[] {
  const env = Object.entries({ ...CONTAINER_ENV, ...opts.env }).map(([k, v]) => `${k}=${v}`);
  const cwd = opts.cwd ? ['-C', opts.cwd] : [];
  const timeout = opts.timeoutMs ? ['timeout', '-k', '2', `${opts.timeoutMs / 1000}s`] : [];
  return ['nsenter', '-t', String(pid), '-a', '--', 'env', '-i', ...cwd, ...env, ...timeout, ...argv];
}

function runInside(pid: number, argv: string[], opts: ExecOptions): Promise<ExecResult> {
  const full = insideArgv(pid, argv, opts);
  const child = spawn(full[0]!, full.slice(1), { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  if (opts.input !== undefined) child.stdin!.end(opts.input);
  // Backstop: `timeout` inside should end it; if not, kill nsenter from here.
  const backstop = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs + 5_000) : undefined;
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(backstop);
      resolve({ code: code ?? 128 + (signal ? osConstants.signals[signal] : 0), stdout, stderr });
    });
  });
}

// ---- teardown and leftovers -------------------------------------------------------------------

/** Every cgroup dir under dir, deepest first. */
function cgroupTree(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch { return []; }
  return [...entries.flatMap((e) => cgroupTree(path.join(dir, e))), dir];
}

function cgroupProcs(dirs: string[]): number[] {
  return dirs.flatMap((d) => {
    try { return readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number); } catch { return []; }
  });
}

/** Kills what is left in the cgroups, removes them depth-first, and removes the propagate dir. */
function removeLeftoversSync(name: string, cgroups: string[]): boolean {
  const dirs = cgroups.flatMap(cgroupTree);
  for (const pid of cgroupProcs(dirs)) killQuietly(pid, 'SIGKILL');
  let clean = true;
  for (const dir of dirs) {
    try { rmdirSync(dir); } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ENOENT') clean = false; }
  }
  rmSync(path.join(PROPAGATE_DIR, name), { recursive: true, force: true });
  return clean;
}

async function removeLeftovers(name: string, cgroups: string[]): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    if (removeLeftoversSync(name, cgroups)) return;
    await sleep(100);
  }
  throw new Error(`${name}: could not remove its cgroup dirs (${cgroups.join(', ')}): processes remain`);
}

function isGone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').startsWith('Z');
  } catch { return true; }
}

function waitGoneSync(pid: number, timeoutMs: number): boolean {
  const deadline = Date.now() + timeoutMs;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  while (!isGone(pid)) {
    if (Date.now() > deadline) return false;
    Atomics.wait(cell, 0, 0, 50);
  }
  return true;
}

/** Removes cgroup and propagate dirs left by test hosts of processes that died without cleaning up. */
function sweepStale(): void {
  const names = new Set<string>();
  for (const dir of [...CGROUP_ROOTS, PROPAGATE_DIR]) {
    try { readdirSync(dir).forEach((n) => names.add(n)); } catch { /* no such dir */ }
  }
  for (const name of names) {
    const owner = new RegExp(`^${NAME_PREFIX}(\\d+)-\\d+$`).exec(name)?.[1];
    if (!owner || !isGone(Number(owner)) || running.has(name)) continue;
    if (!isCgroupOrAbsent(name)) continue;
    log(`removing leftovers of ${name} (its test process ${owner} is gone)`);
    removeLeftoversSync(name, CGROUP_ROOTS.map((root) => path.join(root, name)));
  }
  for (const link of readdirSync('/sys/class/net')) {
    const owner = LINK_PATTERN.exec(link)?.[1];
    if (owner && Number(owner) !== process.pid && isGone(Number(owner))) {
      log(`removing the veth ${link} (its test process ${owner} is gone)`);
      removeLink(link);
    }
  }
}

function isCgroupOrAbsent(name: string): boolean {
  return CGROUP_ROOTS.every((root) => {
    try { return statSync(path.join(root, name)).isDirectory(); } catch { return true; }
  });
}

// ---- crash safety ----------------------------------------------------------------------------

let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const host of running.values()) host.stopSync();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = async () => {
      await stopAll();
      // If nobody else handles this signal, die of it as the default would.
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

/** Stops every test host this process started. */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([...running.values()].map((h) => h.stop()));
}
