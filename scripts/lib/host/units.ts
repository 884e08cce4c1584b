// Renders the app's systemd service and socket units and its cron.d entry from templates/, and the transient-unit settings for preflight.
//
// All pure: manifest in, file text out. Values are escaped for their place by escape.ts, or refused
// with a UsageError naming the manifest field. The sandbox is one list (sandboxDirectives) that
// renders into the service template and into systemd-run properties, so the two cannot drift.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  assertEnvName,
  assertSafePath,
  assertSafeText,
  cronSchedule,
  cronWord,
  environmentWord,
  escapeSpecifiers,
  execArgument,
  isWithin,
  runArgument,
} from '../manifest/escape.ts';
import { UsageError } from '../run/errors.ts';
import { startScript } from './start-command.ts';
import { renderTemplate } from './template.ts';
import type { Manifest } from '../manifest/types.ts';
import { appPaths, BOOT_SLOT } from '../manifest/paths.ts';
import { kitPaths } from '../run/kit.ts';

export interface RenderOptions {
  /** Where the kit lives on the host (for the preload and the prune script); kitPaths.dir by default. */
  kitDir?: string;
  /** Absolute path of node for the cron line; process.execPath by default. */
  node?: string;
  /** Absolute path of the `cutover` executable for the cron line; <kitDir>/bin/cutover by default. */
  cutover?: string;
  /** Where unit files go (tests); see PathOptions. */
  unitDir?: string;
  /** Where the cron entry goes (tests); see PathOptions. */
  cronDir?: string;
}

export interface RenderedFile {
  path: string;
  content: string;
  mode: number;
}

/** One unit-file directive, with the comment an operator reads above it. */
export interface Directive {
  key: string;
  value: string;
  comment?: string;
}

/** The socket's listen queue: room for every connection that arrives during a restart. */
export const SOCKET_BACKLOG = 4096;

/** The preload that lets a Node app's own listen(PORT) adopt the socket unit's fd 3. */
export function preloadFile(kitDir: string = kitPaths.dir): string {
  return path.join(kitDir, 'scripts', 'preload', 'listen-fd.cjs');
}

function template(name: string): string {
  return readFileSync(path.join(kitPaths.templates, name), 'utf8');
}

// ---- what escaping needs of the values that reach units ----
// The rules for the manifest's fields (the app's name, the user, the port's range, stop_timeout, root)
// are the schema's and manifest.ts's, checked when the manifest is read; here only what the escaping
// itself relies on: one line without control characters, paths of plain characters.

function checkApp(m: Manifest): string {
  return assertSafeText(m.app, 'app');
}

function checkUser(m: Manifest): string {
  return assertSafeText(m.user, 'user');
}

/** The preflight's spare port comes from the kernel, not the manifest: a plain sanity check. */
function checkPort(port: number, field: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`${field} must be a whole number from 1 to 65535, not ${JSON.stringify(port)}.`);
  }
  return port;
}

/** Paths the sandbox replaces with empty or private directories. */
const HOME_DIRS = ['/home', '/root', '/run/user'];
const TMP_DIRS = ['/tmp', '/var/tmp'];

function checkRoot(m: Manifest): string {
  return assertSafePath(m.root, 'root');
}

interface Layout {
  root: string;
  shared: string;
  sharedTargets: string[];
  envFile?: string;
  active: string;
}

function layout(m: Manifest): Layout {
  const root = checkRoot(m);
  const p = appPaths(m);
  const shared = assertSafePath(p.shared, 'root');
  const sharedTargets = (m.shared ?? []).map((rel, i) => {
    const field = `shared[${i}]`;
    assertSafeText(rel, field);
    const target = assertSafePath(p.sharedTarget(rel), field);
    if (path.posix.isAbsolute(rel) || !isWithin(target, shared) || target === shared) {
      throw new UsageError(`${field} ${JSON.stringify(rel)} must be a path inside the release, like uploads/ or .env.`);
    }
    return target;
  });
  let envFile: string | undefined;
  if (m.env_file !== undefined) {
    assertSafeText(m.env_file, 'env_file');
    envFile = assertSafePath(p.envFile!, 'env_file');
    if (path.posix.isAbsolute(m.env_file) || !isWithin(envFile, shared) || envFile === shared) {
      throw new UsageError(`env_file ${JSON.stringify(m.env_file)} must name a file inside shared/, like .env.`);
    }
  }
  return { root, shared, sharedTargets, envFile, active: assertSafePath(p.active, 'root') };
}

