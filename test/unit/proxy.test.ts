// Tests scripts/lib/setup/proxy-site.ts and the manifest's proxy key: the nginx and Caddy sites' text, the Caddyfile and its import, what is refused.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CutoverError, ExitCode } from '../../scripts/lib/run/errors.ts';
import { manifestProblems, parseManifest, type Manifest } from '../../scripts/lib/manifest/manifest.ts';
import { kitPaths } from '../../scripts/lib/run/kit.ts';
import {
  CADDY_IMPORT,
  importsCutoverSites,
  isOwnSite,
  manifestAddresses,
  renderCaddyfile,
  renderCaddySite,
  renderNginxSite,
  renderSite,
  siteAddresses,
  siteMark,
  withCutoverImport,
} from '../../scripts/lib/setup/proxy-site.ts';
import { siteWarnings } from '../../scripts/lib/setup/proxy.ts';

const BASE = 'app: shop-2\nrepo: https://git.example.org/shop.git\nstart: node server.js\nport: 3100\n';

function withProxy(proxy: string): Manifest {
  return parseManifest(`${BASE}proxy: ${proxy}\n`, '/etc/cutover/shop-2.yaml');
}

function problems(proxy: string): string[] {
  return manifestProblems(`${BASE}proxy: ${proxy}\n`, 'm.yaml');
}

/** The lines of a site that are not comments or blank: what the server reads. */
function directives(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#')).map((l) => l.trim());
}

