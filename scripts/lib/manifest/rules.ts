// What JSON Schema cannot say well: root and path safety, reserved names, cron ranges, the proxy's TLS choices; each rule names its field.
import { BUILT_ASSETS_FILE } from './paths.ts';
import { cronProblems } from './cron.ts';
import { looksLikeSsh, repoForm, sshRemote } from './repo-url.ts';
import path from 'node:path';
import { displayPath, show } from './messages.ts';
import type { Data, Locate, ManifestProblem, Segment } from './types.ts';

/** Directories that must never be an app's root themselves. */
const SYSTEM_DIRS = new Set([
  '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32', '/media', '/mnt',
  '/opt', '/proc', '/root', '/run', '/sbin', '/snap', '/srv', '/sys', '/tmp', '/usr', '/usr/local',
  '/usr/local/src', '/usr/src', '/var', '/var/lib', '/var/local', '/var/opt', '/var/tmp', '/var/www',
]);

/** Trees that belong to the system: no app root inside them. (/usr is handled apart: only /usr/local and /usr/src are open.) */
const SYSTEM_TREES = [
  '/bin', '/boot', '/dev', '/etc', '/lib', '/lib32', '/lib64', '/libx32', '/lost+found', '/proc', '/root',
  '/run', '/sbin', '/snap', '/sys', '/usr/local/bin', '/usr/local/etc', '/usr/local/include', '/usr/local/lib',
  '/usr/local/libexec', '/usr/local/sbin', '/usr/local/share', '/var/backups', '/var/cache', '/var/lock',
  '/var/log', '/var/mail', '/var/run', '/var/spool',
];

/** Accounts that are root or belong to the system or to other software: never the app's user. */
const RESERVED_USERS = new Set([
  'root', 'toor', 'daemon', 'bin', 'sys', 'sync', 'games', 'man', 'lp', 'mail', 'news', 'uucp', 'proxy',
  'www-data', 'backup', 'list', 'irc', 'gnats', 'nobody', '_apt', 'sshd', 'messagebus', 'syslog', 'polkitd',
  'tss', 'uuidd', 'tcpdump', 'dnsmasq', 'postfix', 'postgres', 'mysql', 'redis', 'nginx', 'Debian-exim',
]);

/** Unit names of the system's own services: an app named like one would replace it. */
const RESERVED_UNITS = new Set([
  'ssh', 'sshd', 'cron', 'crond', 'anacron', 'atd', 'dbus', 'getty', 'rsyslog', 'syslog', 'networking',
  'network', 'udev', 'polkit', 'apparmor', 'ufw', 'nftables', 'iptables', 'nginx', 'apache2', 'httpd',
  'docker', 'containerd', 'postgresql', 'mysql', 'mariadb', 'redis', 'redis-server', 'snapd', 'chrony',
  'ntp', 'ntpsec', 'exim4', 'postfix', 'emergency', 'rescue', 'default', 'multi-user', 'graphical', 'basic',
  'sysinit', 'shutdown', 'reboot', 'poweroff', 'halt', 'kexec', 'init', 'user', 'kmod', 'procps',
  'logrotate', 'man-db', 'e2scrub', 'fstrim', 'unattended-upgrades', 'cloud-init', 'multipathd',
]);
const RESERVED_UNIT_PREFIXES = ['systemd-', 'dbus-', 'getty-', 'serial-getty', 'user-', 'apt-', 'cutover-'];

/** Files cutover itself writes at the top of a release; a shared path must not replace them. */
const RELEASE_FILES = new Set(['REVISION', BUILT_ASSETS_FILE]);