function kitDirOf(opts: { kitDir?: string } | undefined): string {
  return assertSafePath(opts?.kitDir ?? kitPaths.dir, 'the kit directory');
}

// ---- environment and command ----

/**
 * The service's environment, in order: the manifest's env, NODE_OPTIONS with the preload first when
 * socket is "preload", then PORT. Returned as [name, value] pairs, unescaped.
 */
export function serviceEnvironment(m: Manifest, opts?: { kitDir?: string }): [string, string][] {
  const port = m.port;
  const env = Object.entries(m.env ?? {}).map(([name, value]): [string, string] => {
    assertEnvName(name, `env.${name}`);
    return [name, assertSafeText(String(value), `env.${name}`)];
  });
  const out = env.filter(([name]) => name !== 'PORT' && !(m.socket === 'preload' && name === 'NODE_OPTIONS'));
  const ownPort = env.find(([name]) => name === 'PORT');
  if (ownPort && ownPort[1] !== String(port)) {
    throw new UsageError(
      `env.PORT is ${JSON.stringify(ownPort[1])} but port is ${port}.`,
      'Set the port once, with `port:`; cutover passes it to the app as PORT.',
    );
  }
  if (m.socket === 'preload') {
    if (m.runtime !== 'node') {
      throw new UsageError(
        'socket: preload is for Node apps.',
        'gunicorn takes the socket natively: use `socket: true`.',
      );
    }
    const theirs = env.find(([name]) => name === 'NODE_OPTIONS')?.[1];
    const preload = `--require ${preloadFile(kitDirOf(opts))}`;
    out.push(['NODE_OPTIONS', theirs ? `${preload} ${theirs}` : preload]);
  }
  out.push(['PORT', String(port)]);
  return out;
}

function stopTimeout(m: Manifest): string {
  return `${m.stop_timeout}s`;
}

// ---- the sandbox, shared by the service and the preflight unit ----

/**
 * The sandboxing settings of the app's service, in unit-file order. The preflight's transient unit gets
 * the same list through preflightProperties. Values are unescaped (and need no escaping: paths are
 * checked by assertSafePath).
 */
