// The app manifest: read the YAML, validate it against config/manifest.schema.json, apply defaults.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ErrorObject } from 'ajv';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { UsageError } from '../run/errors.ts';
import { BUILT_ASSETS_FILE } from './paths.ts';
import { cronProblems } from './cron.ts';
import { looksLikeSsh, repoForm, sshRemote } from './repo-url.ts';
import { manifestValidator, type SchemaValidator } from './schema.ts';

export { cronProblems };

/** Where the service's port comes from: the app binds it, or a systemd socket unit owns it. */
export type SocketMode = false | true | 'preload';

/** HTTPS for the public entrance: Caddy's automatic certificates or its local CA, none, or files the operator provides. */
export type ProxyTls = 'auto' | 'internal' | 'off' | { cert: string; key: string };

/** The public entrance: a site for Caddy or nginx that forwards to the app's port (proxy-site.ts renders it). */
export interface ProxyConfig {
  server: 'caddy' | 'nginx';
  /** The host names the site answers to (the manifest's server_name: one name, or a list). */
  server_names: string[];
  tls: ProxyTls;
  /** The port the site listens on (443 with TLS, 80 without, by default). */
  listen: number;
}

export type HealthCheck =
  | { path: string; timeout: number; failures?: number }
  | { command: string; timeout: number; failures?: number };

/** The lifecycle's named points where the manifest's hooks run (scripts/lib/assemble/hooks.ts). */
export type HookPoint = 'after_build' | 'before_cutover' | 'after_cutover' | 'after_failure' | 'after_rollback';

/** One hook: a shell command, who runs it, and its time limit in seconds. */
export interface Hook {
  run: string;
  as: 'app' | 'root';
  timeout: number;
}

/** A validated manifest with every default applied. Field names follow the YAML keys. */
export interface Manifest {
  /** Absolute path of the manifest file it was read from. */
  file: string;
  app: string;
  repo: string;
  /** The ssh private key every fetch uses (a private repository); its server's host key is pinned in known_hosts. */
  deploy_key?: string;
  /** The known_hosts file that pins the server's host key (default <root>/known_hosts, written by provision). */
  known_hosts?: string;
  root: string;
  user: string;
  runtime: 'node' | 'python';
  env: Record<string, string>;
  env_file?: string;
  shared: string[];
  /** Directories of content-hashed build output that a new release carries from recent releases. */
  assets: string[];
  assets_keep: number;
  /** Build cache directories copied from the previous release before the build. */
  cache: string[];
  /** Directories inside each release that the running app may write (e.g. .next/cache/images), per release. */
  writable: string[];
  install?: string;
  build?: string;
  migrate?: string;
  start: string;
  port: number;
  socket: SocketMode;
  /** The public entrance, when the manifest asks for one. */
  proxy?: ProxyConfig;
  health: HealthCheck;
  /** Seconds install, build and migrate may each take. */
  timeouts: { install: number; build: number; migrate: number };
  preflight: boolean;
  stop_timeout: number;
  keep: number;
  prune: { schedule: string };
  hooks: Partial<Record<HookPoint, Hook[]>>;
}

/** One thing wrong with a manifest: the line it is on, the field (e.g. "health.timeout") and a sentence. */
export interface ManifestProblem {
  line: number;
  path: string;
  message: string;
}

/** The outcome of checking a manifest's text: the problems, and the manifest when there are none. */
export interface ManifestCheck {
  problems: ManifestProblem[];
  manifest?: Manifest;
}

type Segment = string | number;
type Locate = (segments: Segment[]) => number;
type Data = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// Entry points

/** Reads and validates a manifest file; a missing file or any problem throws UsageError (exit 2). */
export async function loadManifest(file: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw unreadable(file, e as NodeJS.ErrnoException);
  }
  return parseManifest(text, file);
}

/** Validates a manifest's text (named `file` in messages); throws UsageError listing every problem. */
export function parseManifest(text: string, file: string): Manifest {
  const { problems, manifest } = checkManifest(text, file);
  if (manifest) return manifest;
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
  throw new UsageError(
    `The manifest ${file} has ${count}:\n${problems.map((p) => '  ' + formatProblem(file, p)).join('\n')}`,
    `Fix the fields above in ${file}; config/examples/ has working manifests and config/manifest.schema.json describes every field.`,
  );
}