export function semanticProblems(m: Data, locate: Locate, found: ManifestProblem[]): ManifestProblem[] {
  const clean = (field: string) => !found.some((p) => p.path === field || p.path.startsWith(field + '.') || p.path.startsWith(field + '['));
  const out: ManifestProblem[] = [];
  const add = (segments: Segment[], messages: string[]) =>
    out.push(...messages.map((message) => ({ line: locate(segments), path: displayPath(segments), message })));
  if (typeof m.app === 'string' && clean('app')) add(['app'], appProblems(m.app, m.user === undefined));
  if (typeof m.root === 'string' && clean('root')) add(['root'], rootProblems(m.root, typeof m.app === 'string' && clean('app') ? m.app : undefined));
  if (typeof m.user === 'string' && clean('user')) add(['user'], userProblems(m.user));
  if (typeof m.repo === 'string' && clean('repo')) add(['repo'], repoProblems(m.repo));
  const appRoot = typeof m.root === 'string' ? m.root : typeof m.app === 'string' ? `/usr/local/src/${m.app}` : undefined;
  if (typeof m.deploy_key === 'string' && clean('deploy_key')) {
    add(['deploy_key'], deployKeyProblems(m.deploy_key, typeof m.repo === 'string' ? m.repo : undefined, appRoot));
  }
  if (typeof m.known_hosts === 'string' && clean('known_hosts')) add(['known_hosts'], knownHostsProblems(m.known_hosts, m.deploy_key !== undefined, appRoot));
  if (typeof m.env_file === 'string' && clean('env_file')) add(['env_file'], relativePathProblems(m.env_file, false));
  if (Array.isArray(m.shared) && clean('shared')) {
    for (const [i, messages] of sharedProblems(m.shared as string[])) add(['shared', i], messages);
  }
  if (m.socket === 'preload' && m.runtime === 'python' && clean('socket') && clean('runtime')) {
    add(['socket'], ["'preload' works only for Node apps; gunicorn takes the socket natively, so use socket: true."]);
  }
  if (m.socket && typeof m.start === 'string' && clean('socket') && clean('start') && m.runtime !== 'python') {
    add(['start'], packageRunnerProblems(m.start, m.socket === 'preload' ? "'preload'" : 'true'));
  }
  // The strings of a list key the schema found no fault with (others are reported already).
  const strings = (key: string) => (Array.isArray(m[key]) && clean(key) ? (m[key] as unknown[]).filter((s): s is string => typeof s === 'string') : []);
  const shared = Array.isArray(m.shared) ? (m.shared as unknown[]).filter((s): s is string => typeof s === 'string') : [];
  for (const key of ['assets', 'cache', 'writable'] as const) {
    const extra = (dir: string) => (key === 'writable' ? writableProblems(dir, strings('assets'), strings('cache')) : []);
    strings(key).forEach((dir, i) => add([key, i], [...releaseDirProblems(dir, shared), ...extra(dir)]));
  }
  if (m.proxy && typeof m.proxy === 'object' && clean('proxy')) {
    for (const [segments, message] of proxyProblems(m.proxy as Data, m.port)) add(['proxy', ...segments], [message]);
  }
  const schedule = (m.prune as Data | undefined)?.schedule;
  if (typeof schedule === 'string' && clean('prune')) add(['prune', 'schedule'], cronProblems(schedule));
  return out;
}

/** Launchers that start the app as a child without passing it fd 3 (measured for npm and npx; yarn and pnpm spawn the same way). */
const PACKAGE_RUNNERS = new Set(['npm', 'npx', 'yarn', 'pnpm', 'corepack']);

/**
 * A start command through npm or npx with a socket: the socket (fd 3) never reaches the app, which then
 * binds the port the socket unit holds and fails with EADDRINUSE. Refused here, with the form that works.
 */