export function sandboxDirectives(m: Manifest, opts?: { kitDir?: string; releaseDir?: string }): Directive[] {
  const l = layout(m);
  // The manifest's writable dirs, in the release the unit starts (the service: `active`, which systemd resolves at each start).
  const release = opts?.releaseDir ?? l.active;
  const writableDirs = (m.writable ?? []).map((rel, i) => {
    const field = `writable[${i}]`;
    assertSafeText(rel, field);
    const target = assertSafePath(path.posix.join(release, rel.replace(/\/+$/, '')), field);
    if (path.posix.isAbsolute(rel) || !isWithin(target, release) || target === release) {
      throw new UsageError(`${field} ${JSON.stringify(rel)} must be a directory inside the release, like .next/cache/images.`);
    }
    return target;
  });
  const kitDir = kitDirOf(opts);
  const under = (p: string, dirs: string[]) => dirs.some((d) => isWithin(p, d));
  const rootHidden = under(l.root, [...HOME_DIRS, ...TMP_DIRS]);
  const preload = m.socket === 'preload' ? preloadFile(kitDir) : undefined;
  const preloadHidden = preload !== undefined && under(preload, [...HOME_DIRS, ...TMP_DIRS]);
  const homeHidden = under(l.root, HOME_DIRS) || (preload !== undefined && under(preload, HOME_DIRS));
  const node = m.runtime === 'node';
  const d = (key: string, value: string, comment?: string): Directive => ({ key, value, comment });
  const writable = l.sharedTargets.map((t, i) =>
    d(
      rootHidden ? 'BindPaths' : 'ReadWritePaths',
      `-${t}`,
      i === 0
        ? rootHidden
          ? 'The shared paths, mounted writable over the read-only app root ("-": skipped if missing).'
          : `The only paths the app can write: its shared paths${writableDirs.length > 0 ? " and the release's writable dirs below" : ''} ("-": skipped if missing).`
        : undefined,
    ),
  );
  const inRelease = writableDirs.map((t, i) =>
    d(
      rootHidden ? 'BindPaths' : 'ReadWritePaths',
      `-${t}`,
      i === 0 ? "The manifest's writable dirs of the release it runs (owned by the app's user, one set per release; \"-\": skipped if missing)." : undefined,
    ),
  );
  return [
    d('ProtectSystem', 'strict', 'The whole file system is read-only for the app, its releases and the kit included.'),
    ...writable,
    ...inRelease,
    ...(rootHidden
      ? [
          d(
            'BindReadOnlyPaths',
            l.root,
            `The app root lies under ${under(l.root, HOME_DIRS) ? 'a home directory' : 'a temporary directory'}, which the settings below hide; mount it back, read-only.`,
          ),
        ]
      : []),
    ...(preloadHidden ? [d('BindReadOnlyPaths', preload!, 'The socket preload lies in a hidden directory; mount just that file back, read-only.')] : []),
    d(
      'ProtectHome',
      homeHidden ? 'tmpfs' : 'yes',
      homeHidden
        ? '/home, /root and /run/user are empty for the app, except the paths mounted back above.'
        : '/home, /root and /run/user are invisible to the app.',
    ),
    d('PrivateTmp', 'yes', 'A private /tmp and /var/tmp, emptied when the service stops.'),
    d('PrivateDevices', 'yes', 'Only pseudo devices (/dev/null, /dev/urandom…), no hardware.'),
    d('DevicePolicy', 'closed'),
    d('PrivateUsers', 'yes', 'A user namespace of its own, mapping only root and the app user: the app holds no capability on the host.'),
    d('PrivateMounts', 'yes', 'Its own mount namespace: mounts made inside do not leak to the host.'),
    d('PrivateIPC', 'yes', 'Its own System V IPC and POSIX message queues; removed with the service.'),
    d('RemoveIPC', 'yes'),
    d('NoNewPrivileges', 'yes', 'setuid binaries, file capabilities and the like cannot raise privileges.'),
    d('CapabilityBoundingSet', '', 'No capabilities at all, none passed to the app either.'),
    d('AmbientCapabilities', ''),
    d('RestrictSUIDSGID', 'yes'),
    d('ProtectKernelTunables', 'yes', 'The kernel: /proc/sys and /sys read-only, no modules, no kernel log, no clock, no hostname.'),
    d('ProtectKernelModules', 'yes'),
    d('ProtectKernelLogs', 'yes'),
    d('ProtectControlGroups', 'yes'),
    d('ProtectClock', 'yes'),
    d('ProtectHostname', 'yes'),
    d('ProtectProc', 'invisible', "Other users' processes are invisible in /proc."),
    // ProcSubset=pid is left out on purpose: it hides /proc/stat and /proc/cpuinfo, and then Node's
    // os.cpus() returns [] (apps that size a worker pool by it would start none), for ~0.02 of exposure.
    d(
      'RestrictAddressFamilies',
      'AF_INET AF_INET6 AF_UNIX AF_NETLINK',
      'Network: IPv4, IPv6 and Unix sockets only, plus netlink, which getifaddrs() needs (Node\'s os.networkInterfaces(), which Next.js and nodemailer call, fails without it). No IP allow list (IPAddressDeny=): apps legitimately call databases and APIs anywhere.',
    ),
    d('RestrictNamespaces', 'yes', 'No new namespaces, no realtime scheduling, one execution domain.'),
    d('RestrictRealtime', 'yes'),
    d('LockPersonality', 'yes'),
    node
      ? d('MemoryDenyWriteExecute', 'no', "Off for Node: V8's JIT compiler needs memory that is writable and then executable.")
      : d('MemoryDenyWriteExecute', 'yes', 'No writable-and-executable memory (CPython does not need it).'),
    d(
      'SystemCallArchitectures',
      'native',
      "System calls: the native architecture's only, those a normal service needs (@system-service) minus the privileged ones and those that change resource limits or scheduling; a refused call fails with EPERM instead of killing the app.",
    ),
    d('SystemCallFilter', '@system-service'),
    d('SystemCallFilter', '~@privileged @resources'),
    ...(node
      ? []
      : [
          d(
            'SystemCallFilter',
            'setuid setgid',
            "gunicorn's workers call setuid() with the uid they already have; allowed back, as without capabilities these calls cannot change to another user.",
          ),
        ]),
    d('SystemCallErrorNumber', 'EPERM'),
    d('UMask', '0027', 'Files the app creates are not readable by other users.'),
  ];
}