/** Every problem in a manifest's text, each as "file:line: field: what is wrong"; [] when it is valid. */
export function manifestProblems(text: string, file: string): string[] {
  return checkManifest(text, file).problems.map((p) => formatProblem(file, p));
}

export function formatProblem(file: string, p: ManifestProblem): string {
  return `${file}:${p.line}: ${p.path}: ${p.message}`;
}

/**
 * Parses, validates and completes a manifest; never throws for bad input. `schema` is the schema's
 * validator: the one compiled at run time, or (in the compiled kit, and in the test that compares them)
 * the standalone code scripts/compile.mjs generated.
 */
export function checkManifest(text: string, file: string, schema: SchemaValidator = manifestValidator()): ManifestCheck {
  const lineCounter = new LineCounter();
  // logLevel 'error': yaml never prints a warning of its own (a collection as a key, say); the problems
  // below say what is wrong, the same through tsx and the compiled kit.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, logLevel: 'error' });
  const lineOf = (offset: number) => lineCounter.linePos(offset).line;
  const syntax = yamlProblems(doc, text, lineOf);
  if (syntax.length > 0) return { problems: syntax };
  const locate: Locate = (segments) => lineAt(doc, segments, lineOf);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { problems: [{ line: 1, path: 'YAML', message: `cannot be read: ${(e as Error).message}.` }] };
  }
  const shape = shapeProblem(data, locate);
  if (shape) return { problems: [shape] };
  const values = data as Data;
  const problems = validateAgainstSchema(schema, values, locate);
  problems.push(...semanticProblems(values, locate, problems));
  if (problems.length > 0) return { problems: sortProblems(problems) };
  return { problems, manifest: completeManifest(values, file) };
}

function unreadable(file: string, e: NodeJS.ErrnoException): UsageError {
  const hint = 'Pass --manifest FILE (or set CUTOVER_MANIFEST) to name the app\'s manifest; config/examples/ has working ones.';
  if (e.code === 'ENOENT') return new UsageError(`The manifest ${file} does not exist.`, hint);
  if (e.code === 'EISDIR') return new UsageError(`The manifest ${file} is a directory, not a YAML file.`, hint);
  return new UsageError(`The manifest ${file} cannot be read: ${e.message}.`, hint);
}

// ---------------------------------------------------------------------------------------------
// YAML: syntax, shape and lines

function yamlProblems(doc: Document, text: string, lineOf: (offset: number) => number): ManifestProblem[] {
  return [...doc.errors, ...doc.warnings].map((e) => {
    const line = lineOf(e.pos[0]);
    if (e.code === 'DUPLICATE_KEY') {
      const key = /^[^:\n]*/.exec(text.slice(e.pos[0]))![0].trim();
      return { line, path: key || 'YAML', message: 'is given more than once; keep one.' };
    }
    if (e.code === 'MULTIPLE_DOCS') {
      return { line, path: 'YAML', message: "starts a second document with '---'; a manifest is one document." };
    }
    return { line, path: 'YAML', message: `${e.message.replace(/\.?$/, '')}.` };
  });
}

function shapeProblem(data: unknown, locate: Locate): ManifestProblem | undefined {
  if (data === null || data === undefined) {
    return { line: 1, path: 'manifest', message: 'is empty; it needs at least app, repo and start (see config/examples/).' };
  }
  if (typeof data !== 'object' || Array.isArray(data)) {
    return { line: locate([]), path: 'manifest', message: `must be a mapping of keys to values, not ${describe(data)}.` };
  }
  return undefined;
}

/** The line of the key (in a mapping) or item (in a list) at `segments`, or of the nearest parent that exists. */
function lineAt(doc: Document, segments: Segment[], lineOf: (offset: number) => number): number {
  let node: unknown = doc.contents;
  let line = startLine(node, lineOf) ?? 1;
  for (const segment of segments) {
    if (isAlias(node)) node = node.resolve(doc);
    let next: { at: unknown; value: unknown } | undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === String(segment));
      next = pair && { at: pair.key, value: pair.value };
    } else if (isSeq(node)) {
      const item = node.items[Number(segment)];
      next = item === undefined ? undefined : { at: item, value: item };
    }
    if (!next) break;
    line = startLine(next.at, lineOf) ?? line;
    node = next.value;
  }
  return line;
}

