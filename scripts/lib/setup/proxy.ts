// The public entrance on the host: puts the app's site in place for Caddy or nginx, has the server check it, reloads; a failed check or reload puts the previous files back.
import fs from 'node:fs';
import path from 'node:path';
import { $ } from 'zx/core';
import { OperationError } from '../run/errors.ts';
import type { Context } from '../state/context.ts';
import { PROXY_SERVERS, proxyPaths, type ProxyServer } from '../manifest/paths.ts';
import { importsCutoverSites, isOwnSite, renderCaddyfile, manifestAddresses, renderSite, siteAddresses, withCutoverImport } from './proxy-site.ts';
import { journalMessages, serviceControlEnabled, unitState } from '../host/systemd.ts';
import { diff } from './provision.ts';
import { withHostLock } from '../state/lock.ts';

/** A file as it is: what provision puts back, with its owner, when a change fails. */
interface Existing {
  content: string;
  mode: number;
  uid: number;
  gid: number;
}

/** One file to put in place (content) or to remove (null), with what was there before, to put back on failure. */
export interface SiteEdit {
  path: string;
  content: string | null;
  mode: number;
  previous: Existing | null;
  /** What the change was, for provision's list of changes. */
  describe: string;
}

const INSTALL: Record<ProxyServer, string> = {
  nginx: 'apt-get install nginx-light (or nginx)',
  caddy: 'apt-get install caddy (Debian 12, Ubuntu 23.04 and later; older releases: Caddy\'s own apt repository)',
};

/** The server's own configuration test, as argv. */
function checkArgv(server: ProxyServer): string[] {
  return server === 'nginx' ? ['nginx', '-t', '-q'] : ['caddy', 'validate', '--config', proxyPaths.caddyfile, '--adapter', 'caddyfile'];
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => d && fs.existsSync(path.join(d, command)));
}

