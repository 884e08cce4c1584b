// The app's service world, the same for the slots and every transient unit: its checked layout, its environment, its sandbox.
//
// All pure: manifest in, settings out. Values are checked for their place by escape.ts, or refused with a
// UsageError naming the manifest field. The sandbox is one list (sandboxDirectives) that renders into the
// service template and into systemd-run properties, so the two cannot drift.
import path from 'node:path';
import { assertEnvName, assertSafePath, assertSafeText, isWithin } from '../manifest/escape.ts';
import { UsageError } from '../run/errors.ts';
import type { Manifest } from '../manifest/types.ts';
import { appPaths } from '../manifest/paths.ts';
import { kitPaths } from '../run/kit.ts';

/** One unit-file directive, with the comment an operator reads above it. */
export interface Directive {
  key: string;
  value: string;
  comment?: string;
}

/** The preload that lets a Node app's own listen(PORT) adopt the socket unit's fd 3. */
export function preloadFile(kitDir: string = kitPaths.dir): string {
  return path.join(kitDir, 'scripts', 'preload', 'listen-fd.cjs');
}

// ---- what escaping needs of the values that reach units ----
// The rules for the manifest's fields (the app's name, the user, the port's range, stop_timeout, root)
// are the schema's and manifest.ts's, checked when the manifest is read; here only what the escaping
// itself relies on: one line without control characters, paths of plain characters.

export function checkApp(m: Manifest): string {
  return assertSafeText(m.app, 'app');
}

export function checkUser(m: Manifest): string {
  return assertSafeText(m.user, 'user');
}

/** The preflight's spare port comes from the kernel, not the manifest: a plain sanity check. */
export function checkPort(port: number, field: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`${field} must be a whole number from 1 to 65535, not ${JSON.stringify(port)}.`);
  }
  return port;
}

/** Paths the sandbox replaces with empty or private directories. */
const HOME_DIRS = ['/home', '/root', '/run/user'];
const TMP_DIRS = ['/tmp', '/var/tmp'];

export function checkRoot(m: Manifest): string {
  return assertSafePath(m.root, 'root');
}

export interface Layout {
  root: string;
  shared: string;
  sharedTargets: string[];
  envFile?: string;
  active: string;
}

export function layout(m: Manifest): Layout {
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

export function kitDirOf(opts: { kitDir?: string } | undefined): string {
  return assertSafePath(opts?.kitDir ?? kitPaths.dir, 'the kit directory');
}

// ---- environment and command ----

/**
 * The service's environment, in order: the manifest's env, NODE_OPTIONS with the preload first when
 * socket is "preload" (and, with an HTTP health path, the preload's warm-up path and time limit), then
 * PORT. Returned as [name, value] pairs, unescaped.
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
    // The preload's warm-up: no connection from the shared socket until the app has answered its health path privately.
    if ('path' in m.health) out.push(['CUTOVER_WARMUP_PATH', m.health.path], ['CUTOVER_WARMUP_TIMEOUT_MS', String(m.health.timeout * 1000)]);
  }
  out.push(['PORT', String(port)]);
  return out;
}

export function stopTimeout(m: Manifest): string {
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

