// Renders the public entrance's files (the app's nginx or Caddy site, the Caddyfile cutover writes when there is none) from templates/: manifest in, text out.
//
// Every value that reaches a site is checked here against the characters its place takes without
// quoting (the schema says the same for the manifest): a host name, absolute paths of plain
// characters, whole numbers. Nothing is quoted by hand; a value that would need quoting is refused.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { assertSafePath } from '../manifest/escape.ts';
import { UsageError } from '../run/errors.ts';
import type { Manifest, ProxyConfig } from '../manifest/types.ts';
import { kitPaths } from '../run/kit.ts';
import { proxyPaths, type ProxyServer } from '../manifest/paths.ts';
import { renderTemplate } from '../host/template.ts';

export interface SiteFile {
  path: string;
  content: string;
  mode: number;
}

/** One host name: the schema's rule, checked again because it is written into a config file unquoted. */
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

function checkHostNames(names: string[]): string[] {
  if (!Array.isArray(names) || names.length === 0) throw new UsageError('proxy.server_name names no host.', 'Give a host name such as shop.example.com, or a list of them.');
  for (const name of names) {
    if (typeof name !== 'string' || !HOST_NAME.test(name)) {
      throw new UsageError(`proxy.server_name ${JSON.stringify(name)} is not a host name.`, 'Give names of lowercase letters, digits, - and ., such as shop.example.com.');
    }
  }
  return names;
}

function checkPort(port: number, field: string): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`${field} must be a whole number from 1 to 65535, not ${JSON.stringify(port)}.`);
  return String(port);
}

function template(name: string): string {
  return readFileSync(path.join(kitPaths.templates, name), 'utf8');
}

/** The first line of every site cutover writes: how provision recognizes its own file before it replaces or removes one. */
export function siteMark(server: ProxyServer, app: string): string {
  return `# ${proxyPaths.siteFile(server, app)}: the public entrance of the "${app}" web app, written by cutover.`;
}

/** Whether a file's text is a site cutover wrote for this app (its first line is the mark). */
export function isOwnSite(server: ProxyServer, app: string, text: string): boolean {
  return text.split('\n', 1)[0] === siteMark(server, app);
}

function proxyOf(m: Manifest): ProxyConfig {
  if (!m.proxy) throw new Error('renderSite needs a manifest with proxy');
  return m.proxy;
}

function tlsFiles(p: ProxyConfig): { cert: string; key: string } | undefined {
  if (typeof p.tls !== 'object') return undefined;
  return { cert: assertSafePath(p.tls.cert, 'proxy.tls.cert'), key: assertSafePath(p.tls.key, 'proxy.tls.key') };
}

/** The app's nginx site (/etc/nginx/conf.d/cutover-<app>.conf). */
export function renderNginxSite(m: Manifest): string {
  const p = proxyOf(m);
  if (p.tls === 'auto' || p.tls === 'internal') {
    throw new UsageError(`proxy.tls: ${p.tls} is Caddy's own certificate management; nginx needs { cert, key } files or off.`);
  }
  const files = tlsFiles(p);
  const listen = checkPort(p.listen, 'proxy.listen');
  return renderTemplate(template('nginx.site'), {
    file: proxyPaths.nginxSite(m.app),
    app: m.app,
    server_name: checkHostNames(p.server_names).join(' '),
    port: checkPort(m.port, 'port'),
    // nginx variable names take letters, digits and _ only; one per app, as every site shares the http block.
    connection_var: `$cutover_${m.app.replace(/-/g, '_')}_connection`,
    redirect: files !== undefined && p.listen === 443,
    listen: files ? `${listen} ssl` : listen,
    tls: files !== undefined,
    cert: files?.cert ?? '',
    key: files?.key ?? '',
  });
}

/** The site addresses Caddy reads, one per name: the scheme and port say whether Caddy serves HTTPS, and where. */
function caddyAddresses(p: ProxyConfig): string {
  const listen = checkPort(p.listen, 'proxy.listen');
  const address = (name: string) => (p.tls === 'off' ? `http://${name}:${listen}` : p.listen === 443 ? name : `${name}:${listen}`);
  return checkHostNames(p.server_names).map(address).join(', ');
}