function throwsUsage(fn: () => unknown, pattern: RegExp) {
  try {
    fn();
  } catch (e) {
    assert.instance(e, CutoverError);
    assert.is((e as CutoverError).exitCode, ExitCode.usage);
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable('expected a UsageError');
}

test('defaults: caddy gets tls auto on 443; tls off listens on 80; the given listen port is kept', () => {
  assert.equal(withProxy('{ server: caddy, server_name: shop.example.com }').proxy, { server: 'caddy', server_names: ['shop.example.com'], tls: 'auto', listen: 443 });
  assert.equal(withProxy('{ server: nginx, server_name: shop.example.com, tls: off }').proxy?.listen, 80);
  assert.equal(withProxy('{ server: nginx, server_name: shop.example.com, tls: off, listen: 8080 }').proxy?.listen, 8080);
  assert.is(parseManifest(BASE, '/m.yaml').proxy, undefined, 'no proxy key, no proxy');
});

test('the manifest refuses what a server cannot do, names that are not host names, paths that need quoting, and the app\'s own port', () => {
  assert.match(problems('{ server: nginx, server_name: shop.example.com }').join('\n'), 'proxy: needs tls with nginx');
  assert.match(problems('{ server: nginx, server_name: shop.example.com, tls: auto }').join('\n'), "proxy.tls: 'auto' is Caddy's own certificate management");
  assert.match(problems('{ server: nginx, server_name: shop.example.com, tls: internal }').join('\n'), "proxy.tls: 'internal' is Caddy's own");
  assert.match(problems('{ server: apache, server_name: shop.example.com }').join('\n'), "proxy.server: must be 'caddy' or 'nginx'");
  for (const name of ['Shop.example.com', 'shop.example.com;', 'shop example.com', '-shop.example.com', 'shop.example.com:443', '"*.example.com"', '"shop.example.com\\n}"', '""']) {
    assert.match(problems(`{ server: caddy, server_name: ${name} }`).join('\n'), 'proxy.server_name: must be one host name', name);
  }
  assert.match(problems('{ server: caddy, server_name: s.example.com, tls: { cert: "/etc/ssl/a b.pem", key: /etc/ssl/k.pem } }').join('\n'), 'proxy.tls.cert: must be an absolute path');
  assert.match(problems('{ server: caddy, server_name: s.example.com, tls: { cert: etc/ssl/a.pem, key: /etc/ssl/k.pem } }').join('\n'), 'proxy.tls.cert: must be an absolute path');
  assert.match(problems('{ server: caddy, server_name: s.example.com, tls: { cert: /etc/ssl/../a.pem, key: /etc/ssl/k.pem } }').join('\n'), "proxy.tls.cert: must be written plainly, as '/etc/a.pem'");
  assert.match(problems('{ server: caddy, server_name: s.example.com, tls: { cert: /etc/ssl/a.pem } }').join('\n'), 'proxy.tls.key: is required');
  assert.match(problems('{ server: caddy, server_name: s.example.com, tls: on }').join('\n'), "proxy.tls: must be 'auto', 'internal' or 'off'");
  assert.match(problems('{ server: caddy, server_name: s.example.com, tls: off, listen: 3100 }').join('\n'), "proxy.listen: is 3100, the app's own port");
  assert.match(problems('{ server: caddy, server_name: s.example.com, listen: 70000 }').join('\n'), 'proxy.listen: must be at most 65535');
  assert.match(problems('{ server: caddy, server_name: s.example.com, root: /srv }').join('\n'), 'proxy.root: unknown key');
  assert.equal(problems('{ server: caddy, server_name: s.example.com, tls: { cert: /etc/ssl/a.pem, key: /etc/ssl/k.pem } }'), []);
});

test('nginx, plain HTTP: one server on the listen port forwarding to 127.0.0.1:port with the forwarded headers, the client\'s X-Forwarded-For replaced', () => {
  const site = renderNginxSite(withProxy('{ server: nginx, server_name: shop.example.com, tls: off, listen: 8080 }'));
  assert.is(site.split('\n')[0], siteMark('nginx', 'shop-2'));
  assert.equal(directives(site), [
    'map $http_upgrade $cutover_shop_2_connection {',
    'default upgrade;',
    "''      close;",
    '}',
    'server {',
    'listen 8080;',
    'listen [::]:8080;',
    'server_name shop.example.com;',
    'location / {',
    'proxy_pass http://127.0.0.1:3100;',
    'proxy_http_version 1.1;',
    'proxy_set_header Host $http_host;',
    'proxy_set_header X-Forwarded-For $remote_addr;',
    'proxy_set_header X-Forwarded-Proto $scheme;',
    'proxy_set_header X-Forwarded-Host $http_host;',
    'proxy_set_header Upgrade $http_upgrade;',
    'proxy_set_header Connection $cutover_shop_2_connection;',
    '}',
    '}',
  ]);
});

test('nginx with certificate files on 443: an ssl listener with the files, and a redirect from port 80; on another port, no redirect', () => {
  const tls = '{ cert: /etc/letsencrypt/live/shop/fullchain.pem, key: /etc/letsencrypt/live/shop/privkey.pem }';
  const site = directives(renderNginxSite(withProxy(`{ server: nginx, server_name: shop.example.com, tls: ${tls} }`)));
  const redirect = site.indexOf('listen 80;');
  assert.ok(redirect > 0, 'a redirect server on 80');
  assert.equal(site.slice(redirect - 1, redirect + 5), ['server {', 'listen 80;', 'listen [::]:80;', 'server_name shop.example.com;', 'return 301 https://$host$request_uri;', '}']);
  assert.ok(site.includes('listen 443 ssl;') && site.includes('listen [::]:443 ssl;'));
  assert.ok(site.includes('ssl_certificate /etc/letsencrypt/live/shop/fullchain.pem;'));
  assert.ok(site.includes('ssl_certificate_key /etc/letsencrypt/live/shop/privkey.pem;'));
  const elsewhere = directives(renderNginxSite(withProxy(`{ server: nginx, server_name: shop.example.com, tls: ${tls}, listen: 8443 }`)));
  assert.ok(elsewhere.includes('listen 8443 ssl;'));
  assert.not.ok(elsewhere.includes('listen 80;'), 'no redirect when the site is not on 443');
});

test('caddy: the site address carries the scheme and port; tls internal and certificate files become a tls line; auto needs none', () => {
  const first = (proxy: string) => directives(renderCaddySite(withProxy(proxy)));
  assert.equal(first('{ server: caddy, server_name: shop.example.com }'), ['shop.example.com {', 'reverse_proxy 127.0.0.1:3100', '}']);
  assert.equal(first('{ server: caddy, server_name: shop.example.com, listen: 8443 }'), ['shop.example.com:8443 {', 'reverse_proxy 127.0.0.1:3100', '}']);
  assert.equal(first('{ server: caddy, server_name: shop.example.com, tls: off, listen: 8080 }'), ['http://shop.example.com:8080 {', 'reverse_proxy 127.0.0.1:3100', '}']);
  assert.equal(first('{ server: caddy, server_name: shop.example.com, tls: off }'), ['http://shop.example.com:80 {', 'reverse_proxy 127.0.0.1:3100', '}']);
  assert.equal(first('{ server: caddy, server_name: shop.example.com, tls: internal }'), ['shop.example.com {', 'tls internal', 'reverse_proxy 127.0.0.1:3100', '}']);
  assert.equal(first('{ server: caddy, server_name: shop.example.com, tls: { cert: /etc/ssl/s.pem, key: /etc/ssl/s.key } }'), ['shop.example.com {', 'tls /etc/ssl/s.pem /etc/ssl/s.key', 'reverse_proxy 127.0.0.1:3100', '}']);
  const site = renderSite(withProxy('{ server: caddy, server_name: shop.example.com }'));
  assert.is(site.path, '/etc/caddy/cutover.d/shop-2.caddy');
  assert.is(site.mode, 0o644);
  assert.is(renderSite(withProxy('{ server: nginx, server_name: shop.example.com, tls: off }')).path, '/etc/nginx/conf.d/cutover-shop-2.conf');
});

test('server_name may be a list: nginx names them all in each server block, Caddy gives each an address of the site', () => {
  const names = '[shop.example.com, www.shop.example.com]';
  const first = (proxy: string) => directives(renderCaddySite(withProxy(proxy)));
  assert.equal(withProxy(`{ server: caddy, server_name: ${names} }`).proxy?.server_names, ['shop.example.com', 'www.shop.example.com']);
  const nginx = directives(renderNginxSite(withProxy(`{ server: nginx, server_name: ${names}, tls: { cert: /etc/ssl/s.pem, key: /etc/ssl/s.key } }`)));
  assert.equal(nginx.filter((d) => d.startsWith('server_name')), ['server_name shop.example.com www.shop.example.com;', 'server_name shop.example.com www.shop.example.com;'], 'the redirect and the site');
  assert.equal(first(`{ server: caddy, server_name: ${names} }`)[0], 'shop.example.com, www.shop.example.com {');
  assert.equal(first(`{ server: caddy, server_name: ${names}, listen: 8443 }`)[0], 'shop.example.com:8443, www.shop.example.com:8443 {');
  assert.equal(first(`{ server: caddy, server_name: ${names}, tls: off }`)[0], 'http://shop.example.com:80, http://www.shop.example.com:80 {');
  assert.match(problems('{ server: caddy, server_name: [] }').join('\n'), 'proxy.server_name: must list at least 1 (it lists 0)');
  assert.match(problems('{ server: caddy, server_name: [a.example.com, a.example.com] }').join('\n'), "proxy.server_name: lists 'a.example.com' twice");
  assert.match(problems('{ server: caddy, server_name: [a.example.com, "b c"] }').join('\n'), 'proxy.server_name[1]: must be one host name');
  assert.match(problems('{ server: caddy, server_name: 5 }').join('\n'), 'proxy.server_name: must be a host name such as shop.example.com, or a list of them; found 5');
});

test("a site's addresses read back from its text are the manifest's (name:port), for every shape of site, so two apps never share one", () => {
  const shapes = [
    '{ server: nginx, server_name: shop.example.com, tls: off }',
    '{ server: nginx, server_name: [shop.example.com, www.shop.example.com], tls: off, listen: 8080 }',
    '{ server: nginx, server_name: [shop.example.com, www.shop.example.com], tls: { cert: /etc/ssl/s.pem, key: /etc/ssl/s.key } }',
    '{ server: nginx, server_name: shop.example.com, tls: { cert: /etc/ssl/s.pem, key: /etc/ssl/s.key }, listen: 8443 }',
    '{ server: caddy, server_name: shop.example.com }',
    '{ server: caddy, server_name: [shop.example.com, www.shop.example.com], listen: 8443 }',
    '{ server: caddy, server_name: [shop.example.com, 10.0.0.7], tls: off }',
    '{ server: caddy, server_name: shop.example.com, tls: off, listen: 8080 }',
    '{ server: caddy, server_name: shop.example.com, tls: internal }',
  ];
  for (const shape of shapes) {
    const m = withProxy(shape);
    assert.equal(siteAddresses(m.proxy!.server, renderSite(m).content), manifestAddresses(m.proxy!), shape);
  }
  assert.equal(manifestAddresses(withProxy('{ server: caddy, server_name: [a.example.com, b.example.com], tls: off }').proxy!), ['a.example.com:80', 'b.example.com:80']);
});

test("a passed check's warnings about this app's names or file are picked out; others are not", () => {
  const lines = [
    'nginx: [warn] conflicting server name "shop.example.com" on 0.0.0.0:443, ignored',
    'nginx: [warn] conflicting server name "other.example.com" on 0.0.0.0:443, ignored',
    'nginx: [warn] the "listen ... http2" directive is deprecated, use the "http2" directive instead in /etc/nginx/conf.d/cutover-shop.conf:27',
    'nginx: [emerg] something else "shop.example.com"',
  ];
  assert.equal(siteWarnings(lines, ['shop.example.com', 'www.shop.example.com'], '/etc/nginx/conf.d/cutover-shop.conf'), [lines[0], lines[2]]);
  assert.equal(siteWarnings(lines, ['shop.example.co'], '/etc/nginx/conf.d/cutover-x.conf'), [], 'a name that is only a prefix is not it');
});

test('rendering refuses, on its own, a value the schema would have refused (it is written unquoted)', () => {
  const m = withProxy('{ server: caddy, server_name: shop.example.com }');
  throwsUsage(() => renderCaddySite({ ...m, proxy: { ...m.proxy!, server_names: ['shop.example.com {\n\trespond hi\n}\nx'] } }), /proxy.server_name .* is not a host name/);
  throwsUsage(() => renderNginxSite({ ...m, proxy: { ...m.proxy!, server_names: ['shop.example.com', 'a;b'], tls: 'off' } }), /is not a host name/);
  throwsUsage(() => renderNginxSite({ ...m, proxy: { ...m.proxy!, tls: { cert: '/etc/ssl/a;b.pem', key: '/k' } } }), /proxy.tls.cert .* contains a character/);
  throwsUsage(() => renderCaddySite({ ...m, proxy: { ...m.proxy!, listen: 0 } }), /proxy.listen must be a whole number/);
  throwsUsage(() => renderNginxSite(m), /'?auto'? is Caddy's own certificate management/);
});

test('a site is cutover\'s only when its first line is the mark for that server and app', () => {
  const site = renderNginxSite(withProxy('{ server: nginx, server_name: shop.example.com, tls: off }'));
  assert.ok(isOwnSite('nginx', 'shop-2', site));
  assert.not.ok(isOwnSite('nginx', 'shop', site), 'another app\'s mark');
  assert.not.ok(isOwnSite('caddy', 'shop-2', site), 'another server\'s mark');
  assert.not.ok(isOwnSite('nginx', 'shop-2', `# mine\n${site}`), 'the mark further down is not the mark');
  assert.not.ok(isOwnSite('nginx', 'shop-2', 'server { listen 80; }\n'));
});

test("the Caddyfile cutover writes: the admin API on a Unix socket, cutover's sites imported; an operator's Caddyfile gets the import once, at its end, its text untouched", () => {
  const own = renderCaddyfile();
  assert.equal(directives(own), ['{', 'admin unix//var/lib/caddy/admin.sock', '}', CADDY_IMPORT]);
  assert.ok(importsCutoverSites(own));
  const theirs = '{\n\temail ops@example.com\n}\n\nexample.org {\n\trespond "hi"\n}';
  assert.not.ok(importsCutoverSites(theirs));
  const added = withCutoverImport(theirs);
  assert.ok(added.startsWith(`${theirs}\n`), 'their text is kept as it was');
  assert.is(added.slice(theirs.length), `\n\n# Added by cutover (provision): the sites it writes for its apps, one file per app.\n${CADDY_IMPORT}\n`);
  assert.ok(importsCutoverSites(added), 'a second provision sees the import and adds nothing');
  assert.ok(importsCutoverSites(`  ${CADDY_IMPORT}  \n`), 'indentation does not matter');
  assert.not.ok(importsCutoverSites(`# ${CADDY_IMPORT}\n`), 'a commented-out import is no import');
});

test('each config/examples manifest carries a commented proxy block that, uncommented, is a valid proxy for that app', () => {
  const dir = path.join(kitPaths.dir, 'config', 'examples');
  const names = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(names.length >= 4);
  for (const name of names) {
    const text = readFileSync(path.join(dir, name), 'utf8');
    const lines = text.split('\n');
    const start = lines.indexOf('# proxy:');
    assert.ok(start > 0, `${name} has a commented proxy block`);
    let end = start + 1;
    while (lines[end]?.startsWith('#   ')) end++;
    const uncommented = [...lines.slice(0, start), ...lines.slice(start, end).map((l) => l.slice(2)), ...lines.slice(end)].join('\n');
    const m = parseManifest(uncommented, path.join(dir, name));
    assert.ok(m.proxy, `${name}: the uncommented block is the proxy`);
    assert.ok(renderSite(m).content.includes(m.proxy!.server_names[0]!));
    if (m.env.ORIGIN) assert.is(m.env.ORIGIN, `https://${m.proxy!.server_names[0]}`, `${name}: ORIGIN is the public URL`);
  }
});

test.run();