export function packageRunnerProblems(start: string, socket: string): string[] {
  const words = start.trim().split(/\s+/).filter((w) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(w));
  const runner = words[0] === 'exec' ? words[1] : words[0];
  if (!runner || !PACKAGE_RUNNERS.has(path.posix.basename(runner))) return [];
  const bin = runner === 'npx' && words[1] && /^[a-z0-9@][a-z0-9._/-]*$/.test(words[1]) ? words[1].replace(/^@[^/]+\//, '') : undefined;
  const example = bin === 'next'
    ? `\`node node_modules/next/dist/bin/next ${words.slice(2).join(' ')}\``.replace(/ `$/, '`')
    : bin
      ? `\`node node_modules/.bin/${bin}${words.length > 2 ? ' ' + words.slice(2).join(' ') : ''}\``
      : "`node <the file your package.json's start script runs>`";
  return [
    `runs the app through ${runner}, which does not pass the socket (fd 3) on to the process it starts, so with socket: ${socket} the app would bind the port itself and fail (EADDRINUSE); start it with node directly, e.g. ${example}.`,
  ];
}

/** What the schema cannot say about proxy: which TLS choices each server has, plain file paths, a port of its own. */
export function proxyProblems(proxy: Data, appPort: unknown): [Segment[], string][] {
  const out: [Segment[], string][] = [];
  const tls = proxy.tls;
  if (proxy.server === 'nginx' && tls === undefined) {
    out.push([[], "needs tls with nginx: { cert: /path/to/fullchain.pem, key: /path/to/privkey.pem }, or off for plain HTTP (automatic certificates are Caddy's: server: caddy)."]);
  }
  if (proxy.server === 'nginx' && (tls === 'auto' || tls === 'internal')) {
    out.push([['tls'], `${show(tls)} is Caddy's own certificate management; with nginx give { cert, key } files, or use server: caddy.`]);
  }
  if (tls && typeof tls === 'object') {
    for (const key of ['cert', 'key'] as const) {
      const file = (tls as Data)[key];
      if (typeof file !== 'string') continue;
      const plain = path.posix.normalize(file);
      if (plain !== file || file.endsWith('/') || file.split('/').includes('..')) out.push([['tls', key], `must be written plainly, as ${show(plain.replace(/(.)\/$/, '$1'))} (no '//', '.' or '..' parts, no trailing '/').`]);
    }
  }
  if (Array.isArray(proxy.server_name)) {
    const names = proxy.server_name as unknown[];
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined) out.push([['server_name'], `lists ${show(twice)} twice.`]);
  }
  const listen = proxy.listen ?? (tls === 'off' ? 80 : 443);
  if (listen === (appPort ?? 3000)) {
    out.push([['listen'], `is ${listen}, the app's own port; the proxy listens on another port and forwards to 127.0.0.1:${listen}.`]);
  }
  return out;
}

/** A directory inside the release (assets, cache): plain, relative, and not under a shared path (which leads out of the release). */
export function releaseDirProblems(dir: string, shared: string[]): string[] {
  const parts = dir.replace(/\/$/, '').split('/');
  if (parts.some((p) => p === '')) return ["must be written plainly, without '//'."];
  if (parts.some((p) => p.startsWith('-'))) return ["must not have a part starting with '-'."];
  const name = parts.join('/');
  if (RELEASE_FILES.has(parts[0])) return [`${show(name)} is a file cutover writes in every release.`];
  const inShared = shared.map((s) => s.replace(/\/$/, '')).find((s) => name === s || name.startsWith(s + '/') || s.startsWith(name + '/'));
  if (inShared) return [`overlaps the shared path ${show(inShared)}, which is linked out of the release; a release's own output cannot be there.`];
  return [];
}

/**
 * A writable dir (which the running app fills) must stay out of what cutover carries to other releases:
 * nothing in an asset dir (hard-linked into later releases), and no build cache in it or equal to it (a
 * cache is copied into the next build; a writable dir inside a cache dir is left out of that copy).
 */
export function writableProblems(dir: string, assets: string[], cache: string[]): string[] {
  const name = dir.replace(/\/+$/, '');
  const within = (a: string, b: string) => a === b || a.startsWith(b + '/');
  const asset = assets.map((a) => a.replace(/\/+$/, '')).find((a) => within(name, a) || within(a, name));
  if (asset) return [`overlaps the asset dir ${show(asset)}, whose files later releases share; what the running app writes must stay in its own release.`];
  const held = cache.map((c) => c.replace(/\/+$/, '')).find((c) => within(c, name));
  if (held) {
    return [`${held === name ? 'is' : 'holds'} the build cache ${show(held)}, which is copied into the next release's build; what the running app writes must not reach another build (name a directory inside the cache instead, e.g. ${show(held + '/images')}).`];
  }
  return [];
}

function appProblems(app: string, isUser: boolean): string[] {
  if (RESERVED_UNITS.has(app) || RESERVED_UNIT_PREFIXES.some((p) => app.startsWith(p))) {
    return [`${show(app)} is the name of a system service (${app}.service); give the app a name of its own.`];
  }
  if (isUser && RESERVED_USERS.has(app)) {
    return [`${show(app)} is a system account, and the app would run as it; choose another name or set 'user'.`];
  }
  return [];
}

export function rootProblems(root: string, app = '<app>'): string[] {
  const parts = root.split('/').slice(1);
  if (parts.includes('..')) return ["must not contain '..': write the directory it means."];
  const plain = path.posix.normalize(root).replace(/(.)\/$/, '$1');
  if (plain !== root) return [`must be written plainly, as ${show(plain)} (no '//', '.' parts or trailing '/').`];
  const suggestion = `give the app a directory of its own, such as /usr/local/src/${app}, /srv/${app} or /opt/${app}`;
  if (SYSTEM_DIRS.has(root)) return [`is the system directory ${root}; ${suggestion}.`];
  const tree = SYSTEM_TREES.find((t) => root.startsWith(t + '/'));
  if (tree) return [`is inside ${tree}, which belongs to the system; ${suggestion}.`];
  if (root.startsWith('/usr/') && !root.startsWith('/usr/local/') && !root.startsWith('/usr/src/')) {
    return [`is inside /usr, which belongs to the system's packages; ${suggestion}.`];
  }
  return [];
}

/** A repository on the host's own disk is named by an absolute path: a relative one would depend on the directory cutover runs from. */
export function repoProblems(repo: string): string[] {
  if (repoForm(repo) !== 'path' || repo.startsWith('/')) return [];
  return [`${show(repo)} is a relative path, which git would read from whatever directory cutover runs in; write it absolute (e.g. ${show(path.posix.join('/srv/git', repo))}) or as a URL.`];
}

export function userProblems(user: string): string[] {
  if (user === 'root' || user === 'toor') {
    return ["must not be root: the app runs as an unprivileged user of its own (by default, named after the app)."];
  }
  if (RESERVED_USERS.has(user) || user.startsWith('systemd-')) {
    return [`${show(user)} is a system account shared with other software; use an account of the app's own (by default, named after the app).`];
  }
  return [];
}

/** A file the kit reads as root (deploy_key, known_hosts): written plainly, and not under the app's root, which the app's user can enter. */
function rootFileProblems(file: string, appRoot: string | undefined): string[] {
  const plain = path.posix.normalize(file);
  if (plain !== file || file.endsWith('/')) return [`must be written plainly, as a file's path (no '//', '.' or '..' parts, no trailing '/').`];
  if (appRoot && (file === appRoot || file.startsWith(appRoot + '/'))) {
    return [`is inside the app's root ${appRoot}, where the app's user can reach; keep it in a directory of root's, such as /etc/cutover.`];
  }
  return [];
}

/** deploy_key: a plain path outside the app's root, with an ssh repo to use it for. */
export function deployKeyProblems(key: string, repo: string | undefined, appRoot: string | undefined): string[] {
  const own = rootFileProblems(key, appRoot);
  if (own.length > 0 || repo === undefined) return own;
  if (!sshRemote(repo)) {
    return [
      looksLikeSsh(repo)
        ? `is for an ssh repository, but the host in repo ${show(repo)} is not a plain host name or address; write repo as ssh://git@host[:port]/path or git@host:path.`
        : `is used only over ssh, but repo ${show(repo)} is not an ssh URL; write repo as ssh://git@host[:port]/owner/app.git or git@host:owner/app.git.`,
    ];
  }
  return [];
}

/** known_hosts: a plain path outside the app's root (leave it out for <root>/known_hosts), only with a deploy key. */
export function knownHostsProblems(file: string, hasKey: boolean, appRoot: string | undefined): string[] {
  if (!hasKey) return ["is used only with deploy_key (it pins the host key of the server the key is for); add deploy_key or remove known_hosts."];
  const own = rootFileProblems(file, appRoot);
  if (own.length > 0 && appRoot && file.startsWith(appRoot + '/')) return [`${own[0].replace(/\.$/, '')}; or leave known_hosts out: provision then keeps the pin in ${appRoot}/known_hosts, which only root can change.`];
  return own;
}

/** A path relative to shared/: no leading '/', no '..', '.' or empty parts, no part starting with '-'. */
export function relativePathProblems(rel: string, directoryAllowed: boolean): string[] {
  if (rel.startsWith('/')) return ["must be relative to shared/, not start with '/'."];
  if (rel.endsWith('/') && !directoryAllowed) return ["names a file, so it must not end with '/'."];
  const parts = rel.replace(/\/$/, '').split('/');
  if (parts.includes('..')) return ["must not contain a '..' part: it would point outside shared/."];
  if (parts.some((p) => p === '' || p === '.')) return ["must be written plainly, without '//' or '.' parts."];
  if (parts.some((p) => p.startsWith('-'))) return ["must not have a part starting with '-'."];
  return [];
}

function sharedProblems(shared: string[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  const seen: { name: string; index: number }[] = [];
  shared.forEach((rel, i) => {
    const own = relativePathProblems(rel, true);
    const name = rel.replace(/\/$/, '');
    if (own.length === 0 && RELEASE_FILES.has(name.split('/')[0])) own.push(`${show(name)} is a file cutover writes in every release; share another path.`);
    const clash = seen.find((s) => s.name === name || name.startsWith(s.name + '/') || s.name.startsWith(name + '/'));
    if (own.length === 0 && clash) {
      own.push(clash.name === name ? `lists ${show(name)} again (it is shared[${clash.index}]).` : `overlaps shared[${clash.index}] ${show(shared[clash.index])}; share one or the other.`);
    }
    if (own.length > 0) out.set(i, own);
    seen.push({ name, index: i });
  });
  return out;
}


