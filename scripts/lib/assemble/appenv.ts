// The app's environment: one builder for install, build, migrate, the health command and (through serviceEnvironment) preflight and the unit.
import fs from 'node:fs';
import path from 'node:path';
import type { Manifest } from '../manifest/types.ts';
import { serviceEnvironment } from '../host/sandbox.ts';

/** The PATH of the app's commands outside its unit: the system's, never the operator's. */
export const APP_PATH = '/usr/local/bin:/usr/bin:/bin';

/** Parses an env file (KEY=VALUE lines, # comments, optional quotes) the way systemd's EnvironmentFile does for simple files. */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim().replace(/^export\s+/, '');
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) value = value.slice(1, -1);
    env[key] = value;
  }
  return env;
}

/** The env file's variables, or none when there is no file (yet). */
export function readEnvFile(file: string | undefined): Record<string, string> {
  if (!file) return {};
  try {
    return parseEnvFile(fs.readFileSync(file, 'utf8'));
  } catch {
    return {};
  }
}

export interface AppEnvOptions {
  /** The port the app is checked on (a preflight's spare port); the manifest's by default. */
  port?: number;
  /** The secrets file (shared/<env_file>); its values override the manifest's env, as EnvironmentFile= does in the unit. */
  envFile?: string;
  /** For install and build: HOME and npm's cache (the app's cache dir). */
  home?: string;
}

/**
 * The environment the app's commands run with, in the unit's order of precedence: the manifest's
 * env, then the env file, then PORT (forced, as in ExecStart). The socket preload is the unit's
 * alone (outside the unit there is no socket to adopt), so NODE_OPTIONS is the app's own here.
 */
export function appEnvironment(m: Manifest, opts: AppEnvOptions = {}): Record<string, string> {
  const own = Object.fromEntries(serviceEnvironment({ ...m, socket: m.socket === 'preload' ? true : m.socket }).filter(([name]) => name !== 'PORT'));
  return {
    PATH: APP_PATH,
    LANG: 'C.UTF-8',
    ...(opts.home ? { HOME: opts.home, npm_config_cache: path.join(opts.home, 'npm'), npm_config_update_notifier: 'false' } : {}),
    ...own,
    ...readEnvFile(opts.envFile),
    PORT: String(opts.port ?? m.port),
  };
}