/** A comment wrapped into `# ` lines of at most about 100 characters. */
function commentLines(text: string): string[] {
  const lines: string[] = [];
  let line = '#';
  for (const word of text.split(' ')) {
    if (line.length > 1 && line.length + 1 + word.length > 100) {
      lines.push(line);
      line = '#';
    }
    line += ` ${word}`;
  }
  return [...lines, line];
}

/** Directive lines for a unit file, each preceded by its comment. */
function directiveLines(directives: Directive[]): string[] {
  return directives.flatMap(({ key, value, comment }) => [
    ...(comment ? commentLines(comment) : []),
    `${key}=${escapeSpecifiers(value)}`,
  ]);
}

// ---- the files ----

/** The service template (/etc/systemd/system/<app>@.service), whose instances are the two slots. */
export function renderService(m: Manifest, opts?: { kitDir?: string }): string {
  const app = checkApp(m);
  const user = checkUser(m);
  const l = layout(m);
  const p = appPaths(m);
  return renderTemplate(template('service.unit'), {
    unit_name: p.unitTemplateName,
    app,
    handover_note: m.socket === false ? ' once the old one has stopped (no socket: the app binds its port itself)' : ' while the old one still serves on the same socket',
    socket: m.socket !== false,
    socket_unit: p.socketUnitName,
    user,
    working_directory: escapeSpecifiers(l.active),
    environment: serviceEnvironment(m, opts).map(([name, value]) => environmentWord(name, value, `env.${name}`)),
    env_file: l.envFile ? escapeSpecifiers(l.envFile) : undefined,
    port_assignment: execArgument(`PORT=${m.port}`, 'port'),
    start: execArgument(startScript(m), 'start'),
    stop_timeout: stopTimeout(m),
    sandbox: directiveLines(sandboxDirectives(m, opts)),
  });
}

/**
 * The socket unit (/etc/systemd/system/<app>.socket), or null when the app binds its port itself.
 * `startUnit` is the unit a connection starts when none runs: the boot slot, except while provision
 * moves an app off an older cutover's single <app>.service and that move failed.
 */
export function renderSocket(m: Manifest, startUnit?: string): string | null {
  if (m.socket === false) return null;
  const p = appPaths(m);
  checkApp(m);
  return renderTemplate(template('socket.unit'), {
    socket_unit: p.socketUnitName,
    unit_name: p.unitTemplateName,
    boot_unit: startUnit ?? p.slotUnit(BOOT_SLOT),
    app: m.app,
    socket_mode: String(m.socket),
    listen: `127.0.0.1:${m.port}`,
    backlog: String(SOCKET_BACKLOG),
  });
}

