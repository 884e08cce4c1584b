// Every path cutover touches, derived from the manifest; no other module builds a path string.
import path from 'node:path';
import { UsageError } from '../run/errors.ts';

/** The file in a release listing the asset files its own build wrote (so carried files are never carried on). */
export const BUILT_ASSETS_FILE = '.cutover-assets.json';

/** A release id: the commit's first 12 hex digits, with -rN for a rebuild. */
export const RELEASE_ID = /^[0-9a-f]{12}(-r[0-9]{1,4})?$/;

export function assertReleaseId(id: string): string {
  if (!RELEASE_ID.test(id)) {
    throw new UsageError(
      `"${printable(id)}" is not a release id.`,
      'Release ids look like 3f2a9c1b0d4e (or 3f2a9c1b0d4e-r2 for a rebuild); `status` lists them.',
    );
  }
  return id;
}

/** Shows control characters in a user-supplied string instead of letting them reach the terminal. */
export function printable(s: string): string {
  // JSON escapes C0 controls but not DEL and the C1 controls (U+009B is a terminal's CSI), nor the line separators.
  return JSON.stringify(s)
    .slice(1, -1)
    .replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export interface AppPaths {
  root: string;
  repo: string;
  releases: string;
  shared: string;
  active: string;
  lock: string;
  history: string;
  cache: string;
  /**
   * Where a received archive is staged and unpacked (a root-only directory made per run and removed after): the prefix of its
   * name, inside releases/ so the unpacked tree becomes a release by one rename. Release ids never start with a dot.
   */
  incomingPrefix: string;
  /** The freeze (cutover freeze): present while deploys are frozen. */
  freeze: string;
  /** The known_hosts that pins the repository server's host key (deploy_key): the manifest's known_hosts, else <root>/known_hosts. */
  knownHosts: string;
  /** The directory of one release. */
  release(id: string): string;
  /** The file inside a release that records its commit. */
  revisionFile(id: string): string;
  /** The file inside a release that lists the asset files its build wrote. */
  builtAssetsFile(id: string): string;
  /** Dependencies as they were right after an install, kept (root-owned) for the next release with the same lockfile. */
  depsSnapshots: string;
  /** A shared path as it lives under shared/ (trailing slash removed). */
  sharedTarget(rel: string): string;
  /** A shared path as it is linked inside a release. */
  sharedLink(id: string, rel: string): string;
  envFile?: string;
  /** The relative target `active` points at for a release. */
  activeTarget(id: string): string;
  /** The service template: `<app>@.service`; its instances are the slots. */
  unitTemplateName: string;
  /** One instance of the template: `<app>@<slot>.service`. */
  slotUnit(slot: Slot): string;
  socketUnitName: string;
  /** The template's file (`<app>@.service`). */
  unitFile: string;
  socketUnitFile: string;
  /** The single `<app>.service` of an older cutover, which provision migrates from. */
  legacyUnitName: string;
  legacyUnitFile: string;
  /** Every unit whose process may accept from the app's socket: the slots and, while provision migrates, the legacy one. */
  servingUnits: string[];
  cronFile: string;
}

/**
 * The app's two service slots. A handover starts the new process in the idle slot while the old one
 * serves from the same socket, then stops the old one; slot a is the one started at boot.
 */
export const SLOTS = ['a', 'b'] as const;
export type Slot = (typeof SLOTS)[number];
export const BOOT_SLOT: Slot = 'a';

export function otherSlot(slot: Slot): Slot {
  return slot === 'a' ? 'b' : 'a';
}

/** For unit tests that render units into a temp dir (there is no environment switch for these). */
export interface PathOptions {
  /** Where unit files go; /etc/systemd/system by default. */
  unitDir?: string;
  /** Where the cron entry goes; /etc/cron.d by default. */
  cronDir?: string;
}

export function appPaths(m: { app: string; root: string; env_file?: string; known_hosts?: string }, opts: PathOptions = {}): AppPaths {
  const root = m.root;
  const releases = path.join(root, 'releases');
  const shared = path.join(root, 'shared');
  const unitDir = opts.unitDir ?? '/etc/systemd/system';
  const cronDir = opts.cronDir ?? '/etc/cron.d';
  const release = (id: string) => path.join(releases, assertReleaseId(id));
  const strip = (rel: string) => rel.replace(/\/+$/, '');
  const slotUnit = (slot: Slot) => `${m.app}@${slot}.service`;
  return {
    root,
    repo: path.join(root, 'repo'),
    releases,
    shared,
    active: path.join(root, 'active'),
    lock: path.join(root, 'cutover.lock'),
    history: path.join(root, 'history.jsonl'),
    cache: path.join(root, 'cache'),
    incomingPrefix: path.join(releases, '.incoming-'),
    freeze: path.join(root, 'freeze.json'),
    knownHosts: m.known_hosts ?? path.join(root, 'known_hosts'),
    release,
    revisionFile: (id) => path.join(release(id), 'REVISION'),
    builtAssetsFile: (id) => path.join(release(id), BUILT_ASSETS_FILE),
    depsSnapshots: path.join(root, 'deps'),
    sharedTarget: (rel) => path.join(shared, strip(rel)),
    sharedLink: (id, rel) => path.join(release(id), strip(rel)),
    envFile: m.env_file ? path.join(shared, m.env_file) : undefined,
    activeTarget: (id) => path.join('releases', assertReleaseId(id)),
    unitTemplateName: `${m.app}@.service`,
    slotUnit,
    socketUnitName: `${m.app}.socket`,
    unitFile: path.join(unitDir, `${m.app}@.service`),
    socketUnitFile: path.join(unitDir, `${m.app}.socket`),
    legacyUnitName: `${m.app}.service`,
    legacyUnitFile: path.join(unitDir, `${m.app}.service`),
    servingUnits: [...SLOTS.map(slotUnit), `${m.app}.service`],
    cronFile: path.join(cronDir, `cutover-${m.app}`),
  };
}

/** The web servers the public entrance can be written for. */
export const PROXY_SERVERS = ['caddy', 'nginx'] as const;
export type ProxyServer = (typeof PROXY_SERVERS)[number];

/** Where the public entrance's files live: the server's own directories, not the app's root. */
export const proxyPaths = {
  /** The app's nginx site: conf.d, which Debian's and nginx.org's nginx.conf both include. */
  nginxSite: (app: string) => path.join('/etc/nginx/conf.d', `cutover-${app}.conf`),
  /** The directory of the Caddy sites cutover writes, one file per app; the Caddyfile imports it. */
  caddyDir: '/etc/caddy/cutover.d',
  caddySite: (app: string) => path.join('/etc/caddy/cutover.d', `${app}.caddy`),
  /** The Caddyfile the caddy package's unit runs (its ExecStart and ExecReload name it). */
  caddyfile: '/etc/caddy/Caddyfile',
  /** Caddy's admin API in a Caddyfile cutover writes: a Unix socket in the caddy user's home, not localhost:2019. */
  caddyAdmin: '/var/lib/caddy/admin.sock',
  siteFile: (server: ProxyServer, app: string) => (server === 'nginx' ? proxyPaths.nginxSite(app) : proxyPaths.caddySite(app)),
};