function current(file: string): Existing | null {
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  if (!st) return null;
  if (!st.isFile()) throw new OperationError(`${file} is not a regular file (a symlink or a directory): cutover will not write through it.`, 'Move it away, then provision again.');
  return { content: fs.readFileSync(file, 'utf8'), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
}

/**
 * The edits the manifest's proxy asks for: the app's site for its server, and for Caddy a Caddyfile that
 * imports cutover's sites (written when there is none; otherwise the import is added at its end).
 * A site file at cutover's path that cutover did not write is refused, never replaced.
 */
export function planSite(ctx: Context): SiteEdit[] {
  const { m } = ctx;
  if (!m.proxy) return [];
  const site = renderSite(m);
  const edits: SiteEdit[] = [];
  const was = current(site.path);
  if (was && !isOwnSite(m.proxy.server, m.app, was.content)) {
    throw new OperationError(
      `${site.path} exists and cutover did not write it (its first line is not cutover's): left as it is, and no site was written for ${m.app}.`,
      `Move that file away if it is yours, then provision again; cutover writes its site for ${m.app} there.`,
    );
  }
  if (!was || was.content !== site.content || was.mode !== site.mode) {
    edits.push({ ...site, previous: was, describe: `${was ? 'updated' : 'wrote'} the ${m.proxy.server} site ${site.path} (${m.proxy.server_names.join(', ')} → 127.0.0.1:${m.port})` });
  }
  if (m.proxy.server === 'caddy') {
    const caddyfile = current(proxyPaths.caddyfile);
    if (!caddyfile) {
      edits.push({ path: proxyPaths.caddyfile, content: renderCaddyfile(), mode: 0o644, previous: null, describe: `wrote ${proxyPaths.caddyfile}: there was none (admin API on ${proxyPaths.caddyAdmin}, importing ${proxyPaths.caddyDir}/)` });
    } else if (!importsCutoverSites(caddyfile.content)) {
      edits.push({
        path: proxyPaths.caddyfile,
        content: withCutoverImport(caddyfile.content),
        mode: caddyfile.mode,
        previous: caddyfile,
        describe: `added the import of ${proxyPaths.caddyDir}/*.caddy at the end of ${proxyPaths.caddyfile} (the rest of it untouched)`,
      });
    }
  }
  return edits;
}

/** The app's sites for servers the manifest no longer names (or all of them, without proxy): removed, if cutover wrote them. */
export function planStaleSites(ctx: Context): { server: ProxyServer; edit: SiteEdit }[] {
  const out: { server: ProxyServer; edit: SiteEdit }[] = [];
  for (const server of PROXY_SERVERS) {
    if (ctx.m.proxy?.server === server) continue;
    const file = proxyPaths.siteFile(server, ctx.m.app);
    const was = fs.existsSync(file) ? current(file) : null;
    if (!was) continue;
    if (!isOwnSite(server, ctx.m.app, was.content)) {
      ctx.log.warn(`${file} exists but cutover did not write it: left alone.`);
      continue;
    }
    const why = ctx.m.proxy ? `the manifest's proxy now names ${ctx.m.proxy.server}` : 'the manifest no longer has a proxy';
    out.push({ server, edit: { path: file, content: null, mode: 0, previous: was, describe: `removed the ${server} site ${file}: ${why}` } });
  }
  return out;
}

/** Whether a site file of this app exists for a server the manifest does not name (provision then removes it, if cutover wrote it). */
export function hasStaleSites(ctx: Context): boolean {
  return PROXY_SERVERS.some((server) => ctx.m.proxy?.server !== server && fs.existsSync(proxyPaths.siteFile(server, ctx.m.app)));
}

/** Writes (or removes) one file; an operator's file that is changed (the Caddyfile) keeps its owner. */
async function put(ctx: Context, e: { path: string; content: string | null; mode: number; owner?: { uid: number; gid: number } }): Promise<void> {
  if (e.content === null) return ctx.ops.remove(e.path);
  if (!fs.existsSync(path.dirname(e.path))) await ctx.ops.mkdir(path.dirname(e.path), 0o755);
  await ctx.ops.writeFile(e.path, e.content, e.mode);
  if (e.owner && (e.owner.uid !== 0 || e.owner.gid !== 0)) await ctx.ops.run(['chown', '--no-dereference', `${e.owner.uid}:${e.owner.gid}`, e.path], { quiet: true });
}

/** Puts every edited file back as it was (or removes the ones that were not there). */
async function restore(ctx: Context, edits: SiteEdit[]): Promise<void> {
  for (const e of [...edits].reverse()) await put(ctx, { path: e.path, content: e.previous?.content ?? null, mode: e.previous?.mode ?? 0, owner: e.previous ?? undefined });
}

/** The server's own check of its whole configuration; caddy runs as its own user, so it reads the files as the server will. */
async function runCheck(server: ProxyServer): Promise<{ ok: boolean; output: string; lines: string[] }> {
  let argv = checkArgv(server);
  let env = process.env;
  if (server === 'caddy') {
    const user = await $({ quiet: true, nothrow: true })`getent passwd caddy`;
    const home = user.exitCode === 0 ? user.stdout.split(':')[5] : undefined;
    if (home) {
      argv = ['setpriv', '--reuid=caddy', '--regid=caddy', '--init-groups', '--', ...argv];
      env = { ...process.env, HOME: home, XDG_DATA_HOME: path.join(home, '.local', 'share'), XDG_CONFIG_HOME: path.join(home, '.config') };
    }
  }
  const p = await $({ quiet: true, nothrow: true, env, cwd: '/' })`${argv}`;
  // caddy logs JSON lines before its verdict; the lines that are not JSON say what is wrong.
  const lines = `${p.stderr}\n${p.stdout}`.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('{'));
  return { ok: p.exitCode === 0, output: lines.slice(-6).join('\n'), lines };
}

/**
 * The warnings of a check that passed which concern this app's site: nginx accepts a second server with
 * the same name and port (the operator's own site, say) and only warns that it ignores one of them.
 */
export function siteWarnings(lines: string[], names: string[], siteFile: string): string[] {
  return lines.filter((l) => /\[warn\]/.test(l) && (l.includes(siteFile) || names.some((n) => l.includes(`"${n}"`))));
}

/**
 * Puts the edits in place, has the server check the whole configuration, and reloads it (a reload keeps open
 * connections; a server that is not running is not started). A failed check or reload puts every file
 * back as it was and throws: the server goes on serving what it served before.
 */