function startLine(node: unknown, lineOf: (offset: number) => number): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? lineOf(range[0]) : undefined;
}

function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

// ---------------------------------------------------------------------------------------------
// JSON Schema (ajv): the contract

/** The manifest's schema (config/manifest.schema.json) as an object. */
export function manifestSchema(): Data {
  return manifestValidator().schema;
}

function validateAgainstSchema({ validate }: SchemaValidator, values: Data, locate: Locate): ManifestProblem[] {
  if (validate(values)) return [];
  const errors = validate.errors ?? [];
  // A value of the wrong type makes every other complaint about it noise.
  const mistyped = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
  const seen = new Set<string>();
  const problems: ManifestProblem[] = [];
  for (const error of errors) {
    if (error.keyword !== 'type' && mistyped.has(error.instancePath)) continue;
    const p = schemaProblem(error, locate);
    if (!p || seen.has(`${p.path}\0${p.message}`)) continue;
    seen.add(`${p.path}\0${p.message}`);
    problems.push(p);
  }
  return problems;
}

/** Turns one ajv error into a sentence about the field it concerns, or undefined for a duplicate. */
function schemaProblem(e: ErrorObject, locate: Locate): ManifestProblem | undefined {
  const at = pointerSegments(e.instancePath);
  const problem = (segments: Segment[], message: string, line = locate(segments)): ManifestProblem => ({
    line,
    path: displayPath(segments),
    message,
  });
  const parent = (e.parentSchema ?? {}) as Data;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(e.params.additionalProperty);
      return problem([...at, key], unknownKeyMessage(key, Object.keys((parent.properties ?? {}) as Data)));
    }
    case 'required': {
      if (e.schemaPath.includes('/oneOf/')) return undefined; // the oneOf error says it better
      const key = String(e.params.missingProperty);
      const about = ((parent.properties as Record<string, Data> | undefined)?.[key]?.description ?? '') as string;
      return problem([...at, key], `is required${about ? ` (${describeField(about)})` : ''}.`, locate(at));
    }
    case 'propertyNames':
      return undefined; // the pattern/not error under it names the key
    case 'if':
      return undefined; // the then/else error under it says what is wrong
    case 'type':
      // A field that takes more than one shape says which in its x-type-error (server_name: a name or a list).
      if (typeof parent['x-type-error'] === 'string') return problem(at, `${parent['x-type-error']}; found ${describe(e.data)}.`);
      return problem(at, typeMessage(String(e.params.type), e.data));
    case 'minItems':
      return problem(at, `must list at least ${e.params.limit} (it lists ${(e.data as unknown[]).length}).`);
    case 'maxItems':
      return problem(at, `must list at most ${e.params.limit}.`);
    case 'enum':
      return problem(at, `must be ${orList((e.params.allowedValues as unknown[]).map(show))}, not ${describe(e.data)}.`);
    case 'minimum':
      return problem(at, `must be at least ${e.params.limit}, not ${describe(e.data)}.`);
    case 'maximum':
      return problem(at, `must be at most ${e.params.limit}, not ${describe(e.data)}.`);
    case 'pattern':
    case 'not':
    case 'oneOf': {
      const why = (parent['x-error'] as string | undefined) ?? e.message ?? 'is not valid';
      if (e.propertyName !== undefined) {
        return problem([...at, e.propertyName], `the name ${show(e.propertyName)} ${why}.`);
      }
      return problem(at, `${why}${e.keyword === 'oneOf' ? '' : `; found ${describe(e.data)}${stringDetail(e.data)}`}.`);
    }
    default:
      return problem(at, `${e.message ?? 'is not valid'}.`);
  }
}

function pointerSegments(pointer: string): Segment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s));
}