/** The cron.d entry (/etc/cron.d/cutover-<app>) that runs prune on the manifest's schedule, as root. */
export function renderCron(m: Manifest, opts?: { node?: string; cutover?: string; kitDir?: string }): string {
  const app = checkApp(m);
  const kitDir = kitDirOf(opts);
  const node = assertSafePath(opts?.node ?? process.execPath, 'the node path');
  const cutover = assertSafePath(opts?.cutover ?? path.join(kitDir, 'bin', 'cutover'), 'the cutover executable path');
  const manifest = assertSafeText(m.file, 'the manifest path');
  if (!path.posix.isAbsolute(manifest)) throw new UsageError(`The manifest path ${JSON.stringify(manifest)} must be absolute.`);
  return renderTemplate(template('cron.d'), {
    cron_name: path.basename(appPaths(m).cronFile),
    app,
    schedule: cronSchedule(m.prune?.schedule, 'prune.schedule'),
    node: cronWord(node, 'the node path'),
    cutover: cronWord(cutover, 'the cutover executable path'),
    manifest: cronWord(manifest, 'the manifest path'),
  });
}

/** Every file provision writes for the app, with its absolute path and mode. */
export function renderUnits(m: Manifest, opts: RenderOptions = {}): RenderedFile[] {
  const p = appPaths(m, { unitDir: opts.unitDir, cronDir: opts.cronDir });
  const socket = renderSocket(m);
  return [
    { path: p.unitFile, content: renderService(m, opts), mode: 0o644 },
    ...(socket === null ? [] : [{ path: p.socketUnitFile, content: socket, mode: 0o644 }]),
    { path: p.cronFile, content: renderCron(m, opts), mode: 0o644 },
  ];
}

// ---- preflight: the same service as a transient unit ----

/**
 * The systemd-run options (each one argv word) that give a preflight's transient unit the same user,
 * environment, environment file, stop behaviour and sandbox as the real service, but with the given
 * release directory as working directory and PORT set to the given spare port. Pair with preflightCommand:
 *   systemd-run --unit=<name> ...preflightProperties(m, port, dir) -- ...preflightCommand(m, port)
 */
export function preflightProperties(m: Manifest, port: number, releaseDir: string, opts?: { kitDir?: string }): string[] {
  checkApp(m);
  const user = checkUser(m);
  const l = layout(m);
  const dir = assertSafePath(releaseDir, 'the release directory');
  checkPort(port, 'the preflight port');
  const env = serviceEnvironment(m, opts).map(([name, value]) => [name, name === 'PORT' ? String(port) : value]);
  return [
    `--property=Type=exec`,
    `--property=User=${user}`,
    `--property=Group=${user}`,
    `--property=WorkingDirectory=${dir}`,
    // --setenv takes NAME=VALUE literally (no quotes, no escapes, no specifiers), unlike -p Environment=.
    ...env.map(([name, value]) => `--setenv=${name}=${value}`),
    ...(l.envFile ? [`--property=EnvironmentFile=-${l.envFile}`] : []),
    `--property=KillSignal=SIGTERM`,
    `--property=TimeoutStopSec=${stopTimeout(m)}`,
    ...sandboxDirectives(m, { ...opts, releaseDir: dir }).map(({ key, value }) => `--property=${key}=${value}`),
  ];
}

/**
 * The preflight's command, for after `--` on systemd-run's command line: the service's ExecStart with the
 * spare port. `env PORT=` forces the port even when the environment file sets PORT (EnvironmentFile=
 * overrides Environment= and --setenv). `$` is doubled because the service manager expands variables in it.
 */
export function preflightCommand(m: Manifest, port: number): string[] {
  checkPort(port, 'the preflight port');
  return ['/usr/bin/env', `PORT=${port}`, '/bin/sh', '-c', runArgument(startScript(m), 'start')];
}

/** The service's ExecStart argv as systemd runs it (after unquoting and expansion), for tests and status. */
export function serviceArgv(m: Manifest, port: number = m.port): string[] {
  return ['/usr/bin/env', `PORT=${checkPort(port, 'port')}`, '/bin/sh', '-c', startScript(m)];
}
