// The manifest's types: a validated manifest with its defaults, its parts, and the problems a check reports.

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
  /** Releases from archives: the ssh keys that may sign them, and the limits of what they unpack to. */
  archive?: { allowed_signers?: string; max_bytes?: number; max_entries?: number };
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

export type Segment = string | number;
export type Locate = (segments: Segment[]) => number;
export type Data = Record<string, unknown>;