/** "health.timeout", "shared[1]", "env.NODE_ENV"; the whole file is "manifest". */
function displayPath(segments: Segment[]): string {
  if (segments.length === 0) return 'manifest';
  return segments
    .map((s, i) => {
      if (typeof s === 'number') return `[${s}]`;
      if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(s)) return i === 0 ? s : `.${s}`;
      return `[${JSON.stringify(s)}]`;
    })
    .join('');
}

function unknownKeyMessage(key: string, known: string[]): string {
  const guess = closest(key, known);
  if (guess) return `unknown key ${show(key)} (did you mean ${show(guess)}?).`;
  return `unknown key ${show(key)}; the keys here are ${known.join(', ')}.`;
}

/** The known key nearest to a typo, if one is near enough to be a likely meaning. */
function closest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key.toLowerCase(), k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(1, Math.min(3, Math.floor(key.length / 3))) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}

function typeMessage(type: string, data: unknown): string {
  const want = { string: 'a string', integer: 'a whole number', number: 'a number', boolean: 'true or false', object: 'a mapping', array: 'a list' }[type] ?? type;
  let message = `must be ${want}, not ${describe(data)}`;
  if (type === 'string' && (typeof data === 'number' || typeof data === 'boolean')) message += `; quote it: "${data}"`;
  if (type === 'string' && data === null) message += '; write "" for an empty string';
  return message + '.';
}

/** A schema description, shortened to the part that says what the field is. */
function describeField(description: string): string {
  return description.replace(/;[^;]*$/, '').replace(/\.$/, '').replace(/^The /, 'the ');
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (typeof value === 'string') return show(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Uint8Array) return 'binary data';
  return 'a mapping';
}

/** A value as it would be quoted in a message, with control characters made visible. */
function show(value: unknown): string {
  if (typeof value !== 'string') return String(value);
  const quoted = JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value);
  return quoted.includes("'") ? quoted : `'${quoted.slice(1, -1).replace(/\\"/g, '"')}'`;
}

/** What is wrong with a one-line string, when that is not obvious from the value itself. */
function stringDetail(value: unknown): string {
  if (typeof value !== 'string') return '';
  if (value.includes('\n')) return ', which contains a newline';
  if (value.includes('\r')) return ', which contains a carriage return';
  if (value.includes('\0')) return ', which contains a NUL byte';
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(value)) return ', which contains a control character';
  if (value.trim() === '') return ', which is empty';
  if (value.startsWith('-')) return ", which starts with '-'";
  return '';
}

function orList(items: string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

// ---------------------------------------------------------------------------------------------
// What JSON Schema cannot say well: root and path safety, reserved names, cron ranges

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

function semanticProblems(m: Data, locate: Locate, found: ManifestProblem[]): ManifestProblem[] {
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


// ---------------------------------------------------------------------------------------------
// Defaults that depend on other fields

function sortProblems(problems: ManifestProblem[]): ManifestProblem[] {
  return [...problems].sort((a, b) => a.line - b.line || a.path.localeCompare(b.path));
}

/** The validated values (schema defaults already filled in by ajv) plus root and user from app. */
function completeManifest(values: Data, file: string): Manifest {
  const m = values as unknown as Omit<Manifest, 'file' | 'root' | 'user'> & { root?: string; user?: string };
  return {
    ...m,
    file: path.resolve(file),
    root: m.root ?? `/usr/local/src/${m.app}`,
    user: m.user ?? m.app,
    hooks: m.hooks ?? {},
    ...(m.proxy ? { proxy: completeProxy(m.proxy as unknown as RawProxy) } : {}),
  };
}

/** The proxy key as the manifest writes it. */
type RawProxy = Pick<ProxyConfig, 'server'> & Partial<Pick<ProxyConfig, 'tls' | 'listen'>> & { server_name: string | string[] };

/** proxy with its defaults: tls auto (Caddy; nginx must say), listen 443 with TLS and 80 without; server_name as a list. */
function completeProxy(p: RawProxy): ProxyConfig {
  const tls = p.tls ?? 'auto';
  const server_names = typeof p.server_name === 'string' ? [p.server_name] : p.server_name;
  return { server: p.server, server_names, tls, listen: p.listen ?? (tls === 'off' ? 80 : 443) };
}