const CADDY_TLS_NOTE: Record<'auto' | 'internal' | 'off' | 'files', string> = {
  auto: "HTTPS: Caddy obtains and renews the certificate itself (DNS must point here, ports 80 and 443 open), and redirects HTTP.",
  internal: "HTTPS with a certificate from Caddy's own local CA (clients must trust it), and a redirect from HTTP.",
  off: 'Plain HTTP only (tls: off).',
  files: 'HTTPS with the certificate and key files the manifest names, and a redirect from HTTP.',
};

/** The app's Caddy site (/etc/caddy/cutover.d/<app>.caddy), imported by the Caddyfile. */
export function renderCaddySite(m: Manifest): string {
  const p = proxyOf(m);
  const files = tlsFiles(p);
  const kind = files ? 'files' : p.tls === 'auto' || p.tls === 'internal' || p.tls === 'off' ? p.tls : 'auto';
  return renderTemplate(template('caddy.site'), {
    file: proxyPaths.caddySite(m.app),
    app: m.app,
    server_name: checkHostNames(p.server_names).join(', '),
    port: checkPort(m.port, 'port'),
    tls_note: CADDY_TLS_NOTE[kind],
    address: caddyAddresses(p),
    tls: files ? `${files.cert} ${files.key}` : kind === 'internal' ? 'internal' : '',
  });
}

/** The Caddyfile cutover writes when the host has none: the admin API on a Unix socket, and the import of its sites. */
export function renderCaddyfile(): string {
  return renderTemplate(template('Caddyfile'), {
    file: proxyPaths.caddyfile,
    site_dir: proxyPaths.caddyDir,
    admin: proxyPaths.caddyAdmin,
  });
}

/** The line that makes a Caddyfile load cutover's sites. */
export const CADDY_IMPORT = `import ${proxyPaths.caddyDir}/*.caddy`;

/** Whether a Caddyfile already imports cutover's sites (the import on a line of its own). */
export function importsCutoverSites(caddyfile: string): boolean {
  return caddyfile.split('\n').some((line) => line.trim() === CADDY_IMPORT);
}

/** An operator's Caddyfile with the import of cutover's sites added at its end, their text untouched above it. */
export function withCutoverImport(caddyfile: string): string {
  const text = caddyfile === '' || caddyfile.endsWith('\n') ? caddyfile : `${caddyfile}\n`;
  return `${text}\n# Added by cutover (provision): the sites it writes for its apps, one file per app.\n${CADDY_IMPORT}\n`;
}

/**
 * What a site cutover wrote serves, as `name:port` (its redirect from port 80 aside), read back from its
 * text: nginx's server blocks (listen, server_name), Caddy's addresses before the site's opening brace.
 * Two apps may share a name on different ports, never a name and a port.
 */
export function siteAddresses(server: ProxyServer, text: string): string[] {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (server === 'nginx') {
    const blocks = lines.join('\n').split(/^server \{$/m).slice(1);
    return blocks.flatMap((block) => {
      if (/^return 301 /m.test(block)) return [];
      const port = /^listen (\d+)/m.exec(block)?.[1];
      const names = /^server_name ([^;]+);/m.exec(block)?.[1]?.split(/\s+/) ?? [];
      return port ? names.map((n) => `${n}:${port}`) : [];
    });
  }
  const opening = lines.find((l) => l.endsWith('{'));
  if (!opening) return [];
  return opening
    .slice(0, -1)
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean)
    .map((a) => {
      const plain = a.startsWith('http://');
      const rest = a.replace(/^https?:\/\//, '');
      return /:\d+$/.test(rest) ? rest : `${rest}:${plain ? 80 : 443}`;
    });
}

/** What the manifest's site serves, as siteAddresses reads it back. */
export function manifestAddresses(p: ProxyConfig): string[] {
  return p.server_names.map((n) => `${n}:${p.listen}`);
}

/** The app's site for the manifest's server, with its path and mode. */
export function renderSite(m: Manifest): SiteFile {
  const server = proxyOf(m).server;
  return {
    path: proxyPaths.siteFile(server, m.app),
    content: server === 'nginx' ? renderNginxSite(m) : renderCaddySite(m),
    mode: 0o644,
  };
}