export async function applySiteEdits(ctx: Context, server: ProxyServer, edits: SiteEdit[], changes: string[]): Promise<void> {
  if (edits.length === 0) return;
  for (const e of edits) {
    if (ctx.dryRun) ctx.log.info((await diff(e.path, e.content ?? '')).trimEnd().replace(/^/gm, '    '));
    await put(ctx, { ...e, owner: e.previous ?? undefined });
  }
  const check = checkArgv(server).join(' ');
  if (ctx.dryRun) {
    ctx.log.info(`    would check the result with \`${check}\` and reload ${server}, or put the files back if the check fails`);
    changes.push(...edits.map((e) => e.describe));
    return;
  }
  const checked = await runCheck(server);
  if (!checked.ok) {
    await restore(ctx, edits);
    const before = await runCheck(server);
    throw new OperationError(
      `${server}'s own check (\`${check}\`) refused the new configuration for ${ctx.m.app}:\n${checked.output.replace(/^/gm, '  ')}\n` +
        `The previous files are back in place and ${server} was not reloaded: it serves as before.` +
        (before.ok ? '' : ` (Its configuration fails that check without cutover's change too: the problem may lie elsewhere.)`),
      `Fix what ${server} names above (in the manifest's proxy key, or the file it points to), then provision again.`,
    );
  }
  for (const w of siteWarnings(checked.lines, ctx.m.proxy?.server_names ?? [], proxyPaths.siteFile(server, ctx.m.app))) {
    ctx.log.warn(`${server}'s check passed with a warning about ${ctx.m.app}'s site: ${w.replace(/^.*\[warn\] (\d+#\d+: )?/, '')}`);
    ctx.log.warn(`  Another site answers that name on that port too, and ${server} ignores one of the two: find it with \`${server} -T | grep -n server_name\`.`);
  }
  changes.push(...edits.map((e) => e.describe));
  await reload(ctx, server, edits, changes);
}

/**
 * How a server is told to load its configuration again, keeping open connections. nginx: through systemd
 * (its ExecReload, `nginx -s reload`). Caddy: `caddy reload`, what its unit's ExecReload runs, but not through
 * systemd: Caddy 2.6 (Debian 12's) tells systemd RELOADING=1 and, when the new configuration fails to load,
 * never READY=1, so `systemctl reload caddy` hangs and the unit stays "reloading" (caddyserver/caddy#7385).
 * Bounded by a time limit either way.
 */
function reloadArgv(server: ProxyServer): string[] {
  const argv = server === 'nginx' ? ['systemctl', 'reload', 'nginx.service'] : ['caddy', 'reload', '--config', proxyPaths.caddyfile, '--adapter', 'caddyfile', '--force'];
  return ['timeout', String(RELOAD_LIMIT_S), ...argv];
}

/** Seconds a reload may take before cutover gives up on it. */
const RELOAD_LIMIT_S = 60;

async function reload(ctx: Context, server: ProxyServer, edits: SiteEdit[], changes: string[]): Promise<void> {
  if (!serviceControlEnabled()) return;
  const state = await unitState(`${server}.service`);
  // "reloading": a reload is under way, or (Caddy 2.6, see reloadArgv) one failed earlier; the server runs.
  if (state !== 'active' && state !== 'reloading') {
    ctx.log.warn(`${server} is not running (${state}): the site takes effect when it starts (systemctl enable --now ${server}).`);
    return;
  }
  const p = await $({ quiet: true, nothrow: true, cwd: '/' })`${reloadArgv(server)}`;
  if (p.exitCode !== 0) {
    await restore(ctx, edits);
    changes.splice(changes.length - edits.length, edits.length);
    const said = `${p.stderr}\n${p.stdout}`.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('{')).slice(-6).join('\n');
    const journal = server === 'nginx' ? await journalMessages('nginx.service', 6) : '';
    const why = p.exitCode === 124 ? `it did not finish within ${RELOAD_LIMIT_S} s` : [said, journal].filter(Boolean).join('\n');
    throw new OperationError(
      `Reloading ${server} with the new configuration for ${ctx.m.app} failed:\n${why.replace(/^/gm, '  ')}\n` +
        `The previous files are back in place; ${server} keeps the configuration it had (a failed reload changes nothing).` +
        (server === 'caddy' ? ' (Caddy 2.6 shows caddy.service as "reloading" for a while after a failed reload: its known bug, harmless.)' : ''),
      `Fix the cause (a port another program holds, say: \`ss -ltnp\` names it), then provision again.`,
    );
  }
  changes.push(`reloaded ${server} (open connections are kept)`);
}

