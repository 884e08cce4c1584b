// The app manifest: read the YAML, validate it against config/manifest.schema.json, apply defaults.

/** Where the service's port comes from: the app binds it, or a systemd socket unit owns it. */
export type SocketMode = false | true | 'preload';

export type HealthCheck =
  | { path: string; timeout: number }
  | { command: string; timeout: number };

/** A validated manifest with every default applied. Field names follow the YAML keys. */
export interface Manifest {
  /** Absolute path of the manifest file it was read from. */
  file: string;
  app: string;
  repo: string;
  root: string;
  user: string;
  runtime: 'node' | 'python';
  env: Record<string, string>;
  env_file?: string;
  shared: string[];
  install?: string;
  build?: string;
  migrate?: string;
  start: string;
  port: number;
  socket: SocketMode;
  health: HealthCheck;
  preflight: boolean;
  stop_timeout: number;
  keep: number;
  prune: { schedule: string };
}
