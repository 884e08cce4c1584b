// Renders the app's systemd service and socket units and its cron.d entry from templates/, and the transient-unit settings for preflight.
//
// All pure: manifest in, file text out. Values are escaped for their place by escape.ts, or refused
// with a UsageError naming the manifest field; the environment and the sandbox come from sandbox.ts.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  assertSafePath,
  assertSafeText,
  cronSchedule,
  cronWord,
  environmentWord,
  escapeSpecifiers,
  execArgument,
  runArgument,
} from '../manifest/escape.ts';
import { UsageError } from '../run/errors.ts';
import { startScript } from './start-command.ts';
import { renderTemplate } from './template.ts';
import type { Manifest } from '../manifest/types.ts';
import {
  checkApp,
  checkPort,
  checkUser,
  kitDirOf,
  layout,
  sandboxDirectives,
  serviceEnvironment,
  stopTimeout,
  type Directive,
} from './sandbox.ts';
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

/** The socket's listen queue: room for every connection that arrives during a restart. */
export const SOCKET_BACKLOG = 4096;

function template(name: string): string {
  return readFileSync(path.join(kitPaths.templates, name), 'utf8');
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