/** The sites cutover wrote for the other apps of this host, for either server: their app, file and text. */
function otherAppsSites(app: string): { server: ProxyServer; app: string; file: string; text: string }[] {
  const out: { server: ProxyServer; app: string; file: string; text: string }[] = [];
  for (const server of PROXY_SERVERS) {
    const dir = path.dirname(proxyPaths.siteFile(server, 'x'));
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const other = (server === 'nginx' ? /^cutover-([a-z][a-z0-9-]*)\.conf$/ : /^([a-z][a-z0-9-]*)\.caddy$/).exec(name)?.[1];
      if (!other || other === app) continue;
      const file = path.join(dir, name);
      const st = fs.lstatSync(file, { throwIfNoEntry: false });
      if (!st?.isFile()) continue;
      const text = fs.readFileSync(file, 'utf8');
      if (isOwnSite(server, other, text)) out.push({ server, app: other, file, text });
    }
  }
  return out;
}

/** Refuses a host name and port another app's cutover site already serves: the server would pick one of the two. */
function checkNamesFree(ctx: Context): void {
  const mine = new Set(ctx.m.proxy ? manifestAddresses(ctx.m.proxy) : []);
  for (const site of otherAppsSites(ctx.m.app)) {
    const taken = siteAddresses(site.server, site.text).filter((a) => mine.has(a));
    if (taken.length === 0) continue;
    throw new OperationError(
      `proxy.server_name: ${taken.join(', ')} is already served by the app "${site.app}" (${site.file}, written by cutover): two apps cannot answer one name on one port; nothing was changed.`,
      `Give ${ctx.m.app} a name of its own (or another proxy.listen) in the manifest, or drop the name from ${site.app}'s manifest and provision ${site.app} first.`,
    );
  }
}

/**
 * What provision checks before it changes anything: the server the manifest names is installed, the
 * path of the app's site is free or cutover's, and no other app's site answers to its names. So a host
 * without nginx is left exactly as it was.
 */
export function checkProxyFirst(ctx: Context): void {
  const server = ctx.m.proxy?.server;
  if (!server) return;
  if (!onPath(server)) {
    throw new OperationError(
      `The manifest's proxy asks for ${server}, but ${server} is not installed on this host; nothing was changed.`,
      `Install it (${INSTALL[server]}), then provision again.${server === 'nginx' ? ' Debian\'s nginx serves a default site on port 80 (/etc/nginx/sites-enabled/default): remove that link if you do not want it.' : ''}`,
    );
  }
  checkNamesFree(ctx);
  planSite(ctx);
}

/**
 * Provision's step: the app's site in place, checked and loaded; then the sites cutover wrote for this app
 * for another server removed. In that order, so a move from nginx to Caddy whose new site fails leaves
 * the old one serving.
 */
export async function ensureProxy(ctx: Context, changes: string[]): Promise<void> {
  // One app's provision at a time edits the web servers' files (the Caddyfile is shared) and reloads them;
  // a dry run only reads them.
  if (ctx.dryRun) return ensureSites(ctx, changes);
  const busy = () =>
    new OperationError(
      `Another app's provision has held ${PROXY_LOCK} (the web server's configuration) for ${PROXY_LOCK_WAIT_S} s: this app's site was not written.`,
      'Wait until that provision ends (`ps -ef | grep cutover`), then provision again.',
    );
  await withHostLock(PROXY_LOCK, PROXY_LOCK_WAIT_S, busy, () => ensureSites(ctx, changes));
}

/** The host-wide lock around the edits of the web servers' files, and how long provision waits for it. */
const PROXY_LOCK = '/run/cutover-proxy.lock';
const PROXY_LOCK_WAIT_S = 180;

async function ensureSites(ctx: Context, changes: string[]): Promise<void> {
  const server = ctx.m.proxy?.server;
  if (server) {
    checkProxyFirst(ctx);
    await applySiteEdits(ctx, server, planSite(ctx), changes);
  }
  for (const { server: other, edit } of planStaleSites(ctx)) {
    if (!onPath(other)) {
      await put(ctx, edit);
      changes.push(`${edit.describe} (${other} is not installed any more)`);
      continue;
    }
    await applySiteEdits(ctx, other, [edit], changes);
  }
}
